"""Container runtimes without a running container: image references, the commands each
runtime builds, and bad input through the real CLI (the definition files, their labels and
versions: tests/test_container_metadata.py).

Apptainer and Singularity cannot be installed on the project's Debian 12 machines (not in
bookworm, not on PyPI): their tests check the commands as built, and say so in their
names (``..._apptainer_command_construction_only``).
Podman and Charliecloud run for real in tests/test_containers_podman.py and
tests/test_containers_slurm.py.
"""

from __future__ import annotations

import os
import shlex
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import run as chiltepin_cli
from helpers.infra import BIN, REPO, SITES

from chiltepin import __version__
from chiltepin.config.schema import ContainerSettings, Resource
from chiltepin.containers import (
    RUNTIMES,
    ApptainerRuntime,
    CharliecloudRuntime,
    DockerRuntime,
    PodmanRuntime,
    SingularityRuntime,
    Where,
    get_runtime,
    parse_image_ref,
)
from chiltepin.containers.wiring import EXEC_VAR, ContainerPlan
from chiltepin.errors import ConfigError

IMAGE = f"ghcr.io/noaa-gsl/chiltepin:{__version__}"


def settings(runtime: str, **kw) -> ContainerSettings:
    return ContainerSettings(runtime=runtime, image=kw.pop("image", IMAGE), **kw)


@pytest.fixture
def host_tmp():
    """A directory under this host's /tmp (which ch-run shares, so it needs no bind);
    tmp_path lives on the shared /var/tmp (tests/helpers/infra.py)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="chiltepin-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pairs(args: list[str], flag: str) -> list[str]:
    """Values following each occurrence of ``flag``."""
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


# ---------------------------------------------------------------------- references
@pytest.mark.parametrize(
    "text, repository, tag, stem",
    [
        (IMAGE, "ghcr.io/noaa-gsl/chiltepin", __version__, f"chiltepin_{__version__}"),
        ("localhost:5000/noaa-gsl/chiltepin:0.1.0", "localhost:5000/noaa-gsl/chiltepin", "0.1.0",
         "chiltepin_0.1.0"),
        ("docker://debian:bookworm-slim", "docker.io/library/debian", "bookworm-slim",
         "debian_bookworm-slim"),
        ("user/app", "docker.io/user/app", None, "app_latest"),
        ("[::1]:5000/a/b@sha256:" + "a" * 64, "[::1]:5000/a/b", None, "b_sha256-aaaaaaaaaaaa"),
    ],
)  # fmt: skip
def test_image_references_parse(text, repository, tag, stem):
    ref = parse_image_ref(text)
    assert (ref.repository, ref.tag, ref.file_stem) == (repository, tag, stem)
    assert str(parse_image_ref(str(ref))) == str(ref)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        ("ghcr.io/NOAA/chiltepin:1", "path component 'NOAA'"),
        ("ghcr.io//chiltepin", "empty path component"),
        ("chiltepin:bad tag", "white space"),
        ("chiltepin:-x", "tag '-x'"),
        ("chiltepin@sha256:123", "digest"),
        ("bad_host.-x:5000/a", "registry"),
    ],
)
def test_malformed_image_references_are_config_errors(text, problem):
    with pytest.raises(ConfigError, match="malformed image reference") as info:
        parse_image_ref(text, where="site 's' executor 'e'")
    assert problem in str(info.value) and "hint:" in str(info.value)


def test_unknown_runtime_suggests_the_right_one():
    with pytest.raises(
        ConfigError, match="unknown container runtime 'podmn'.*did you mean 'podman'"
    ):
        get_runtime("podmn")
    assert sorted(RUNTIMES) == ["apptainer", "charliecloud", "docker", "podman", "singularity"]


# ---------------------------------------------------------------------- OCI commands
def test_podman_worker_command(tmp_path):
    cfg = settings(
        "podman",
        binds=[f"{tmp_path}:/data:ro"],
        options=["--pids-limit", "4096"],
        env=["PYTHONPATH", "MY_*"],
        gpus=True,
    )
    cmd = PodmanRuntime().worker_command(
        cfg, run_dir="/runs/r1", workdir="/home/u/proj", labels={"chiltepin.run": "abc"}
    )
    assert cmd[:3] == ["podman", "run", "--rm"] and cmd[-1] == IMAGE
    assert "--init" in cmd and pairs(cmd, "--network") == ["host"]
    assert "--pid" not in cmd and "--ipc" not in cmd  # workers need no host namespaces
    uid = f"{os.getuid()}:{os.getgid()}"
    assert pairs(cmd, "--user") == [uid] if os.getuid() == 0 else pairs(cmd, "--userns")
    assert pairs(cmd, "--label") == ["chiltepin.run=abc"]
    assert pairs(cmd, "-v") == ["/runs/r1:/runs/r1", "/home/u/proj:/home/u/proj",
                                f"{tmp_path}:/data:ro"]  # fmt: skip
    assert pairs(cmd, "-w") == ["/home/u/proj"]
    env = pairs(cmd, "-e")
    assert {"SLURM*", "PYTHONPATH", "MY_*", "CUDA_VISIBLE_DEVICES"} <= set(env)
    assert "PATH" not in env  # the image's PATH (its venv first) must win
    assert pairs(cmd, "--device") == ["nvidia.com/gpu=all"]
    assert cmd[cmd.index("--pids-limit") + 1] == "4096"


def test_podman_rank_command_shares_host_namespaces():
    cmd = PodmanRuntime().exec_command(settings("podman"), run_dir="/runs/r1")
    assert pairs(cmd, "--ipc") == ["host"] and pairs(cmd, "--pid") == ["host"]
    # podman refuses --init together with the host's PID namespace
    assert "--init" not in cmd and pairs(cmd, "--network") == ["host"]


def test_docker_worker_command_and_no_env_patterns():
    cmd = DockerRuntime().worker_command(settings("docker", gpus=True), run_dir="/r", workdir="/")
    assert cmd[:2] == ["docker", "run"] and pairs(cmd, "--gpus") == ["all"]
    assert pairs(cmd, "--user") == [f"{os.getuid()}:{os.getgid()}"]
    assert pairs(cmd, "-v") == ["/r:/r"]  # "/" as working dir is never bound
    assert "SLURM_JOB_ID" in pairs(cmd, "-e") and not any("*" in e for e in pairs(cmd, "-e"))
    with pytest.raises(ConfigError, match="'SLURM\\*' is not a variable name"):
        DockerRuntime().validate(settings("docker", env=["SLURM*"]), Where("s", "e"))


# ---------------------------------------------------------------- apptainer family
@pytest.mark.parametrize("cls", [ApptainerRuntime, SingularityRuntime])
def test_worker_command_apptainer_command_construction_only(cls, tmp_path):
    cfg = settings(cls.name, cache_dir=str(tmp_path), binds=["/tmp:/scratch"], gpus=True)
    cmd = cls().worker_command(cfg, run_dir="/runs/r1", workdir="/home/u/p")
    sif = str(tmp_path / f"chiltepin_{__version__}.sif")
    assert cmd == [
        cls.binary, "exec",
        "--bind", "/runs/r1:/runs/r1", "--bind", "/home/u/p:/home/u/p", "--bind", "/tmp:/scratch",
        "--pwd", "/home/u/p", "--nv", sif,
    ]  # fmt: skip
    assert cls().image_path(IMAGE, str(tmp_path)) == sif


@pytest.mark.parametrize("cls", [ApptainerRuntime, SingularityRuntime])
def test_pull_command_apptainer_command_construction_only(cls, tmp_path, monkeypatch):
    runtime = cls()
    dest = str(tmp_path / "x.sif")
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(tmp_path / "none.conf"))
    assert runtime.pull_command(IMAGE, dest) == [
        cls.binary, "pull", "--force", dest, f"docker://{IMAGE}"
    ]  # fmt: skip
    conf = tmp_path / "registries.conf"
    conf.write_text('[[registry]]\nlocation = "localhost:5000"\ninsecure = true\n')
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    quiet = runtime.pull_command("localhost:5000/a/b:1", dest, progress=False)
    assert quiet == [cls.binary, "--quiet", "pull", "--force", "--no-https", dest,
                     "docker://localhost:5000/a/b:1"]  # fmt: skip


def test_missing_sif_points_at_image_pull_apptainer_command_construction_only(tmp_path):
    with pytest.raises(ConfigError, match="not in the cache.*chiltepin image pull --site hera"):
        ApptainerRuntime().check_image_present(
            settings("apptainer", cache_dir=str(tmp_path)), Where("hera", "compute")
        )


# ---------------------------------------------------------------------- charliecloud
def test_charliecloud_commands_and_mount_points(tmp_path, host_tmp):
    image = tmp_path / "img"
    (image / "ch").mkdir(parents=True)
    cfg = settings("charliecloud", image=str(image), binds=[str(SITES), "/etc:/mnt/etc"])
    runtime = CharliecloudRuntime()
    cmd = runtime.worker_command(cfg, run_dir=str(host_tmp / "run"), workdir=str(REPO))
    assert cmd[:4] == ["env", f"USER={_user()}", "ch-run", "--set-env"]
    assert cmd[-2:] == [str(image), "--"]
    # ch-run shares the host's /tmp: run dirs (and a checkout) there need no bind
    shared = [p for p in (str(REPO), str(SITES)) if not p.startswith("/tmp/")]
    assert pairs(cmd, "-b") == [*shared, "/etc:/mnt/etc"]
    assert pairs(cmd, "-c") == [str(REPO)]
    runtime.prepare(cfg, runtime.binds_for(cfg, str(host_tmp / "run"), str(REPO)))
    assert all((image / p.lstrip("/")).is_dir() for p in shared)
    assert (image / "mnt/etc").is_dir()
    with pytest.raises(ConfigError, match="ch-run binds take no options"):
        runtime.validate(settings("charliecloud", image=str(image), binds=["/etc:/e:ro"]))


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


# ------------------------------------------------------------ MPI rank scripts (run)
@pytest.mark.parametrize("name", ["podman", "docker", "apptainer", "singularity", "charliecloud"])
def test_rank_scripts_add_launcher_state_at_run_time(name, tmp_path, host_tmp):
    """Each runtime's rank script, run for real with a stand-in runtime command that
    prints its arguments (apptainer/singularity: command construction only)."""
    fake = tmp_path / "bin" / name
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    image = tmp_path / "image"
    (image / "ch").mkdir(parents=True)
    cfg = settings(name, image=str(image) if name == "charliecloud" else IMAGE,
                   cache_dir=str(tmp_path / "cache"))  # fmt: skip
    runtime = get_runtime(name)
    runtime.binary = str(fake)
    script = tmp_path / "rank.sh"
    script.write_text(runtime.exec_script(cfg, run_dir="/runs/r1", labels={"chiltepin.run": "x"}))
    pmix = host_tmp / "spool" / "pmix.1.0"  # node-local, as slurmd's spool is
    pmix.mkdir(parents=True)
    work = Path("/var") if name == "charliecloud" else tmp_path  # /tmp needs no ch-run bind
    env = {"PATH": os.environ["PATH"], "PMIX_SERVER_TMPDIR": str(pmix), "PMIX_RANK": "3",
           "SLURM_PROCID": "3", "OMPI_MCA_btl": "self,tcp", "UNRELATED": "1"}  # fmt: skip
    out = subprocess.run(
        ["bash", str(script), "prog", "arg 1"], env=env, cwd=work, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()
    assert args[-2:] == ["prog", "arg 1"]
    if name in ("podman", "docker"):
        assert args[:2] == ["run", "--rm"] and "--init" not in args
        assert {"PMIX_SERVER_TMPDIR", "PMIX_RANK", "SLURM_PROCID", "OMPI_MCA_btl"} <= set(
            pairs(args, "-e")
        ) and "UNRELATED" not in pairs(args, "-e")
        assert f"{pmix}:{pmix}" in pairs(args, "-v") and pairs(args, "-w") == [str(work)]
        assert f"{work}:{work}" in pairs(args, "-v")
        assert args[-3] == IMAGE
    elif name in ("apptainer", "singularity"):
        assert args[0] == "exec" and str(pmix) in pairs(args, "--bind")
        assert pairs(args, "--pwd") == [str(work)]
        assert args[-3] == str(tmp_path / "cache" / f"chiltepin_{__version__}.sif")
    else:
        assert args[0] == "--set-env"  # via `env USER=... ch-run`
        assert pairs(args, "-c") == ["/var"] and "/var" in pairs(args, "-b")
        assert str(pmix) not in pairs(args, "-b")  # under /tmp: shared already
        assert args[-4:-2] == [str(image), "--"]


# ---------------------------------------------------------------- workflow wiring
def test_worker_prefix_survives_parsl_launch_cmd_formatting(tmp_path):
    """Parsl formats launch_cmd twice (str.format): braces in a prefix must survive."""
    from chiltepin.config.parsl_config import build_parsl_config

    res = Resource(
        provider="slurm",
        partition="compute",
        container=settings("podman", options=["--annotation", "tpl={{x}}"]),
    )
    mpi = Resource(provider="slurm", partition="compute", mpi=True, container=settings("podman"))
    plan = ContainerPlan({"c": res, "m": mpi}, run_dir=str(tmp_path), run_id="r1")
    resources = plan.prepare()
    config = build_parsl_config(resources, run_dir=str(tmp_path), worker_prefix=plan.worker_prefix)
    htex, mpiex = config.executors
    fields = {f for _, f, _, _ in string.Formatter().parse(htex.launch_cmd) if f}
    once = htex.launch_cmd.format(**{f: f"<{f}>" for f in fields})
    twice = once.format(block_id=7)
    words = shlex.split(twice)
    assert words[0] == str(tmp_path / "containers" / "podman-run.sh")
    assert words[1:3] == ["podman", "run"] and "tpl={{x}}" in words
    assert words[words.index(IMAGE) + 1] == "process_worker_pool.py"
    assert "--block_id=7" in words
    assert Path(words[0]).stat().st_mode & 0o111
    # the MPI pool stays on the host; its worker_init names the rank script
    assert mpiex.launch_cmd.split()[1:5] == ["-m", "chiltepin.watchdog", "--guard", "--"]
    lean = [sys.executable, "-m", "chiltepin._parsl_lean", "process_worker_pool.py"]
    assert mpiex.launch_cmd.split()[5:9] == lean
    script = plan.exec_script_path("m")
    assert f"export {EXEC_VAR}={script}" in mpiex.provider.worker_init
    assert "--pid host" in script.read_text().replace("'", "")
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_tasks_put_the_container_into_parsl_mpi_prefix(monkeypatch):
    from helpers.container_tasks import where_am_i

    target = where_am_i._target
    monkeypatch.setenv("PARSL_MPI_PREFIX", "srun -n 4")
    monkeypatch.delenv(EXEC_VAR, raising=False)
    target()
    assert os.environ["PARSL_MPI_PREFIX"] == "srun -n 4"  # no container: unchanged
    monkeypatch.setenv(EXEC_VAR, "/run/containers/mpi-exec.sh")
    target()
    target()  # a reused worker must not add it twice
    assert os.environ["PARSL_MPI_PREFIX"] == "srun -n 4 /run/containers/mpi-exec.sh"


# ------------------------------------------------------------ bad input via the CLI
def one_line_error(out: subprocess.CompletedProcess, *needles: str) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def bare_path_env(**extra: str) -> dict[str, str]:
    """Only the venv on PATH: no container runtime is found."""
    return {**os.environ, "PATH": str(BIN), **extra}


def test_cli_unknown_runtime():
    one_line_error(
        chiltepin_cli("image", "pull", "--runtime", "podmn", IMAGE),
        "unknown container runtime 'podmn'",
        "did you mean 'podman'",
    )


def test_cli_unknown_runtime_in_a_profile(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "scheduler: localhost\ncontainer: {runtime: dockr, image: x}\nexecutors: {c: {}}\n"
    )
    one_line_error(
        chiltepin_cli("image", "check", "--site", "s", env=site_env(tmp_path)),
        "s.yaml:2",
        "runtime",
        "'dockr'",
    )


def test_cli_runtime_binary_missing():
    one_line_error(
        chiltepin_cli("image", "pull", "--runtime", "podman", IMAGE, env=bare_path_env()),
        "--runtime podman",
        "needs the 'podman' command, which is not on PATH",
    )
    one_line_error(
        chiltepin_cli(
            "image", "check", "--site", "testcluster-podman",
            env=bare_path_env(CHILTEPIN_SITE_PATH=str(SITES), CHILTEPIN_TESTS_DIR=str(SITES)),
        ),
        "site 'testcluster-podman' executor 'compute'",
        "'podman' command",
    )  # fmt: skip


def test_cli_malformed_image_reference():
    one_line_error(
        chiltepin_cli("image", "pull", "--runtime", "podman", "localhost:5000/Bad//name:1"),
        "malformed image reference",
        "path component 'Bad'",
    )


def test_cli_cache_dir_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:  # let 'nobody' reach it
        if str(parent).startswith("/tmp/"):
            parent.chmod(parent.stat().st_mode | 0o005)
    if os.getuid() == 0 and shutil.which("setpriv"):
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        out = subprocess.run(
            [*nobody, str(BIN / "chiltepin"), "image", "pull", "--runtime", "apptainer",
             "--cache-dir", str(ro / "cache"), IMAGE],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        one_line_error(out, "image cache directory", "not writable (Permission denied)")
    under_a_file = tmp_path / "file"
    under_a_file.write_text("")
    one_line_error(
        chiltepin_cli(
            "image", "pull", "--runtime", "charliecloud", "--cache-dir",
            str(under_a_file / "cache"), IMAGE,
        ),
        "--runtime charliecloud",
        "not writable (Not a directory)",
    )  # fmt: skip


def site_env(directory: Path) -> dict[str, str]:
    return {**os.environ, "CHILTEPIN_SITE_PATH": str(directory)}


def test_cli_bind_source_missing(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "scheduler: localhost\n"
        "container:\n  runtime: charliecloud\n  image: /\n  binds: [/nonexistent/scratch]\n"
        "executors: {c: {}}\n"
    )
    one_line_error(
        chiltepin_cli("image", "check", "--site", "s", env=site_env(tmp_path)),
        "site 's' executor 'c'",
        "key 'container.binds'",
        "bind source '/nonexistent/scratch' does not exist",
    )


def test_workflow_refuses_bad_container_before_starting_anything(tmp_path, monkeypatch):
    from chiltepin import Workflow

    (tmp_path / "s.yaml").write_text(
        "scheduler: localhost\n"
        "container:\n  runtime: podman\n  image: x:1\n  binds: [/nonexistent/scratch]\n"
        "executors: {c: {}, host: {container: false}}\n"
    )
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(tmp_path))
    run_dir = tmp_path / "run"
    workflow = Workflow(site="s", include=["c"], run_dir=run_dir)
    with pytest.raises(ConfigError, match="executor 'c'.*bind source '/nonexistent/scratch'"):
        workflow.start()
    assert not run_dir.exists() and workflow.dfk is None
    monkeypatch.setenv("PATH", str(BIN))
    workflow = Workflow(site="s", include=["host"], run_dir=run_dir)  # opted out: fine
    assert ContainerPlan(workflow.resources, run_dir=str(run_dir), run_id="x").entries == {}


def test_image_command_group_is_listed_and_lazy():
    out = chiltepin_cli("--help")
    assert out.returncode == 0 and "image" in out.stdout
    code = (
        "import sys; from chiltepin.cli.main import build_parser; build_parser(); "
        "print([m for m in ('chiltepin.containers', 'pydantic', 'parsl') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
