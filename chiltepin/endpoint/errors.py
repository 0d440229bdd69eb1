"""Endpoint errors: one line for the user (the CLI exits 2 on them)."""

from __future__ import annotations

from chiltepin.errors import EndpointError, shorten

__all__ = ["EndpointError", "one_line"]


def one_line(value: object, limit: int = 400) -> str:
    """The first non-empty line of ``value``'s text, whitespace-collapsed and bounded."""
    text = str(value)
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return shorten(line, limit)
    return type(value).__name__ if isinstance(value, BaseException) else "(no message)"
