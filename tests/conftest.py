"""Shared fixtures: real components only, and nothing may be left running."""

from __future__ import annotations

import os
import shutil
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

PARSL_PROCESS_MARKERS = ("interchange.py", "HTEX interchange", "process_worker_pool.py")


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


# ---------------------------------------------------------------------- containers
SITES = TESTS / "sites"  # test-only site profiles (testcluster-podman, -charliecloud)
CONTAINER_LABEL = "chiltepin.run"  # every container a Workflow starts carries it


def chiltepin_cli(*args: str, env: dict | None = None, timeout: float = 900):
    """Run the real ``chiltepin`` console script."""
    return subprocess.run(
        [str(BIN / "chiltepin"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def container_infra():
    """podman set up for this machine, the runtime image built from containers/Dockerfile
    and pushed to the loopback registry (tests/infra/containers.sh); the registry is
    stopped at the end of the session. Returns the containers.sh variables."""
    sys.path.insert(0, str(TESTS / "infra"))
    import containers_env

    try:
        values = containers_env.apply_env()
        containers_env.build_image()
        containers_env.start_registry()
        values["CHILTEPIN_REGISTRY_IMAGE"] = containers_env.push()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        require(False, f"podman, the test image and the loopback registry ({exc})")
    yield values
    containers_env.stop_registry()


@pytest.fixture(scope="session")
def pulled_image(container_infra):
    """``chiltepin image pull --site testcluster-podman`` for real: from the loopback
    registry into an EMPTY podman store, then once more (must be a no-op). From here on
    podman (tests, and the Slurm jobs, which inherit the environment) uses that store."""
    from types import SimpleNamespace

    import containers_env

    state = Path(container_infra["CHILTEPIN_CONTAINERS_STATE"])
    os.environ.update(containers_env.empty_store("pull-test"))
    os.environ["CHILTEPIN_TESTS_DIR"] = str(TESTS)
    os.environ["CHILTEPIN_TEST_IMAGE_CACHE"] = str(state / "test-image-cache")
    env = {**os.environ, "CHILTEPIN_SITE_PATH": str(SITES)}
    image = container_infra["CHILTEPIN_REGISTRY_IMAGE"]
    empty = subprocess.run(
        ["podman", "images", "-q"], capture_output=True, text=True, timeout=120
    ).stdout.split()
    start = time.monotonic()
    first = chiltepin_cli("image", "pull", "--site", "testcluster-podman", env=env)
    first_seconds = time.monotonic() - start
    if first.returncode != 0:
        pytest.fail(f"chiltepin image pull failed:\n{first.stdout}{first.stderr[-3000:]}")
    start = time.monotonic()
    second = chiltepin_cli("image", "pull", "--site", "testcluster-podman", env=env)
    return SimpleNamespace(
        image=image,
        env=env,
        store_before=empty,
        first=first,
        first_seconds=first_seconds,
        second=second,
        second_seconds=time.monotonic() - start,
    )


@pytest.fixture(scope="session")
def charliecloud_image(pulled_image):
    """``chiltepin image pull --site testcluster-charliecloud``, twice: a directory image
    in $CHILTEPIN_TEST_IMAGE_CACHE (kept between sessions; re-made when the digest changes)."""
    require(bool(shutil.which("ch-run") and shutil.which("ch-convert")), "Charliecloud")
    env = pulled_image.env
    first = chiltepin_cli("image", "pull", "--site", "testcluster-charliecloud", env=env)
    second = chiltepin_cli("image", "pull", "--site", "testcluster-charliecloud", env=env)
    return first, second


def labelled_containers() -> list[str]:
    """Containers (any state) in the current podman store that a Workflow started."""
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={CONTAINER_LABEL}", "--format", "{{.ID}}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.split()


@pytest.fixture
def no_containers_left(pulled_image):
    """Fail the test if a container it started outlives it (then remove it)."""
    before = set(labelled_containers())
    yield
    left = wait_until_gone(lambda: [c for c in labelled_containers() if c not in before], 15)
    if left:
        subprocess.run(["podman", "rm", "-f", *left], capture_output=True, timeout=120)
    assert not left, f"containers left behind: {left}"


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory):
    """A redis-server on loopback (tests/infra/redis_server.py) for Redis exchanges."""
    sys.path.insert(0, str(TESTS / "infra"))
    import redis_server

    server = redis_server.binary()
    require(server is not None, "redis-server (apt-get install -y redis-server)")
    with redis_server.serve(server, tmp_path_factory.mktemp("redis")) as port:
        yield port
