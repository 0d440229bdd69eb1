"""The hook into site profiles (``chiltepin.sites``), which may be absent."""

from __future__ import annotations

import importlib.util
from typing import Any

from chiltepin.errors import ConfigError


def require_sites() -> None:
    """Raise a clear ConfigError if this installation has no site profiles."""
    try:
        found = importlib.util.find_spec("chiltepin.sites") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            "site profiles are not available: this chiltepin has no chiltepin.sites module",
            key="site",
            hint="pass a resource configuration instead (workflow=... / agent_workflow_config=...)",
        )


def load_site(name: str) -> Any:
    """The site profile ``name``: has ``.exchange`` and ``.resources(include)``."""
    require_sites()
    from chiltepin.sites import load_site as _load_site

    return _load_site(name)
