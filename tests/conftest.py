"""Shared fixtures: real components only, and nothing may be left running.

Helpers (paths, the CLI runner, process probes) live in the ``helpers`` package.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# Parsl workers unpickle task functions and agents defined in tests/helpers and in
# examples/agents (the guide's examples): make them importable here and in every worker,
# and make the worker scripts (interchange.py, process_worker_pool.py) findable.
_EXAMPLES = TESTS.parent / "examples" / "agents"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(TESTS), str(_EXAMPLES), os.environ.get("PYTHONPATH", "")) if p
)
sys.path[:0] = [str(TESTS), str(_EXAMPLES)]

from helpers import processes  # noqa: E402
from helpers.cli import run as chiltepin_cli  # noqa: E402
from helpers.infra import (  # noqa: E402
    BIN,
    REPO,
    SITES,
    labelled_containers,
    require,
    shared_by_lanes,
    use_shared_tmp,
)
from helpers.processes import parsl_processes, wait_until_gone  # noqa: E402

os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"

# Run directories must be where the test cluster's nodes see them (not their own /tmp).
use_shared_tmp()
# Tests never read the user's own site overrides.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="chiltepin-xdg-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)  # nothing left behind
# Nor do they write the user's state (run registry, agent services), even when killed.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="chiltepin-state-")
atexit.register(shutil.rmtree, os.environ["XDG_STATE_HOME"], True)
os.environ.pop("CHILTEPIN_SITE_PATH", None)


#: Session fixtures that start the infrastructure only one lane may use (one Slurm
#: cluster and one podman store for containers per machine): tests that use one make up
#: the ``cluster`` lane.
CLUSTER_FIXTURES = frozenset({"slurm_cluster", "pulled_image"})
#: Modules whose other tests make up the ``services`` lane: agents and the long-lived
#: processes they talk to (agent services, exchanges, Globus Compute endpoints, the
#: monitor). The rest is the ``local`` lane; the two take about the same time.
SERVICE_MODULES = frozenset(
    {
        "test_agent_cli",
        "test_agent_state",
        "test_agents",
        "test_agents_example",
        "test_agents_exchange",
        "test_agents_site",
        "test_compat_agents",
        "test_compat_endpoint",
        "test_endpoint",
        "test_endpoint_containers",
        "test_exchange_kinds",
        "test_exchange_security",
        "test_faults_embedded_exchange",
        "test_faults_exchange",
        "test_monitoring",
    }
)
LANES = ("cluster", "local", "services")


def lane_of(item: pytest.Item) -> str:
    """The lane that runs ``item`` (see :data:`CLUSTER_FIXTURES`, :data:`SERVICE_MODULES`)."""
    if CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return "cluster"
    return "services" if item.path.stem in SERVICE_MODULES else "local"


def pytest_collection_modifyitems(config, items):
    """tests/run.sh runs three lanes at once, each a pytest of its own: ``cluster`` (tests
    on the Slurm cluster or in containers), ``services`` and ``local`` (the others, see
    :func:`lane_of`). A lane deselects the other lanes' tests; without
    $CHILTEPIN_TEST_LANE everything runs."""
    if processes.LANE is None:
        return
    if processes.LANE not in LANES:
        raise pytest.UsageError(f"CHILTEPIN_TEST_LANE must be one of {', '.join(LANES)}")
    keep, drop = [], []
    for item in items:
        lane = lane_of(item)
        (keep if lane == processes.LANE else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def no_leftovers():
    """Fail the test if Parsl interchange or worker processes outlive it."""
    before = set(parsl_processes())
    yield
    left = wait_until_gone(lambda: [p for p in parsl_processes() if p not in before])
    assert not left, f"processes left running: {left}"


@pytest.fixture
def gc_dir(tmp_path: Path, monkeypatch) -> Path:
    """A private, empty GLOBUS_COMPUTE_USER_DIR: no stored login, no client credentials."""
    path = tmp_path / "gc"
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(path))
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_SECRET", raising=False)
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runinfo"


@pytest.fixture(scope="session")
def other_user() -> str:
    """A second, unprivileged Unix user (helpers.users), created once and left in place."""
    from helpers.users import ensure_other_user

    return ensure_other_user()


@pytest.fixture
def shared_dir():
    """A directory every user can enter, as a cluster's shared file system is: what is
    private in it is private by its own permissions, not by this test's tmp_path (0700)."""
    path = Path(tempfile.mkdtemp(prefix="chiltepin-shared-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster():
    """The project's Slurm test cluster (tests/infra/slurm.sh), started once: compute nodes
    are separate hosts (network namespaces) reaching this one on the bridge only."""
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


@pytest.fixture(scope="session")
def container_infra():
    """podman set up for this machine, the runtime image built from containers/Dockerfile
    and pushed to the loopback registry (tests/infra/containers.sh). Lanes share them
    (the Ansible tests pull from the registry outside the cluster lane): the last lane
    to finish stops the registry. Returns the containers.sh variables, which podman
    calls need (this process's environment is left alone: see ``pulled_image``)."""
    sys.path.insert(0, str(TESTS / "infra"))
    import containers_env

    def start() -> dict[str, str]:
        try:
            values = containers_env.setup()
            containers_env.build_image()
            containers_env.start_registry()
            values["CHILTEPIN_REGISTRY_IMAGE"] = containers_env.push()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            require(False, f"podman, the test image and the loopback registry ({exc})")
        return values

    with shared_by_lanes("registry", start, containers_env.stop_registry) as values:
        yield values


@pytest.fixture(scope="session")
def pulled_image(container_infra):
    """``chiltepin image pull --site testcluster-podman`` for real: from the loopback
    registry into an EMPTY podman store, then once more (must be a no-op). From here on
    podman (tests, and the Slurm jobs, which inherit the environment) uses that store."""
    from types import SimpleNamespace

    import containers_env

    state = Path(container_infra["CHILTEPIN_CONTAINERS_STATE"])
    os.environ.update(container_infra)
    os.environ.update(containers_env.empty_store("pull-test"))
    # Containers bind the checkout: tests/helpers and examples/agents, on PYTHONPATH.
    os.environ["CHILTEPIN_TESTS_DIR"] = str(REPO)
    os.environ["CHILTEPIN_TEST_IMAGE_CACHE"] = str(state / "test-image-cache")
    env = {**os.environ, "CHILTEPIN_SITE_PATH": str(SITES)}
    image = container_infra["CHILTEPIN_REGISTRY_IMAGE"]
    empty = subprocess.run(
        ["podman", "images", "-q"], capture_output=True, text=True, timeout=120
    ).stdout.split()
    start = time.monotonic()
    first = chiltepin_cli("image", "pull", "--site", "testcluster-podman", env=env, timeout=900)
    first_seconds = time.monotonic() - start
    if first.returncode != 0:
        pytest.fail(f"chiltepin image pull failed:\n{first.stdout}{first.stderr[-3000:]}")
    start = time.monotonic()
    second = chiltepin_cli("image", "pull", "--site", "testcluster-podman", env=env, timeout=900)
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
    first = chiltepin_cli(
        "image", "pull", "--site", "testcluster-charliecloud", env=env, timeout=900
    )
    second = chiltepin_cli(
        "image", "pull", "--site", "testcluster-charliecloud", env=env, timeout=900
    )
    return first, second


@pytest.fixture
def no_containers_left(pulled_image):
    """Fail the test if a container it started outlives it (then remove it)."""
    before = set(labelled_containers())
    yield
    left = wait_until_gone(
        lambda: [c for c in labelled_containers() if c not in before], timeout=15
    )
    if left:
        subprocess.run(["podman", "rm", "-f", *left], capture_output=True, timeout=120)
    assert not left, f"containers left behind: {left}"


@pytest.fixture(scope="session")
def redis_binary():
    """The ``redis-server`` binary (tests/infra/redis_server.py installs it if missing)."""
    sys.path.insert(0, str(TESTS / "infra"))
    import redis_server

    server = redis_server.binary()
    require(server is not None, "redis-server (apt-get install -y redis-server)")
    return server


@pytest.fixture(scope="session")
def redis_port(redis_binary, tmp_path_factory):
    """A redis-server on loopback (tests/infra/redis_server.py) for Redis exchanges."""
    import redis_server

    with redis_server.serve(redis_binary, tmp_path_factory.mktemp("redis")) as port:
        yield port


#: Run directories a test left in the checkout (a workflow or agent run with the default
#: ./runinfo while the working directory was the checkout's); checked at the end.
CHECKOUT_RUNINFO = REPO / "runinfo"
_RUNINFO_BEFORE = CHECKOUT_RUNINFO.exists()


def pytest_sessionfinish(session, exitstatus):
    if not _RUNINFO_BEFORE and CHECKOUT_RUNINFO.exists():
        left = sorted(str(p.relative_to(REPO)) for p in CHECKOUT_RUNINFO.rglob("*") if p.is_dir())
        shutil.rmtree(CHECKOUT_RUNINFO, ignore_errors=True)
        session.config.get_terminal_writer().line(
            f"FAILED: tests left run directories in the checkout: {left[:5]}", red=True
        )
        session.exitstatus = 1
