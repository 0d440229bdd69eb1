"""chiltepin 0.1.7's module name for :class:`~chiltepin.agents.system.AgentSystem`.

``AgentRuntime`` *is* ``AgentSystem`` (one implementation, two names). Loaded on first
use: importing this module imports neither Academy nor Parsl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chiltepin.agents.system import AgentSystem
    from chiltepin.agents.system import AgentSystem as AgentRuntime

__all__ = ["AgentRuntime", "AgentSystem"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from chiltepin.agents.system import AgentSystem

    globals().update(AgentRuntime=AgentSystem, AgentSystem=AgentSystem)
    return AgentSystem
