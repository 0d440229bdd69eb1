"""Parsl's monitoring, for real: a workflow run with ``monitoring: true`` records its tasks
in RUN_DIR/monitoring.db, and ``chiltepin monitor RUN_DIR`` serves Parsl's visualization
of it on loopback, checked in a real browser (Debian's headless Chromium, installed by
tests/infra/packages.py). Every input ``chiltepin monitor`` reads is tried bad, too.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from helpers import processes as P
from helpers.cli import CLI, one_line_error
from helpers.cli import run as chiltepin
from helpers.infra import TESTS, require

WORKFLOW = textwrap.dedent(
    """
    import sys
    from chiltepin import Workflow
    from chiltepin.tasks import python_task

    @python_task
    def square(x):
        return x * x

    @python_task
    def fails_on_purpose():
        raise ValueError("on purpose")

    @python_task
    def nap(seconds):
        import time

        time.sleep(seconds)

    if __name__ == "__main__":  # Parsl's monitoring starts processes that import this file
        resources = {"compute": {"max_workers_per_node": 1, "init_blocks": 1,
                                 "monitoring": True}}
        with Workflow(resources, include=["compute"], run_dir=sys.argv[1]):
            if sys.argv[2:] == ["nap"]:
                running = nap(600, executor="compute")
                print("napping", flush=True)
                running.result()
            print(sum(square(i, executor="compute").result() for i in range(4)))
            try:
                fails_on_purpose(executor="compute").result()
            except ValueError:
                print("failed as asked")
    """
)


@pytest.fixture(scope="module")
def chromium():
    sys.path.insert(0, str(TESTS / "infra"))
    from packages import ensure

    browser = ensure("chromium", "chromium")
    require(browser is not None, "chromium (apt-get install -y chromium)")
    return browser


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory):
    """A run directory of a finished, monitored workflow; no process of it is left."""
    root = tmp_path_factory.mktemp("monitored")
    script = root / "workflow.py"
    script.write_text(WORKFLOW)
    run_dir = root / "run"
    mark = uuid.uuid4().hex
    out = subprocess.run(
        [sys.executable, str(script), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CHILTEPIN_TEST_MARK": mark},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["14", "failed", "as", "asked"], out.stdout
    assert wait_gone(lambda: marked(mark) + retitled()) == [], "a process outlived its workflow"
    return run_dir


def retitled() -> list[int]:
    """Parsl's monitoring processes (by the titles they give themselves) of this run."""
    return [p.pid for p in P.matching(lambda cmd: "parsl: monitoring" in cmd)]


def marked(mark: str) -> list[int]:
    """Processes whose environment carries ``mark`` (the workflow's and its children's)."""
    import psutil

    return [pid for pid in psutil.pids() if P.environ_value(pid, "CHILTEPIN_TEST_MARK") == mark]


def wait_gone(probe, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while (left := probe()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def dom(browser: str, url: str) -> str:
    """The page at ``url`` after its scripts ran, as headless Chromium renders it."""
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(Path(os.environ.get("TMPDIR", "/tmp")))},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


class Monitor:
    """``chiltepin monitor ARGS`` in the background, with its URL."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [CLI, "monitor", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read()

    def viewer_pids(self) -> list[int]:
        import psutil

        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def test_a_monitored_run_records_its_tasks(monitored_run):
    database = monitored_run / "monitoring.db"
    assert stat.S_IMODE(database.stat().st_mode) & 0o077 == 0  # private, as the run dir
    with sqlite3.connect(database) as db:
        tasks = sorted(row[0] for row in db.execute("SELECT task_func_name FROM task"))
        workflows = [row[0] for row in db.execute("SELECT workflow_name FROM workflow")]
    assert tasks == ["fails_on_purpose"] + ["square"] * 4
    assert workflows == ["run"]


def test_monitor_serves_the_run_to_a_browser_on_loopback_only(monitored_run, chromium):
    import psutil

    monitor = Monitor(str(monitored_run))
    try:
        viewers = monitor.viewer_pids()
        assert viewers
        listening = {
            c.laddr
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in viewers
        }
        assert listening and all(address.ip == "127.0.0.1" for address in listening), listening

        index = dom(chromium, monitor.url)
        assert ">run</a>" in index, index[-3000:]
        workflow_id = index.split('href="workflow/', 1)[1].split("/", 1)[0]
        tasks = dom(chromium, f"{monitor.url}workflow/{workflow_id}/task/")
        assert tasks.count(">square<") == 4 and ">fails_on_purpose<" in tasks, tasks[-3000:]
        overview = dom(chromium, f"{monitor.url}workflow/{workflow_id}/")
        assert "plotly" in overview  # the workflow's plots were drawn by its scripts
    finally:
        status = monitor.stop()
    assert status == 143, monitor.proc.stderr.read()
    assert wait_gone(lambda: [p for p in viewers if psutil.pid_exists(p)]) == []


def test_the_viewer_dies_with_a_killed_monitor(monitored_run):
    import psutil

    monitor = Monitor(str(monitored_run / "monitoring.db"), "--port", "0")
    viewers = monitor.viewer_pids()
    assert viewers
    monitor.stop(signal.SIGKILL)
    assert wait_gone(lambda: [p for p in viewers if psutil.pid_exists(p)]) == []


def test_monitor_finds_the_newest_run_under_runinfo(monitored_run, tmp_path):
    import shutil

    runinfo = tmp_path / "runinfo"
    shutil.copytree(monitored_run, runinfo / "000")
    monitor = subprocess.Popen(
        [CLI, "monitor"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert monitor.stdout.readline().startswith("http://127.0.0.1:")
    finally:
        monitor.send_signal(signal.SIGINT)
        assert monitor.wait(timeout=60) == 130
    assert "runinfo/000/monitoring.db" in monitor.stderr.read()


def test_a_killed_monitored_driver_leaves_no_monitoring_process(tmp_path):
    script = tmp_path / "workflow.py"
    script.write_text(WORKFLOW)
    mark = uuid.uuid4().hex
    driver = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "run"), "nap"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "CHILTEPIN_TEST_MARK": mark},
    )
    try:
        assert driver.stdout.readline().strip() == "napping"
        spawned = descendants(driver.pid)
        titles = [" ".join(p.cmdline()) for p in spawned]
        assert sum("parsl: monitoring" in t for t in titles) >= 2, titles  # database, router
    finally:
        driver.kill()
        driver.wait()
    start = time.monotonic()
    left = wait_gone(lambda: [p for p in spawned if p.is_running()] + marked(mark), timeout=120)
    gone = time.monotonic() - start
    print(f"\nmonitored driver SIGKILLed: all its processes gone after {gone:.1f} s")
    assert left == [], left


def descendants(pid: int) -> list:
    """``pid``'s descendants (psutil processes; ``is_running`` also checks their start time,
    so a reused pid does not count). Parsl's helpers retitle themselves, which erases
    the environment :func:`marked` reads."""
    import psutil

    return psutil.Process(pid).children(recursive=True)


# --- bad input: one line, exit 2, nothing started -------------------------------------------


def sqlite_without_workflow(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x INTEGER)")
    return path


BAD_RUN_DIRS = {
    "missing": (lambda d: d / "nope", "does not exist"),
    "no database": (lambda d: d, "has no monitoring.db"),
    "text file": (lambda d: write(d / "monitoring.db", b"hello\n"), "not SQLite"),
    "non-UTF-8 bytes": (lambda d: write(d / "monitoring.db", b"\xff\xfe\x00" * 100), "not SQLite"),
    "huge": (lambda d: write(d / "monitoring.db", os.urandom(1 << 20) * 64), "not SQLite"),
    "empty": (lambda d: write(d / "monitoring.db", b""), "not SQLite"),
    "SQLite header, garbage after": (
        lambda d: write(d / "monitoring.db", b"SQLite format 3\x00" + b"\x01" * 5000),
        "not a readable SQLite database",
    ),
    "another SQLite database": (
        lambda d: sqlite_without_workflow(d / "monitoring.db"),
        "no workflow table",
    ),
    "database is a directory": (lambda d: mkdir(d / "monitoring.db"), "not SQLite"),
    "non-UTF-8 name": (lambda d: Path(os.fsdecode(bytes(d) + b"/\xff\xfe")), "does not exist"),
    "unreadable": (lambda d: unreadable(d / "monitoring.db"), "not SQLite"),
}


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def mkdir(path: Path) -> Path:
    path.mkdir()
    return path.parent


def unreadable(path: Path) -> Path:
    sqlite_without_workflow(path)
    path.chmod(0)
    return path


@pytest.mark.parametrize("case", list(BAD_RUN_DIRS))
def test_bad_run_directories(tmp_path, case):
    make, message = BAD_RUN_DIRS[case]
    target = make(tmp_path)
    if case == "unreadable" and os.geteuid() == 0:
        message = "no workflow table"  # root reads it anyway
    line = one_line_error(chiltepin("monitor", os.fsdecode(target), timeout=60))
    assert message in line and "RUN_DIR" in line, line


@pytest.mark.parametrize("port", ["-1", "65536", "abc", "1.5", "", "٣"])
def test_bad_ports(monitored_run, port):
    line = one_line_error(chiltepin("monitor", str(monitored_run), "--port", port, timeout=60))
    assert "--port" in line and "port from 0 to 65535" in line, line


def test_a_port_in_use(monitored_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(
            chiltepin("monitor", str(monitored_run), "--port", str(port), timeout=60)
        )
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port 0" in line, line


def test_monitoring_must_be_a_boolean(tmp_path):
    config = tmp_path / "resources.yaml"
    config.write_text("compute:\n  monitoring: yes please\n")
    line = one_line_error(chiltepin("config", "validate", str(config), timeout=60))
    assert "resources.yaml:2" in line and "monitoring" in line, line


def test_without_the_viewer_installed_monitor_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "flask" else real(name, *a, **k),
    )
    from chiltepin.errors import ConfigError
    from chiltepin.monitoring import viewer_available

    with pytest.raises(ConfigError, match=r"pip install 'chiltepin\[monitoring\]'"):
        viewer_available()


def test_a_profile_turns_monitoring_on_for_its_executors(tmp_path, monkeypatch):
    from chiltepin.config.parsl_config import build_parsl_config
    from chiltepin.config.source import WorkflowSource

    (tmp_path / "mon.yaml").write_text(
        "name: mon\nscheduler: localhost\ndefaults:\n  monitoring: true\n"
        "executors:\n  compute: {}\n  quiet: {monitoring: false}\n"
    )
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(tmp_path))
    resolved = WorkflowSource(site="mon").resolve()
    assert resolved.resources["compute"].monitoring is True
    assert resolved.resources["quiet"].monitoring is False
    run_dir = tmp_path / "a run? #dir"
    config = build_parsl_config(resolved.resources, run_dir=str(run_dir))
    assert config.monitoring is not None
    assert config.monitoring.logging_endpoint.startswith("sqlite:///file:")
    assert "%3F" in config.monitoring.logging_endpoint  # the path survives its '?'
    quiet = build_parsl_config({"quiet": resolved.resources["quiet"]}, run_dir=str(run_dir))
    assert quiet.monitoring is None
