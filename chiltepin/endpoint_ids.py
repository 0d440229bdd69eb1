"""Resolve a Globus Compute endpoint given by UUID or by its local name."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from chiltepin.errors import ConfigError


def endpoints_dir() -> Path:
    """Where globus-compute-endpoint keeps endpoint directories."""
    return Path(os.environ.get("GLOBUS_COMPUTE_USER_DIR", Path.home() / ".globus_compute"))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def resolve_endpoint_id(ref: str) -> str:
    """Return the endpoint UUID for ``ref`` (a UUID, or a configured endpoint's name)."""
    if is_uuid(ref):
        return ref
    from chiltepin.config.loader import read_json
    from chiltepin.names import check_name

    check_name("endpoint", ref, key="endpoint", hint="give a UUID or a local endpoint's name")
    info = endpoints_dir() / ref / "endpoint.json"
    try:
        return str(read_json(info)["endpoint_id"])
    except (ConfigError, TypeError, KeyError):
        raise ConfigError(
            f"endpoint '{ref}' is neither a UUID nor a registered local endpoint",
            key="endpoint",
            hint=f"no {info}; start the endpoint once so it registers, or give its UUID",
        ) from None
