"""The agents guide's examples, as written there (WeatherModel, DataProcessor, Computer,
Monitor, TypedAgent); its complete example, TemperatureModel, is temperature_forecast.py.

The tests launch these classes from here, so what the guide shows is what is tested.
Agents are unpickled by reference where they run: this directory must be importable
there (on ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio
from typing import List  # noqa: UP035 - as written in the guide

from temperature_forecast import TemperatureModel

from chiltepin.agents import agent_action, agent_loop, chiltepin_agent
from chiltepin.tasks import python_task

__all__ = ["Computer", "DataProcessor", "Monitor", "TemperatureModel", "TypedAgent", "WeatherModel"]


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
