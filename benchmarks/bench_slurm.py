"""Slurm: chiltepin's testcluster `compute` executor vs the same Parsl config by hand.

Measures first-result latency (start to first task result, including the batch job
start) and throughput of 200 no-op tasks, alternating the two setups. Starts the
loopback Slurm cluster with tests/infra/slurm.sh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "infra"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")])
)
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def noop(x):
    return x


def hand_written_config(run_dir: str):
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SrunLauncher
    from parsl.providers import SlurmProvider

    return Config(
        executors=[
            HighThroughputExecutor(
                label="compute",
                max_workers_per_node=2,
                provider=SlurmProvider(
                    partition="compute",
                    nodes_per_block=1,
                    cores_per_node=4,
                    init_blocks=0,
                    max_blocks=1,
                    walltime="00:15:00",
                    exclusive=False,
                    launcher=SrunLauncher(),
                ),
            )
        ],
        run_dir=run_dir,
        strategy_period=1,
        usage_tracking=0,
    )


def measure(app, n: int, t0: float) -> tuple[float, float]:
    """(seconds from workflow start to the first result, tasks/s for n tasks)."""
    app(0).result()
    first = time.perf_counter() - t0
    start = time.perf_counter()
    futures = [app(i) for i in range(n)]
    for f in futures:
        f.result()
    return first, n / (time.perf_counter() - start)


def run_raw(n: int) -> tuple[float, float]:
    import parsl
    from parsl import python_app
    from slurm_cluster import shared_run_dir

    with shared_run_dir("bench-raw-") as run_dir:
        start = time.perf_counter()
        dfk = parsl.load(hand_written_config(run_dir))
        try:
            app = python_app(noop, executors=["compute"])
            return measure(app, n, start)
        finally:
            dfk.cleanup()
            parsl.clear()


def run_chiltepin(n: int) -> tuple[float, float]:
    from slurm_cluster import shared_run_dir

    from chiltepin import Workflow
    from chiltepin.tasks import python_task

    task = python_task(noop)
    with shared_run_dir("bench-chiltepin-") as run_dir:
        start = time.perf_counter()
        with Workflow(site="testcluster", include=["compute"], run_dir=run_dir):
            return measure(lambda i: task(i, executor="compute"), n, start)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import slurm_cluster

    with slurm_cluster.started():  # stopped after, if started here
        raw, ours = [], []
        for _ in range(args.rounds):
            raw.append(run_raw(args.tasks))
            ours.append(run_chiltepin(args.tasks))
        leftover = slurm_cluster.leftover_jobs(wait=30)
    r_first = statistics.median(x[0] for x in raw)
    c_first = statistics.median(x[0] for x in ours)
    r_rate = statistics.median(x[1] for x in raw)
    c_rate = statistics.median(x[1] for x in ours)
    print(f"testcluster compute, {args.tasks} no-op tasks, {args.rounds} rounds (medians)")
    print(
        f"  first result : raw parsl {r_first:6.2f} s   chiltepin {c_first:6.2f} s   "
        f"ratio {c_first / r_first:5.2f}"
    )
    print(
        f"  throughput   : raw parsl {r_rate:6.1f} /s  chiltepin {c_rate:6.1f} /s  "
        f"ratio {c_rate / r_rate:5.2f}"
    )
    print(f"  jobs left in queue afterwards: {len(leftover)}")
    return {"first_ratio": c_first / r_first, "rate_ratio": c_rate / r_rate}


if __name__ == "__main__":
    main()
