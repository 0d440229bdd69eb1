"""chiltepin 0.1.7's module name for :class:`~chiltepin.agents.system.AgentSystem`.

``AgentRuntime`` *is* ``AgentSystem`` (one implementation, two names). Loaded on first
use: importing this module imports neither Academy nor Parsl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chiltepin._lazy import lazy_attributes

if TYPE_CHECKING:
    from chiltepin.agents.system import AgentSystem
    from chiltepin.agents.system import AgentSystem as AgentRuntime

__all__ = ["AgentRuntime", "AgentSystem"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "AgentRuntime": ("chiltepin.agents.system", "AgentSystem"),
        "AgentSystem": ("chiltepin.agents.system", "AgentSystem"),
    },
)
