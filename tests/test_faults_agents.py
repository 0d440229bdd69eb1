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
from chiltepin.errors import ActionFailed, ActionTimeout, PreflightError

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
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # agents' default run directories land here, not in the checkout
        dfk = workflow.start()
        try:
            # The pool is up before any test's leftover check counts processes.
            assert P.wait_for(dfk.executors["service"].connected_managers, timeout=60)
            yield workflow
        finally:
            workflow.cleanup()
    left = P.wait_until_gone(P.processes_under, root)
    assert left == [], f"processes left behind: {left}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def manager(workflow):
    async with await AgentSystem(workflow, ["service"]).manager() as manager:
        yield manager


async def test_preflight_error_reaches_the_caller_with_the_valid_partitions(workflow, slurm):
    """The agent's workflow is checked against the live scheduler before it submits: the
    caller gets that PreflightError whole (file, executor, key, what Slurm has)."""
    config = {"compute": faults.slurm_resource(partition="nosuch")}
    seen: dict = {}
    # The agent stops with that error: closing its manager re-raises it, as in Academy.
    with pytest.raises(PreflightError):
        async with await AgentSystem(workflow, ["service"]).manager() as manager:
            handle = await manager.launch(S.Probe, agent_workflow_config=config, executor="service")
            try:
                seen["call"] = await handle.where()
            except PreflightError as exc:
                seen["call"] = exc
    error = seen["call"]
    assert isinstance(error, PreflightError), error
    message = str(error)
    print(f"\npreflight reached the caller: {message[:300]}")
    assert "executor 'compute'" in message and "key 'partition'" in message, message
    assert error.problems[0].key == "partition"
    assert "compute" in (error.problems[0].hint or ""), message  # the partitions Slurm has


async def test_refused_submission_reaches_the_caller_with_the_scheduler_message(manager, slurm):
    # preflight: false, so that sbatch itself refuses the job
    config = {"compute": faults.slurm_resource(partition="nosuch", preflight=False)}
    async with launched(manager, S.Probe, agent_workflow_config=config) as probe:
        start = time.monotonic()
        with pytest.raises(ActionFailed) as caught:
            await probe.where()
        seen = time.monotonic() - start
    message = str(caught.value)
    print(f"\nrefused submission reached the caller after {seen:.1f} s: {message[:300]}")
    assert "invalid partition" in message.lower(), message
    assert "Serializ" not in message, message


async def test_action_timeout_per_handle(manager, slurm):
    config = {"compute": faults.slurm_resource()}
    async with launched(manager, S.Probe, agent_workflow_config=config) as probe:
        assert probe.action_timeout == 3600.0  # the default: no call waits forever
        start = time.monotonic()
        with pytest.raises(ActionTimeout) as caught:
            # Well past the timeout, yet short: the agent's shutdown waits for the thread.
            await probe.with_timeout(1.0).slow_sync(5.0)
        waited = time.monotonic() - start
        assert await probe.with_timeout(60).ticks_now() >= 0  # the agent still answers
    print(f"\naction timed out after {waited:.1f} s: {caught.value}")
    assert "slow_sync" in str(caught.value) and "1 s" in str(caught.value)
