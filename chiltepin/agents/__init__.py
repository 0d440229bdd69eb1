"""Long-running agents (Academy) that run their own Parsl workflows.

Write a plain class, decorate it, and launch it through an :class:`AgentSystem`::

    from chiltepin.agents import chiltepin_agent, agent_action, agent_loop

    @chiltepin_agent(agent_workflow_include=["compute"])
    class Model:
        @agent_action
        @python_task
        def forecast(self) -> str: ...

    async with await AgentSystem(workflow, ["service"]).manager() as manager:
        model = await manager.launch(Model, agent_workflow_config=cfg, executor="service")
        print(await model.forecast())

Names are imported on first use; importing this package does not import Parsl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chiltepin._lazy import lazy_attributes

if TYPE_CHECKING:
    from chiltepin.agents.behaviour import ChiltepinAgent
    from chiltepin.agents.decorators import agent_action, agent_loop, chiltepin_agent
    from chiltepin.agents.errors import AgentFailedError, NoFreeWorkerError
    from chiltepin.agents.exchange import EmbeddedExchange
    from chiltepin.agents.handle import AgentHandle
    from chiltepin.agents.manager import ChiltepinManager
    from chiltepin.agents.state import agent_state
    from chiltepin.agents.system import AgentSystem

_LAZY = {
    "agent_action": ("chiltepin.agents.decorators", "agent_action"),
    "agent_loop": ("chiltepin.agents.decorators", "agent_loop"),
    "agent_state": ("chiltepin.agents.state", "agent_state"),
    "chiltepin_agent": ("chiltepin.agents.decorators", "chiltepin_agent"),
    "AgentFailedError": ("chiltepin.agents.errors", "AgentFailedError"),
    "AgentHandle": ("chiltepin.agents.handle", "AgentHandle"),
    "AgentSystem": ("chiltepin.agents.system", "AgentSystem"),
    "ChiltepinAgent": ("chiltepin.agents.behaviour", "ChiltepinAgent"),
    "ChiltepinManager": ("chiltepin.agents.manager", "ChiltepinManager"),
    "EmbeddedExchange": ("chiltepin.agents.exchange", "EmbeddedExchange"),
    "NoFreeWorkerError": ("chiltepin.agents.errors", "NoFreeWorkerError"),
}

__all__ = [
    "AgentFailedError",
    "AgentHandle",
    "AgentSystem",
    "ChiltepinAgent",
    "ChiltepinManager",
    "EmbeddedExchange",
    "NoFreeWorkerError",
    "agent_action",
    "agent_loop",
    "agent_state",
    "chiltepin_agent",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
