"""A validated site: its executors resolved into resources, with where each value came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chiltepin.config.loader import Origin, validate_model
from chiltepin.config.resources import BUILTIN_LOCAL, LOCAL_NAME, select
from chiltepin.config.schema import ExchangeSettings, Resource, inapplicable
from chiltepin.sites.schema import SiteProfile

#: Where a resolved value came from: (description, file, line).
Provenance = tuple[str, str | None, int | None]


@dataclass
class Site:
    name: str
    profile: SiteProfile
    origin: Origin
    files: list[str]

    @property
    def exchange(self) -> ExchangeSettings:
        return self.profile.exchange or ExchangeSettings()

    @property
    def executor_names(self) -> list[str]:
        return list(self.profile.executors)

    def resources(self, include: Iterable[str] | None = None) -> dict[str, Resource]:
        """Every executor (plus the built-in ``local``) as a validated resource."""
        resources = {LOCAL_NAME: Resource.model_validate(BUILTIN_LOCAL)}
        for name in self.profile.executors:
            resources[name] = self.resolve(name)[0]
        return select(resources, include, f"site '{self.name}'")

    def resolve(self, name: str) -> tuple[Resource, dict[str, Provenance]]:
        """One executor with the site defaults applied, and each value's provenance."""
        spec = self.profile.executors[name]
        given = spec.model_dump(exclude_none=True, exclude={"container"})
        provider = given.get("provider", self.profile.scheduler)
        mpi = given.get("mpi", False)
        values: dict[str, Any] = {"provider": provider}
        where: dict[str, Provenance] = {
            "provider": self._here(("executors", name, "provider"))
            if "provider" in given
            else self._here(("scheduler",), "scheduler")
        }
        defaults = self.profile.defaults.model_dump(exclude_none=True)
        for key, value in defaults.items():
            # A site-wide default reaches only the executors it means something to.
            if inapplicable(key, provider, mpi) is None:
                values[key] = value
                where[key] = self._here(("defaults", key), "defaults")
        for key, value in given.items():
            if key == "environment" and "environment" in values:
                value = [*values["environment"], *value]
            values[key] = value
            where[key] = self._here(("executors", name, key))
        # An executor's own address or interface replaces the defaults' other one.
        for key, other in (("address", "interface"), ("interface", "address")):
            if key in given and other not in given:
                values.pop(other, None)
                where.pop(other, None)
        container = self._container(name, spec.container)
        if container is not None:
            values["container"] = container
            path = ("executors", name, "container") if spec.container else ("container",)
            where["container"] = self._here(path, "container")
        places = {(key,): (prov[1] or self.origin.source, prov[2]) for key, prov in where.items()}
        resource = validate_model(
            Resource,
            values,
            origin=Origin(self.origin.source, places),
            entry=name,
            entry_kind="executor",
        )
        for key in Resource.model_fields:
            if key not in resource.model_fields_set:  # unset, or ignored as inapplicable
                where[key] = ("built-in default", None, None)
        return resource, where

    def _container(self, name: str, override: Any) -> dict[str, Any] | None:
        if override is False or self.profile.container is None and override is None:
            return None
        base = self.profile.container.model_dump() if self.profile.container else {}
        if override is not None:
            base.update(override.model_dump(exclude_none=True))
        return base

    def _here(self, path: tuple[str, ...], label: str | None = None) -> Provenance:
        source, line = self.origin.locate(path)
        if label is None:
            label = ".".join(path)
        return label, source, line
