"""The hook into site profiles (``chiltepin.sites``), which may be absent.

Kept for the agent modules that import it; the one implementation is in
:mod:`chiltepin.config.source`.
"""

from __future__ import annotations

from chiltepin.config.source import load_site_profile as load_site
from chiltepin.config.source import require_sites

__all__ = ["load_site", "require_sites"]
