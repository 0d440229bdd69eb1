"""Agent classes for the agent tests.

They live in an importable module because Parsl workers unpickle them by reference: the
test process must put this directory on the workers' PYTHONPATH. The first six are the
agents guide's examples, as written there.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import List  # noqa: UP035 - as written in the guide

from chiltepin.agents import agent_action, agent_loop, chiltepin_agent
from chiltepin.tasks import bash_task, python_task

# --- the guide's examples ---------------------------------------------------------------


@chiltepin_agent(agent_workflow_include=["compute"])
class WeatherModel:
    """A simple weather model agent."""

    def __init__(self, temperature: float):
        self.temperature = temperature

    @agent_action
    @python_task
    def forecast(self) -> str:
        """Generate a forecast based on current temperature."""
        import random

        conditions = ["sunny", "cloudy", "rainy"]
        return f"{random.choice(conditions)} at {self.temperature}°C"

    @agent_action
    async def get_temperature(self) -> float:
        """Get the current temperature."""
        return self.temperature

    @agent_loop
    async def update_temperature(self, shutdown):
        """Background agent_loop that updates temperature."""
        import asyncio
        import random

        while not shutdown.is_set():
            await asyncio.sleep(1)
            self.temperature += random.uniform(-2, 2)


@chiltepin_agent()
class DataProcessor:
    @python_task
    @agent_action
    def process_data(self, data: str) -> str:
        """Synchronous task-decorated method."""
        return data.upper()

    @agent_action
    def get_config(self) -> dict:
        """Synchronous helper method."""
        return {"version": "1.0"}


@chiltepin_agent()
class Computer:
    @python_task
    @agent_action
    def compute(self, x: int) -> int:
        return x**2


@chiltepin_agent()
class Monitor:
    def __init__(self):
        self.status = "initializing"
        self.count = 0

    @agent_loop
    async def heartbeat(self, shutdown: asyncio.Event):
        """Background agent_loop that runs until agent shuts down."""
        self.status = "running"
        while not shutdown.is_set():
            await asyncio.sleep(1)
            self.count += 1
            if self.count % 10 == 0:
                print(f"Heartbeat: {self.count}")
        self.status = "stopped"


@chiltepin_agent()
class TypedAgent:
    def __init__(self, values: List[float]):  # noqa: UP006 - as written in the guide
        self.values = values

    @agent_action
    @python_task
    def mean(self) -> float:
        return sum(self.values) / len(self.values)


@chiltepin_agent(agent_workflow_include=["compute"])
class TemperatureModel:
    """Agent that forecasts temperature with background updates."""

    def __init__(self, initial_temp: float, location: str):
        self.temperature = initial_temp
        self.location = location
        self.forecast_count = 0

    @agent_action
    @python_task
    def forecast(self) -> str:
        """Generate forecast using current temperature."""
        import random

        conditions = ["sunny", "cloudy", "rainy", "snowy"]
        condition = random.choice(conditions)
        return f"{self.location}: {condition}, {self.temperature:.1f}°C"

    @agent_action
    async def get_stats(self) -> dict:
        """Get current statistics."""
        return {
            "temperature": self.temperature,
            "location": self.location,
            "forecasts_generated": self.forecast_count,
        }

    @agent_action
    async def set_temperature(self, temp: float) -> None:
        """Manually update temperature."""
        self.temperature = temp

    @agent_loop
    async def update_temperature(self, shutdown: asyncio.Event):
        """Simulate temperature changes."""
        import asyncio
        import random

        while not shutdown.is_set():
            await asyncio.sleep(2)
            # Random walk
            self.temperature += random.uniform(-1, 1)
            # Keep reasonable bounds
            self.temperature = max(-50, min(50, self.temperature))


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
        from agents_support import whereabouts

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


# --- process checks for the tests ----------------------------------------------------------


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


def processes_under(root) -> list:
    """Live Parsl processes (interchanges, worker pools) that work in directory ``root``.

    Worker pools name their log directory on the command line; an interchange keeps its
    log open. Other people's Parsl processes on this machine are not counted.
    """
    import psutil

    root = str(root)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "process_worker_pool" in cmdline and root in cmdline:
                found.append(proc)
            elif "interchange" in cmdline and any(
                f.path.startswith(root) for f in proc.open_files()
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def exchange_servers() -> list:
    """Embedded exchange servers started by this process."""
    import psutil

    mine = f"--parent-pid {os.getpid()}"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (
            "chiltepin.agents._exchange_server" in cmdline
            and mine in cmdline
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def wait_until_gone(find, *args, timeout: float = 30.0) -> list:
    """Poll ``find(*args)`` until it returns nothing; return what is left at the deadline."""
    deadline = time.monotonic() + timeout
    left = find(*args)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = find(*args)
    import psutil

    described = []
    for proc in left:
        try:
            described.append(f"{proc.pid}: {' '.join(proc.cmdline())}")
        except psutil.Error:
            continue  # it has just gone
    return described
