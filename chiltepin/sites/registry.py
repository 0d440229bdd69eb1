"""Find site profiles across layers, merge them, and validate the result."""

from __future__ import annotations

import copy
import fnmatch
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chiltepin.config.loader import Origin, Path_, read_yaml, require_mapping, validate_model
from chiltepin.errors import ConfigError, did_you_mean
from chiltepin.names import check_name, is_valid_name
from chiltepin.sites.paths import layer_dirs
from chiltepin.sites.schema import SiteProfile
from chiltepin.sites.site import Site

#: Files in a profile directory that are not sites.
NOT_SITES = {"template"}
_SITE_NAME_HINT = (
    "a site name is a profile's file name without .yaml (see: chiltepin site list); "
    "to check a file, give its path ending in .yaml"
)


class SiteRegistry:
    """The site profiles visible through the layer directories."""

    def __init__(self, dirs: Iterable[Path] | None = None) -> None:
        self.dirs = [Path(d) for d in (layer_dirs() if dirs is None else dirs)]

    def names(self) -> list[str]:
        found = {
            f.stem
            for d in self.dirs
            if d.is_dir()
            for f in d.glob("*.yaml")
            if f.stem not in NOT_SITES and is_valid_name(f.stem)
        }
        return sorted(found)

    def files(self, name: str) -> list[Path]:
        """The layers' files of site ``name`` (a valid name: it cannot leave the layers)."""
        check_name("site", name, hint=_SITE_NAME_HINT)
        return [d / f"{name}.yaml" for d in self.dirs if (d / f"{name}.yaml").is_file()]

    def load(self, name: str) -> Site:
        files = self.files(name)
        if not files:
            known = self.names()
            raise ConfigError(
                f"unknown site '{name}'",
                hint=(did_you_mean(name, known) or "")
                + f" known sites: {', '.join(known) or 'none'}".lstrip(),
            )
        raw: dict[str, Any] = {}
        origin = Origin(str(files[0]))
        for path in files:
            data, lines = read_yaml(path)
            data = require_mapping(data, str(path), "site profile")
            if _merge_flag(data, str(path), lines):
                if not raw:
                    raise ConfigError(
                        f"profile merges into site '{name}', which no earlier layer defines",
                        source=str(path),
                        key="merge",
                        line=lines.get(("merge",)),
                        hint="remove 'merge: true' to define the whole site here, "
                        f"or name one of: {', '.join(n for n in self.names() if n != name)}",
                    )
                _deep_merge(raw, data, (), origin, str(path), lines)
            else:
                raw = copy.deepcopy(dict(data))
                origin = Origin.of_file(str(path), lines)
        raw.pop("merge", None)
        return build_site(name, raw, origin, [str(f) for f in files])

    def load_file(self, path: str | Path) -> Site:
        """Validate one profile file on its own (or merged, if it says ``merge: true``)."""
        path = Path(path)
        data, lines = read_yaml(path)
        data = require_mapping(data, str(path), "site profile")
        check_name(
            "site",
            path.stem,
            source=str(path),
            hint="a profile file is named <site>.yaml; rename it",
        )
        if _merge_flag(data, str(path), lines):
            base = SiteRegistry([*self.dirs, path.parent])
            return base.load(path.stem)
        raw = dict(data)
        raw.pop("merge", None)
        return build_site(path.stem, raw, Origin.of_file(str(path), lines), [str(path)])

    def detect(self, hostnames: Iterable[str] | None = None) -> str | None:
        """The first site whose ``hostnames`` patterns match this host."""
        hosts = list(hostnames or {socket.gethostname(), socket.getfqdn()})
        for name in self.names():
            for pattern in self.load(name).profile.hostnames:
                if any(fnmatch.fnmatch(h, pattern) for h in hosts):
                    return name
        return None


def _merge_flag(data: Any, source: str, lines: dict[Path_, int]) -> bool:
    merge = data.get("merge", False)
    if not isinstance(merge, bool):
        raise ConfigError(
            "expected bool",
            source=source,
            key="merge",
            line=lines.get(("merge",)),
            hint="use true or false",
        )
    return merge


def build_site(name: str, raw: dict[str, Any], origin: Origin, files: list[str]) -> Site:
    declared = raw.get("name")
    if declared is not None and declared != name:
        source, line = origin.locate(("name",))
        raise ConfigError(
            f"profile says name '{declared}' but its file defines site '{name}'",
            source=source,
            line=line,
            key="name",
            hint=f"rename the file to {declared}.yaml or set name: {name}",
        )
    profile = validate_model(SiteProfile, raw, origin=origin, describe=_describe)
    site = Site(name=name, profile=profile, origin=origin, files=files)
    site.resources()  # every executor must resolve to a valid resource
    return site


def _describe(full: Path_) -> tuple[str | None, str | None, str]:
    if len(full) >= 2 and full[0] == "executors":
        return full[1], ".".join(full[2:]) or None, "executor"
    if not full:
        return None, None, "entry"
    if len(full) == 1:
        return None, full[0], "entry"
    return full[0], ".".join(full[1:]), "section"


def _deep_merge(
    into: dict[str, Any],
    data: dict[str, Any],
    path: Path_,
    origin: Origin,
    source: str,
    lines: dict[Path_, int],
) -> None:
    for key, value in data.items():
        here = (*path, str(key))
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            origin.places[here] = (source, lines.get(here))
            _deep_merge(into[key], value, here, origin, source, lines)
            continue
        into[key] = copy.deepcopy(value)
        for stale in [p for p in origin.places if p[: len(here)] == here]:
            del origin.places[stale]
        for sub, line in lines.items():
            if sub[: len(here)] == here:
                origin.places[sub] = (source, line)
