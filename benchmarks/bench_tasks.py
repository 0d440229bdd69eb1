"""Task submission overhead: chiltepin python_task vs a raw Parsl python_app.

Both run no-op tasks on the same high-throughput executor (localhost, 2 workers) in the
same Workflow; rounds alternate so drift hits both alike. Prints tasks/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from parsl import python_app

from chiltepin import Workflow
from chiltepin.tasks import python_task

# Workers import this module to unpickle the task function.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")])
)


def noop(x):
    return x


raw_noop = python_app(noop, executors=["bench"])
task_noop = python_task(noop)


def rate(submit, n: int) -> float:
    start = time.perf_counter()
    futures = [submit(i) for i in range(n)]
    for f in futures:
        f.result()
    return n / (time.perf_counter() - start)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    config = {"bench": {"init_blocks": 1, "max_workers_per_node": 2}}
    with (
        tempfile.TemporaryDirectory(prefix="bench-tasks-") as run_dir,
        Workflow(config, include=["bench"], run_dir=run_dir),
    ):
        rate(raw_noop, 50)  # warm up workers and both code paths
        rate(lambda i: task_noop(i, executor="bench"), 50)
        raw, wrapped = [], []
        for _ in range(args.rounds):
            raw.append(rate(raw_noop, args.tasks))
            wrapped.append(rate(lambda i: task_noop(i, executor="bench"), args.tasks))
    r, w = statistics.median(raw), statistics.median(wrapped)
    print(f"task overhead ({args.tasks} no-op tasks x {args.rounds} rounds, 2 local workers)")
    print(f"  raw parsl python_app : {r:8.1f} tasks/s (median)")
    print(f"  chiltepin python_task: {w:8.1f} tasks/s (median)")
    print(f"  ratio python_task/raw: {w / r:8.3f}  (target >= 0.95)")
    return {"raw": r, "chiltepin": w, "ratio": w / r}


if __name__ == "__main__":
    main()
