"""The chiltepin console script, run for real as a subprocess."""

from __future__ import annotations

import json

from helpers.cli import run
from helpers.infra import heavy_imports

from chiltepin import __version__


def test_version_and_help():
    assert run("--version").stdout.strip() == f"chiltepin {__version__}"
    out = run("--help")
    assert out.returncode == 0 and "config" in out.stdout


def test_help_does_not_import_heavy_libraries():
    statements = "import chiltepin; from chiltepin.cli.main import build_parser; build_parser()"
    assert heavy_imports(statements) == []


def test_config_validate_good(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("compute:\n  provider: slurm\n  partition: compute\n")
    out = run("config", "validate", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "partition: compute" in out.stdout and "local:" in out.stdout


def test_config_validate_bad_exits_2_with_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("compute:\n  provider: slurm\n  partiton: compute\n")
    out = run("config", "validate", str(cfg))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{cfg}:3" in lines[0] and "did you mean 'partition'" in lines[0]


def test_config_validate_unknown_include_exits_2(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("compute: {}\n")
    out = run("config", "validate", str(cfg), "--include", "nope")
    assert out.returncode == 2 and "included executor 'nope'" in out.stderr


def test_bad_arguments_exit_2():
    assert run("config", "validate").returncode == 2
    assert run("no-such-command").returncode == 2
    assert run("config").returncode == 2


def test_config_schema_is_json():
    out = run("config", "schema")
    assert out.returncode == 0
    assert "Resource" in json.loads(out.stdout)["$defs"]
