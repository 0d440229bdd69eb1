"""chiltepin 0.1.x's ``chiltepin.configure`` API: real Parsl objects from the validated builders."""

from __future__ import annotations

import pytest
from helpers.infra import heavy_imports

from chiltepin import configure
from chiltepin.errors import ConfigError, ConfigWarning

CONFIG = {
    "compute": {
        "provider": "slurm",
        "partition": "compute",
        "account": "proj",
        "queue": "batch",
        "nodes_per_block": 2,
        "walltime": "00:30:00",
        "environment": ["module load gcc", "export A=1"],
    },
    "mpi": {"provider": "slurm", "partition": "compute", "mpi": True, "max_mpi_apps": 3},
    "pbs": {"provider": "pbspro", "queue": "debug", "account": "proj", "cores_per_node": 8},
}


def test_import_does_not_import_parsl_or_pydantic():
    assert heavy_imports("import chiltepin.configure") == []


def test_parse_file(tmp_path):
    path = tmp_path / "resources.yaml"
    path.write_text("compute:\n  provider: slurm\n  partition: compute\n")
    assert configure.parse_file(path) == {"compute": {"provider": "slurm", "partition": "compute"}}
    assert configure.parse_file(str(path)) == configure.parse_file(path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert configure.parse_file(empty) == {}


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "file not found"),
        ("compute:\n  provider: [slurm\n", "YAML syntax error"),
        ("- compute\n", "must be a mapping of names to settings, got list"),
    ],
)
def test_parse_file_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:  # ConfigError is a ValueError
        configure.parse_file(path)
    assert isinstance(err.value, ConfigError) and str(path) in str(err.value)


def test_load_returns_a_parsl_config_with_local_first(tmp_path):
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor, MPIExecutor
    from parsl.launchers import MpiExecLauncher, SimpleLauncher, SrunLauncher
    from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

    config = configure.load(CONFIG, run_dir=tmp_path / "run")
    assert isinstance(config, Config)
    assert config.run_dir == str(tmp_path / "run")
    labels = [e.label for e in config.executors]
    assert labels == ["local", "compute", "mpi", "pbs"]
    local, compute, mpi, pbs = config.executors
    assert isinstance(local, HighThroughputExecutor) and isinstance(local.provider, LocalProvider)
    assert isinstance(compute, HighThroughputExecutor)
    prov = compute.provider
    assert isinstance(prov, SlurmProvider) and isinstance(prov.launcher, SrunLauncher)
    assert (prov.partition, prov.account, prov.qos, prov.nodes_per_block, prov.walltime) == (
        "compute",
        "proj",
        "batch",
        2,
        "00:30:00",
    )
    assert prov.worker_init.splitlines() == ["module load gcc", "export A=1"]
    assert isinstance(mpi, MPIExecutor) and isinstance(mpi.provider.launcher, SimpleLauncher)
    assert mpi.max_workers_per_block == 3 and mpi.mpi_launcher == "srun"
    assert isinstance(pbs.provider, PBSProProvider)
    assert isinstance(pbs.provider.launcher, MpiExecLauncher)
    assert (pbs.provider.queue, pbs.provider.cpus_per_node) == ("debug", 8)


def test_load_include_keeps_local_and_the_order_asked(tmp_path):
    assert [e.label for e in configure.load(CONFIG, ["pbs", "compute"]).executors] == [
        "local",
        "pbs",
        "compute",
    ]
    assert [e.label for e in configure.load(CONFIG, include=["local"]).executors] == ["local"]
    assert configure.load(CONFIG).run_dir == "runinfo"  # Parsl's default
    own = configure.load({"local": {"max_workers_per_node": 4}}, include=["local"])
    assert [(e.label, e.max_workers_per_node) for e in own.executors] == [("local", 4)]


def test_load_reads_a_path_too(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("compute:\n  provider: slurm\n  partition: compute\n")
    assert [e.label for e in configure.load(configure.parse_file(path)).executors] == [
        "local",
        "compute",
    ]
    assert [e.label for e in configure.load(path).executors] == ["local", "compute"]


@pytest.mark.parametrize(
    "config, include, message",
    [
        (CONFIG, ["compte"], "included executor 'compte' is not defined (hint: did you mean"),
        ({"c": {"provider": "slurm", "partion": "x"}}, None, "key 'partion': unknown key"),
        ({"c": {"provider": "lsf"}}, None, "key 'provider': must be one of"),
        ({"c": {"walltime": "1h", "provider": "slurm"}}, None, "walltime must be HH:MM:SS"),
        ({"bad name": {}}, None, "invalid executor name 'bad name'"),
    ],
)
def test_load_rejects_bad_input_with_one_config_error(config, include, message):
    with pytest.raises(ConfigError) as err:
        configure.load(config, include)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_create_provider():
    from parsl.launchers import SimpleLauncher, SingleNodeLauncher, SrunLauncher
    from parsl.providers import LocalProvider, SlurmProvider

    local = configure.create_provider({"environment": ["export X=1"], "max_blocks": 2})
    assert isinstance(local, LocalProvider) and isinstance(local.launcher, SingleNodeLauncher)
    assert (local.worker_init, local.max_blocks) == ("export X=1", 2)
    slurm = configure.create_provider({"provider": "slurm", "exclusive": False})
    assert isinstance(slurm, SlurmProvider) and isinstance(slurm.launcher, SrunLauncher)
    assert slurm.exclusive is False
    mpi = configure.create_provider({"provider": "slurm", "mpi": True})
    assert isinstance(mpi.launcher, SimpleLauncher)
    with pytest.raises(ValueError, match="must be one of"):
        configure.create_provider({"provider": "cobalt"})
    with pytest.raises(ConfigError, match="endpoint executor has no local provider"):
        configure.create_provider({"endpoint": "ep"})


def test_create_htex_and_mpi_executors():
    from parsl.executors import HighThroughputExecutor, MPIExecutor

    htex = configure.create_htex_executor("svc", {"cores_per_worker": 2, "max_workers_per_node": 3})
    assert isinstance(htex, HighThroughputExecutor) and htex.label == "svc"
    assert (htex.cores_per_worker, htex.max_workers_per_node) == (2, 3)
    # As in 0.1.x, create_mpi_executor does not need 'mpi: true'.
    mpi = configure.create_mpi_executor("m", {"max_mpi_apps": 2})
    assert isinstance(mpi, MPIExecutor) and mpi.label == "m"
    assert (mpi.max_workers_per_block, mpi.mpi_launcher) == (2, "mpiexec")
    with pytest.raises(ConfigError, match="'mpi: true' does not fit create_htex_executor"):
        configure.create_htex_executor("x", {"mpi": True})
    with pytest.raises(ConfigError, match="'mpi: false' does not fit create_mpi_executor"):
        configure.create_mpi_executor("x", {"mpi": False})
    # As in 0.1.x, a key that does not apply is ignored, with one warning.
    with pytest.warns(ConfigWarning, match="'max_mpi_apps' applies only to MPI executors"):
        htex = configure.create_htex_executor("x", {"max_mpi_apps": 2})
    assert isinstance(htex, HighThroughputExecutor)


def test_create_executor_picks_the_kind():
    from parsl.executors import HighThroughputExecutor, MPIExecutor

    assert isinstance(configure.create_executor("a", {}), HighThroughputExecutor)
    assert isinstance(configure.create_executor("b", {"mpi": True}), MPIExecutor)
    with pytest.raises(ConfigError, match="executor 'c': settings must be a mapping"):
        configure.create_executor("c", ["provider", "slurm"])  # type: ignore[arg-type]


ENDPOINT = "2f0a8ac8-2a4e-4a4b-9a8a-0d1c6a0d5f4e"


def test_globus_compute_executor_with_a_client(gc_dir):
    """A real globus_compute_sdk Client (no version check: that needs Globus's web
    services) is handed to the executor, as 0.1.x's ``client=`` did."""
    from globus_compute_sdk import Client
    from parsl.executors import GlobusComputeExecutor

    client = Client(do_version_check=False)
    ex = configure.create_globus_compute_executor(
        "remote", {"endpoint": ENDPOINT, "partition": "compute"}, client=client
    )
    try:
        assert isinstance(ex, GlobusComputeExecutor) and ex.label == "remote"
        assert ex.executor.client is client
        assert str(ex.executor.endpoint_id) == ENDPOINT
        assert ex.executor.user_endpoint_config["partition"] == "compute"
        again = configure.create_executor("remote", {"endpoint": ENDPOINT}, client)
        assert isinstance(again, GlobusComputeExecutor) and again.executor.client is client
        config = configure.load({"remote": {"endpoint": ENDPOINT}}, None, client)
        assert [type(e).__name__ for e in config.executors] == [
            "HighThroughputExecutor",
            "GlobusComputeExecutor",
        ]
    finally:
        ex.executor.shutdown(wait=False)


def test_globus_compute_executor_without_login_fails_without_prompting(gc_dir):
    with pytest.raises(ConfigError, match="needs a Globus login, and this session cannot prompt"):
        configure.create_globus_compute_executor("remote", {"endpoint": ENDPOINT})
    with pytest.raises(ConfigError, match="key 'endpoint': required key is missing"):
        configure.create_globus_compute_executor("remote", {"partition": "compute"})


def test_loaded_config_runs_a_task_with_plain_parsl(tmp_path):
    """What 0.1.x users do: parsl.load(configure.load(...)) and call apps."""
    import parsl
    from helpers import tasks as ts

    config = configure.load(
        {"extra": {"init_blocks": 1, "max_workers_per_node": 1}},
        include=["extra"],
        run_dir=tmp_path / "run",
    )
    dfk = parsl.load(config)
    try:
        assert ts.add(2, 3, executor="local").result(timeout=120) == 5
        assert ts.add(4, 5, executor="extra").result(timeout=120) == 9
    finally:
        dfk.cleanup()
        parsl.clear()
