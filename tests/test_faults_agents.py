"""Faults inside and around agents, for real: an agent's workflow on the Slurm cluster
that cannot submit, calls that time out, and agents whose host process dies.

The manager's workflow runs agents on this machine (``localhost``); the agents' own
workflows submit to the loopback Slurm cluster.
"""

from __future__ import annotations

import time

import pytest
import pytest_asyncio
from helpers import agents as S
from helpers import faults
from helpers import processes as P
from helpers.agents import launched

from chiltepin import AgentSystem, Workflow
from chiltepin.errors import ActionFailed

pytestmark = pytest.mark.asyncio(loop_scope="module")

MANAGER_CONFIG = {
    "service": {
        "provider": "localhost",
        "max_workers_per_node": 4,
        "cores_per_worker": 0.25,
        "init_blocks": 1,
        **faults.FAST,
    },
}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory, slurm_cluster):
    root = tmp_path_factory.mktemp("fault-agents")
    workflow = Workflow(MANAGER_CONFIG, include=["service"], run_dir=root / "manager-run")
    workflow.start()
    try:
        yield workflow
    finally:
        workflow.cleanup()
    left = P.wait_until_gone(P.processes_under, root)
    assert left == [], f"processes left behind: {left}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def manager(workflow):
    async with await AgentSystem(workflow, ["service"]).manager() as manager:
        yield manager


async def test_refused_submission_reaches_the_caller_with_the_scheduler_message(manager, slurm):
    config = {"compute": faults.slurm_resource(partition="nosuch")}
    async with launched(manager, S.Probe, agent_workflow_config=config) as probe:
        start = time.monotonic()
        with pytest.raises(ActionFailed) as caught:
            await probe.where()
        seen = time.monotonic() - start
    message = str(caught.value)
    print(f"\nrefused submission reached the caller after {seen:.1f} s: {message[:300]}")
    assert "invalid partition" in message.lower(), message
    assert "Serializ" not in message, message
