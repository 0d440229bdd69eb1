"""Where site profiles are looked up, in layer order (later layers win)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SITE_PATH_ENV = "CHILTEPIN_SITE_PATH"


def shipped_dir() -> Path:
    """The profiles shipped with the toolkit (source checkout, else the install's share/)."""
    checkout = Path(__file__).resolve().parents[2] / "site_configs"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "chiltepin" / "site_configs"


def user_dir() -> Path:
    """The user's own profiles and overrides."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "chiltepin" / "sites"


def layer_dirs() -> list[Path]:
    """Shipped profiles, then each directory of $CHILTEPIN_SITE_PATH, then the user's."""
    extra = [Path(p) for p in os.environ.get(SITE_PATH_ENV, "").split(os.pathsep) if p]
    return [shipped_dir(), *extra, user_dir()]
