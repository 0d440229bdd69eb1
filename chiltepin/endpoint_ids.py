"""Resolve a Globus Compute endpoint given by UUID or by its local name."""

from __future__ import annotations

import json
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
    info = endpoints_dir() / ref / "endpoint.json"
    try:
        return json.loads(info.read_text())["endpoint_id"]
    except (OSError, ValueError, KeyError):
        raise ConfigError(
            f"endpoint '{ref}' is neither a UUID nor a registered local endpoint",
            key="endpoint",
            hint=f"no {info}; start the endpoint once so it registers, or give its UUID",
        ) from None
