"""Module attributes imported on first use (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    module: str, names: Mapping[str, tuple[str, str]], *, submodules: bool = False
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``module``: ``names`` maps each public name to
    ``(module, attribute)``; with ``submodules``, ``module.<submodule>`` works too. Each
    value is imported once, then kept in the module's globals."""

    def __getattr__(name: str) -> Any:
        if name in names:
            source, attr = names[name]
            value = getattr(importlib.import_module(source), attr)
        elif (
            submodules and not name.startswith("_") and importlib.util.find_spec(f"{module}.{name}")
        ):
            value = importlib.import_module(f"{module}.{name}")
        else:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        vars(sys.modules[module])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[module])) | set(names))

    return __getattr__, __dir__
