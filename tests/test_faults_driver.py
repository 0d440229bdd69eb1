"""Driver death on the real Slurm cluster: SIGTERM, Ctrl-C to the process group and
SIGKILL of a process running a Workflow, and a dead predecessor's leftovers.

Each test checks what the user sees (exit status, no traceback), prints the time until
everything is gone, and (fixtures) that no job, interchange or worker is left.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from helpers import faults
from helpers.processes import processes_under, wait_for, wait_until_gone

from chiltepin.watchdog import read_entries


def _config(**keys):
    return {"compute": faults.slurm_resource(**keys)}


def _title(proc) -> str:
    return " ".join(proc.info["cmdline"] or [])


def _gone(run_dir, timeout=60.0) -> tuple[float, list[str], float | None]:
    """Seconds until no Parsl process of ``run_dir`` is left, what is left, and the
    seconds until the queue is empty."""
    start = time.monotonic()
    left = wait_until_gone(processes_under, run_dir, timeout=timeout)
    processes = time.monotonic() - start
    return processes, left, faults.wait_no_jobs(timeout)


@pytest.mark.parametrize(
    ("how", "code"), [("sigterm", 128 + signal.SIGTERM), ("ctrl-c", 128 + signal.SIGINT)]
)
def test_signal_runs_cleanup_and_exits_cleanly(slurm, tmp_path, how, code):
    run_dir = tmp_path / "run"
    driver = faults.start_driver(_config(), run_dir, "hold", start_new_session=True)
    try:
        faults.wait_ready(driver)
        start = time.monotonic()
        if how == "sigterm":
            driver.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C: SIGINT to the whole foreground process group
            os.killpg(driver.pid, signal.SIGINT)
        _, err = driver.communicate(timeout=60)
        exited = time.monotonic() - start
    finally:
        if driver.poll() is None:
            driver.kill()
    processes, left, queue = _gone(run_dir)
    print(f"\n{how}: driver exited after {exited:.1f} s, processes gone +{processes:.1f} s")
    assert driver.returncode == code, err
    assert "Traceback" not in err, err
    assert not left, left
    assert queue is not None, faults.jobs()


def test_sigkill_watchdog_stops_interchange_and_cancels_jobs(slurm, tmp_path):
    run_dir = tmp_path / "run"
    driver = faults.start_driver(_config(), run_dir, "hold")
    try:
        info = faults.wait_ready(driver)
        assert info["job"] in faults.jobs()
        driver.kill()
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    processes, left, queue = _gone(run_dir)
    print(
        f"\nSIGKILL: interchange and workers gone after {processes:.1f} s, "
        f"job {info['job']} cancelled after {queue} s"
    )
    assert not left, left
    assert queue is not None, f"jobs left after the driver was killed: {faults.jobs()}"
    log_file = run_dir / "chiltepin-watchdog.log"
    # The workflow's `local` block (its pool and workers) is stopped too, not left to
    # wait out its heartbeat threshold (one interchange's watchdog logs it; the other
    # may log the jobs first).
    wait_for(lambda: "stopped the process group of pid" in log_file.read_text(), timeout=30)
    log = log_file.read_text()
    assert f"cancelled jobs {info['job']}" in log, log
    assert "stopped the process group of pid" in log, log


def test_next_workflow_cleans_what_a_dead_driver_left(slurm, tmp_path):
    from chiltepin import Workflow

    run_dir = tmp_path / "run"
    driver = faults.start_driver(_config(), run_dir, "hold")
    try:
        info = faults.wait_ready(driver)
        # The watchdog dies with the driver (a login node's OOM killer, say): nothing
        # stops the interchange or cancels the job but the next workflow here.
        interchanges = [e["pid"] for e in read_entries(run_dir) if e["kind"] == "interchange"]
        titles = {f"chiltepin-watchdog of pid {pid}" for pid in interchanges}
        ours = [p for p in psutil.process_iter(["cmdline"]) if any(t in _title(p) for t in titles)]
        assert ours, f"no watchdog for interchanges {interchanges}"
        for proc in ours:
            proc.kill()
        driver.kill()
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    time.sleep(2)
    assert processes_under(run_dir), "the interchange should still run (no watchdog)"
    assert info["job"] in faults.jobs()
    start = time.monotonic()
    with Workflow(_config(), run_dir=run_dir):
        reaped = time.monotonic() - start
    processes, left, queue = _gone(run_dir)
    print(f"\nnext Workflow cleaned the dead driver's interchange and job in {reaped:.1f} s")
    assert not left, left
    assert queue is not None, faults.jobs()


def test_a_group_entry_stops_the_whole_group_but_never_the_callers(tmp_path):
    """A local block's ledger entry stops its process group (shell, pool, workers); an
    entry whose process shares the caller's group stops that process only."""
    import subprocess
    import threading

    from chiltepin.watchdog import process_created, stop_entry

    def entry(pid: int) -> dict:
        return {"kind": "process", "pid": pid, "created": process_created(pid), "group": True}

    block = subprocess.Popen(["bash", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process(block.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        members = psutil.Process(block.pid).children()
        assert len(members) == 2
        # Reaped as it dies (a watchdog is not its parent; this test is).
        reaper = threading.Thread(target=block.wait)
        reaper.start()
        assert stop_entry(entry(block.pid))
        reaper.join(timeout=10)
        assert block.returncode == -signal.SIGTERM
        _, alive = psutil.wait_procs(members, timeout=10)
        assert alive == []
    finally:
        if block.poll() is None:
            os.killpg(block.pid, signal.SIGKILL)
    same_group = subprocess.Popen(["sleep", "300"])
    assert stop_entry(entry(same_group.pid))
    assert same_group.wait(timeout=10) == -signal.SIGTERM
    assert not stop_entry(entry(same_group.pid)), "a process that is gone is not stopped again"
