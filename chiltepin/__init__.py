"""chiltepin: scientific workflows and long-running agents on HPC clusters, in containers.

The public names are loaded lazily so ``import chiltepin`` stays fast and does not import
Parsl, Globus Compute or Academy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chiltepin._version import __version__

if TYPE_CHECKING:
    from chiltepin.agents import AgentSystem
    from chiltepin.workflow import Workflow

_LAZY = {
    "Workflow": "chiltepin.workflow",
    "AgentSystem": "chiltepin.agents",
}

__all__ = ["AgentSystem", "Workflow", "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chiltepin' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
