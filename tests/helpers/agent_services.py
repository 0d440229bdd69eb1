"""Agents for the agent-service tests (``chiltepin agent ...``).

The classes live in an importable module: ``chiltepin agent serve`` imports them by name
and the agents' Parsl workers unpickle them by reference.
"""

from __future__ import annotations

import asyncio
import os

from chiltepin.agents import agent_action, agent_loop, chiltepin_agent
from chiltepin.tasks import python_task


@chiltepin_agent()
class Counter:
    """A counter kept by a long-lived agent."""

    def __init__(self, start: int = 0, label: str = "counter"):
        self.count = start
        self.label = label
        self.ticks = 0

    @agent_action
    async def increment(self, by: int = 1) -> int:
        self.count += by
        return self.count

    @agent_action
    def describe(self) -> dict:
        """A sync action: runs in a thread."""
        return {
            "label": self.label,
            "count": self.count,
            "greeting": os.environ.get("COUNTER_GREETING"),
        }

    @agent_action
    async def ticks_now(self) -> int:
        return self.ticks

    @agent_action
    async def pid(self) -> int:
        return os.getpid()

    @agent_action
    async def fail(self, message: str) -> None:
        raise ValueError(message)

    @agent_action
    @python_task
    def square(self, x: int) -> dict:
        """A task action: runs on a worker of the agent's own workflow."""
        import os

        return {"square": x * x, "pid": os.getpid()}

    @agent_loop
    async def tick(self, shutdown):
        while not shutdown.is_set():
            await asyncio.sleep(0.1)
            self.ticks += 1


class NotAnAgent:
    """Undecorated: cannot be served."""

    async def run(self) -> None: ...


@chiltepin_agent()
class Remembers:
    """Keeps what it is told in its service's named state (survives a restart)."""

    def __init__(self):
        from chiltepin.agents import agent_state

        self.store = agent_state("memory")

    @agent_action
    async def remember(self, key: str, value: int) -> int:
        self.store[key] = value
        self.store.sync()
        return len(self.store)

    @agent_action
    async def recall(self, key: str) -> int | None:
        return self.store.get(key)

    @agent_action
    async def pid(self) -> int:
        return os.getpid()
