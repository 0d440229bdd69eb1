"""Container values of a site profile cannot inject into an endpoint's worker command.

globus-compute-endpoint builds the worker command of a containerized engine itself
(``GlobusComputeEngine.containerized_launch_cmd``): it re-splits the command on
whitespace, dropping any quoting, and re-joins it with spaces; Parsl then formats it and
a batch script runs it in bash. These tests render endpoints from hostile profiles and:

* for values that are accepted, build the engine's real launch command with
  globus-compute-endpoint's and Parsl's own code, run it through bash with a stub
  runtime command on PATH (it records its argv and runs nothing), and check the argv
  is the one intended and nothing else ran;
* for values that are refused, check ``chiltepin endpoint configure`` exits 2 with one
  line naming the key and writes nothing.

The runtimes are stubs (apptainer cannot be installed here; podman and ch-run must not
start anything): this tests the command construction up to the runtime's argv.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from helpers.cli import one_line_error, run

from chiltepin.containers import get_runtime
from chiltepin.endpoint.validate import load_engine_config, render_dir
from chiltepin.endpoint.writer import configure

STUB = '#!/bin/sh\nprintf "%s\\0" "$(basename "$0")" "$@" >> "$STUB_LOG"\n'


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A temporary GLOBUS_COMPUTE_USER_DIR and site layer, and stub runtimes on PATH that
    append their argv to $STUB_LOG. Injected commands would ``touch PWNED``."""
    gc = tmp_path / "gc"
    layer = tmp_path / "sites"
    layer.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("podman", "docker", "apptainer", "ch-run"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    env = {
        "GLOBUS_COMPUTE_USER_DIR": str(gc),
        "CHILTEPIN_SITE_PATH": str(layer),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "STUB_LOG": str(tmp_path / "argv.log"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_SECRET", raising=False)

    class Host:
        def __init__(self) -> None:
            self.root = tmp_path
            self.gc = gc
            self.log = Path(env["STUB_LOG"])

        def profile(self, container: dict) -> None:
            """The local site with every executor in ``container``."""
            override = {"merge": True, "container": container}
            (layer / "local.yaml").write_text(yaml.safe_dump(override))

        def image(self, runtime: str, image: str, cache_dir: str | None) -> None:
            """Put the image where the runtime looks (a pulled image's stand-in)."""
            rt = get_runtime(runtime)
            if rt.image_kind == "store" or image.startswith("/"):
                return  # podman/docker: their store is never consulted (stub runtimes)
            path = Path(rt.image_path(image, cache_dir))
            if runtime == "charliecloud":
                (path / "bin").mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")

    return Host()


def launch_and_record(ep_dir: Path, work: Path, run_dir: Path) -> list[str]:
    """Run the engine's worker launch command as a batch job would; return the argv the
    stub runtime was called with, up to the worker pool command."""
    engine = load_engine_config(render_dir(ep_dir, {"executor": "compute"}), "test").engine
    # GlobusComputeEngine.start(): the run directory, the engine's own containerized
    # command ...
    engine.run_dir = str(run_dir)
    plain = engine.executor.launch_cmd
    engine.executor.launch_cmd = engine.containerized_launch_cmd()
    # ... then Parsl's two format passes (initialize_scaling, then per block) ...
    command = _parsl_format(engine.executor.launch_cmd)
    # ... and the provider's launcher and worker_init in a bash batch script.
    provider = engine.provider
    script = "\n".join([provider.worker_init or "", provider.launcher(command, 1, 1)])
    work.mkdir()
    out = subprocess.run(
        ["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert list(work.iterdir()) == [], "the batch script created files"
    argv = Path(os.environ["STUB_LOG"]).read_bytes().decode().split("\0")[:-1]
    worker = shlex.split(_parsl_format(plain))
    assert argv[-len(worker) :] == worker, "the worker pool command follows, as the engine had it"
    return argv[: -len(worker)]


def _parsl_format(launch_cmd: str) -> str:
    return launch_cmd.format_map(defaultdict(lambda: "X")).format(block_id="0")


IMAGE = "localhost:5000/chiltepin:0.1.0"
SAFE_OPTIONS = ["--label", "org.test=a:b+c@d%e", "--env=A=1,2"]


@pytest.mark.parametrize("runtime", ["podman", "docker", "apptainer", "charliecloud"])
def test_accepted_values_reach_the_runtime_as_intended(host, runtime):
    from chiltepin.config.schema import ContainerSettings

    bind = _mkdir(host.root / "data.v1")
    cache = str(host.root / "cache")
    host.image(runtime, IMAGE, cache)
    container = {
        "runtime": runtime,
        "image": IMAGE,
        "cache_dir": cache,
        "binds": [f"{bind}:/data"],
        "options": SAFE_OPTIONS,
        "env": ["TZ"] if runtime in ("podman", "docker") else [],
    }
    host.profile(container)
    ep = configure("safe", "local", "compute")
    run_dir = Path(_mkdir(host.root / "engine-run"))
    argv = launch_and_record(ep.path, host.root / "work", run_dir)

    rt = get_runtime(runtime)
    uri = rt.image_for(ContainerSettings(**container))
    assert argv[0] == rt.binary
    if runtime == "charliecloud":
        assert argv[1:] == ["--set-env", "-b", f"{bind}:/data", *SAFE_OPTIONS, uri, "--"]
    elif runtime == "apptainer":
        assert argv[1:] == ["run", "--bind", f"{bind}:/data", *SAFE_OPTIONS, uri]
    else:
        ids = f"{os.getuid()}:{os.getgid()}"
        assert argv[1:] == [
            "run",
            *("--rm", "--init", "--network", "host", "--security-opt", "label=disable"),
            *("--user", ids, "-v", f"{bind}:/data", "-e", "TZ", *SAFE_OPTIONS),
            *("-v", f"{run_dir}:{run_dir}", "-t", uri),  # added by the engine
        ]
    assert not (host.root / "PWNED").exists() and not (host.root / "work" / "PWNED").exists()


TOUCH = "touch PWNED"
#: (id, container settings given the test's root directory, key the error must name)
HOSTILE = [
    ("semicolon", lambda r: {"options": [f"--label=a;{TOUCH}"]}, "options"),
    ("ampersand", lambda r: {"options": [f"--label=a&&{TOUCH}"]}, "options"),
    ("pipe", lambda r: {"options": [f"--label=a|{TOUCH}"]}, "options"),
    ("subshell", lambda r: {"options": [f"--label=$({TOUCH})"]}, "options"),
    ("backtick", lambda r: {"options": [f"--label=`{TOUCH}`"]}, "options"),
    ("space", lambda r: {"options": ["--label=a b"]}, "options"),
    ("quote", lambda r: {"options": ["--label='a'"]}, "options"),
    ("redirect", lambda r: {"options": ["--label=a>PWNED"]}, "options"),
    ("newline", lambda r: {"options": [f"--label=a\n{TOUCH}"]}, "options"),
    ("glob", lambda r: {"options": ["--label=*"]}, "options"),
    ("tilde", lambda r: {"options": ["~/x"]}, "options"),
    ("brace", lambda r: {"options": ["--label={block_id}"]}, "options"),
    ("empty", lambda r: {"options": [""]}, "options"),
    ("bind-space", lambda r: {"binds": [_mkdir(r / "my data")]}, "binds"),
    ("bind-semicolon", lambda r: {"binds": [_mkdir(r / f"a;{TOUCH}")]}, "binds"),
    ("env-pattern", lambda r: {"env": ["SLURM*"]}, "env"),
    ("image-path", lambda r: {"runtime": "apptainer", "image": _sif(r)}, "image"),
    (
        "cache-dir",
        lambda r: {"runtime": "apptainer", "cache_dir": _mkdir(r / "a cache")},
        "cache_dir",
    ),
]


def _mkdir(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _sif(root: Path) -> str:
    path = root / f"img;{TOUCH}.sif"
    path.write_bytes(b"")
    return str(path)


@pytest.mark.parametrize("settings, key", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_refused_values_exit_2_naming_the_key_and_write_nothing(host, settings, key):
    container = {"runtime": "podman", "image": IMAGE, **settings(host.root)}
    if container["runtime"] == "apptainer":
        container.setdefault("cache_dir", _mkdir(host.root / "cache"))
        host.image("apptainer", container["image"], container["cache_dir"])
    host.profile(container)
    out = run(
        "endpoint",
        "configure",
        "hostile",
        "--site",
        "local",
        "--executor",
        "compute",
        cwd=host.root,
        timeout=180,
    )
    line = one_line_error(out)
    assert f"key 'container.{key}'" in line and "executor 'compute'" in line, line
    assert out.stdout == ""
    assert not host.gc.exists() or list(host.gc.rglob("*")) == [], "nothing written"
    assert not (host.root / "PWNED").exists()
    assert not host.log.exists(), "no runtime command ran"


def test_contact_email_follows_the_profile_rule(host):
    host.profile({"runtime": "podman", "image": "localhost:5000/chiltepin:0.1.0"})
    for bad in ["not-an-email", "a b@example.org", "a@b@c"]:
        out = run(
            "endpoint",
            "configure",
            "mu",
            "--site",
            "local",
            "--multi-user",
            "--contact-email",
            bad,
            timeout=180,
        )
        assert "key 'contact_email'" in one_line_error(out), bad
        assert not host.gc.exists() or list(host.gc.rglob("*")) == []


@pytest.mark.parametrize("command", ["validate", "render"])
def test_hand_edited_injection_is_refused_by_validate_and_render(host, command):
    host.profile({"runtime": "podman", "image": IMAGE})
    ep = configure("edited", "local", "compute")
    template = ep.path / "user_config_template.yaml.j2"
    text = template.read_text()
    assert text.count("container_cmd_options: ") == 1
    template.write_text(
        text.replace('container_cmd_options: "', 'container_cmd_options: "--label=a;touch PWNED ')
    )
    line = one_line_error(run("endpoint", command, "edited", timeout=180))
    assert "'--label=a;touch'" in line and "re-splits it on spaces" in line
