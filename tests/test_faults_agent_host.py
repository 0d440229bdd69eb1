"""An agent whose host job is cancelled mid-action, on the real Slurm cluster: the
pending call and later ones fail, naming the agent, and the agent's own workflow (a
compute job) does not outlive it. (Its own module: one Workflow per process.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest
from helpers import agents as S
from helpers import faults

from chiltepin import AgentSystem, Workflow
from chiltepin.agents import AgentFailedError
from chiltepin.errors import WorkerLostError

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_host_job_cancelled_fails_calls_and_stops_the_agents_workflow(
    slurm, tmp_path, monkeypatch
):
    """The agent's host is a Slurm job (partition service); its own workflow a Slurm job
    on compute. Cancelling the host job fails the pending call and later ones, and the
    agent's compute job is cancelled (its interchange's watchdog)."""
    service = faults.slurm_resource(
        partition="service", max_workers_per_node=4, cores_per_worker=0.25, init_blocks=1
    )
    workflow = Workflow({"service": service}, include=["service"], run_dir=tmp_path / "mrun")
    monkeypatch.chdir(tmp_path)  # the host job starts here: the agent's run dir lands here
    workflow.start()
    seen: dict = {}
    try:
        # Closing the manager re-raises what its agents died of: here, the lost host.
        with pytest.raises(WorkerLostError, match="cancelled"):
            await _run(workflow, seen)
    finally:
        workflow.cleanup()
    print(
        f"\nhost job cancelled: pending call failed after {seen['detected']:.1f} s "
        f"({seen['error']}); the agent's compute job gone after {seen['gone']} s"
    )
    assert "Probe" in str(seen["error"]), seen["error"]
    assert seen["gone"] is not None, f"the agent's compute job {seen['job']} outlived it"


async def _run(workflow, seen: dict) -> None:
    # The agent runs on a node, another host: the exchange listens on the cluster network.
    exchange = {"kind": "embedded", "interface": os.environ["CHILTEPIN_SLURM_BRIDGE"]}
    async with await AgentSystem(workflow, ["service"], exchange=exchange).manager() as manager:
        config = {"compute": faults.slurm_resource()}
        probe = await manager.launch(S.Probe, agent_workflow_config=config, executor="service")
        placed = await probe.where()  # the agent's own compute job now runs
        host = [j for j in faults.jobs() if j != placed["job"]]
        assert len(host) == 1, (host, placed)
        pending = asyncio.ensure_future(probe.slow_sync(120.0))
        await asyncio.sleep(1.0)
        start = time.monotonic()
        subprocess.run(["scancel", host[0]], check=True, timeout=30)
        with pytest.raises(AgentFailedError) as caught:
            await pending
        detected = time.monotonic() - start
        with pytest.raises(AgentFailedError):
            await probe.ticks_now()
        seen.update(
            detected=detected,
            error=caught.value,
            job=placed["job"],
            gone=faults.wait_job_gone(placed["job"]),
        )
