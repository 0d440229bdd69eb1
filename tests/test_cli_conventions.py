"""The command line's conventions, through the real console script: ``python -m
chiltepin``, ``--json`` on list/show commands, global ``-v``/``-q``, the exit-status table,
and shell completion (argcomplete, the optional ``completion`` extra).

``.sif`` labels come from ``singularity inspect`` via spython; singularity cannot be
installed on these machines, so that path is checked up to the command spython runs,
against a stand-in ``singularity`` that answers like singularity 3's ``inspect --json``
(``..._singularity_command_construction_only``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

from helpers.cli import run
from helpers.infra import BIN, REPO, heavy_imports, require

from chiltepin import __version__
from chiltepin.cli.main import EXIT_STATUS

README = (REPO / "README.md").read_text()


def run_json(*args: str, **kwargs) -> object:
    out = run(*args, **kwargs)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# ---------------------------------------------------------------- python -m chiltepin
def test_python_dash_m_is_the_same_command():
    out = subprocess.run(
        [sys.executable, "-m", "chiltepin", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"chiltepin {__version__}"
    bad = subprocess.run(
        [sys.executable, "-m", "chiltepin", "site", "show", "no-such-site"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("chiltepin: error:")


# ------------------------------------------------------------------------ exit status
def exit_table(text: str) -> dict[int, str]:
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| (.+?) \|$", text, re.M)}


def test_exit_statuses_are_one_table_in_readme_and_help():
    readme = exit_table(README)
    assert sorted(readme) == [0, 1, 2, 130, 143]
    help_text = run("--help").stdout
    assert EXIT_STATUS.splitlines()[0] in help_text
    in_help = {int(m[1]) for m in re.finditer(r"^  (\d+) {2,}\S", help_text, re.M)}
    assert in_help == set(readme)


def test_exit_statuses_as_documented(tmp_path):
    assert run("site", "list").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute:\n  provider: slurm\n  partiton: x\n")
    assert run("config", "validate", str(bad)).returncode == 2  # bad input
    assert run("site", "show").returncode == 2  # bad usage (missing argument)
    usage = run("site", "list", "--no-such-option")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    assert "unrecognized arguments: --no-such-option" in usage.stderr.strip().splitlines()[-1]
    # failed while running: the image is not in the cache yet
    env = {**os.environ, "PATH": str(BIN)}
    missing = run("image", "path", "--runtime", "apptainer", "--cache-dir", str(tmp_path), env=env)
    assert missing.returncode == 1 and "chiltepin image pull" in missing.stderr


def test_a_huge_or_undecodable_argument_gives_one_short_line(tmp_path):
    """argparse echoes the arguments it refuses: bounded; undecodable bytes escaped once."""
    huge = run("agent", "list", "x" * 100_000)
    assert huge.returncode == 2 and "Traceback" not in huge.stderr
    assert len(huge.stderr.splitlines()) == 1 and len(huge.stderr) < 1200, huge.stderr[:200]
    assert "unrecognized arguments: xxx" in huge.stderr
    undecodable = os.fsdecode(b"run-\xff")
    out = run("monitor", undecodable, cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert "run-\\udcff' does not exist" in out.stderr, out.stderr


def blocked_reading_stdin(pid: int) -> bool:
    """The process sits in read(0, ...) (Linux /proc: the syscall's first argument)."""
    try:
        fields = open(f"/proc/{pid}/syscall").read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[1] == "0x0"


def test_interrupted_exits_130(tmp_path):
    # `endpoint render NAME -o -` reads its options from stdin before anything else.
    proc = subprocess.Popen(
        [str(BIN / "chiltepin"), "endpoint", "render", "x", "-o", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 30
        while not blocked_reading_stdin(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert blocked_reading_stdin(proc.pid), "the command never waited on stdin"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["chiltepin: interrupted"]


# ---------------------------------------------------------------------------- --json
def test_site_list_json_has_the_documented_keys():
    rows = run_json("site", "list", "--json")
    names = [line.split()[0] for line in run("site", "list").stdout.splitlines()]
    assert [row["name"] for row in rows] == names
    for row in rows:
        assert set(row) == {"name", "description", "scheduler", "executors", "files"}
    local = next(row for row in rows if row["name"] == "local")
    assert local["scheduler"] == "localhost" and local["files"][0].endswith("local.yaml")


def test_site_show_json_with_and_without_resolved():
    shown = run_json("site", "show", "testcluster", "--json")
    assert set(shown) == {"name", "files", "profile"}
    assert shown["profile"]["name"] == "testcluster" and "compute" in shown["profile"]["executors"]
    resolved = run_json("site", "show", "testcluster", "--resolved", "--json")
    assert set(resolved) == {"name", "files", "exchange", "executors"}
    partition = resolved["executors"]["compute"]["partition"]
    assert set(partition) == {"value", "from", "file", "line"}
    assert partition["file"].endswith("testcluster.yaml") and isinstance(partition["line"], int)
    # the text form shows the same values
    text = run("site", "show", "testcluster", "--resolved").stdout
    assert f"  partition: {json.dumps(partition['value'])}" in text


def test_config_validate_json(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("compute:\n  provider: slurm\n  partition: compute\n")
    out = run_json("config", "validate", str(cfg), "--json")
    assert set(out) == {"file", "valid", "executors"}
    assert out["valid"] is True and out["executors"]["compute"]["partition"] == "compute"
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute:\n  provider: slurm\n  partiton: compute\n")
    failed = run("config", "validate", str(bad), "--json")
    assert failed.returncode == 2 and failed.stdout == ""
    assert len(failed.stderr.strip().splitlines()) == 1


def test_endpoint_and_agent_list_json(tmp_path):
    env = {
        **os.environ,
        "GLOBUS_COMPUTE_USER_DIR": str(tmp_path / "endpoints"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    assert run_json("endpoint", "list", "--json", env=env) == []
    made = run("endpoint", "configure", "ep1", "--site", "local", "--single-user", env=env)
    assert made.returncode == 0, made.stderr
    (row,) = run_json("endpoint", "list", "--json", env=env)
    assert set(row) == {"name", "path", "status", "endpoint_id", "site", "executors"}
    assert (row["name"], row["site"]) == ("ep1", "local") and row["executors"]
    listed = run_json("agent", "list", "--json", env=env)
    assert listed == {"services": []}


def fake_singularity(bin_dir, labels: dict[str, str]):
    """A stand-in ``singularity`` answering ``inspect ... --json IMAGE`` as singularity 3
    does, recording its arguments (the real one cannot be installed here)."""
    log = bin_dir / "singularity.args"
    answer = json.dumps({"data": {"attributes": {"labels": labels}}, "type": "container"})
    script = bin_dir / "singularity"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            printf '%s\\n' "$*" >> {log}
            case "$1" in
                --version) echo "singularity-ce version 4.1.0" ;;
                *) printf '%s\\n' '{answer}' ;;
            esac
            """
        )
    )
    script.chmod(0o755)
    return log


def test_image_list_json_of_a_sif_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    sif = cache / f"chiltepin_{__version__}.sif"
    sif.write_bytes(b"\0" * 1000)
    (cache / f"{sif.name}.digest").write_text("sha256:" + "a" * 64 + "\n")
    (cache / "notes.txt").write_text("not an image")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").symlink_to("/bin/true")  # `image list` checks the command exists
    env = {**os.environ, "PATH": f"{bin_dir}:{BIN}:/usr/bin:/bin"}
    groups = run_json(
        "image", "list", "--runtime", "apptainer", "--cache-dir", str(cache), "--json", env=env
    )
    assert [g["runtime"] for g in groups] == ["apptainer"] and groups[0]["cache_dir"] == str(cache)
    (image,) = groups[0]["images"]
    assert set(image) == {"name", "digest", "size", "path", "labels", "wanted"}
    assert image == {
        "name": sif.name,
        "digest": "sha256:" + "a" * 64,
        "size": "0.0 MB",
        "path": str(sif),
        "labels": None,  # no singularity command: nothing reads the image's labels
        "wanted": True,
    }
    text = run("image", "list", "--runtime", "apptainer", "--cache-dir", str(cache), env=env)
    assert text.stdout.splitlines()[1].split("\t")[0] == f"* {sif.name}"


def test_image_list_reads_sif_labels_with_spython_singularity_command_construction_only(
    tmp_path,
):
    require(importlib.util.find_spec("spython") is not None, "spython (the apptainer extra)")
    cache = tmp_path / "cache"
    cache.mkdir()
    sif = cache / f"chiltepin_{__version__}.sif"
    sif.write_bytes(b"\0")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    labels = {"org.opencontainers.image.version": __version__, "org.example.x": "1"}
    log = fake_singularity(bin_dir, labels)
    env = {**os.environ, "PATH": f"{bin_dir}:{BIN}:/usr/bin:/bin"}
    groups = run_json(
        "image", "list", "--runtime", "singularity", "--cache-dir", str(cache), "--json", env=env
    )
    assert groups[0]["images"][0]["labels"] == labels
    # what spython ran: singularity's own inspect of that file, as JSON
    calls = [line.split() for line in log.read_text().splitlines()]
    inspect = [c for c in calls if "inspect" in c]
    assert len(inspect) == 1 and inspect[0][-2:] == ["--json", str(sif)]
    assert {"-l", "-e"} <= set(inspect[0])
    text = run("image", "list", "--runtime", "singularity", "--cache-dir", str(cache), env=env)
    assert text.stdout.splitlines()[1].endswith(f"version {__version__}")


# ---------------------------------------------------------------------------- -v / -q
def test_verbose_shows_log_messages_and_quiet_hides_information(tmp_path):
    plain = run("site", "list")
    assert plain.returncode == 0 and plain.stderr == ""
    verbose = run("-v", "site", "list")
    assert verbose.stdout == plain.stdout
    assert re.search(rf"^chiltepin: INFO chiltepin\.cli: chiltepin {__version__}", verbose.stderr)
    assert "DEBUG" not in verbose.stderr
    debug = run("-vv", "site", "list")
    assert "DEBUG chiltepin.cli: site profile directories: " in debug.stderr
    # an informational stderr line (what `agent unit -o` wrote, and what to run next)
    service = REPO / "examples" / "agents" / "service.yaml"
    told = run("agent", "unit", str(service), "-o", str(tmp_path))
    assert told.returncode == 0 and "next: systemctl --user" in told.stderr
    quiet = run("-q", "agent", "unit", str(service), "-o", str(tmp_path))
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == told.stdout
    # errors still print under -q
    failed = run("-q", "site", "show", "no-such-site")
    assert failed.returncode == 2 and failed.stderr.startswith("chiltepin: error:")
    both = run("-q", "-v", "site", "list")
    assert both.returncode == 2


# ------------------------------------------------------------------------- completion
def complete(line: str, tmp_path, env: dict | None = None) -> tuple[int, str, list[str]]:
    """(exit status, stdout + stderr, completions) the shell gets from argcomplete for
    ``line``, the cursor at its end."""
    answer = tmp_path / "completions"
    answer.unlink(missing_ok=True)
    env = {
        **(env or os.environ),
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
    }
    out = run(env=env)
    completions = answer.read_text().split("\n") if answer.exists() else []
    return out.returncode, out.stdout + out.stderr, completions


def test_shell_completion(tmp_path):
    require(importlib.util.find_spec("argcomplete") is not None, "argcomplete (completion extra)")
    assert complete("chiltepin si", tmp_path) == (0, "", ["site "])
    commands = complete("chiltepin site ", tmp_path)[2]
    assert {"list", "show", "validate", "detect", "schema"} <= set(commands)
    assert complete("chiltepin site show h", tmp_path)[2] == ["hera", "hercules"]
    assert complete("chiltepin image pull --site u", tmp_path)[2] == ["ursa "]
    assert complete("chiltepin image list --j", tmp_path)[2] == ["--json "]
    script = subprocess.run(
        [str(BIN / "register-python-argcomplete"), "chiltepin"], capture_output=True, text=True
    )
    assert script.returncode == 0 and "complete " in script.stdout


def test_without_argcomplete_completion_is_silent_and_the_command_works(tmp_path):
    # A Python that cannot import argcomplete: the shell gets nothing, no traceback.
    blocker = tmp_path / "argcomplete.py"
    blocker.write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    assert complete("chiltepin si", tmp_path, env=env) == (1, "", [])
    assert run("site", "list", env=env).returncode == 0


def test_help_stays_fast_and_light():
    # argcomplete is imported only when a shell asks for completions
    statements = "from chiltepin.cli.main import build_parser; build_parser().format_help()"
    assert heavy_imports(statements, ("argcomplete", "spython")) == []
