"""Run every benchmark in this directory and print their figures.

Usage: python benchmarks/run_all.py [--quick] [--only NAME ...]
Benchmarks that need the Slurm test cluster or podman start them via tests/infra, and
stop what they started when they end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: name -> (module, arguments for --quick)
BENCHMARKS = {
    "startup": ("bench_startup", ["--repeat", "5"]),
    "tasks": ("bench_tasks", ["--tasks", "300", "--rounds", "3"]),
    "slurm": ("bench_slurm", ["--tasks", "100", "--rounds", "1"]),
    "encryption": ("bench_encryption", ["--tasks", "200", "--rounds", "1"]),
    "containers": ("bench_containers", ["--tasks", "100", "--rounds", "1"]),
    "agents": ("bench_agents", ["--calls", "200", "--launches", "5"]),
    "agents_scale": ("bench_agents_scale", ["--agents", "1", "10", "--idle", "10"]),
}
#: The benchmarks that run on the Slurm test cluster.
CLUSTER = {"slurm", "encryption", "containers"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS))
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    with contextlib.ExitStack() as stack:
        if CLUSTER.intersection(names):
            # Started once for all of them (each leaves a running cluster up), and
            # stopped at the end if it was not running before.
            sys.path.insert(0, str(HERE.parent / "tests" / "infra"))
            import slurm_cluster

            stack.enter_context(slurm_cluster.started())
        for name in names:
            module, quick = BENCHMARKS[name]
            print(f"== {name} ==", flush=True)
            start = time.perf_counter()
            importlib.import_module(module).main(quick if args.quick else [])
            print(f"   ({time.perf_counter() - start:.1f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
