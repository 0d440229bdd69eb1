"""The site profile schema: a cluster's scheduler, defaults, executors, container, exchange.

Executor entries and site-wide defaults take the same keys as a resource (see
:mod:`chiltepin.config.schema`); they are checked key by key here and as a whole once
an executor has inherited the defaults.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from chiltepin.config.schema import (
    NAME_RE,
    SCHEMA_URL,
    ContainerSettings,
    EndpointSettings,
    ExchangeSettings,
    Provider,
    Resource,
)


def _partial(model: type[BaseModel], name: str, drop: tuple[str, ...] = ()) -> type[BaseModel]:
    """A model with ``model``'s fields, each optional, and none of its cross-key checks."""
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        if key in drop:
            continue
        info = copy.copy(info)
        info.default = None
        info.default_factory = None
        fields[key] = (info.annotation | None, info)
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid", strict=True),
        __doc__=f"Any subset of the keys of {model.__name__}.",
        **fields,
    )


ContainerOverride = _partial(ContainerSettings, "ContainerOverride")
SiteDefaults = _partial(Resource, "SiteDefaults", drop=("provider", "mpi", "container"))
_ExecutorBase = _partial(Resource, "ExecutorBase", drop=("container",))


class ExecutorSpec(_ExecutorBase):  # type: ignore[misc, valid-type]
    """One executor of a site: resource keys, plus a container override or opt-out."""

    container: Literal[False] | ContainerOverride | None = Field(  # type: ignore[valid-type]
        default=None,
        description="false: run this executor's workers on the host; a mapping: override "
        "keys of the site's container",
    )


class SiteProfile(BaseModel):
    """One cluster. A file in a later layer with ``merge: true`` deep-merges into it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, pattern=NAME_RE.pattern)
    description: str = ""
    merge: bool = Field(default=False, description="Deep-merge into the same site's profile")
    hostnames: list[str] = Field(
        default_factory=list, description="Shell patterns of login/compute node host names"
    )
    scheduler: Provider = "slurm"
    defaults: SiteDefaults = Field(default_factory=SiteDefaults)  # type: ignore[valid-type]
    container: ContainerSettings | None = None
    exchange: ExchangeSettings | None = None
    endpoint: EndpointSettings | None = Field(
        default=None, description="Globus Compute endpoints made from this profile"
    )
    executors: dict[str, ExecutorSpec] = Field(min_length=1)


def profile_json_schema() -> dict[str, Any]:
    """JSON Schema of a site profile file (published as site_configs/schema.json)."""
    schema = SiteProfile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_URL + "site_configs/schema.json"
    schema["title"] = "chiltepin site profile"
    schema["properties"]["executors"]["propertyNames"] = {"pattern": NAME_RE.pattern}
    return schema
