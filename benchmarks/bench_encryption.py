"""Cost of encrypting the interchange (Parsl's CurveZMQ): the testcluster `compute`
executor with `encrypted: true` (the default) vs `encrypted: false`, same run.

Measures first-result latency (workflow start to the first result, including the batch
job start) and throughput of no-op tasks, alternating the two settings round by round.
Starts the loopback Slurm cluster with tests/infra/slurm.sh.
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


def compute(encrypted: bool) -> dict:
    """testcluster's `compute` executor as a resource configuration, with ``encrypted``."""
    return {
        "compute": {
            "provider": "slurm",
            "partition": "compute",
            "cores_per_node": 4,
            "max_workers_per_node": 2,
            "max_blocks": 1,
            "exclusive": False,
            "walltime": "00:15:00",
            "encrypted": encrypted,
        }
    }


def run(encrypted: bool, n: int) -> tuple[float, float]:
    """(seconds from start to the first result, tasks/s for n tasks)."""
    from slurm_cluster import shared_run_dir

    from chiltepin import Workflow
    from chiltepin.tasks import python_task

    task = python_task(noop)
    t0 = time.perf_counter()
    with (
        shared_run_dir("bench-encryption-") as run_dir,
        Workflow(compute(encrypted), include=["compute"], run_dir=run_dir),
    ):
        task(0, executor="compute").result()
        first = time.perf_counter() - t0
        start = time.perf_counter()
        futures = [task(i, executor="compute") for i in range(n)]
        for future in futures:
            future.result()
        return first, n / (time.perf_counter() - start)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import slurm_cluster

    with slurm_cluster.started():  # stopped after, if started here
        on, off = [], []
        for _ in range(args.rounds):
            off.append(run(False, args.tasks))
            on.append(run(True, args.tasks))
        leftover = slurm_cluster.leftover_jobs(wait=30)
    on_first = statistics.median(x[0] for x in on)
    off_first = statistics.median(x[0] for x in off)
    on_rate = statistics.median(x[1] for x in on)
    off_rate = statistics.median(x[1] for x in off)
    print(f"testcluster compute, {args.tasks} no-op tasks, {args.rounds} rounds (medians)")
    print(
        f"  first result : unencrypted {off_first:6.2f} s   encrypted {on_first:6.2f} s   "
        f"ratio {on_first / off_first:5.2f}"
    )
    print(
        f"  throughput   : unencrypted {off_rate:6.1f} /s  encrypted {on_rate:6.1f} /s  "
        f"ratio {on_rate / off_rate:5.2f}"
    )
    print(f"  jobs left in queue afterwards: {len(leftover)}")
    return {"first_ratio": on_first / off_first, "rate_ratio": on_rate / off_rate}


if __name__ == "__main__":
    main()
