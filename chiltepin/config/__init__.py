"""Resource configuration: schema, loading and validation (no Parsl import here).

The names below are imported on first use: modules that only need
:mod:`chiltepin.config.source` (an agent unpickled on a worker, for one) do not build the
pydantic models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chiltepin._lazy import lazy_attributes

if TYPE_CHECKING:
    from chiltepin.config.resources import LOCAL_NAME, ConfigSource, load_resources
    from chiltepin.config.schema import RemoteResource, Resource, resource_json_schema

_LAZY = {
    "LOCAL_NAME": ("chiltepin.config.resources", "LOCAL_NAME"),
    "ConfigSource": ("chiltepin.config.resources", "ConfigSource"),
    "load_resources": ("chiltepin.config.resources", "load_resources"),
    "RemoteResource": ("chiltepin.config.schema", "RemoteResource"),
    "Resource": ("chiltepin.config.schema", "Resource"),
    "resource_json_schema": ("chiltepin.config.schema", "resource_json_schema"),
}

__all__ = [
    "LOCAL_NAME",
    "ConfigSource",
    "RemoteResource",
    "Resource",
    "load_resources",
    "resource_json_schema",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
