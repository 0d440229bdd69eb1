"""Globus Compute endpoints generated from site profiles (offline, real globus-compute-endpoint).

Every check goes through globus-compute-endpoint's own code: its config loader, template
renderer, JSON-schema validation of user options and its CLI. Globus's web services are
unreachable here: ``start`` is tested up to the registration request, which must fail
with one line (``test_start_*_at_globus_boundary``).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from helpers.cli import run
from helpers.infra import BIN, heavy_imports

from chiltepin.endpoint import generate as gen
from chiltepin.endpoint.errors import EndpointError
from chiltepin.endpoint.validate import load_engine_config, render_dir
from chiltepin.endpoint.writer import configure
from chiltepin.errors import ChiltepinError, ConfigError

GCE = str(BIN / "globus-compute-endpoint")
FILES = [gen.CONFIG, gen.TEMPLATE, gen.SCHEMA, gen.ENVIRONMENT, gen.MANIFEST]


@pytest.fixture
def site_layer(tmp_path, monkeypatch):
    """Write site profiles (or overrides) into a $CHILTEPIN_SITE_PATH layer."""
    layer = tmp_path / "sites"
    layer.mkdir()
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(layer))

    def write(name: str, data: dict) -> Path:
        path = layer / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture
def site_host(tmp_path, monkeypatch, site_layer):
    """Make this machine pass a site's container checks, as its login node would.

    ``chiltepin endpoint configure`` checks the container as a workflow does: the
    runtime command on PATH, the cache directory, bind sources and the pulled image.
    Apptainer cannot be installed here, so a stand-in command goes on PATH; the
    profile's cache and binds become local directories (an override layer, plus any
    ``extra`` keys) and the image a file in that cache. Returns the binds.
    """

    def make(site: str, extra: dict | None = None) -> list[str]:
        from chiltepin.containers import get_runtime
        from chiltepin.sites import load_site

        root = tmp_path / f"{site}-host"
        binds = [str(root / "scratch1"), str(root / "scratch2")]
        for path in binds:
            os.makedirs(path)
        container = {"cache_dir": str(root / "images"), "binds": binds}
        site_layer(site, {"merge": True, **(extra or {}), "container": container})
        settings = load_site(site).profile.container
        runtime = get_runtime(settings.runtime)
        stub = root / "bin" / runtime.binary
        stub.parent.mkdir()
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
        image = Path(runtime.image_path(settings.image, container["cache_dir"]))
        image.parent.mkdir(parents=True)
        image.write_bytes(b"")
        return binds

    return make


def cli(*args: str, stdin: str | None = None, env: dict | None = None):
    return run(*args, input=stdin, env={**os.environ, **(env or {})}, timeout=180)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def engine_of(ep_dir: Path, options: dict | None = None):
    return load_engine_config(render_dir(ep_dir, options or {}), "test").engine


# ----------------------------------------------------------------------- configure


@pytest.mark.parametrize("site", ["local", "testcluster", "hera", "hercules", "ursa"])
def test_every_shipped_profile_configures_and_loads(gc_dir, site_host, site):
    from chiltepin.containers import get_runtime
    from chiltepin.sites import load_site

    if load_site(site).profile.container is not None:
        site_host(site)
    result = configure(f"ep-{site}", site)
    assert result.created and result.changed
    executors = load_site(site).executor_names
    assert result.executors == executors
    assert mode(result.path) == 0o700 and mode(gc_dir) == 0o700
    for name in FILES:
        assert mode(result.path / name) == 0o600, name
    # Every executor choice was rendered and loaded by globus-compute-endpoint.
    for name in executors:
        resource = load_site(site).resolve(name)[0]
        engine = engine_of(result.path, {"executor": name})
        assert type(engine).__name__ == (
            "GlobusMPIEngine" if resource.mpi else "GlobusComputeEngine"
        )
        provider = engine.provider
        assert type(provider).__name__ == resource.scheduler.provider_class
        if resource.provider == "slurm":
            assert provider.partition == resource.partition
            assert provider.nodes_per_block == resource.nodes_per_block
            assert provider.walltime == resource.walltime
            launcher = "SimpleLauncher" if resource.mpi else "SrunLauncher"
            assert type(provider.launcher).__name__ == launcher
        if resource.container:
            runtime = get_runtime(resource.container.runtime)
            assert engine.container_type == runtime.engine_type
            # the image workflows run: the pulled file in the cache
            assert engine.container_uri == runtime.image_for(resource.container)
        else:
            assert engine.container_type is None


def test_hera_engine_details(gc_dir, site_host):
    binds = site_host("hera", {"defaults": {"account": "gsd-hpcs"}})
    path = configure("hera-mpi", "hera", "mpi").path
    engine = engine_of(path)
    assert type(engine).__name__ == "GlobusMPIEngine"
    assert engine.executor.mpi_launcher == "srun"
    assert engine.executor.max_workers_per_block == 4
    p = engine.provider
    assert (p.partition, p.account, p.qos, p.nodes_per_block) == ("hera", "gsd-hpcs", "batch", 4)
    assert "module load apptainer" in p.worker_init
    assert engine.container_type == "apptainer"
    assert engine.container_cmd_options == f"--bind {binds[0]},{binds[1]}"
    site_host("ursa")
    ursa = configure("ursa-gpu", "ursa", "gpu").path
    gpu = engine_of(ursa)
    assert gpu.provider.gpus_per_node == 2 and "--nv" in gpu.container_cmd_options


def test_schema_restricts_choices_to_the_profile(gc_dir):
    every = configure("tc-all", "testcluster").path
    schema = json.loads((every / gen.SCHEMA).read_text())
    props = schema["properties"]
    assert props["executor"]["enum"] == ["service", "compute", "compute2", "debug", "mpi"]
    # "": the executor's own partition (chiltepin 0.1.x clients send it for "none").
    assert props["partition"]["enum"] == ["service", "compute", "debug", ""]
    assert schema["additionalProperties"] is False
    pinned = configure("tc-debug", "testcluster", "debug").path
    props = json.loads((pinned / gen.SCHEMA).read_text())["properties"]
    assert props["executor"]["enum"] == ["debug"] and props["partition"]["enum"] == ["debug", ""]
    local = json.loads((configure("loc", "local").path / gen.SCHEMA).read_text())["properties"]
    # A localhost endpoint only admits 0.1.x clients' partition/walltime; nothing reads them.
    assert "enum" not in local["partition"] and "pattern" not in local["walltime"]
    assert "partition" not in (configure("loc", "local").path / gen.TEMPLATE).read_text()


def test_user_options_override_within_the_schema(gc_dir):
    path = configure("tc", "testcluster").path
    engine = engine_of(
        path,
        {
            "executor": "compute2",
            "partition": "debug",
            "walltime": "00:05:00",
            "max_blocks": 1,
            "max_workers_per_node": 3,
            "worker_init": "echo \"{{ x }}\" # 'q'\n  type: Injected",
        },
    )
    p = engine.provider
    assert (p.partition, p.walltime, p.nodes_per_block) == ("debug", "00:05:00", 2)
    assert engine.executor.max_workers_per_node == 3
    assert p.worker_init.strip().endswith("echo \"{{ x }}\" # 'q'\n  type: Injected")
    for bad, match in [
        ({"partition": "gpu"}, "option 'partition' is invalid"),
        ({"executor": "nope"}, "option 'executor' is invalid"),
        ({"walltime": "1h"}, "option 'walltime' is invalid"),
        ({"max_blocks": 0}, "option 'max_blocks' is invalid"),
        ({"account": "a b"}, "option 'account' is invalid"),
        ({"surprise": 1}, "'surprise' was unexpected"),
        ({"_GC": 1}, "reserved word"),
    ]:
        with pytest.raises(EndpointError, match=match):
            render_dir(path, bad)


def test_render_matches_globus_compute_endpoint_cli(gc_dir, tmp_path):
    configure("tc", "testcluster")
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"executor": "mpi", "walltime": "00:02:00"}))
    ours = cli("endpoint", "render", "tc", "-o", str(options))
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run(
        [GCE, "render-user-config", "-e", "tc", "-o", str(options)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.stdout.strip() == theirs.stdout.strip()
    assert "type: GlobusMPIEngine" in ours.stdout and 'walltime: "00:02:00"' in ours.stdout


def test_reconfigure_is_idempotent_and_repairs(gc_dir):
    first = configure("tc", "testcluster", "compute")
    again = configure("tc", "testcluster", "compute")
    assert not again.changed and not again.created and again.files == []
    template = first.path / gen.TEMPLATE
    template.write_text("engine: broken\n")
    os.chmod(first.path / gen.CONFIG, 0o644)
    dry = configure("tc", "testcluster", "compute", dry_run=True)
    assert dry.changed and dry.files == [gen.CONFIG, gen.TEMPLATE]
    assert template.read_text() == "engine: broken\n", "dry run wrote nothing"
    fixed = configure("tc", "testcluster", "compute")
    assert fixed.changed and fixed.files == [gen.CONFIG, gen.TEMPLATE]
    assert mode(first.path / gen.CONFIG) == 0o600 and "GlobusComputeEngine" in template.read_text()
    assert not configure("tc", "testcluster", "compute").changed
    assert [p.name for p in gc_dir.iterdir()] == ["tc"], "no staging directory left behind"


def test_new_endpoint_dry_run_writes_nothing(gc_dir):
    result = configure("tc", "testcluster", dry_run=True)
    assert result.changed and result.created and not result.path.exists()


def test_multi_user_from_the_profile(gc_dir, site_layer, tmp_path):
    site_layer(
        "testcluster",
        {"merge": True, "endpoint": {"multi_user": True, "contact_email": "hpc@example.org"}},
    )
    path = configure("mu", "testcluster", "compute").path
    config = yaml.safe_load((path / gen.CONFIG).read_text())
    assert config["email"] == "hpc@example.org" and config["public"] is False
    mapping = Path(config["identity_mapping_config_path"])
    assert mapping == path / gen.IDENTITY_MAPPING and mode(mapping) == 0o600
    assert json.loads(mapping.read_text())[0]["DATA_TYPE"].startswith("expression_identity")
    from globus_compute_endpoint.endpoint.config import CoreEndpointConfig
    from globus_compute_endpoint.endpoint.config.utils import get_config

    loaded = get_config(path)
    assert isinstance(loaded, CoreEndpointConfig) and loaded.identity_mapping_config_path == mapping
    # An admin's own mapping is kept on reconfigure; --single-user drops multi-user keys.
    mapping.write_text('[{"DATA_TYPE": "expression_identity_mapping#1.0.0", "mappings": []}]')
    assert not configure("mu", "testcluster", "compute").changed
    single = configure("mu", "testcluster", "compute", multi_user=False)
    assert single.changed and "email" not in (path / gen.CONFIG).read_text()


def test_bad_input_raises_one_line_errors(gc_dir, site_layer):
    cases = [
        (lambda: configure("x", "nosuch"), ConfigError, "unknown site 'nosuch'"),
        (lambda: configure("x", "hera", "gpu"), ConfigError, "site 'hera' has no executor 'gpu'"),
        (lambda: configure("x", "hera", "mpii"), ConfigError, "did you mean 'mpi'"),
        (lambda: configure("a/b", "hera"), EndpointError, "Invalid endpoint name"),
        (lambda: configure(str(uuid.uuid4()), "hera"), EndpointError, "is a UUID"),
        (
            lambda: configure("x", "hera", multi_user=True),
            ConfigError,
            "needs a contact email",
        ),
    ]
    for call, kind, match in cases:
        with pytest.raises(kind, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    assert not gc_dir.exists() or list(gc_dir.iterdir()) == [], "nothing half-written"


def test_foreign_directory_needs_force_and_keeps_registration(gc_dir):
    made = subprocess.run(
        [GCE, "configure", "theirs", "--multi-user", "false"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    registration = gc_dir / "theirs" / "endpoint.json"
    endpoint_id = str(uuid.uuid4())
    registration.write_text(json.dumps({"endpoint_id": endpoint_id}))
    with pytest.raises(EndpointError, match="not made by chiltepin"):
        configure("theirs", "testcluster")
    result = configure("theirs", "testcluster", force=True)
    assert result.changed and json.loads(registration.read_text())["endpoint_id"] == endpoint_id
    # A resource may now name the endpoint locally (chiltepin.endpoint_ids).
    from chiltepin.endpoint_ids import resolve_endpoint_id

    assert resolve_endpoint_id("theirs") == endpoint_id


# ------------------------------------------------------------------------------ CLI


def test_cli_configure_list_validate_delete(gc_dir):
    out = cli("endpoint", "configure", "tc", "--site", "testcluster", "--executor", "mpi", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["changed"] and data["engines"]["mpi"] == "GlobusMPIEngine"
    again = cli("endpoint", "configure", "tc", "--site", "testcluster", "--executor", "mpi")
    assert again.returncode == 0 and "tc: unchanged" in again.stdout
    listed = json.loads(cli("endpoint", "list", "--json").stdout)
    assert [(e["name"], e["status"], e["site"]) for e in listed] == [
        ("tc", "Initialized", "testcluster")
    ]
    valid = cli("endpoint", "validate", "tc")
    assert valid.returncode == 0 and "mpi: GlobusMPIEngine" in valid.stdout
    stopped = cli("endpoint", "stop", "tc")  # not running: globus-compute-endpoint says so
    assert stopped.returncode == 0, stopped.stderr
    # Never registered, so deleting needs no Globus: globus-compute-endpoint removes it.
    deleted = cli("endpoint", "delete", "tc", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not (gc_dir / "tc").exists()


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["configure", "x", "--site", "nosuch"], None, "unknown site 'nosuch'"),
        (["configure", "x", "--site", "hera", "--executor", "gpu"], None, "no executor 'gpu'"),
        (["configure", "bad name", "--site", "hera"], None, "Invalid endpoint name"),
        (["render", "missing"], None, "no endpoint 'missing'"),
        (["start", "missing"], None, "no endpoint 'missing'"),
        (["render", "tc", "-o", "-"], "{not json", "invalid JSON"),
        (["render", "tc", "-o", "-"], "[1]", "must be a JSON object"),
        (["render", "tc", "-o", "-"], '{"partition": "gpu"}', "option 'partition' is invalid"),
        (["start", "tc", "--endpoint-uuid", "not-a-uuid"], None, "is not a UUID"),
        (["delete", "tc"], None, "needs --yes"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(gc_dir, args, stdin, message):
    if args[1] == "tc":
        configure("tc", "testcluster", "compute")
    out = cli("endpoint", *args, stdin=stdin)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chiltepin: error:"), out.stderr
    assert message in lines[0]


def test_start_without_credentials_fails_before_globus(gc_dir):
    configure("tc", "testcluster", "compute")
    out = cli("endpoint", "start", "tc")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "chiltepin: error: not logged in to Globus: run `chiltepin endpoint login` on a "
        "terminal, or set GLOBUS_COMPUTE_CLIENT_ID and GLOBUS_COMPUTE_CLIENT_SECRET "
        "(client credentials) for services"
    ]
    login = cli("endpoint", "login")
    assert login.returncode == 2 and "login is interactive" in login.stderr


def test_start_fails_at_globus_boundary_with_one_line(gc_dir, tmp_path):
    """The real globus-compute-endpoint start: config loaded, then registration needs
    Globus's web services, which are unreachable here. One line, no traceback."""
    # As root, globus-compute-endpoint runs every endpoint multi-user (email required).
    root = os.getuid() == 0
    configure("tc", "testcluster", "compute", multi_user=root, contact_email="hpc@example.org")
    creds = tmp_path / "creds.env"
    creds.write_text(f"GLOBUS_COMPUTE_CLIENT_ID={uuid.uuid4()}\nGLOBUS_COMPUTE_CLIENT_SECRET=x\n")
    creds.chmod(0o600)
    out = cli("endpoint", "start", "tc", "--credentials", str(creds))
    assert out.returncode == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "cannot reach Globus's web services" in lines[0]
    assert "Traceback" not in out.stderr + out.stdout
    assert not (gc_dir / "tc" / "daemon.pid").exists(), "nothing left running"


def test_logout_without_tokens_is_offline(gc_dir):
    out = cli("endpoint", "logout")
    assert out.returncode == 0, out.stderr


def test_package_import_stays_light():
    statements = "import chiltepin.endpoint, chiltepin.cli.endpoint_cmd"
    assert heavy_imports(statements, ("globus_compute_endpoint", "parsl")) == []


def test_errors_are_chiltepin_errors():
    assert issubclass(EndpointError, ChiltepinError)
