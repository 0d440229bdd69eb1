"""The rendered endpoint configuration, run for real: globus-compute-endpoint's own loader
builds the GlobusComputeEngine from the generated template, the engine is started offline
(no Globus services involved below the engine) and runs a task on the loopback Slurm
cluster, inside the project's podman image.

Needs tests/infra/slurm.sh (fixture ``slurm``) and tests/infra/containers.sh (podman and
the image ghcr.io/noaa-gsl/chiltepin:<version>, built once and cached).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from helpers.infra import TESTS, require

from chiltepin.endpoint.validate import load_engine_config, render_dir
from chiltepin.endpoint.writer import configure

pytestmark = [pytest.mark.slurm, pytest.mark.podman]

SLURM_ENV = ["SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURMD_NODENAME"]


@pytest.fixture(scope="module")
def podman_image():
    sys.path.insert(0, str(TESTS / "infra"))
    import containers_env

    try:
        env = containers_env.apply_env()
        containers_env.build_image()
    except (RuntimeError, OSError) as exc:
        require(False, f"podman and the test image ({exc})")
    yield env


def remove_leftover_containers(label: str, wait: float = 20.0) -> list[str]:
    """Containers of this test still running ``wait`` s after the engine shut down.

    A cancelled Slurm job can leave a podman worker container running until the worker
    pool's heartbeat timeout; remove those and report them (apptainer is unaffected).
    """
    import subprocess

    def ours() -> list[str]:
        cmd = ["podman", "ps", "-q", "--filter", f"label={label}"]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.split()

    deadline = time.monotonic() + wait
    while ours() and time.monotonic() < deadline:
        time.sleep(1)
    left = ours()
    if left:
        subprocess.run(["podman", "rm", "-f", "-t", "2", *left], capture_output=True, check=False)
    return left


def where_am_i() -> dict:
    """Runs on a worker: where, and in which image."""
    import os

    image = "/opt/chiltepin/IMAGE"
    return {
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "node": os.environ.get("SLURMD_NODENAME"),
        "job": os.environ.get("SLURM_JOB_ID"),
        "in_container": os.path.exists("/run/.containerenv"),
        "image_version": open(image).read().strip() if os.path.exists(image) else None,
    }


def run_task(engine, fn, run_dir: Path, timeout: float = 240) -> object:
    """Start the engine offline, run ``fn`` through it as an endpoint would, shut down."""
    from globus_compute_common import messagepack
    from globus_compute_common.messagepack.message_types import Task
    from globus_compute_endpoint.engines import GCFuture
    from globus_compute_sdk.serialize import ComputeSerializer, PureSourceTextInspect

    # By source, as a remote user's function would travel (this module is not in the image).
    serde = ComputeSerializer(strategy_code=PureSourceTextInspect())
    engine.start(endpoint_id=uuid.uuid4(), run_dir=str(run_dir))
    try:
        task_id = uuid.uuid4()
        body = serde.pack_buffers([serde.serialize(fn), serde.serialize(()), serde.serialize({})])
        future = GCFuture(task_id)
        engine.submit(future, messagepack.pack(Task(task_id=task_id, task_buffer=body)), {})
        result = messagepack.unpack(future.result(timeout=timeout))
        assert not result.is_error, result.data
        return serde.deserialize(result.data)
    finally:
        engine.shutdown()


def test_rendered_engine_runs_a_task_on_slurm_in_podman(slurm, podman_image, tmp_path, monkeypatch):
    # The testcluster profile has no container: a copy (an override layer) adds podman.
    label = uuid.uuid4().hex
    layer = tmp_path / "sites"
    layer.mkdir()
    exports = [
        f"export {k}={podman_image[k]}"
        for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF")
    ]
    override = {
        "merge": True,
        "defaults": {"environment": exports},
        "container": {
            "runtime": "podman",
            "image": podman_image["CHILTEPIN_IMAGE"],
            "env": SLURM_ENV,
            "options": ["--label", f"org.chiltepin.test={label}"],
        },
    }
    (layer / "testcluster.yaml").write_text(yaml.safe_dump(override))
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(layer))
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(tmp_path / "gc"))

    endpoint = configure("tc-compute", "testcluster", "compute")
    rendered = render_dir(endpoint.path, {"walltime": "00:05:00", "max_blocks": 1})
    engine = load_engine_config(rendered, "test").engine
    assert type(engine).__name__ == "GlobusComputeEngine"
    assert engine.container_type == "podman"
    assert (engine.provider.partition, engine.provider.walltime) == ("compute", "00:05:00")

    started = time.monotonic()
    try:
        placed = run_task(engine, where_am_i, tmp_path / "run")
    finally:
        lingering = remove_leftover_containers(f"org.chiltepin.test={label}")
    if lingering:
        print(f"removed {len(lingering)} podman container(s) outliving their Slurm job")
    assert placed["partition"] == "compute", placed
    assert placed["node"] in {"node1", "node2", "node3", "node4"}
    assert placed["in_container"] and placed["image_version"], placed
    assert time.monotonic() - started < 200
    # the slurm fixture fails the test if a job or Parsl process outlives it
