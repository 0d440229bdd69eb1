"""Shared fixtures: real components only, and nothing may be left running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
BIN = Path(sys.executable).parent

# Parsl workers unpickle task functions defined in test modules: make them importable,
# and make the worker scripts (interchange.py, process_worker_pool.py) findable.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p
)
sys.path.insert(0, str(TESTS))
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"

# Tests never read the user's own site overrides.
os.environ["XDG_CONFIG_HOME"] = str(Path(__import__("tempfile").mkdtemp(prefix="chiltepin-xdg-")))
os.environ.pop("CHILTEPIN_SITE_PATH", None)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PARSL_PROCESS_MARKERS = ("interchange.py", "process_worker_pool.py")


def require(available: bool, what: str) -> None:
    """Skip when a component is missing, except under CI=true, where that is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} not available")


def parsl_processes() -> list[str]:
    """Command lines of Parsl interchange and worker processes still running."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        line.strip()
        for line in out.splitlines()
        if any(m in line for m in PARSL_PROCESS_MARKERS) and "ps -eo" not in line
    ]


def wait_until_gone(probe, timeout: float = 30.0) -> list[str]:
    """Poll ``probe()`` until it returns nothing or ``timeout`` passes; return the last."""
    deadline = time.monotonic() + timeout
    left = probe()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = probe()
    return left


@pytest.fixture
def no_leftovers():
    """Fail the test if Parsl interchange or worker processes outlive it."""
    before = set(parsl_processes())
    yield
    left = wait_until_gone(lambda: [p for p in parsl_processes() if p not in before])
    assert not left, f"processes left running: {left}"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runinfo"


@pytest.fixture(scope="session")
def slurm_cluster():
    """The project's loopback Slurm cluster (tests/infra/slurm.sh), started once."""
    sys.path.insert(0, str(TESTS / "infra"))
    import slurm_cluster as cluster

    try:
        env = cluster.start()
    except (cluster.SlurmClusterError, OSError) as exc:
        require(False, f"the Slurm test cluster ({exc})")
    os.environ.update(env)
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm(slurm_cluster, no_leftovers):
    """Per test: the cluster, and a check that no job outlives the test."""
    yield slurm_cluster
    left = slurm_cluster.leftover_jobs(wait=30)
    if left:
        slurm_cluster.cancel_all()
    assert not left, f"scheduler jobs left behind: {left}"
