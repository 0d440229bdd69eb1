"""Agents on the loopback Slurm cluster, for real, launched by site name.

The agents guide's examples and the probe agent of tests/helpers/agents.py (the classes
the local tests in test_agents.py use) run on two profiles: ``testcluster``, and
``testcluster-podman`` (tests/sites/), whose compute workers run in the project's image.

One AgentSystem per profile: ``AgentSystem(site=..., executor_names=["service"])`` starts
the profile's ``service`` workflow; each agent runs in one of its workers, a Slurm job on
partition ``service`` (on the host: the image has no Slurm client), and builds its own
workflow from the same profile (``launch(..., site=..., agent_workflow_include=
["compute"], executor="service")``): its task actions run in Slurm jobs on partition
``compute``, in podman when the profile has a container. Agents reach the test process
through the embedded exchange. The last test closes the manager with agents running
(and one that failed to start) and checks that no scheduler job, Parsl process, exchange
server or container is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import subprocess
from pathlib import Path

import guide_agents as G
import pytest
import pytest_asyncio
from helpers import agents as S
from helpers import processes as P
from helpers.agents import check_weather_model, eventually, launched
from helpers.infra import SITES, labelled_containers
from helpers.processes import wait_until_gone

from chiltepin import AgentSystem, __version__
from chiltepin.errors import ConfigError

pytestmark = [pytest.mark.slurm, pytest.mark.asyncio(loop_scope="module")]

NODES = {"node1", "node2", "node3", "node4"}
PROFILES = [
    pytest.param("testcluster", id="testcluster"),
    pytest.param("testcluster-podman", id="podman", marks=pytest.mark.podman),
]


@dataclasses.dataclass
class Run:
    """One profile's agent system: its manager and what its end must leave behind."""

    profile: str
    root: Path  # the working directory: agents' default run dirs land here
    image: str | None  # the image marker task actions see (None: on the host)
    cluster: object  # tests/infra/slurm_cluster
    manager: object = None
    exchanges: set = dataclasses.field(default_factory=set)  # servers before the system
    containers: set = dataclasses.field(default_factory=set)  # containers before it
    failure: type[BaseException] | None = None  # what closing the manager re-raises
    closed: bool = False

    def jobs(self, wait: float = 0) -> list[list[str]]:
        """squeue lines split: id, state, partition, user, time, nodes, name, reason."""
        return [line.split() for line in self.cluster.leftover_jobs(wait=wait)]

    def new_containers(self) -> list[str]:
        return [c for c in labelled_containers() if c not in self.containers]

    def new_exchanges(self) -> set[int]:
        return {p.pid for p in P.exchange_servers()} - self.exchanges

    async def close(self) -> None:
        """End the manager context, as ``async with`` does."""
        self.closed = True
        await self.manager.__aexit__(None, None, None)


@pytest.fixture(scope="module", params=PROFILES)
def profile(request, slurm_cluster, tmp_path_factory):
    """The profile's name, with the test process in a fresh working directory (Slurm jobs
    start there, so agents' default run dirs land in it)."""
    with pytest.MonkeyPatch.context() as patch:
        image = None
        if request.param != "testcluster":
            request.getfixturevalue("pulled_image")
            patch.setenv("CHILTEPIN_SITE_PATH", str(SITES))  # jobs inherit it
            image = __version__
        root = tmp_path_factory.mktemp(f"agents-{request.param}")
        patch.chdir(root)
        yield request.param, root, image


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(profile, slurm_cluster):
    name, root, image = profile
    state = Run(name, root, image, slurm_cluster)
    state.exchanges = {p.pid for p in P.exchange_servers()}
    if image:
        state.containers = set(labelled_containers())
    system = AgentSystem(site=name, executor_names=["service"])
    state.manager = await (await system.manager()).__aenter__()
    try:
        yield state
    finally:
        # Normally test_manager_shutdown_leaves_nothing closed it and checked; after a
        # failure, leave nothing for the next module either.
        if not state.closed:
            with contextlib.suppress(Exception):
                await state.close()
        if slurm_cluster.leftover_jobs(wait=30):
            slurm_cluster.cancel_all()
        if image and (left := state.new_containers()):
            subprocess.run(["podman", "rm", "-f", *left], capture_output=True, timeout=120)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def probe(run):
    """A Probe agent for the module; closing the manager stops it."""
    return await run.manager.launch(S.Probe, site=run.profile, executor="service")


def launch_args(run: Run, **extra) -> dict:
    return {"site": run.profile, "agent_workflow_include": ["compute"], **extra}


# --- where things run, actions, loops, failures -------------------------------------------


async def test_agent_runs_on_service_and_its_tasks_on_compute(run, probe):
    agent = await probe.placement()
    assert agent["partition"] == "service" and agent["node"] in NODES, agent
    assert agent["image"] is None, "agents run on the host"
    service_jobs = [job for job in run.jobs() if job[2] == "service"]
    assert [job[0] for job in service_jobs] == [agent["job"]], "the manager's service job"

    task = await probe.where(executor="compute")
    assert task["partition"] == "compute" and task["node"] in NODES, task
    assert task["job"] != agent["job"] and task["pid"] != agent["pid"]
    assert task["image"] == run.image, "in the profile's image (None: on the host)"
    assert task["tick"] == 0.05  # the agent's state reached the task


async def test_exchange_and_interchange_listen_only_on_the_cluster_network(run, probe):
    """``ss -ltnp`` while an agent runs on a node: the embedded exchange and the service
    workflow's interchange listen on the profile's interface (the login node's bridge
    address), not on every interface; agents on the nodes reach the exchange there."""
    assert await probe.pid() > 0
    login = os.environ["CHILTEPIN_SLURM_LOGIN_ADDR"]
    (exchange,) = run.new_exchanges()
    interchanges = [
        proc.pid
        for proc in P.matching(lambda cmd: any(m in cmd for m in P.INTERCHANGE_MARKERS))
        if os.getpid() in {parent.pid for parent in proc.parents()}
    ]
    assert interchanges, "the service workflow's interchange runs here"
    for pid in [exchange, *interchanges]:
        bound = P.listening_on(pid)
        assert bound and {a.rpartition(":")[0] for a in bound} == {login}, (pid, bound)

    info = await probe.agent_workflow_info()
    assert info["site"] == run.profile and info["executors"] == ["compute"]
    assert Path(info["run_dir"]).parent == run.root / "runinfo" / "agents" / "Probe"
    # an async action that submits and awaits a task of its agent
    assert (await probe.via_task(1))["x"] == 2
    marker = run.root / "touched-by-bash"
    assert await probe.touch(str(marker), executor=["compute"]) == 0
    assert marker.exists()


async def test_loop_changes_state(probe):
    before = await probe.ticks_now()
    await asyncio.sleep(1.0)
    assert await probe.ticks_now() >= before + 5


@pytest.mark.parametrize(
    ("action", "error"),
    [("fail_sync", ValueError), ("fail_async", KeyError), ("fail_task", RuntimeError)],
)
async def test_raising_action_reaches_the_caller(probe, action, error):
    extra = {"executor": ["compute"]} if action == "fail_task" else {}
    with pytest.raises(error, match=f"broken {action} on Slurm"):
        await getattr(probe, action)(f"broken {action} on Slurm", **extra)
    assert await probe.ticks_now() > 0  # the agent carries on


# --- the guide's examples -------------------------------------------------------------------


async def test_weather_model(run):
    # agent_workflow_include comes from the decorator's default
    async with launched(run.manager, G.WeatherModel, site=run.profile, args=(25.0,)) as model:
        info = await check_weather_model(model)
        assert info["site"] == run.profile


async def test_data_processor_sync_actions(run):
    async with launched(run.manager, G.DataProcessor, **launch_args(run)) as processor:
        assert await processor.process_data("hello agents", executor="compute") == "HELLO AGENTS"
        assert await processor.get_config() == {"version": "1.0"}


async def test_two_agents_at_once_get_distinct_run_dirs(run):
    async with run.manager.launch_batch() as batch:
        first = await batch.queue(G.Computer, executor="service", **launch_args(run))
        second = await batch.queue(G.Computer, executor="service", **launch_args(run))
    try:
        assert await asyncio.gather(first.compute(7), second.compute(8)) == [49, 64]
        infos = await asyncio.gather(first.agent_workflow_info(), second.agent_workflow_info())
        run_dirs = [Path(info["run_dir"]) for info in infos]
        assert run_dirs[0] != run_dirs[1]
        for run_dir in run_dirs:
            assert run_dir.parent == run.root / "runinfo" / "agents" / "Computer"
            # each agent's own workflow ran its own compute job
            assert list((run_dir / "000" / "submit_scripts").glob("parsl.compute.*.stdout"))
    finally:
        await asyncio.gather(run.manager.shutdown(first), run.manager.shutdown(second))


async def test_typed_agent_with_explicit_run_dir(run):
    run_dir = run.root / "agent-runs" / "typed"
    async with launched(
        run.manager,
        G.TypedAgent,
        **launch_args(run, agent_workflow_run_dir=run_dir),
        kwargs={"values": [1.0, 2.0, 6.0]},
    ) as typed:
        assert await typed.mean(executor="compute") == 3.0
        assert (await typed.agent_workflow_info())["run_dir"] == str(run_dir)
        assert (run_dir / "000" / "parsl.log").is_file()


async def test_temperature_model_complete_example(run):
    async with launched(
        run.manager, G.TemperatureModel, **launch_args(run), args=(20.0, "Boulder, CO")
    ) as model:
        stats = await model.get_stats()
        assert stats["location"] == "Boulder, CO" and stats["forecasts_generated"] == 0
        assert re.fullmatch(
            r"Boulder, CO: (sunny|cloudy|rainy|snowy), -?[\d.]+°C",
            await model.forecast(executor=["compute"]),
        )
        await model.set_temperature(25.0)
        # the loop may have stepped once (by at most 1 degree) since
        assert abs((await model.get_stats())["temperature"] - 25.0) <= 1.0

        async def loop_moved_it():
            return (await model.get_stats())["temperature"] != 25.0

        await eventually(loop_moved_it)


# --- bad configurations, and the end ------------------------------------------------------


async def test_bad_agent_config_is_refused_at_launch(run):
    running = run.manager.running()
    with pytest.raises(ConfigError, match="'gpu' is not defined"):
        await run.manager.launch(
            G.Computer, site=run.profile, agent_workflow_include=["gpu"], executor="service"
        )
    with pytest.raises(ConfigError, match="no manager executor named 'compute'"):
        await run.manager.launch(G.Computer, **launch_args(run), executor="compute")
    assert run.manager.running() == running  # nothing was launched


async def test_a_failed_workflow_start_fails_task_actions(run):
    # A config path the manager cannot check (it may exist where the agent runs)
    missing = run.root / "elsewhere" / "agent.yaml"
    handle = await run.manager.launch(
        G.Computer,
        agent_workflow_config=str(missing),
        agent_workflow_run_dir=run.root / "agent-runs" / "failing",
        executor="service",
    )
    # The agent stops with that error: closing the manager re-raises it, as in Academy.
    run.failure = ConfigError
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: file not found")):
        await handle.compute(2)
    info = await handle.agent_workflow_info()
    assert info["state"] == "failed" and "file not found" in info["error"], info
    await handle.ping()  # the agent still answers, and stays until the manager closes
    assert handle.agent_id in run.manager.running()


async def test_manager_shutdown_leaves_nothing(run, probe):
    # At shutdown: the probe with a live compute job (and container), and a Monitor whose
    # workflow is up; test_a_failed_workflow_start_fails_task_actions left an agent whose
    # workflow failed.
    monitor = await run.manager.launch(G.Monitor, **launch_args(run), executor="service")
    assert (await probe.where(executor="compute"))["image"] == run.image
    assert (await monitor.agent_workflow_info(wait=True))["running"]
    assert {job[2] for job in run.jobs()} == {"service", "compute"}
    assert P.processes_under(run.root), "the agents' interchanges and workers run"
    assert len(run.new_exchanges()) == 1, "the embedded exchange runs"
    if run.image:
        assert run.new_containers(), "compute workers run in labelled containers"

    if run.failure is None:
        await run.close()
    else:
        with pytest.raises(run.failure):
            await run.close()

    assert run.manager.running() == set()
    assert run.jobs(wait=30) == [], "scheduler jobs left behind"
    assert P.wait_until_gone(P.processes_under, run.root) == [], "Parsl processes left"
    assert run.new_exchanges() == set(), "the embedded exchange is still running"
    if run.image:
        assert wait_until_gone(run.new_containers, timeout=30) == [], "containers left behind"
