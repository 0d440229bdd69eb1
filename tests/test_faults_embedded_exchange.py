"""An AgentSystem's embedded exchange killed mid-action, for real (local executors): the
pending call and later ones fail at once with an error that names the agent and says
the exchange died; closing the manager then takes bounded time, and the workflow, the
agent and its workers are gone after. (Its own module: one Workflow per process.)"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from helpers import agents as S
from helpers import processes as P

from chiltepin import AgentSystem, Workflow
from chiltepin.errors import ExchangeError

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICE = {
    "service": {
        "provider": "localhost",
        "max_workers_per_node": 2,
        "cores_per_worker": 0.25,
        "init_blocks": 1,
    }
}
IDLE = {"compute": {"provider": "localhost", "init_blocks": 0}}


async def test_a_killed_embedded_exchange_fails_pending_and_later_calls(tmp_path, caplog):
    workflow = Workflow(SERVICE, include=["service"], run_dir=tmp_path / "manager-run")
    workflow.start()
    seen: dict = {}
    try:
        try:
            async with await AgentSystem(workflow, ["service"]).manager() as manager:
                await _kill_exchange_mid_action(manager, tmp_path, seen)
                seen["closing"] = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - what the agent died of, reported at close
            seen["close_error"] = f"{type(exc).__name__}: {exc}"
        seen["closed"] = time.monotonic() - seen["closing"]
    finally:
        workflow.cleanup()
    left = P.wait_until_gone(P.processes_under, tmp_path, timeout=60)
    print(
        f"\nembedded exchange SIGKILLed: pending call failed after {seen['detected']:.1f} s, "
        f"a later one after {seen['later']:.2f} s, the manager closed in {seen['closed']:.1f} s"
    )
    assert "agent Probe" in seen["error"] and "died (signal 9)" in seen["error"], seen["error"]
    assert left == [], left
    clients = ("academy.exchange.cloud.client", "academy.logging.helpers")
    tracebacks = [r for r in caplog.records if r.exc_info and r.name in clients]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


async def _kill_exchange_mid_action(manager, tmp_path, seen: dict) -> None:
    probe = await manager.launch(
        S.Probe,
        agent_workflow_config=IDLE,
        agent_workflow_run_dir=str(tmp_path / "agent-run"),
        executor="service",
    )
    assert await probe.ticks_now() >= 0
    pending = asyncio.ensure_future(probe.slow_sync(120.0))
    await asyncio.sleep(1.0)
    (server,) = P.exchange_servers()
    start = time.monotonic()
    os.kill(server.pid, signal.SIGKILL)
    with pytest.raises(ExchangeError) as caught:
        await pending
    seen["detected"] = time.monotonic() - start
    seen["error"] = str(caught.value)
    start = time.monotonic()
    with pytest.raises(ExchangeError):
        await probe.ticks_now()
    seen["later"] = time.monotonic() - start
