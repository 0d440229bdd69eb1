"""Feedback while queued, and ``chiltepin status`` from another process, for real.

On the loopback Slurm cluster (tests/infra/slurm.sh): a block of partition ``maint``
(down) stays pending with the scheduler's reason; a block of ``compute`` runs, its
workers connect and a task completes. ``chiltepin status --json``, run as its own process,
sees each run while it lives and nothing after; the run's log keeps every line.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from helpers.cli import run as cli
from helpers.infra import SITES
from helpers.processes import wait_for

from chiltepin import Workflow
from chiltepin.runs import LOG_FILE, STATUS_FILE, running_runs, runs_dir


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(SITES))
    return home


def status(**_) -> dict:
    out = cli("status", "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def blocks(report: dict, executor: str) -> list[dict]:
    return [
        b
        for run in report["workflows"]
        for b in (run["executors"].get(executor) or {}).get("blocks", [])
    ]


def test_a_queued_block_says_why(slurm, state_home, run_dir):
    with Workflow(site="testcluster-limits", include=["waits"], run_dir=run_dir):
        pending = wait_for(
            lambda: [b for b in blocks(status(), "waits") if b["state"] == "pending"],
            timeout=60,
        )
        (block,) = pending
        assert block["reason"] == "PartitionDown" and block["job_id"]
        (run,) = status()["workflows"]
        assert run["run_dir"] == str(run_dir) and run["site"] == "testcluster-limits"
        assert run["pid"] == os.getpid()
        assert stat.S_IMODE((run_dir / STATUS_FILE).stat().st_mode) == 0o600
        assert stat.S_IMODE(runs_dir().stat().st_mode) == 0o700
    log = (run_dir / LOG_FILE).read_text()
    job = block["job_id"]
    assert f"waits: block 0 submitted to slurm as job {job}" in log
    assert f"waits: block 0 (job {job}) pending: PartitionDown" in log
    assert f"waits: block 0 (job {job}) finished" in log
    assert status()["workflows"] == []
    assert not (run_dir / STATUS_FILE).exists()


def test_a_running_block_connects_and_counts_tasks(slurm, state_home, run_dir):
    from helpers.tasks import add as add_task

    with Workflow(site="testcluster-limits", include=["quick"], run_dir=run_dir):
        assert add_task(2, 3, executor="quick").result(timeout=120) == 5

        def connected_and_done():
            report = status()
            ok = [b for b in blocks(report, "quick") if b["state"] == "connected"]
            return ok and report["workflows"][0]["tasks"]["done"] >= 1 and report

        report = wait_for(connected_and_done, timeout=60)
        assert report["workflows"][0]["tasks"]["failed"] == 0
    log = (run_dir / LOG_FILE).read_text()
    assert "quick: block 0 submitted to slurm as job" in log
    assert "workers connected" in log
    assert "finished" in log


def test_a_dead_runs_entry_is_pruned(state_home, tmp_path):
    """A run whose process is gone (killed) is left out and its entry removed."""
    directory = runs_dir()
    directory.mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    entry = directory / "dead.json"
    entry.write_text(
        json.dumps(
            {
                "run_dir": str(tmp_path),
                "status_file": str(tmp_path / "s"),
                "pid": int(proc.stdout),
                "host": socket.gethostname(),
            }
        )
    )
    assert running_runs() == []
    assert not entry.exists()
    out = cli("status")
    assert out.returncode == 0 and "no running workflows" in out.stdout


def test_the_example_shows_block_feedback(state_home, no_leftovers):
    """examples/hello_workflow.py prints its block's life on stderr (local executor; how
    many phases a run this short shows depends on timing: only the ends are asserted)."""
    from helpers.infra import REPO

    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "hello_workflow.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=state_home.parent,
    )
    assert out.returncode == 0, out.stderr
    assert "chiltepin: local: block 0 submitted to localhost as job" in out.stderr
    assert "local: block 0 (job " in out.stderr and ") finished" in out.stderr
