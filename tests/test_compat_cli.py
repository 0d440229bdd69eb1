"""chiltepin 0.1.x's command-line habits, through the real console script.

``chiltepin login`` needs a terminal and Globus's web services: it is tested up to the
point where it would prompt, which it refuses to do without a terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import cli
from helpers.cli import one_line_error
from helpers.infra import heavy_imports


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A private HOME, no GLOBUS_COMPUTE_USER_DIR, no Globus client credentials."""
    home = tmp_path / "home"
    home.mkdir()
    out = {**os.environ, "HOME": str(home)}
    for var in (
        "GLOBUS_COMPUTE_USER_DIR",
        "GLOBUS_COMPUTE_CLIENT_ID",
        "GLOBUS_COMPUTE_CLIENT_SECRET",
    ):
        out.pop(var, None)
    return out


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return cli.run(*args, env=env, timeout=180)


def test_help_lists_login_and_logout_and_stays_light(env):
    out = run(env, "--help")
    assert out.returncode == 0
    assert "login" in out.stdout and "logout" in out.stdout
    for cmd in ("login", "logout"):
        assert run(env, cmd, "--help").returncode == 0
    assert heavy_imports("from chiltepin.cli.main import build_parser; build_parser()") == []


def test_login_without_a_terminal_is_one_line_and_logout_is_offline(env):
    assert "login is interactive" in one_line_error(run(env, "login"))
    assert "login is interactive" in one_line_error(run(env, "endpoint", "login"))
    out = run(env, "logout")
    assert out.returncode == 0 and out.stdout.strip() == "logged out of Globus", out.stderr


@pytest.mark.parametrize("flag", ["-c", "--config-dir", "--config"])
def test_endpoint_config_dir_before_the_subcommand(env, tmp_path, flag):
    ep_dir = tmp_path / "endpoints"
    out = run(env, "endpoint", flag, str(ep_dir), "configure", "ep1")  # no --site
    assert out.returncode == 0, out.stderr
    assert "endpoint ep1: created" in out.stdout
    assert (ep_dir / "ep1" / "config.yaml").is_file()
    assert not (Path(env["HOME"]) / ".globus_compute" / "ep1").exists()
    listed = json.loads(run(env, "endpoint", flag, str(ep_dir), "list", "--json").stdout)
    assert [(e["name"], e["status"]) for e in listed] == [("ep1", "Initialized")]
    assert "no endpoints configured" in run(env, "endpoint", "list").stdout  # default dir


def test_endpoint_lifecycle_with_config_dir_after_the_subcommand(env, tmp_path):
    from chiltepin.sites.registry import SiteRegistry

    ep_dir = str(tmp_path / "eps")
    out = run(env, "endpoint", "configure", "ep1", "-c", ep_dir, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["site"] == (SiteRegistry().detect() or "local")
    listed = run(env, "endpoint", "list", "-c", ep_dir)
    assert listed.stdout.startswith("ep1 ") and "Initialized" in listed.stdout
    assert "not logged in to Globus" in one_line_error(
        run(env, "endpoint", "-c", ep_dir, "start", "ep1")
    )
    stopped = run(env, "endpoint", "-c", ep_dir, "stop", "ep1")
    assert stopped.returncode == 0 and "endpoint ep1: stopped" in stopped.stdout, stopped.stderr
    deleted = run(env, "endpoint", "-c", ep_dir, "delete", "ep1", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not (tmp_path / "eps" / "ep1").exists()
    assert "no endpoint 'ep1'" in one_line_error(run(env, "endpoint", "-c", ep_dir, "start", "ep1"))


def test_start_in_a_config_dir_uses_the_default_login(env, tmp_path):
    """`chiltepin login` stores tokens in ~/.globus_compute; `endpoint -c DIR start`
    links them into DIR, where globus-compute-endpoint looks (as 0.1.7 does)."""
    from globus_sdk.token_storage import SQLiteTokenStorage

    store = Path(env["HOME"]) / ".globus_compute" / "storage.db"
    store.parent.mkdir()
    SQLiteTokenStorage(store).close()  # a token store without tokens: still no login
    ep_dir = tmp_path / "eps"
    assert run(env, "endpoint", "-c", str(ep_dir), "configure", "ep1").returncode == 0
    assert "not logged in" in one_line_error(
        run(env, "endpoint", "-c", str(ep_dir), "start", "ep1")
    )
    assert (ep_dir / "storage.db").is_symlink()
    assert (ep_dir / "storage.db").resolve() == store.resolve()


def test_configure_with_an_explicit_site_still_works(env, tmp_path):
    out = run(
        env, "endpoint", "-c", str(tmp_path), "configure", "tc", "--site", "testcluster",
        "--executor", "compute", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["site"] == "testcluster"


def test_logout_refuses_while_an_endpoint_runs(env, tmp_path):
    """globus-compute-endpoint reports an endpoint Running from its registration file and
    a fresh pid file; logging out would strand it, so logout wants --force."""
    import uuid

    import chiltepin.endpoint as endpoint

    ep_dir = Path(env["HOME"]) / ".globus_compute"
    assert run(env, "endpoint", "-c", str(ep_dir), "configure", "ep1").returncode == 0
    ep_id = str(uuid.uuid4())
    (ep_dir / "ep1" / "endpoint.json").write_text(json.dumps({"endpoint_id": ep_id}))
    (ep_dir / "ep1" / "daemon.pid").write_text(str(os.getpid()))
    assert endpoint.is_running("ep1", ep_dir)
    assert endpoint.show(ep_dir)["ep1"]["id"] == ep_id
    line = one_line_error(run(env, "logout"))
    assert "endpoints are running (ep1)" in line and "--force" in line
    forced = run(env, "logout", "--force")
    assert forced.returncode == 0, forced.stderr
