"""chiltepin: scientific workflows and long-running agents on HPC clusters, in containers.

The public names are loaded lazily so ``import chiltepin`` stays fast and does not import
Parsl, Globus Compute or Academy. Submodules are attributes too (``chiltepin.tasks``), as
in chiltepin 0.1.x, and so are 0.1.7's names for the agent classes (``AgentRuntime`` is
:class:`AgentSystem`, ``Manager`` is :class:`ChiltepinManager`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chiltepin._lazy import lazy_attributes
from chiltepin._version import __version__

if TYPE_CHECKING:
    from chiltepin.agents.decorators import agent_action, agent_loop, chiltepin_agent
    from chiltepin.agents.manager import ChiltepinManager
    from chiltepin.agents.manager import ChiltepinManager as Manager
    from chiltepin.agents.system import AgentSystem
    from chiltepin.agents.system import AgentSystem as AgentRuntime
    from chiltepin.config.source import WorkflowSource
    from chiltepin.workflow import Workflow

#: Public name -> (module, attribute).
_LAZY = {
    "Workflow": ("chiltepin.workflow", "Workflow"),
    "WorkflowSource": ("chiltepin.config.source", "WorkflowSource"),
    "AgentSystem": ("chiltepin.agents.system", "AgentSystem"),
    "AgentRuntime": ("chiltepin.agents.system", "AgentSystem"),
    "ChiltepinManager": ("chiltepin.agents.manager", "ChiltepinManager"),
    "Manager": ("chiltepin.agents.manager", "ChiltepinManager"),
    "chiltepin_agent": ("chiltepin.agents.decorators", "chiltepin_agent"),
    "agent_action": ("chiltepin.agents.decorators", "agent_action"),
    "agent_loop": ("chiltepin.agents.decorators", "agent_loop"),
}

__all__ = [
    "AgentRuntime",
    "AgentSystem",
    "ChiltepinManager",
    "Manager",
    "Workflow",
    "WorkflowSource",
    "__version__",
    "agent_action",
    "agent_loop",
    "chiltepin_agent",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, submodules=True)
