"""Tasks for the container tests; importable so Parsl workers (in the image) unpickle them."""

from __future__ import annotations

import os
import sys

from chiltepin.tasks import bash_task, python_task

MARKER = "/opt/chiltepin/IMAGE"  # only the image has it (containers/Dockerfile)


@python_task
def where_am_i(write_to: str | None = None) -> dict:
    """The image marker (None on the host), interpreter, node and job; optionally write a
    file (into a bind-mounted directory) to show who owns what workers write."""
    marker = open(MARKER).read().strip() if os.path.exists(MARKER) else None
    if write_to:
        with open(write_to, "w") as fh:
            fh.write("written by a worker\n")
    return {
        "image": marker,
        "python": sys.executable,
        "node": os.environ.get("SLURMD_NODENAME"),
        "job": os.environ.get("SLURM_JOB_ID"),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "uid": os.getuid(),
    }


@bash_task
def marker_in_shell(stdout=None, stderr=None) -> str:
    return f'echo "image=$(cat {MARKER} 2>/dev/null || echo none) python=$(command -v python3)"'


#: Each rank prints: rank, size, node, allreduce sum, image marker, interpreter.
RANK_PROGRAM = (
    "import os, sys; from mpi4py import MPI; c = MPI.COMM_WORLD; s = c.allreduce(1); "
    "m = open('/opt/chiltepin/IMAGE').read().strip() if os.path.exists('/opt/chiltepin/IMAGE') "
    "else 'none'; "
    "print('rank', c.rank, 'of', c.size, 'node', os.environ.get('SLURMD_NODENAME'), "
    "'sum', s, 'image', m, 'python', sys.executable, flush=True)"
)


@bash_task
def mpi_ranks(stdout=None, stderr=None) -> str:
    """User code as on the host: the container is added to $PARSL_MPI_PREFIX by chiltepin."""
    return f'$PARSL_MPI_PREFIX python3 -c "{RANK_PROGRAM}"'


@python_task
def explode() -> None:
    raise RuntimeError("task failed on purpose")


@python_task
def noop(x: int = 0) -> int:
    return x
