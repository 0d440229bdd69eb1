"""chiltepin 0.1.7's module name for :class:`~chiltepin.agents.manager.ChiltepinManager`.

``Manager`` *is* ``ChiltepinManager`` (one implementation, two names). Loaded on first
use: importing this module does not import Academy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chiltepin.agents.manager import ChiltepinManager
    from chiltepin.agents.manager import ChiltepinManager as Manager

__all__ = ["ChiltepinManager", "Manager"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from chiltepin.agents.manager import ChiltepinManager

    globals().update(ChiltepinManager=ChiltepinManager, Manager=ChiltepinManager)
    return ChiltepinManager
