"""Process probes: what a test may leave behind, and waiting for it to go."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: An interchange's command line (it renames itself once running).
INTERCHANGE_MARKERS = ("interchange.py", "HTEX interchange")
PARSL_PROCESS_MARKERS = (*INTERCHANGE_MARKERS, "process_worker_pool.py")


#: The lane this pytest runs (tests/run.sh runs three at once: ``cluster``, the tests on
#: the Slurm cluster or in containers, and ``services`` and ``local``, the others; see
#: conftest.lane_of), inherited through the environment by what its tests start; None
#: when the suite runs as one process.
LANE = os.environ.get("CHILTEPIN_TEST_LANE")
#: The lane that counts processes that lost the environment on the way (those started in
#: containers) as its own: only it starts containers.
UNMARKED_LANE = "cluster"


def environ_value(pid: int, name: str) -> str | None:
    """Variable ``name`` in process ``pid``'s environment (None if unset or unreadable)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{name}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def ours(pid: int) -> bool:
    """Whether process ``pid`` is this test run's to account for: every process when the
    suite runs as one; in a lane, those its tests started (see :data:`UNMARKED_LANE`)."""
    if LANE is None:
        return True
    lane = environ_value(pid, "CHILTEPIN_TEST_LANE")
    return lane == LANE if lane is not None else LANE == UNMARKED_LANE


def parsl_processes() -> list[str]:
    """Command lines (``PID ARGS``) of this run's Parsl interchanges and worker pools."""
    return [
        f"{proc.pid} {' '.join(proc.info['cmdline'])}"
        for proc in matching(lambda cmd: any(m in cmd for m in PARSL_PROCESS_MARKERS))
    ]


def matching(match: Callable[[str], bool]) -> list:
    """Live (not zombie) processes of this run (:func:`ours`) whose command line ``match``
    accepts."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if match(" ".join(proc.info["cmdline"] or [])) and ours(proc.pid):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def processes_under(root: str | Path) -> list:
    """Live Parsl processes (interchanges, worker pools) that work in directory ``root``.

    Worker pools name their log directory on the command line; an interchange keeps its
    log open. Other people's Parsl processes on this machine are not counted.
    """
    import psutil

    root = str(root)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "process_worker_pool" in cmdline and root in cmdline:
                found.append(proc)
            elif "interchange" in cmdline and any(
                f.path.startswith(root) for f in proc.open_files()
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def exchange_servers(parent: int | None = None) -> list:
    """Embedded exchange servers that process ``parent`` (default: this one) started."""
    mine = f"--parent-pid {parent if parent is not None else os.getpid()}"
    return matching(lambda cmd: "chiltepin.agents._exchange_server" in cmd and mine in cmd)


def listening_on(pid: int) -> set[str]:
    """The local ``ADDRESS:PORT`` pairs on which process ``pid`` listens for TCP (``ss``);
    an IPv4-mapped IPv6 address (a dual-stack socket) as its IPv4 address."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=60).stdout
    found = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            address, _, port = line.split()[3].rpartition(":")
            address = address.strip("[]").removeprefix("::ffff:")
            found.add(f"{address}:{port}")
    return found


def serve_processes(config: str | Path) -> list:
    """Live ``chiltepin agent serve CONFIG`` processes."""
    return matching(lambda cmd: "agent serve" in cmd and str(config) in cmd)


def _describe(item: Any) -> str:
    if hasattr(item, "cmdline") and hasattr(item, "pid"):
        return f"{item.pid}: {' '.join(item.cmdline())}"
    return str(item)


def wait_until_gone(probe: Callable[..., list], *args: Any, timeout: float = 30.0) -> list[str]:
    """Poll ``probe(*args)`` until it returns nothing or ``timeout`` passes; describe what
    is left then (command lines, for processes)."""
    import psutil

    deadline = time.monotonic() + timeout
    left = probe(*args)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = probe(*args)
    described = []
    for item in left:
        try:
            described.append(_describe(item))
        except psutil.Error:
            continue  # it has just gone
    return described


def wait_for(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something true; return it (None on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
