"""chiltepin 0.1.x's ``chiltepin.endpoint`` functions over the real globus-compute-endpoint.

Globus's web services are unreachable here: ``start`` is tested up to registration, which
fails with one line (``test_start_fails_at_globus_boundary``); logging in is tested up to
the point where it would prompt, which it refuses to do without a terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import chiltepin.endpoint as endpoint
from chiltepin.errors import ChiltepinError, EndpointError


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private HOME (default ~/.globus_compute and Academy's token store), no
    GLOBUS_COMPUTE_USER_DIR and no Globus client credentials."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    for var in (
        "GLOBUS_COMPUTE_USER_DIR",
        "GLOBUS_COMPUTE_CLIENT_ID",
        "GLOBUS_COMPUTE_CLIENT_SECRET",
        "ACADEMY_GLOBUS_CLIENT_ID",
        "ACADEMY_GLOBUS_CLIENT_SECRET",
    ):
        monkeypatch.delenv(var, raising=False)
    return path


def test_import_is_light_and_every_public_name_resolves():
    code = (
        "import sys, chiltepin.endpoint as e; "
        "print([m for m in ('globus_compute_endpoint', 'globus_sdk', 'parsl') "
        "if m in sys.modules]); "
        "print([n for n in e.__all__ if not hasattr(e, n)])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout + out.stderr
    assert callable(endpoint.render)  # listed in __all__ and missing before


def test_configure_show_render_delete_in_a_config_dir(home, tmp_path):
    from chiltepin.sites.registry import SiteRegistry

    ep_dir = tmp_path / "endpoints"
    result = endpoint.configure("ep1", str(ep_dir))  # 0.1.x's positional config_dir
    assert result  # 0.1.x returned True
    assert result.site == (SiteRegistry().detect() or "local")
    assert result.path == ep_dir / "ep1" and (ep_dir / "ep1" / "config.yaml").is_file()
    assert not (home / ".globus_compute" / "ep1").exists()
    shown = endpoint.show(ep_dir)
    assert shown == {
        "ep1": {"status": "Initialized", "id": None, "site": result.site, "path": str(result.path)}
    }
    assert endpoint.exists("ep1", ep_dir) and not endpoint.exists("ep2", ep_dir)
    assert not endpoint.is_running("ep1", ep_dir) and not endpoint.is_running("ep2", ep_dir)
    assert endpoint.show() == {}  # the default directory is untouched
    rendered = endpoint.render("ep1", {"executor": "compute"}, config_dir=ep_dir)
    assert "type: GlobusComputeEngine" in rendered
    endpoint.stop("ep1", ep_dir, timeout=120)  # not running: nothing to do
    endpoint.delete("ep1", ep_dir, timeout=120)  # never registered: no Globus needed
    assert not endpoint.exists("ep1", ep_dir) and not (ep_dir / "ep1").exists()
    assert "GLOBUS_COMPUTE_USER_DIR" not in os.environ  # restored


def test_configure_with_a_site_and_executor(home, tmp_path):
    result = endpoint.configure("tc", tmp_path / "eps", site="testcluster", executor="mpi")
    assert result.site == "testcluster" and result.executors == ["mpi"]
    assert result.engines["mpi"] == "GlobusMPIEngine"


def test_bad_input_is_one_endpoint_error(home, tmp_path):
    with pytest.raises(EndpointError, match="no endpoint 'nope'") as err:
        endpoint.start("nope", tmp_path, timeout=30)
    assert isinstance(err.value, RuntimeError)  # as 0.1.x raised
    with pytest.raises(EndpointError, match="Invalid endpoint name"):
        endpoint.configure("bad name", tmp_path)
    with pytest.raises(ChiltepinError, match="unknown site 'nosuch'"):
        endpoint.configure("x", tmp_path, site="nosuch")


def test_login_required_and_login_without_a_terminal(home):
    assert endpoint.login_required()
    started = time.monotonic()
    with pytest.raises(EndpointError, match="login is interactive"):
        endpoint.login()
    assert time.monotonic() - started < 30
    endpoint.logout()  # no tokens stored: nothing to revoke, no network


def test_client_credentials_need_no_login_and_give_clients(home, monkeypatch):
    from globus_compute_sdk import Client
    from globus_sdk import TransferClient

    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "secret")
    assert not endpoint.login_required()
    clients = endpoint.login()  # 0.1.x's return value; built without any network
    assert isinstance(clients["compute"], Client)
    assert isinstance(clients["transfer"], TransferClient)
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_SECRET")
    with pytest.raises(EndpointError, match="set both GLOBUS_COMPUTE_CLIENT_ID and"):
        endpoint.login_required()


def test_start_without_login_fails_before_globus(home, tmp_path):
    endpoint.configure("tc", tmp_path, site="testcluster", executor="compute")
    with pytest.raises(EndpointError, match="not logged in to Globus"):
        endpoint.start("tc", tmp_path, timeout=60)
    assert not (tmp_path / "tc" / "daemon.pid").exists()


def test_start_fails_at_globus_boundary(home, tmp_path, monkeypatch):
    """The real globus-compute-endpoint start runs, then needs Globus's web services."""
    root = os.getuid() == 0  # as root, globus-compute-endpoint runs endpoints multi-user
    endpoint.configure(
        "tc", tmp_path, site="testcluster", multi_user=root, contact_email="hpc@example.org"
    )
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "x")
    started = time.monotonic()
    with pytest.raises(EndpointError) as err:
        endpoint.start("tc", tmp_path, timeout=150)
    assert "cannot reach Globus's web services" in str(err.value)
    assert "\n" not in str(err.value)
    assert time.monotonic() - started < 150
    assert not endpoint.is_running("tc", tmp_path)


def test_start_links_the_default_login_into_a_config_dir(home, tmp_path):
    from chiltepin.endpoint.manage import link_login

    default = home / ".globus_compute" / "storage.db"
    other = tmp_path / "eps"
    link_login(other)
    assert not (other / "storage.db").exists()  # no login to link yet
    default.parent.mkdir()
    default.write_bytes(b"")
    link_login(other)
    assert (other / "storage.db").resolve() == default.resolve()
    link_login(other)  # idempotent
    link_login(home / ".globus_compute")  # the default itself: nothing to do
    assert default.is_file() and not default.is_symlink()
