"""The tests' own agents, and helpers to launch and check agents.

They live in an importable module because Parsl workers unpickle them by reference (the
tests directory is on the workers' PYTHONPATH). The guide's examples are in
``examples/agents/guide_agents.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time

from chiltepin.agents import agent_action, agent_loop, chiltepin_agent
from chiltepin.tasks import bash_task, python_task

# --- agents for the tests' own checks --------------------------------------------------


class ProbeBase:
    """Undecorated base: its marked methods become actions of decorated subclasses."""

    @agent_action
    async def pid(self) -> int:
        return os.getpid()

    @agent_action
    async def placement(self) -> dict:
        """Where the agent itself runs (its Slurm job, if any)."""
        return whereabouts()


@chiltepin_agent(agent_workflow_include=["compute"])
class Probe(ProbeBase):
    """Sync, async, task and bash actions, failures, and a loop that ticks."""

    def __init__(self, tick: float = 0.05):
        self.tick = tick
        self.ticks = 0

    @agent_action
    def slow_sync(self, seconds: float) -> float:
        """Blocks its thread, not the agent."""
        start = time.monotonic()
        time.sleep(seconds)
        return time.monotonic() - start

    @agent_action
    async def ticks_now(self) -> int:
        return self.ticks

    @agent_action
    def fail_sync(self, message: str) -> None:
        raise ValueError(message)

    @agent_action
    async def fail_async(self, message: str) -> None:
        raise KeyError(message)

    @agent_action
    @python_task
    def fail_task(self, message: str) -> None:
        raise RuntimeError(message)

    @python_task
    @agent_action
    def where(self) -> dict:
        """Runs on a task worker: not the agent's process."""
        from helpers.agents import whereabouts

        return {**whereabouts(), "tick": self.tick}

    @agent_action
    @bash_task
    def touch(self, path: str) -> str:
        return f"touch {path}"

    @agent_action
    async def via_task(self, x: int) -> dict:
        """An async action that submits a task of this agent and awaits it."""
        import asyncio

        info = await asyncio.wrap_future(self.where(executor="compute"))
        return {"x": x + 1, "task_pid": info["pid"]}

    @agent_loop
    async def ticker(self, shutdown):
        while not shutdown.is_set():
            await asyncio.sleep(self.tick)
            self.ticks += 1


def whereabouts() -> dict:
    """Where this process runs: pid, Slurm job and partition, and the container image's
    marker (None on the host; containers/Dockerfile writes /opt/chiltepin/IMAGE)."""
    marker = "/opt/chiltepin/IMAGE"
    return {
        "pid": os.getpid(),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "node": os.environ.get("SLURMD_NODENAME"),
        "job": os.environ.get("SLURM_JOB_ID"),
        "image": open(marker).read().strip() if os.path.exists(marker) else None,
    }


# --- launching and checking ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def launched(manager, cls, **kwargs):
    """Launch an agent on the service executor; stop it (and check it stopped cleanly)."""
    kwargs.setdefault("executor", "service")
    handle = await manager.launch(cls, **kwargs)
    try:
        yield handle
    finally:
        await manager.shutdown(handle, raise_error=True, timeout=120)


async def eventually(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def check_weather_model(model) -> dict:
    """The guide's WeatherModel behaves as documented; returns its workflow info."""
    temperature = await model.get_temperature()
    assert isinstance(temperature, float) and abs(temperature - 25.0) < 10
    forecast = await model.forecast(executor=["compute"])
    assert re.fullmatch(r"(sunny|cloudy|rainy) at -?[\d.]+°C", forecast), forecast

    async def loop_moved_it():
        return await model.get_temperature() != temperature

    await eventually(loop_moved_it)
    info = await model.agent_workflow_info()
    assert info["executors"] == ["compute"]
    return info
