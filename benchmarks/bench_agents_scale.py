"""Many chiltepin agents on one executor: launch time, first answers, footprint, idle CPU.

For each N (default 1, 10, 25, 50) N agents are launched at once on one ``service``
executor sized for them, and the benchmark reports:

* launch: until every ``launch`` returned; first actions: until every agent answered a
  non-task action; first task actions (for N up to ``--task-max``): until every agent
  answered a task action (each agent's workflow starts its own worker pool on demand);
* resident memory (RSS, MiB) over each agent's process tree, split into the agent's own
  footprint (the agent process, its workflow's interchange, anything else it started
  that is not a task worker) and its task workers (the worker pools); the manager and
  the service pool that hosts the agents are shared and reported apart;
* CPU seconds per idle agent-minute: the CPU the agents' own processes (not task
  workers) use over ``--idle`` seconds in which nobody calls them.

``--site local`` (default) runs everything on this machine; ``--site testcluster`` runs
the agents on the loopback Slurm cluster's service partition (started here, as
benchmarks/bench_slurm.py does) and their tasks on its compute partition.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Workers unpickle the agent class below by reference when this runs as bench_agents_scale.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
# Workflows started in Slurm jobs need interchange.py and process_worker_pool.py on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

import psutil  # noqa: E402

from chiltepin import AgentSystem, Workflow  # noqa: E402
from chiltepin.agents import agent_action, chiltepin_agent  # noqa: E402
from chiltepin.tasks import python_task  # noqa: E402

MIB = 2**20
#: The agents' own workflow on this machine: a worker pool only once a task needs one.
LOCAL_AGENT_CONFIG = {
    "compute": {"provider": "localhost", "init_blocks": 0, "max_workers_per_node": 1}
}


@chiltepin_agent()
class ScaleAgent:
    @agent_action
    async def pid(self) -> int:
        import os  # agents run remotely: import inside methods

        return os.getpid()

    @agent_action
    @python_task
    def echo_task(self, value: int) -> int:
        return value


def manager_config(site: str, agents: int) -> dict:
    """A service executor with one worker per agent (a pool counts this machine's cores
    against cores_per_worker, so keep that small)."""
    sizing = {"max_workers_per_node": agents, "cores_per_worker": 0.01}
    if site == "testcluster":
        return {"service": {**cluster_resource("service", 4), "init_blocks": 1, **sizing}}
    return {"service": {"provider": "localhost", "init_blocks": 1, **sizing}}


def cluster_resource(partition: str, cores: int) -> dict:
    """An executor on the test cluster: its workers reach the login node on the cluster
    network (the bridge tests/infra/slurm.sh made)."""
    return {
        "provider": "slurm",
        "partition": partition,
        "cores_per_node": cores,
        "exclusive": False,
        "walltime": "00:15:00",
        "interface": os.environ["CHILTEPIN_SLURM_BRIDGE"],
    }


def agent_tree(pid: int, run_dir: str) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(the agent's own processes: it and its descendants, e.g. its interchange; its task
    workers: the worker pools started for its workflow, found by its run directory as
    the local and Slurm launchers detach them, and their descendants)."""
    agent = psutil.Process(pid)
    own = [agent, *agent.children(recursive=True)]
    seen = {p.pid for p in own}
    workers: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if proc.pid in seen or "process_worker_pool" not in cmdline or run_dir not in cmdline:
            continue
        for member in [proc, *proc.children(recursive=True)]:
            if member.pid not in seen:
                seen.add(member.pid)
                workers.append(member)
    own_pids = {p.pid for p in own}
    return own, [w for w in workers if w.pid not in own_pids]


def rss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def shared_processes(agent_pids: list[int]) -> list[psutil.Process]:
    """This process and the service pools hosting the agents (without the agents)."""
    procs = [psutil.Process()]
    pools: dict[int, psutil.Process] = {}
    for pid in agent_pids:
        try:
            parent = psutil.Process(pid).parent()
        except psutil.Error:
            continue
        if parent is not None:
            pools[parent.pid] = parent
    agents = set(agent_pids)
    for pool in pools.values():
        procs.append(pool)
        procs.extend(c for c in pool.children() if c.pid not in agents)
    return procs


async def measure(system: AgentSystem, agents: int, site: str, task_max: int, idle: float):
    if site == "testcluster":
        # One core per agent's compute job, so that N=10 of them fit the cluster at once.
        compute = {**cluster_resource("compute", 1), "max_workers_per_node": 1}
        launch_args = {"agent_workflow_config": {"compute": compute}}
    else:
        launch_args = {
            "agent_workflow_config": LOCAL_AGENT_CONFIG,
            "agent_workflow_include": ["compute"],
        }
    result: dict = {"n": agents}
    async with await system.manager() as manager:
        result["service_ready_s"] = await workers_ready(system.workflow, agents)
        start = time.perf_counter()
        handles = await asyncio.gather(
            *(manager.launch(ScaleAgent, executor="service", **launch_args) for _ in range(agents))
        )
        result["launch_s"] = time.perf_counter() - start
        pids = await asyncio.gather(*(h.pid() for h in handles))
        result["first_action_s"] = time.perf_counter() - start
        infos = await asyncio.gather(*(h.agent_workflow_info(wait=True) for h in handles))
        if agents <= task_max:
            await asyncio.gather(*(h.echo_task(i) for i, h in enumerate(handles)))
            result["first_task_s"] = time.perf_counter() - start
        await asyncio.sleep(2)  # let started pools settle before measuring
        trees = [agent_tree(pid, info["run_dir"]) for pid, info in zip(pids, infos, strict=True)]
        own = [p for tree, _ in trees for p in tree]
        workers = [p for _, tree in trees for p in tree]
        result["own_rss"] = rss(own)
        result["worker_rss"] = rss(workers)
        result["own_procs"] = len(own)
        result["worker_procs"] = len(workers)
        result["shared_rss"] = rss(shared_processes(pids))
        agent_procs = [tree[0] for tree, _ in trees]
        before, before_agents = cpu(own), cpu(agent_procs)
        await asyncio.sleep(idle)
        per_agent_minute = agents * idle / 60
        result["idle_cpu_per_agent_min"] = (cpu(own) - before) / per_agent_minute
        result["idle_cpu_agent_process"] = (cpu(agent_procs) - before_agents) / per_agent_minute
        stop = time.perf_counter()
        await asyncio.gather(*(manager.shutdown(h) for h in handles))
        result["shutdown_s"] = time.perf_counter() - stop
    return result


async def workers_ready(workflow: Workflow, count: int, timeout: float = 300) -> float:
    """Wait until the service executor's pool has ``count`` workers connected (so launch
    times do not include the service block's own start); return how long that took."""
    executor = workflow.dfk.executors["service"]
    start = time.perf_counter()
    while True:
        managers = await asyncio.to_thread(executor.connected_managers)
        if sum(m["worker_count"] for m in managers if m["active"]) >= count:
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"the service executor did not get {count} workers")
        await asyncio.sleep(0.5)


async def run(site: str, counts: list[int], task_max: int, idle: float, root: str) -> list[dict]:
    results = []
    for agents in counts:
        workflow = Workflow(
            manager_config(site, agents), include=["service"], run_dir=f"{root}/manager-{agents}"
        )
        workflow.start()
        try:
            exchange = None
            if site == "testcluster":  # the agents run on the nodes: not on loopback
                exchange = {"kind": "embedded", "interface": os.environ["CHILTEPIN_SLURM_BRIDGE"]}
            system = AgentSystem(workflow, ["service"], exchange=exchange)
            results.append(await measure(system, agents, site, task_max, idle))
        finally:
            workflow.cleanup()
        report(results[-1])
    return results


def report(r: dict) -> None:
    n = r["n"]
    own = r["own_rss"] / MIB
    task = f"{r['first_task_s']:.2f} s" if "first_task_s" in r else "not measured"
    line = f"agents N={n}: launch {r['launch_s']:.2f} s, rss {own:.0f} MiB"
    print(f"{line}, per agent {own / n:.0f} MiB", flush=True)
    print(
        f"  N={n}: all first actions {r['first_action_s']:.2f} s, all first task actions {task}; "
        f"own processes {r['own_procs']}, task workers {r['worker_procs']} "
        f"({r['worker_rss'] / MIB:.0f} MiB), total {(r['own_rss'] + r['worker_rss']) / MIB:.0f} "
        f"MiB, shared manager+service pool {r['shared_rss'] / MIB:.0f} MiB (its "
        f"workers were up after {r['service_ready_s']:.1f} s); idle CPU "
        f"{r['idle_cpu_per_agent_min']:.3f} s per agent-minute (agent process "
        f"{r['idle_cpu_agent_process']:.3f} s); shutdown {r['shutdown_s']:.1f} s",
        flush=True,
    )


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", default="local", choices=["local", "testcluster"])
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 10, 25, 50])
    parser.add_argument(
        "--task-max",
        type=int,
        help="measure first task actions up to this many agents (each agent's first task "
        "starts its own worker pool, on testcluster a one-core Slurm job; default 10)",
    )
    parser.add_argument("--idle", type=float, default=30.0, help="idle window, seconds")
    args = parser.parse_args(argv)
    if args.task_max is None:
        args.task_max = 10
    cluster = None
    with contextlib.ExitStack() as stack:
        if args.site == "testcluster":
            sys.path.insert(0, str(HERE.parent / "tests" / "infra"))
            import slurm_cluster as cluster

            stack.enter_context(cluster.started())  # stopped after, if started here
        prefix = "bench-agents-scale-"
        shared = cluster and cluster.SHARED_TMP
        with tempfile.TemporaryDirectory(prefix=prefix, dir=shared) as root:
            previous = os.getcwd()
            os.chdir(root)  # Slurm jobs start in the submitting directory; run dirs land here
            try:
                return asyncio.run(run(args.site, args.agents, args.task_max, args.idle, root))
            finally:
                os.chdir(previous)


if __name__ == "__main__":
    # Run the importable module's main, so workers unpickle ScaleAgent by reference.
    import bench_agents_scale

    bench_agents_scale.main(sys.argv[1:])
    sys.exit(0)
