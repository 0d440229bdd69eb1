"""Resources become the Parsl executors, providers and launchers they describe.

Unit tests of the translation (nothing is started); the same executors run for real in
test_tasks.py (localhost) and test_slurm.py (Slurm).
"""

from __future__ import annotations

from parsl.executors import HighThroughputExecutor, MPIExecutor
from parsl.launchers import MpiExecLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher
from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

from chiltepin.config import load_resources
from chiltepin.config.parsl_config import build_parsl_config

CONFIG = {
    "htex": {
        "provider": "slurm",
        "partition": "compute",
        "queue": "debug",
        "account": "proj",
        "constraint": "skylake",
        "gres": "gpu:2",
        "mem_per_node": 64,
        "nodes_per_block": 2,
        "cores_per_node": 40,
        "max_workers_per_node": 8,
        "walltime": "00:20:00",
        "environment": ["module load gcc", "export X=1"],
        "scheduler_options": "#SBATCH --comment=chiltepin",
        "exclusive": False,
        "retries": 2,
    },
    "mpi": {"provider": "slurm", "mpi": True, "max_mpi_apps": 3, "nodes_per_block": 4},
    "pbs": {"provider": "pbspro", "queue": "main", "account": "p", "gpus_per_node": 4},
    "pbsmpi": {"provider": "pbspro", "mpi": True},
}


def build():
    resources = load_resources(CONFIG)
    config = build_parsl_config(resources, run_dir="/tmp/unused")
    return config, {e.label: e for e in config.executors}


def test_slurm_htex_carries_every_setting():
    config, ex = build()
    htex = ex["htex"]
    assert isinstance(htex, HighThroughputExecutor) and htex.max_workers_per_node == 8
    p = htex.provider
    assert isinstance(p, SlurmProvider) and isinstance(p.launcher, SrunLauncher)
    assert (p.partition, p.qos, p.account, p.constraint) == ("compute", "debug", "proj", "skylake")
    assert (p.gres, p.mem_per_node, p.nodes_per_block, p.cores_per_node) == ("gpu:2", 64, 2, 40)
    assert p.walltime == "00:20:00" and p.exclusive is False
    assert p.worker_init.strip() == "module load gcc\nexport X=1"
    assert "--comment=chiltepin" in p.scheduler_options
    assert config.retries == 2 and config.strategy_period == 1


def test_mpi_resources_use_mpi_executor_with_simple_launcher():
    _, ex = build()
    mpi = ex["mpi"]
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "srun"
    assert mpi.max_workers_per_block == 3
    assert isinstance(mpi.provider.launcher, SimpleLauncher)
    assert ex["pbsmpi"].mpi_launcher == "mpiexec"


def test_pbspro_and_local_providers():
    _, ex = build()
    pbs = ex["pbs"].provider
    assert isinstance(pbs, PBSProProvider) and isinstance(pbs.launcher, MpiExecLauncher)
    assert pbs.queue == "main" and "ngpus=4" in pbs.select_options
    local = ex["local"].provider
    assert isinstance(local, LocalProvider) and isinstance(local.launcher, SingleNodeLauncher)
    assert ex["local"].max_workers_per_node == 1
