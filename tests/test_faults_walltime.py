"""A task that outlives its block's walltime, on the real Slurm cluster.

Slurm counts time limits in minutes (and checks them about every 30 s), so this test
needs a one-minute block and takes about 100 s.
"""

from __future__ import annotations

import time

import pytest
from helpers import faults

from chiltepin import Workflow
from chiltepin.errors import WalltimeExceeded


def test_task_killed_at_walltime_says_so_and_queued_work_moves_on(slurm, tmp_path):
    config = {"compute": faults.slurm_resource(walltime="00:01:00", max_workers_per_node=1)}
    marker = tmp_path / "long.json"
    with Workflow(config, run_dir=tmp_path / "run"):
        long = faults.where(str(marker), 600.0, executor="compute")
        info = faults.read_marker(marker)
        queued = faults.where(executor="compute")  # waits behind the long task
        start = time.monotonic()
        with pytest.raises(WalltimeExceeded) as caught:
            long.result(timeout=150)
        failed = time.monotonic() - start
        moved = queued.result(timeout=90)
    message = str(caught.value)
    print(f"\nwalltime: task failed {failed:.1f} s after it started: {message}")
    assert f"job {info['job']}" in message and "00:01:00" in message, message
    assert "raise 'walltime'" in message, message
    assert moved["job"] != info["job"], "the queued task ran on a new block"
