"""Resource configuration: schema, loading and validation (no Parsl import here)."""

from chiltepin.config.resources import LOCAL_NAME, ConfigSource, load_resources
from chiltepin.config.schema import RemoteResource, Resource, resource_json_schema

__all__ = [
    "LOCAL_NAME",
    "ConfigSource",
    "RemoteResource",
    "Resource",
    "load_resources",
    "resource_json_schema",
]
