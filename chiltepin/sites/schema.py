"""The site profile schema: a cluster's scheduler, defaults, executors, container, exchange.

Executor entries and site-wide defaults take the same keys as a resource (see
:mod:`chiltepin.config.schema`); they are checked key by key here and as a whole once
an executor has inherited the defaults.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from chiltepin import names
from chiltepin.config.schema import (
    SCHEMA_URL,
    ContainerSettings,
    EndpointSettings,
    ExchangeSettings,
    Provider,
    Resource,
    _KeyProblem,
    drop_blank,
)
from chiltepin.schedulers import SlurmScheduler


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
        __base__=_PartialBase,
        __doc__=f"Any subset of the keys of {model.__name__}.",
        **fields,
    )


class _PartialBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # As for a resource: an empty account, partition or queue means none (0.1.x).
        return drop_blank(data) if isinstance(data, dict) else data


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

    name: str | None = Field(
        default=None, pattern=names.NAME_PATTERN, max_length=names.NAME_MAX_LENGTH
    )
    description: str = ""
    merge: bool = Field(default=False, description="Deep-merge into the same site's profile")
    hostnames: list[str] = Field(
        default_factory=list, description="Shell patterns of login/compute node host names"
    )
    scheduler: Provider = SlurmScheduler.name
    defaults: SiteDefaults = Field(default_factory=SiteDefaults)  # type: ignore[valid-type]
    container: ContainerSettings | None = None
    exchange: ExchangeSettings | None = None
    run_dirs: Literal["private", "group"] = Field(
        default="private",
        description="Who may read run directories, logs and scripts: private (the user "
        "only: 0700 directories, 0600 files) or group (also the user's group: 0750/0640)",
    )
    endpoint: EndpointSettings | None = Field(
        default=None, description="Globus Compute endpoints made from this profile"
    )
    executors: dict[str, ExecutorSpec] = Field(min_length=1)

    @field_validator("executors", mode="before")
    @classmethod
    def _executor_names(cls, value: Any) -> Any:
        # Names become executor labels and values in generated endpoint templates.
        for name in value if isinstance(value, dict) else ():
            if not names.is_valid_name(name):
                raise _KeyProblem(str(name), "invalid executor name", names.NAME_HINT)
        return value


def profile_json_schema() -> dict[str, Any]:
    """JSON Schema of a site profile file (published as site_configs/schema.json)."""
    schema = SiteProfile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_URL + "site_configs/schema.json"
    schema["title"] = "chiltepin site profile"
    schema["properties"]["executors"]["propertyNames"] = names.json_schema()
    return schema
