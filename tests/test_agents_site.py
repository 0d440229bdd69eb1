"""Agents through a site profile: the system makes, starts and cleans up the site's
workflow, and the agent builds its own workflow from the same profile."""

from __future__ import annotations

import asyncio

import guide_agents as G
import pytest
from helpers import processes as P

from chiltepin import AgentSystem
from chiltepin.errors import NoFreeWorkerError

pytestmark = pytest.mark.asyncio


@pytest.fixture
def local_site():
    return "local"


async def test_agent_on_the_local_site(local_site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the site workflows' default run dirs land here
    system = AgentSystem(site=local_site, executor_names=["service"])
    async with await system.manager() as manager:
        assert system.workflow is None  # the system's own, not the caller's
        computer = await manager.launch(
            G.Computer, site=local_site, agent_workflow_include=["compute"], executor="service"
        )
        assert await computer.compute(6) == 36
        info = await computer.agent_workflow_info()
        assert info["site"] == local_site and info["executors"] == ["compute"]
        assert info["run_dir"].startswith(str(tmp_path))
        assert P.processes_under(tmp_path)
    assert P.exchange_servers() == []
    assert P.wait_until_gone(P.processes_under, tmp_path) == []


async def test_launch_beyond_the_free_workers_says_so_at_once(local_site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    idle = {"idle": {"provider": "localhost", "init_blocks": 0}}  # no worker pool of its own
    system = AgentSystem(site=local_site, executor_names=["service"])
    async with await system.manager() as manager:
        workers = system.executors["service"].workers()
        assert workers is not None and workers.total >= 1
        agents = [
            await manager.launch(
                G.Monitor,
                agent_workflow_config=idle,
                agent_workflow_include=["idle"],
                executor="service",
            )
            for _ in range(workers.total)
        ]
        await asyncio.gather(*(agent.ping() for agent in agents))  # all of them run
        with pytest.raises(NoFreeWorkerError, match="max_workers_per_node") as refused:
            await manager.launch(
                G.Monitor,
                agent_workflow_config=idle,
                agent_workflow_include=["idle"],
                executor="service",
            )
        message = str(refused.value)
        assert f"all {workers.total} of its workers are busy" in message
        assert "cores_per_worker" in message and "max_blocks" in message
        assert len(manager.running()) == workers.total  # nothing was launched
        await manager.shutdown(agents.pop())
        agents.append(
            await manager.launch(
                G.Monitor,
                agent_workflow_config=idle,
                agent_workflow_include=["idle"],
                executor="service",
            )
        )
        await agents[-1].ping()  # a freed worker takes the next agent
    assert P.wait_until_gone(P.processes_under, tmp_path) == []
