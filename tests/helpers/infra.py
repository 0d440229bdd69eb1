"""Where things are, and the rule for missing components (skip locally, fail under CI)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
BIN = Path(sys.executable).parent
EXAMPLES = REPO / "examples" / "agents"
SITES = TESTS / "sites"  # test-only site profiles (testcluster-podman, -charliecloud)
CONTAINER_LABEL = "chiltepin.run"  # every container a Workflow starts carries it
#: Where tests put temporary files, pytest's tmp_path included: storage the test
#: cluster's nodes share (their /tmp is node-local, see tests/infra/slurm.sh).
SHARED_TMP = Path(os.environ.get("CHILTEPIN_TEST_TMP", "/var/tmp/chiltepin-tests"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, what: str) -> None:
    """Skip when a component is missing, except under CI=true, where that is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} not available")


def login_address() -> str:
    """An address of this host beyond loopback, where tests bind exchanges that other
    hosts (and other users) could reach: ``CHILTEPIN_TEST_ADDRESS`` if set (e.g. the
    multi-host cluster's bridge address), else this host's first non-loopback IPv4."""
    given = os.environ.get("CHILTEPIN_TEST_ADDRESS")
    if given:
        return given
    import ipaddress
    import socket

    import psutil

    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if (
                entry.family == socket.AF_INET
                and not ipaddress.ip_address(entry.address).is_loopback
            ):
                return entry.address
    pytest.fail("this host has no address beyond loopback (set CHILTEPIN_TEST_ADDRESS)")


def use_shared_tmp() -> Path:
    """Make :data:`SHARED_TMP` (mode 1777, like /tmp) this process's temporary directory
    (``tempfile``, and so pytest's ``tmp_path``); child processes keep their own."""
    SHARED_TMP.mkdir(parents=True, exist_ok=True)
    if SHARED_TMP.stat().st_uid == os.getuid():
        SHARED_TMP.chmod(0o1777)
    tempfile.tempdir = str(SHARED_TMP)
    return SHARED_TMP


T = TypeVar("T")


@contextlib.contextmanager
def shared_by_lanes(name: str, start: Callable[[], T], stop: Callable[[], None]) -> Iterator[T]:
    """Infrastructure that several test lanes (tests/run.sh) use at once, as ``with``.

    Each lane calls ``start`` (idempotent: it reuses what is already up) under a
    machine-wide lock, and holds a shared lock while it uses what ``start`` returned; the
    last lane to leave (no shared lock left, tried under the same machine-wide lock, so
    no lane can be starting meanwhile) calls ``stop``.
    """
    base = Path("/var/tmp")
    with (
        open(base / f"chiltepin-{name}.lock", "a") as setup,
        open(base / f"chiltepin-{name}.users", "a") as users,
    ):
        fcntl.flock(setup, fcntl.LOCK_EX)
        try:
            fcntl.flock(users, fcntl.LOCK_SH)
            value = start()
        finally:
            fcntl.flock(setup, fcntl.LOCK_UN)
        try:
            yield value
        finally:
            fcntl.flock(setup, fcntl.LOCK_EX)
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another lane still uses it
            else:
                stop()


def labelled_containers() -> list[str]:
    """Containers (any state) in the current podman store that a Workflow started."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={CONTAINER_LABEL}", "--format", "{{.ID}}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.split()


#: Libraries that ``import chiltepin`` and ``chiltepin --help`` must not load.
HEAVY_MODULES = ("parsl", "academy", "globus_sdk", "globus_compute_sdk", "pydantic")


def heavy_imports(statements: str, modules: tuple[str, ...] = HEAVY_MODULES) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``statements``."""
    code = f"import sys\n{statements}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()
