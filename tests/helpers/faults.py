"""What the fault tests share: short-heartbeat Slurm resources, tasks that say where they
run, a driver process to kill, and probes of what is left (jobs, processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chiltepin.tasks import python_task

#: Heartbeats short enough that a lost pool is seen in seconds (the tests' budget).
FAST = {"heartbeat_period": 1, "heartbeat_threshold": 4}


def slurm_resource(**keys: Any) -> dict[str, Any]:
    """One high-throughput Slurm executor on the test cluster's compute partition."""
    return {
        "provider": "slurm",
        "partition": "compute",
        "cores_per_node": 4,
        "max_workers_per_node": 2,
        "exclusive": False,
        "walltime": "00:05:00",
        **FAST,
        **keys,
    }


@python_task
def where(marker: str | None = None, delay: float = 0.0) -> dict:
    """Where this task runs (job, node, pids); writes that to ``marker`` first, then
    sleeps ``delay`` seconds."""
    info = {
        "job": os.environ.get("SLURM_JOB_ID"),
        "node": os.environ.get("SLURMD_NODENAME"),
        "pid": os.getpid(),
        "pool": os.getppid(),
    }
    if marker:
        tmp = Path(marker + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(marker)
    time.sleep(delay)
    return info


def read_marker(path: Path, timeout: float = 90.0) -> dict:
    """The JSON a task wrote to ``path`` (waits for it)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"no task wrote {path} within {timeout} s")
        time.sleep(0.1)
    return json.loads(path.read_text())


def jobs() -> list[str]:
    """Ids of the jobs in the test cluster's queue."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.split()


def wait_no_jobs(timeout: float = 60.0) -> float | None:
    """Seconds until the queue is empty (None if it is not within ``timeout``)."""
    start = time.monotonic()
    while jobs():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.25)
    return time.monotonic() - start


def wait_job_gone(job: str, timeout: float = 60.0) -> float | None:
    """Seconds until ``job`` leaves the queue (None if it does not within ``timeout``)."""
    start = time.monotonic()
    while job in jobs():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.25)
    return time.monotonic() - start


def start_driver(config: dict, run_dir: Path, mode: str, **popen: Any) -> subprocess.Popen:
    """``python -m helpers.faults CONFIG RUN_DIR MODE`` (see :func:`main`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "helpers.faults", json.dumps(config), str(run_dir), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        **popen,
    )


def wait_ready(driver: subprocess.Popen, timeout: float = 120.0) -> dict:
    """The driver's READY line (a JSON object), once its long task runs."""
    assert driver.stdout is not None
    deadline = time.monotonic() + timeout
    line = driver.stdout.readline()
    while not line.startswith("READY "):
        if not line and driver.poll() is not None:
            raise AssertionError(f"driver exited {driver.returncode}: {driver.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("driver not ready in time")
        line = driver.stdout.readline()
    return json.loads(line.split(" ", 1)[1])


def main(argv: list[str]) -> int:
    """A driver: start a Workflow of ``CONFIG`` in ``RUN_DIR``, run one long task on its
    first executor, print ``READY {...}`` once it runs (where it runs, and the driver's
    pid), then wait for it."""
    from chiltepin import Workflow
    from helpers import faults  # not __main__: workers unpickle the task by module

    config, run_dir, mode = json.loads(argv[0]), Path(argv[1]), argv[2]
    executor = next(iter(config))
    marker = run_dir.parent / f"{run_dir.name}.marker"
    with Workflow(config, run_dir=run_dir):
        future = faults.where(str(marker), 600.0, executor=executor)
        info = read_marker(marker)
        print("READY " + json.dumps({**info, "driver": os.getpid()}), flush=True)
        if mode == "hold":
            future.result()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main(sys.argv[1:]))
