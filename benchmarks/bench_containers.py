"""Containers: workers in podman vs on the host, on the loopback Slurm test cluster.

One Workflow through the test-only profile tests/sites/testcluster-podman.yaml holds
``compute`` (workers in podman) and ``bare`` (the same executor with ``container:
false``), so both are measured in the same run:

* first-task latency: from the workflow's start to the first result on each executor
  (both blocks are submitted at once, to different nodes; which one first alternates);
* throughput: N no-op tasks on each executor, one after the other;
* the image: its size in the store, and the time of ``chiltepin image pull`` from the
  loopback registry into an empty podman store.

Starts what it needs with tests/infra (slurm.sh, containers.sh: build, registry, push).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
sys.path.insert(0, str(TESTS / "infra"))
sys.path.insert(0, str(TESTS))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
CLI = str(Path(sys.executable).parent / "chiltepin")
SITE = "testcluster-podman"


def setup() -> dict:
    """Cluster, image (built, pushed) and an empty store filled by `chiltepin image pull`."""
    import containers_env

    containers_env.apply_env()
    containers_env.build_image()
    containers_env.start_registry()
    image = containers_env.push()
    os.environ.update(containers_env.empty_store("bench-store"))
    os.environ["CHILTEPIN_SITE_PATH"] = str(TESTS / "sites")
    os.environ["CHILTEPIN_TESTS_DIR"] = str(TESTS)
    start = time.perf_counter()
    pull = subprocess.run(
        [CLI, "image", "pull", "-q", "--site", SITE], capture_output=True, text=True, check=False
    )
    pull_seconds = time.perf_counter() - start
    if pull.returncode != 0:
        raise SystemExit(f"chiltepin image pull failed:\n{pull.stderr}")
    size = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {"image": image, "pull_seconds": pull_seconds, "size_mb": int(size) / 1e6}


def one_round(n: int, order: list[str]) -> dict[str, tuple[float, float]]:
    """{executor: (seconds to the first result, tasks/s)} for compute (podman) and bare;
    ``order``: which executor's block is submitted first (alternated between rounds)."""
    from helpers import container_tasks as cs
    from slurm_cluster import shared_run_dir

    from chiltepin import Workflow

    start = time.perf_counter()
    with (
        shared_run_dir("bench-containers-") as run_dir,
        Workflow(site=SITE, include=order, run_dir=run_dir),
    ):
        firsts = {name: cs.noop(0, executor=name) for name in order}
        first: dict[str, float] = {}
        while len(first) < 2:
            for name, future in firsts.items():
                if name not in first and future.done():
                    future.result()
                    first[name] = time.perf_counter() - start
            time.sleep(0.01)
        rates = {}
        for name in ("bare", "compute"):
            t0 = time.perf_counter()
            for f in [cs.noop(i, executor=name) for i in range(n)]:
                f.result()
            rates[name] = n / (time.perf_counter() - t0)
    return {name: (first[name], rates[name]) for name in first}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import containers_env
    import helpers.container_tasks  # noqa: F401 - fail early if tests/ is not importable
    import slurm_cluster

    with slurm_cluster.started():  # stopped after, if started here
        try:
            image = setup()
            orders = (["compute", "bare"], ["bare", "compute"])
            rounds = [one_round(args.tasks, orders[i % 2]) for i in range(args.rounds)]
            left_jobs = slurm_cluster.leftover_jobs(wait=30)
            left_containers = subprocess.run(
                ["podman", "ps", "-aq", "--filter", "label=chiltepin.run"],
                capture_output=True,
                text=True,
            ).stdout.split()
        finally:
            containers_env.stop_registry()

    def med(name: str, i: int) -> float:
        return statistics.median(r[name][i] for r in rounds)

    p_first, b_first = med("compute", 0), med("bare", 0)
    p_rate, b_rate = med("compute", 1), med("bare", 1)
    print(f"testcluster, {args.tasks} no-op tasks, {args.rounds} rounds (medians)")
    print(
        f"  first result : podman {p_first:6.2f} s   bare {b_first:6.2f} s   "
        f"ratio {p_first / b_first:5.2f}"
    )
    print(
        f"  throughput   : podman {p_rate:6.1f} /s  bare {b_rate:6.1f} /s  "
        f"ratio {p_rate / b_rate:5.2f}"
    )
    print(f"  image        : {image['image']}  {image['size_mb']:.0f} MB in the store")
    print(f"  image pull   : {image['pull_seconds']:.1f} s into an empty podman store (loopback)")
    print(f"  left afterwards: {len(left_jobs)} jobs, {len(left_containers)} containers")
    return {"first_ratio": p_first / b_first, "rate_ratio": p_rate / b_rate, **image}


if __name__ == "__main__":
    main()
