"""A temperature-forecasting agent on this machine (the agents guide's complete example).

The agent runs on the site profile's ``service`` executor and starts its own workflow,
whose ``compute`` executor runs the forecast tasks. On the default ``local`` profile both
are local processes; on a cluster, name its profile:

    python examples/agents/temperature_forecast.py [--site testcluster]

Needs no network: agents and this script talk through an exchange server that the agent
system starts on loopback and stops at the end.
"""

from __future__ import annotations

import asyncio

from chiltepin import AgentSystem, Workflow
from chiltepin.agents import agent_action, agent_loop, chiltepin_agent
from chiltepin.tasks import python_task


@chiltepin_agent(agent_workflow_include=["compute"])
class TemperatureModel:
    """Agent that forecasts temperature with background updates."""

    def __init__(self, initial_temp: float, location: str):
        self.temperature = initial_temp
        self.location = location
        self.forecast_count = 0

    @python_task
    def make_forecast(self) -> str:
        """Generate forecast using current temperature (a task: runs on a worker)."""
        import random

        conditions = ["sunny", "cloudy", "rainy", "snowy"]
        condition = random.choice(conditions)
        return f"{self.location}: {condition}, {self.temperature:.1f}°C"

    @agent_action
    async def forecast(self, executor: str | list[str] = "compute") -> str:
        """Run the forecast task on ``executor`` and count it.

        The task runs on a worker with a copy of ``self``, so it cannot count itself:
        the agent counts here, once the task's result is back.
        """
        import asyncio

        result = await asyncio.wrap_future(self.make_forecast(executor=executor))
        self.forecast_count += 1
        return result

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


async def main(site: str) -> None:
    # Where agents run: the site's "service" executor (one worker per running agent).
    workflow = Workflow(site=site, include=["service"])
    workflow.start()
    try:
        agent_system = AgentSystem(workflow=workflow, executor_names=["service"])

        async with await agent_system.manager() as manager:
            # Where the agent's tasks run: the site's "compute" executor, in a workflow
            # the agent starts itself.
            model = await manager.launch(
                TemperatureModel,
                site=site,
                agent_workflow_include=["compute"],
                args=(20.0, "Boulder, CO"),
                executor="service",
            )

            stats = await model.get_stats()
            print(f"Initial stats: {stats}")

            forecast = await model.forecast(executor=["compute"])
            print(f"Forecast: {forecast}")

            await asyncio.sleep(5)  # the agent's loop moves the temperature meanwhile
            stats = await model.get_stats()
            print(f"Updated stats: {stats}")

            await model.set_temperature(25.0)
            forecast = await model.forecast(executor=["compute"])
            print(f"New forecast: {forecast}")
            stats = await model.get_stats()
            print(f"Final stats: {stats}")
    finally:
        workflow.cleanup()
    print("Done!")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Temperature forecasting agent")
    parser.add_argument("--site", default="local", help="site profile (default: local)")
    asyncio.run(main(parser.parse_args().site))
