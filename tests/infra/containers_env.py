"""Stdlib-only helpers around tests/infra/containers.sh for the test suite.

    from tests.infra import containers_env   # or import by path
    env = containers_env.setup()              # installs/configures, returns env vars
    containers_env.build_image()              # cached: seconds when nothing changed
    containers_env.start_registry()
    ...
    assert containers_env.running_containers() == []

Every podman call must carry the returned variables (CONTAINERS_CONF,
CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF): without them podman uses
its defaults, which fail on these machines (crun, nofile limit). `podman_env()`
gives os.environ plus those variables; `apply_env()` puts them in os.environ.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("containers.sh")
REPO = SCRIPT.parents[2]

# Generous: a cold build (debootstrap + apt + pip) takes 2-4 minutes here.
BUILD_TIMEOUT = 1800
DEFAULT_TIMEOUT = 300


def _run(*args: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"containers.sh {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return proc.stdout.strip()


def env() -> dict[str, str]:
    """The variables printed by `containers.sh env` (writes configs, no apt)."""
    out: dict[str, str] = {}
    for line in _run("env").splitlines():
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export ") :].partition("=")
        parts = shlex.split(value)
        out[key] = parts[0] if parts else ""
    return out


def setup() -> dict[str, str]:
    """Install missing tools (apt, as root), write podman configs; return env vars."""
    _run("setup", timeout=900)
    return env()


def apply_env() -> dict[str, str]:
    """setup() and export the variables into os.environ (for podman subprocesses)."""
    values = setup()
    os.environ.update(values)
    return values


def podman_env() -> dict[str, str]:
    """os.environ plus the container variables, for subprocess(env=...)."""
    return {**os.environ, **env()}


def image() -> str:
    """Local name of the runtime image, e.g. ghcr.io/noaa-gsl/chiltepin:0.1.0."""
    return env()["CHILTEPIN_IMAGE"]


def registry_image() -> str:
    """Name of the image in the loopback registry (after push())."""
    return env()["CHILTEPIN_REGISTRY_IMAGE"]


def build_image() -> str:
    """Build (or reuse) the runtime image; returns its image id."""
    return _run("build", timeout=BUILD_TIMEOUT).splitlines()[-1]


def start_registry() -> None:
    _run("registry-start", timeout=60)


def stop_registry() -> None:
    _run("registry-stop", timeout=60)


def push() -> str:
    """Push the image to the loopback registry; returns the registry image name."""
    return _run("push", timeout=600).splitlines()[-1]


def charliecloud_dir() -> str:
    """Charliecloud directory image of the runtime image (converted when stale)."""
    return _run("ch-dir", timeout=900).splitlines()[-1]


def teardown() -> None:
    _run("teardown", timeout=120)


def running_containers() -> list[str]:
    """Ids of running containers in the project's podman store (`podman ps -q`)."""
    proc = subprocess.run(
        ["podman", "ps", "-q"],
        capture_output=True,
        text=True,
        env=podman_env(),
        timeout=60,
        check=True,
    )
    return proc.stdout.split()


def empty_store(name: str = "pull-test") -> dict[str, str]:
    """Configs for a second, EMPTY podman store under ``$STATE/<name>`` (its own
    storage.conf and containers.conf; the same registries.conf), wiping any earlier one.

    Returns CONTAINERS_CONF and CONTAINERS_STORAGE_CONF; put them in the environment of
    every podman call (and of Slurm jobs, which inherit it) that should use that store.
    """
    values = env()
    state = Path(values["CHILTEPIN_CONTAINERS_STATE"])
    root = state / name
    conf = {
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
    }
    if root.exists():
        subprocess.run(
            ["podman", "system", "reset", "--force"],
            env={**os.environ, **values, **conf},
            capture_output=True,
            timeout=300,
            check=False,
        )
        subprocess.run(["rm", "-rf", str(root)], check=True, timeout=300)
    (root / "run").mkdir(parents=True)
    main_conf = Path(values["CONTAINERS_CONF"]).read_text()
    Path(conf["CONTAINERS_CONF"]).write_text(
        main_conf.replace(str(state / "run"), str(root / "run"))
    )
    Path(conf["CONTAINERS_STORAGE_CONF"]).write_text(
        "# Written by tests/infra/containers_env.py: an empty store for pull tests\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'runroot = "{root / "run" / "storage"}"\n'
        f'graphroot = "{root / "storage"}"\n\n'
        "[storage.options.overlay]\n"
        'mountopt = "nodev"\n'
    )
    return conf
