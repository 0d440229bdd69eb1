"""Lost worker pools on the real Slurm cluster: a pool killed or hung mid-task.

Heartbeats are 1 s / 4 s here (a profile's ``heartbeat_period``/``heartbeat_threshold``).
Each test checks what the user sees, prints the time to detection, checks that results
of finished tasks are kept and (fixtures) that no job or process is left.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from helpers import faults
from helpers.processes import wait_until_gone

from chiltepin import Workflow
from chiltepin.errors import WorkerLostError


def _pool(info: dict) -> psutil.Process:
    pool = psutil.Process(info["pool"])
    assert "process_worker_pool" in " ".join(pool.cmdline()), pool.cmdline()
    return pool


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_lost_pool_is_replaced_and_the_task_retried(slurm, tmp_path, how):
    config = {"compute": faults.slurm_resource(retries=1)}
    marker = tmp_path / "long.json"
    with Workflow(config, run_dir=tmp_path / "run"):
        done = [faults.where(executor="compute") for _ in range(3)]
        finished = [f.result(timeout=120) for f in done]
        long = faults.where(str(marker), 8.0, executor="compute")
        info = faults.read_marker(marker)
        pool = _pool(info)
        start = time.monotonic()
        if how == "killed":
            pool.send_signal(signal.SIGKILL)
        else:  # a pool (or its node) that stops answering: its job still runs
            pool.send_signal(signal.SIGSTOP)
        retried = long.result(timeout=90)
        recovered = time.monotonic() - start
        later = faults.where(executor="compute").result(timeout=60)
        # what finished before the fault is kept
        assert [f.result(timeout=0) for f in done] == finished
    print(f"\npool {how}: task retried on job {retried['job']} after {recovered:.1f} s")
    assert retried["job"] != info["job"], "the retry ran on a new block"
    assert later["job"] == retried["job"]
    left = wait_until_gone(lambda: [p for p in (info["pid"], info["pool"]) if _running(p)])
    assert not left, f"processes of the lost pool outlived its job: {left}"


def test_lost_pool_out_of_retries_names_node_job_and_cause(slurm, tmp_path):
    config = {"compute": faults.slurm_resource(retries=0)}
    marker = tmp_path / "long.json"
    with Workflow(config, run_dir=tmp_path / "run"):
        long = faults.where(str(marker), 60.0, executor="compute")
        info = faults.read_marker(marker)
        start = time.monotonic()
        _pool(info).send_signal(signal.SIGKILL)
        with pytest.raises(WorkerLostError) as caught:
            long.result(timeout=60)
        detected = time.monotonic() - start
    message = str(caught.value)
    print(f"\npool killed, no retries: failed after {detected:.1f} s: {message}")
    assert f"job {info['job']}" in message and info["node"] in message, message
    assert "executor 'compute'" in message and "heartbeat" in message, message
    assert not _running(info["pid"]), "the task's worker outlived its pool"
    assert os.path.exists(tmp_path / "run")
