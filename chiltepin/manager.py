"""chiltepin 0.1.7's module name for :class:`~chiltepin.agents.manager.ChiltepinManager`.

``Manager`` *is* ``ChiltepinManager`` (one implementation, two names). Loaded on first
use: importing this module does not import Academy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chiltepin._lazy import lazy_attributes

if TYPE_CHECKING:
    from chiltepin.agents.manager import ChiltepinManager
    from chiltepin.agents.manager import ChiltepinManager as Manager

__all__ = ["Manager", "ChiltepinManager"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Manager": ("chiltepin.agents.manager", "ChiltepinManager"),
        "ChiltepinManager": ("chiltepin.agents.manager", "ChiltepinManager"),
    },
)
