"""Agents through a site profile: the system makes, starts and cleans up the site's
workflow, and the agent builds its own workflow from the same profile."""

from __future__ import annotations

import guide_agents as G
import pytest
from helpers import processes as P

from chiltepin import AgentSystem

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
