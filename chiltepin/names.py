"""The one rule for names: resources, executors, sites, agent services and endpoints.

Names become Parsl executor labels, file names (``<site>.yaml``, state files, unit
names, endpoint directories) and values in generated templates, so they are plain:
letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit, no ``..``
(no ``/``, whitespace, quotes or template delimiters can appear), at most
:data:`NAME_MAX_LENGTH` characters. The published JSON Schemas use :data:`NAME_PATTERN`.
"""

from __future__ import annotations

import re
from typing import Any

from chiltepin.errors import ConfigError, shown

NAME_MAX_LENGTH = 64
#: No lookaround, so JSON Schema (ECMA 262) and pydantic's regex engine accept it too.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$"
NAME_RE = re.compile(NAME_PATTERN)
NAME_HINT = (
    f"use up to {NAME_MAX_LENGTH} letters, digits, '-', '_' and '.', starting with a letter "
    "or digit; no '/', '..' or spaces"
)


def is_valid_name(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) <= NAME_MAX_LENGTH and bool(NAME_RE.fullmatch(value))
    )


def check_name(
    kind: str,
    value: Any,
    *,
    source: str | None = None,
    line: int | None = None,
    key: str | None = None,
    hint: str = NAME_HINT,
) -> str:
    """``value`` if it is a valid ``kind`` name (e.g. "site"), else a ConfigError."""
    if is_valid_name(value):
        return value
    raise ConfigError(
        f"invalid {kind} name {shown(value)}", source=source, line=line, key=key, hint=hint
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a name (e.g. for ``propertyNames``)."""
    return {"pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH}
