"""Parsl tasks on the loopback Slurm cluster with workers in containers, for real.

Profiles in tests/sites/: ``testcluster-podman`` (workers in podman; the ``mpi``
executor's ranks in podman; ``bare`` opted out) and ``testcluster-charliecloud`` (ch-run).
Each task proves where it ran: the image's marker file /opt/chiltepin/IMAGE and the
interpreter /opt/chiltepin/bin/python3. MPI ranks (mpi4py, 2 nodes x 2 ranks) run in the
image while the MPI worker pool that launches them stays on the host. Afterwards no
container, scheduler job or Parsl process may be left.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import container_tasks as cs
from helpers.infra import SITES, labelled_containers

from chiltepin import Workflow, __version__

pytestmark = [pytest.mark.slurm, pytest.mark.podman]

NODES = {"node1", "node2", "node3", "node4"}
GEOMETRY = {"num_nodes": 2, "num_ranks": 4, "ranks_per_node": 2}


@pytest.fixture
def container_sites(pulled_image, monkeypatch):
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(SITES))


def check_ranks(out: Path, err: Path) -> None:
    lines = sorted(line for line in out.read_text().splitlines() if line.startswith("rank"))
    assert len(lines) == 4, (out.read_text(), err.read_text()[-3000:])
    words = [line.split() for line in lines]
    assert [w[1] for w in words] == ["0", "1", "2", "3"] and {w[3] for w in words} == {"4"}
    assert {w[5] for w in words} <= NODES and len({w[5] for w in words}) == 2, "two nodes"
    assert {w[7] for w in words} == {"4"}, "allreduce over all ranks"
    assert {w[9] for w in words} == {__version__}, "every rank ran in the image"
    assert {w[11] for w in words} == {"/opt/chiltepin/bin/python3"}


def check_inside(result: dict) -> None:
    assert result["image"] == __version__, result
    assert result["python"].startswith("/opt/chiltepin/"), result
    assert result["partition"] == "compute" and result["node"] in NODES, result
    assert result["uid"] == os.getuid(), "workers run as the submitting user"


def test_podman_workers_and_mpi_ranks_run_in_the_image(
    slurm, container_sites, no_containers_left, tmp_path
):
    include = ["compute", "mpi", "bare"]
    written = tmp_path / "written-by-worker"
    out, err = tmp_path / "mpi.out", tmp_path / "mpi.err"
    # run_dir is bind-mounted into the containers: outputs of workers go there
    with Workflow(site="testcluster-podman", include=include, run_dir=tmp_path):
        inside = cs.where_am_i(write_to=str(written), executor="compute")
        shell = cs.marker_in_shell(stdout=str(tmp_path / "shell.out"), executor="compute")
        host = cs.where_am_i(executor="bare")
        ranks = cs.mpi_ranks(
            stdout=str(out), stderr=str(err), executor="mpi", chiltepin_task_geometry=GEOMETRY
        )
        results = inside.result(timeout=300), host.result(timeout=300)
        assert shell.result(timeout=300) == 0
        assert ranks.result(timeout=300) == 0, err.read_text()[-3000:]
        during = labelled_containers()
    check_inside(results[0])
    assert written.stat().st_uid == os.getuid(), "bind-mounted run dir writable, files ours"
    assert (tmp_path / "shell.out").read_text().split() == [
        f"image={__version__}",
        "python=/opt/chiltepin/bin/python3",
    ]
    host_python = Path(results[1]["python"])
    assert results[1]["image"] is None and host_python.parent == Path(sys.executable).parent
    check_ranks(out, err)
    assert during, "workers ran in labelled containers"
    assert (tmp_path / "containers" / "mpi-exec.sh").is_file()
    # `slurm` checks no job and no Parsl process is left; `no_containers_left`, no container


def test_failure_inside_a_podman_workflow_leaves_nothing(
    slurm, container_sites, no_containers_left, tmp_path
):
    with pytest.raises(KeyError, match="body failed"):
        with Workflow(site="testcluster-podman", include=["compute"], run_dir=tmp_path):
            check_inside(cs.where_am_i(executor="compute").result(timeout=300))
            with pytest.raises(RuntimeError, match="task failed on purpose"):
                cs.explode(executor="compute").result(timeout=300)
            assert labelled_containers()
            raise KeyError("body failed")


def test_charliecloud_workers_and_mpi_ranks_run_in_the_image(
    slurm, container_sites, charliecloud_image, tmp_path
):
    out, err = tmp_path / "mpi.out", tmp_path / "mpi.err"
    with Workflow(site="testcluster-charliecloud", include=["compute", "mpi"], run_dir=tmp_path):
        inside = cs.where_am_i(executor="compute")
        ranks = cs.mpi_ranks(
            stdout=str(out), stderr=str(err), executor="mpi", chiltepin_task_geometry=GEOMETRY
        )
        result = inside.result(timeout=300)
        assert ranks.result(timeout=300) == 0, err.read_text()[-3000:]
    check_inside(result)
    check_ranks(out, err)
