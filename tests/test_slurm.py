"""Real Parsl work through the testcluster site profile on the loopback Slurm cluster.

The cluster is started by tests/infra/slurm.sh (session fixture). Every test checks that
no scheduler job and no Parsl worker or interchange process outlives it.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers import slurm_tasks as ss

from chiltepin import Workflow

MPI_HELLO = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int rank, size, sum, one = 1;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    const char *node = getenv("SLURMD_NODENAME");
    printf("rank %d of %d on %s sum %d\n", rank, size, node ? node : "?", sum);
    MPI_Finalize();
    return 0;
}
"""


@pytest.fixture(scope="module")
def mpi_program(tmp_path_factory, slurm_cluster):
    mpicc = shutil.which("mpicc")
    assert mpicc, "mpicc missing: tests/infra/slurm.sh installs libopenmpi-dev"
    src = tmp_path_factory.mktemp("mpi") / "hello.c"
    src.write_text(MPI_HELLO)
    exe = src.with_suffix("")
    subprocess.run([mpicc, "-o", str(exe), str(src)], check=True)
    return str(exe)


def test_tasks_run_on_each_partition(slurm, tmp_path):
    include = ["service", "compute", "debug"]
    with Workflow(site="testcluster", include=include, run_dir=tmp_path / "run"):
        futures = {name: ss.placement(executor=name) for name in include}
        results = {name: f.result(timeout=180) for name, f in futures.items()}
    for name, where in results.items():
        assert where["partition"] == name, results
        assert where["node"] in {"node1", "node2", "node3", "node4"}


def test_two_node_block_spreads_workers(slurm, tmp_path):
    with Workflow(site="testcluster", include=["compute2"], run_dir=tmp_path / "run"):
        results = [ss.placement(2.0, executor="compute2") for _ in range(2)]
        placed = [f.result(timeout=180) for f in results]
    assert len({p["node"] for p in placed}) == 2, placed
    assert len({p["job"] for p in placed}) == 1, "both workers belong to one 2-node job"


def test_bash_task_and_failure_on_compute(slurm, tmp_path):
    out = tmp_path / "node.out"
    with Workflow(site="testcluster", include=["compute"], run_dir=tmp_path / "run"):
        assert ss.node_name(stdout=str(out), executor="compute").result(timeout=180) == 0
        with pytest.raises(RuntimeError, match="task failed on purpose"):
            ss.explode(executor="compute").result(timeout=180)
    assert "partition=compute" in out.read_text()


def test_two_node_mpi_task_with_geometry(slurm, tmp_path, mpi_program):
    out, err = tmp_path / "mpi.out", tmp_path / "mpi.err"
    geometry = {"num_nodes": 2, "num_ranks": 4, "ranks_per_node": 2}
    with Workflow(site="testcluster", include=["mpi"], run_dir=tmp_path / "run"):
        future = ss.mpi_run(
            mpi_program,
            stdout=str(out),
            stderr=str(err),
            executor="mpi",
            chiltepin_task_geometry=geometry,
        )
        assert future.result(timeout=300) == 0, err.read_text()
    lines = sorted(out.read_text().split("\n")[:-1])
    assert len(lines) == 4 and all(line.endswith("sum 4") for line in lines), lines
    assert len({line.split()[5] for line in lines}) == 2, "ranks span two nodes"


def test_exception_in_workflow_body_leaves_no_jobs(slurm, tmp_path):
    with pytest.raises(KeyError, match="body failed"):
        with Workflow(site="testcluster", include=["compute"], run_dir=tmp_path / "run"):
            assert ss.placement(executor="compute").result(timeout=180)["partition"] == "compute"
            raise KeyError("body failed")
    # the slurm fixture asserts squeue is empty and no worker/interchange remains
