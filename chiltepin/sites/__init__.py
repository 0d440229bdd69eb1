"""Site profiles: named cluster descriptions in ``site_configs/`` and override layers."""

from __future__ import annotations

from collections.abc import Iterable

from chiltepin.config.schema import Resource
from chiltepin.sites.registry import SiteRegistry
from chiltepin.sites.site import Site

__all__ = ["Site", "SiteRegistry", "load_site", "site_resources"]


def load_site(name: str) -> Site:
    """The named site, merged across layers and validated (raises ConfigError)."""
    return SiteRegistry().load(name)


def site_resources(name: str, include: Iterable[str] | None = None) -> dict[str, Resource]:
    return load_site(name).resources(include)
