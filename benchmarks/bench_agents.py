"""Agents: action round trip through a chiltepin agent vs a plain Academy agent, and
launch-to-first-action time.

Both agents run on the same HTEX executor and talk through the same exchange (the
embedded HTTP exchange that AgentSystem starts). Round trips are sequential calls of an
async ``echo`` action; the chiltepin agent's sync action (run in a thread) is measured
too. Launch-to-first-action covers registration, the Parsl submission, the agent's start
(for a chiltepin agent: starting its own workflow) and the first reply; "cold" is the
first launch on the executor, which also starts its worker pool. On this machine the
first task action is compared with raw Parsl: a fresh interpreter's ``parsl.load`` and
first app on the same single-worker local geometry.

By default everything runs on this machine. With ``--site testcluster`` (the loopback
Slurm cluster, started with tests/infra/slurm.sh as benchmarks/bench_slurm.py does) the
agents run on the profile's ``service`` executor (a Slurm job: "cold" includes its start)
and a chiltepin agent's workflow comes from the same profile: its first task action
includes the start of a Slurm job on ``compute``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Workers unpickle the agent classes below by reference when this runs as bench_agents.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
# Workflows started in Slurm jobs need interchange.py and process_worker_pool.py on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

from academy.agent import Agent, action  # noqa: E402
from academy.manager import Manager  # noqa: E402

from chiltepin import AgentSystem, Workflow  # noqa: E402
from chiltepin.agents import agent_action, chiltepin_agent  # noqa: E402
from chiltepin.tasks import python_task  # noqa: E402

MANAGER_CONFIG = {
    "manager-executor": {
        "provider": "localhost",
        "max_workers_per_node": 4,
        "cores_per_worker": 0.25,
        "init_blocks": 1,
    }
}
#: Workers of the manager executor (agents it can host at once).
WORKERS = MANAGER_CONFIG["manager-executor"]["max_workers_per_node"]
IDLE_CONFIG = {"idle": {"provider": "localhost", "init_blocks": 0}}  # a workflow, no workers
COMPUTE_CONFIG = {"compute": {"provider": "localhost", "max_workers_per_node": 1, "init_blocks": 1}}
# The raw-library reference for the first task action: a fresh interpreter with Parsl
# imported runs parsl.load and one app on the same geometry as COMPUTE_CONFIG, with the
# strategy period chiltepin's configs use (Parsl's default of 5 s measured 6.7 s here).
RAW_FIRST_TASK = """
import sys, time
import parsl
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

@parsl.python_app
def echo(value):
    return value

start = time.perf_counter()
provider = LocalProvider(init_blocks=1, max_blocks=1)
executor = HighThroughputExecutor(label="compute", max_workers_per_node=1, provider=provider)
config = Config(executors=[executor], run_dir=sys.argv[1], strategy_period=1, usage_tracking=0)
with parsl.load(config):
    echo(0).result()
    print(time.perf_counter() - start)
"""


class PlainEcho(Agent):
    @action
    async def echo(self, value: int) -> int:
        return value


@chiltepin_agent()
class ChiltepinEcho:
    @agent_action
    async def echo(self, value: int) -> int:
        return value

    @agent_action
    def echo_sync(self, value: int) -> int:
        return value

    @agent_action
    @python_task
    def echo_task(self, value: int) -> int:
        return value


async def round_trips(
    calls: dict[str, Callable[[int], Awaitable[object]]],
    count: int,
    warmup: int = 20,
    rounds: int = 10,
) -> dict[str, list[float]]:
    """Sequential round trips of each callable in ``calls`` (name -> call), ``count``
    each, in ``rounds`` interleaved blocks: every kind sees the same machine (a stopping
    agent, a busy worker pool), so their ratio is not an artefact of order."""
    for call in calls.values():
        for i in range(warmup):
            await call(i)
    times: dict[str, list[float]] = {name: [] for name in calls}
    block = max(count // rounds, 1)
    for done in range(0, count, block):
        for name, call in calls.items():
            for i in range(min(block, count - done)):
                start = time.perf_counter()
                await call(i)
                times[name].append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1e3, ordered[int(0.95 * (len(ordered) - 1))] * 1e3


async def launch_to_first(launch, call) -> tuple[float, object]:
    start = time.perf_counter()
    handle = await launch()
    await call(handle)
    return time.perf_counter() - start, handle


def raw_parsl_first_task(run_dir: str) -> float:
    """Seconds from parsl.load to the first app's result, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", RAW_FIRST_TASK, run_dir],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return float(done.stdout.split()[-1])


async def run(calls: int, run_root: str, site: str | None = None, launches: int = 5) -> dict:
    if site is None:
        executor = "manager-executor"
        workflow = Workflow(MANAGER_CONFIG, run_dir=f"{run_root}/manager", include=[executor])
        idle = {"agent_workflow_config": IDLE_CONFIG, "agent_workflow_include": ["idle"]}
        compute = {"agent_workflow_config": COMPUTE_CONFIG, "agent_workflow_include": ["compute"]}
    else:
        executor = "service"
        workflow = Workflow(site=site, run_dir=f"{run_root}/manager", include=[executor])
        # The agent's workflow submits no job until its first task.
        idle = compute = {"site": site, "agent_workflow_include": ["compute"]}
    workflow.start()
    try:
        system = AgentSystem(workflow, [executor])
        async with await system.manager() as manager:
            from chiltepin.agents._pool import pool_executors

            plain_manager = await Manager.from_exchange_factory(
                manager.exchange_factory,
                executors=pool_executors(workflow.dfk, [executor]),
                default_executor=executor,
            )
            async with plain_manager:
                # Warm the executor's worker pool so both launches start from the same state.
                cold_first, warm = await launch_to_first(
                    lambda: plain_manager.launch(PlainEcho), lambda h: h.echo(0)
                )
                await plain_manager.shutdown(warm)
                # ... on this machine every worker of it, for both kinds: a worker's first
                # agent of a kind imports that kind's code (about 0.4 s here), which is not
                # what a launch costs.
                warm_ups = (
                    (plain_manager, lambda i: plain_manager.launch(PlainEcho)),
                    (
                        manager,
                        lambda i: manager.launch(
                            ChiltepinEcho, agent_workflow_run_dir=f"{run_root}/warm{i}", **idle
                        ),
                    ),
                )
                for owner, launch in warm_ups if site is None else ():
                    warming = [await launch(i) for i in range(WORKERS)]
                    await asyncio.gather(*(handle.echo(0) for handle in warming))
                    for handle in warming:
                        await owner.shutdown(handle)

                # Launches alternate (plain, chiltepin) so that both see the same machine,
                # and each pair starts once the previous one has stopped (a stopping agent
                # is work for the machine); the last pair stays up for the round trips.
                plain_firsts, ours_firsts = [], []
                for i in range(launches):
                    seconds, plain = await launch_to_first(
                        lambda: plain_manager.launch(PlainEcho), lambda h: h.echo(0)
                    )
                    plain_firsts.append(seconds)
                    seconds, ours = await launch_to_first(
                        lambda i=i: manager.launch(
                            ChiltepinEcho, agent_workflow_run_dir=f"{run_root}/echo{i}", **idle
                        ),
                        lambda h: h.echo(0),
                    )
                    ours_firsts.append(seconds)
                    if i < launches - 1:
                        await manager.shutdown(ours)
                        await plain_manager.shutdown(plain)
                        await manager.wait([ours.agent_id])
                        await plain_manager.wait([plain.agent_id])
                rts = await round_trips(
                    {"plain": plain.echo, "ours": ours.echo, "sync": ours.echo_sync}, calls
                )
                plain_rt, ours_rt, sync_rt = (summary(rts[k]) for k in ("plain", "ours", "sync"))
                await manager.shutdown(ours)
                await plain_manager.shutdown(plain)

                task_firsts = []
                for i in range(max(launches // 2, 1)):
                    seconds, tasker = await launch_to_first(
                        lambda i=i: manager.launch(
                            ChiltepinEcho, agent_workflow_run_dir=f"{run_root}/tasker{i}", **compute
                        ),
                        lambda h: h.echo_task(0),
                    )
                    task_firsts.append(seconds)
                    if i == 0:
                        task_rts = await round_trips(
                            {"task": tasker.echo_task}, max(calls // 5, 20), 5
                        )
                        task_rt = summary(task_rts["task"])
                    await manager.shutdown(tasker)
    finally:
        workflow.cleanup()
    raw_firsts = []
    if site is None:
        for i in range(len(task_firsts)):
            raw_firsts.append(raw_parsl_first_task(f"{run_root}/raw{i}"))
    return {
        "plain_rt_ms": plain_rt,
        "chiltepin_rt_ms": ours_rt,
        "chiltepin_sync_rt_ms": sync_rt,
        "chiltepin_task_rt_ms": task_rt,
        "cold_first_s": cold_first,
        "plain_first_s": statistics.median(plain_firsts),
        "chiltepin_first_s": statistics.median(ours_firsts),
        "chiltepin_first_task_s": statistics.median(task_firsts),
        "raw_first_task_s": statistics.median(raw_firsts) if raw_firsts else None,
        "launches": launches,
        "task_launches": len(task_firsts),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500, help="round trips per agent")
    parser.add_argument(
        "--launches",
        type=int,
        default=9,
        help="launches of each agent to first action (the median is reported); half as "
        "many to first task action",
    )
    parser.add_argument(
        "--site",
        help="run the agents on this site profile's service executor (testcluster: the "
        "loopback Slurm cluster, started here); default: this machine",
    )
    args = parser.parse_args(argv)
    cluster = None
    left_jobs = None
    with contextlib.ExitStack() as stack:
        if args.site == "testcluster":
            sys.path.insert(0, str(HERE.parent / "tests" / "infra"))
            import slurm_cluster as cluster

            stack.enter_context(cluster.started())  # stopped after, if started here
        # Slurm jobs start in the submitting directory: keep run directories out of the cwd.
        shared = cluster.SHARED_TMP if cluster is not None else None
        with tempfile.TemporaryDirectory(prefix="bench-agents-", dir=shared) as run_root:
            previous = os.getcwd()
            os.chdir(run_root)
            try:
                r = asyncio.run(run(args.calls, run_root, args.site, max(args.launches, 1)))
            finally:
                os.chdir(previous)
        if cluster is not None:
            left_jobs = len(cluster.leftover_jobs(wait=30))

    def line(label: str, key: str) -> None:
        median, p95 = r[key]
        print(f"  {label:<36}: {median:6.2f} / {p95:6.2f}")

    print(
        f"action round trip, {args.calls} sequential calls, interleaved in blocks "
        "(median / p95, ms):"
    )
    line("plain Academy agent, async action", "plain_rt_ms")
    line("chiltepin agent, async action", "chiltepin_rt_ms")
    line("chiltepin agent, sync action", "chiltepin_sync_rt_ms")
    line("chiltepin agent, task action", "chiltepin_task_rt_ms")
    median = r["chiltepin_rt_ms"][0] / r["plain_rt_ms"][0]
    p95 = r["chiltepin_rt_ms"][1] / r["plain_rt_ms"][1]
    print(f"  {'ratio chiltepin/plain, async':<36}: {median:6.2f}x median, {p95:.2f}x p95")
    where = f"site {args.site}" if args.site else "this machine"
    print(
        f"launch to first action, {where} (s; median of {r['launches']} launches, "
        f"{r['task_launches']} to first task action):"
    )
    print(f"  {'plain Academy agent, cold executor':<36}: {r['cold_first_s']:6.2f}")
    print(f"  {'plain Academy agent':<36}: {r['plain_first_s']:6.3f}")
    print(f"  {'chiltepin agent (own idle workflow)':<36}: {r['chiltepin_first_s']:6.3f}")
    print(f"  {'chiltepin agent, first task action':<36}: {r['chiltepin_first_task_s']:6.2f}")
    if r["raw_first_task_s"] is not None:
        print(f"  {'raw Parsl, load to first app result':<36}: {r['raw_first_task_s']:6.2f}")
        ratio = r["chiltepin_first_task_s"] / r["raw_first_task_s"]
        print(f"  {'ratio chiltepin/raw Parsl, 1st task':<36}: {ratio:6.2f}x")
    # Fixed lines, compared over time (see issue 13).
    print(f"launch ratio chiltepin/plain: {r['chiltepin_first_s'] / r['plain_first_s']:.2f}")
    print(f"first task action: {r['chiltepin_first_task_s']:.2f} s")
    if left_jobs is not None:
        print(f"  jobs left in queue afterwards: {left_jobs}")
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
