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


def test_damaged_registry_and_state_files_never_break_status(state_home, tmp_path):
    """Files in the registry and the agent state directory that this toolkit did not
    write, or that were damaged (not UTF-8, a FIFO, a directory, deep nesting, wrong
    types, impossible pids): status and agent list skip or flag them, never hang."""
    import socket

    runs, agents = runs_dir(), state_home / "chiltepin" / "agents"
    runs.mkdir(parents=True)
    agents.mkdir(parents=True)
    host = socket.gethostname()
    (runs / "bytes.json").write_bytes(b"\xff\xfe")
    (runs / "deep.json").write_text("[" * 100_000)
    (runs / "list.json").write_text("[1, 2]")
    os.mkfifo(runs / "fifo.json")
    (runs / "dir.json").mkdir()
    for name, pid in (("neg", -5), ("huge", 10**30), ("text", "abc"), ("float", 1e300)):
        (runs / f"{name}.json").write_text(
            json.dumps({"run_dir": "/x", "status_file": "/x", "pid": pid, "host": host})
        )
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        damaged = tmp_path / "status.json"
        damaged.write_text(
            json.dumps(
                {
                    "tasks": [1],
                    "executors": {"a": {"blocks": [1, {"job_id": 3}]}, "b": 5},
                    "agents": [1, {"agent_class": "A"}],
                    "site": 7,
                }
            )
        )
        live = {"run_dir": "/live", "status_file": str(damaged), "pid": sleeper.pid, "host": host}
        (runs / "live.json").write_text(json.dumps(live))
        os.mkfifo(agents / "fifo.json")
        (agents / "bytes.json").write_bytes(b"\xff")
        text = cli("status", timeout=60)
        assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
        assert "workflow /live" in text.stdout and "a: block ? job 3 ?" in text.stdout
        assert "agent service fifo: corrupt" in text.stdout, text.stdout
        report = status()
        assert [w["run_dir"] for w in report["workflows"]] == ["/live"]
        assert report["workflows"][0]["site"] is None
        listed = cli("agent", "list", timeout=60)
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        assert "not a regular file" in listed.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


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


def test_files_read_back_are_never_waited_on(tmp_path):
    """A FIFO (or garbage) where chiltepin reads back its own ledger, endpoint manifest or
    image digest is treated as missing: nothing blocks on it."""
    from chiltepin.containers.cached import _recorded_digest
    from chiltepin.endpoint.generate import MANIFEST
    from chiltepin.endpoint.manage import manifest_of
    from chiltepin.watchdog import LEDGER_NAME, read_entries

    os.mkfifo(tmp_path / LEDGER_NAME)
    assert read_entries(tmp_path) == []
    (tmp_path / LEDGER_NAME).unlink()
    (tmp_path / LEDGER_NAME).write_bytes(b'\xff\n{"pid": 1}\n[1]\n')
    assert read_entries(tmp_path) == [{"pid": 1}]
    os.mkfifo(tmp_path / MANIFEST)
    assert manifest_of(tmp_path) == {}
    (tmp_path / MANIFEST).unlink()
    (tmp_path / MANIFEST).write_text('{"executors": 5, "site": ["x"], "multi_user": "yes"}')
    assert manifest_of(tmp_path) == {"executors": []}
    (tmp_path / MANIFEST).write_text('{"executors": ["compute", 3], "site": "hera"}')
    assert manifest_of(tmp_path) == {"executors": ["compute"], "site": "hera"}
    image = tmp_path / "image.sif"
    os.mkfifo(tmp_path / "image.sif.digest")
    assert _recorded_digest(image) is None
    (tmp_path / "image.sif.digest").unlink()
    (tmp_path / "image.sif.digest").write_bytes(b"sha256:\xff")
    assert _recorded_digest(image) is None
    (tmp_path / "image.sif.digest").write_text("sha256:abc\n")
    assert _recorded_digest(image) == "sha256:abc"
    from chiltepin.errors import ConfigError
    from chiltepin.monitoring import check_database

    os.mkfifo(tmp_path / "monitoring.db")
    with pytest.raises(ConfigError, match="not a Parsl monitoring database"):
        check_database(tmp_path / "monitoring.db", "RUN_DIR", given=str(tmp_path))
