"""Resource files and remote resources written for chiltepin 0.1.x keep working.

Through the public API and the real ``chiltepin`` console script; endpoint templates are
rendered by globus-compute-endpoint's own renderer (offline).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from helpers.cli import run as cli

from chiltepin.config import load_resources
from chiltepin.config.schema import DEFAULTED_OPTION, V01_ENDPOINT_DEFAULTS
from chiltepin.errors import ConfigWarning

#: A resource file as 0.1.x users write it (keys from 0.1.x's documentation).
OLD_FILE = """\
local-ish:
  provider: localhost
  partition: debug
  exclusive: false
  account: ""
service:
  provider: slurm
  account: ""
  cores_per_node: 4
  max_mpi_apps: 2
mpi:
  provider: slurm
  mpi: true
  max_mpi_apps: 2
  max_workers_per_node: 4
"""


@pytest.fixture
def old_file(tmp_path) -> Path:
    path = tmp_path / "resources.yaml"
    path.write_text(OLD_FILE)
    return path


def test_old_file_loads_with_one_warning_per_ignored_key(old_file):
    with pytest.warns(ConfigWarning) as caught:
        res = load_resources(old_file)
    messages = [str(w.message) for w in caught]
    expected = [
        (3, "local-ish", "partition"),
        (4, "local-ish", "exclusive"),
        (10, "service", "max_mpi_apps"),
        (15, "mpi", "max_workers_per_node"),
    ]
    assert len(messages) == len(expected), messages
    for (line, resource, key), message in zip(expected, messages, strict=True):
        assert message.startswith(f"{old_file}:{line}: executor '{resource}': key '{key}': ")
        assert "ignored" in message
    assert res["local-ish"].partition is None and res["local-ish"].exclusive is True
    assert res["service"].account is None and res["service"].cores_per_node == 4
    assert res["mpi"].max_mpi_apps == 2 and res["mpi"].max_workers_per_node is None
    assert res["service"].walltime == "00:10:00"  # 0.1.x's default


def test_cli_validate_prints_each_warning_once_and_exits_0(old_file):
    out = cli("config", "validate", str(old_file))
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("chiltepin: warning: ") for line in lines)
    assert f"{old_file}:3: executor 'local-ish': key 'partition'" in lines[0]
    assert "it applies to provider slurm" in lines[0]
    assert "Traceback" not in out.stderr and "valid, 4 executors" in out.stdout


def test_cli_unknown_key_is_still_an_error(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("c:\n  provider: slurm\n  acount: x\n  partition: ''\n")
    out = cli("config", "validate", str(path))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"chiltepin: error: {path}:3: executor 'c': key 'acount': unknown key "
        "(hint: did you mean 'account'?)"
    ]


def test_clean_files_give_no_warning(recwarn):
    load_resources({"c": {"provider": "slurm", "partition": "p", "walltime": "00:05:00"}})
    assert not [w for w in recwarn if issubclass(w.category, ConfigWarning)]


def test_local_stays_available_when_include_omits_it(tmp_path, no_leftovers):
    from helpers import tasks as ts

    from chiltepin import Workflow

    solo = {"max_workers_per_node": 1, "environment": ["export CHILTEPIN_TEST_RESOURCE=solo"]}
    wf = Workflow({"solo": solo}, include=["solo"], run_dir=tmp_path)
    assert wf.executor_names == ["solo"] and list(wf.resources) == ["solo", "local"]
    assert wf.resources["local"].init_blocks == 0  # nothing starts until a task asks for it
    with wf as dfk:
        assert "local" not in dfk.executors  # no idle interchange for it ...
        assert ts.where(executor="local").result(timeout=60) == "?"  # ... until a task asks
        assert "local" in dfk.executors
        # Without executor=, tasks run on what include selected.
        assert {ts.where().result(timeout=60) for _ in range(6)} == {"solo"}


# ---------------------------------------------------------------- remote resources


def test_remote_resource_sends_0_1_keys_with_defaults():
    res = load_resources(
        {
            "r": {
                "endpoint": "2f0a8ac8-2a4e-4a4b-9a8a-0d1c6a0d5f4e",
                "provider": "slurm",
                "mpi": True,
                "partition": "debug",
                "environment": ["module load gcc", "export X=1"],
                "executor": "compute",
            }
        }
    )["r"]
    sent = res.user_endpoint_config
    assert set(V01_ENDPOINT_DEFAULTS) <= set(sent)
    assert sent["worker_init"] == "module load gcc\nexport X=1" and "environment" not in sent
    assert (sent["mpi"], sent["provider"], sent["partition"]) == (True, "slurm", "debug")
    assert sent["mpi_launcher"] == "srun"  # 0.1.x: srun on Slurm, else mpiexec
    assert (sent["walltime"], sent["account"], sent["max_blocks"]) == ("00:10:00", "", 1)
    assert sent["executor"] == "compute"  # our own endpoints' option passes through
    assert sorted(sent[DEFAULTED_OPTION]) == sorted(
        set(V01_ENDPOINT_DEFAULTS) - {"provider", "mpi", "partition", "worker_init"}
    )
    local = load_resources({"r": {"endpoint": "x"}})["r"].user_endpoint_config
    assert (local["provider"], local["mpi_launcher"], local["worker_init"]) == (
        "localhost",
        "mpiexec",
        "",
    )


def test_generated_endpoint_accepts_0_1_clients_and_keeps_profile_values(gc_dir):
    from chiltepin.endpoint.validate import load_engine_config, render_dir
    from chiltepin.endpoint.writer import configure
    from chiltepin.sites import load_site

    path = configure("tc", "testcluster").path
    site = load_site("testcluster")

    def engine(remote: dict):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConfigWarning)
            sent = load_resources({"r": {"endpoint": "tc", **remote}})["r"].user_endpoint_config
        return load_engine_config(render_dir(path, sent), "t").engine

    # Only defaults sent: the profile's executor settings stay.
    compute = site.resolve("compute")[0]
    p = engine({}).provider
    assert (p.partition, p.walltime, p.nodes_per_block) == (
        compute.partition,
        compute.walltime,
        compute.nodes_per_block,
    )
    two_nodes = engine({"executor": "compute2"}).provider
    assert two_nodes.nodes_per_block == site.resolve("compute2")[0].nodes_per_block == 2
    # What a 0.1.x user sets explicitly wins; "" means the profile's; environment is appended.
    p = engine(
        {
            "provider": "slurm",
            "partition": "debug",
            "walltime": "00:05:00",
            "account": "",
            "environment": ["echo from-0.1"],
        }
    ).provider
    assert (p.partition, p.walltime, p.account) == ("debug", "00:05:00", None)
    assert p.worker_init.rstrip().endswith("echo from-0.1")
    mpi = engine({"executor": "mpi", "mpi": True, "max_mpi_apps": 3})
    assert type(mpi).__name__ == "GlobusMPIEngine"
    assert mpi.executor.max_workers_per_block == site.resolve("mpi")[0].max_mpi_apps


def test_localhost_endpoint_accepts_0_1_clients(gc_dir):
    from chiltepin.endpoint.validate import load_engine_config, render_dir
    from chiltepin.endpoint.writer import configure

    path = configure("loc", "local").path
    sent = load_resources({"r": {"endpoint": "loc", "executor": "compute"}})[
        "r"
    ].user_endpoint_config
    engine = load_engine_config(render_dir(path, sent), "t").engine
    assert type(engine.provider).__name__ == "LocalProvider"
