"""Tasks for the Slurm tests; importable so Parsl workers can unpickle them."""

from __future__ import annotations

import os
import time

from chiltepin.tasks import bash_task, python_task


@python_task
def placement(delay: float = 0.0) -> dict:
    time.sleep(delay)
    return {
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "node": os.environ.get("SLURMD_NODENAME"),
        "job": os.environ.get("SLURM_JOB_ID"),
    }


@python_task
def explode() -> None:
    raise RuntimeError("task failed on purpose")


@bash_task
def node_name(stdout=None) -> str:
    return 'echo "node=$SLURMD_NODENAME partition=$SLURM_JOB_PARTITION"'


@bash_task
def mpi_run(program: str, stdout=None, stderr=None) -> str:
    return f"$PARSL_MPI_PREFIX {program}"
