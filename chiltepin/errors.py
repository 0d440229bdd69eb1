"""Errors the toolkit reports to users: one message naming where the problem is."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ChiltepinError(Exception):
    """Base class for errors that are the user's to fix (the CLI exits 2 on these)."""


class ConfigError(ChiltepinError, ValueError):
    """A configuration, profile or argument is invalid.

    The message names the file (and line when known), the entry, the key and a hint.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        entry: str | None = None,
        entry_kind: str = "entry",
        key: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.source = source
        self.entry = entry
        self.entry_kind = entry_kind
        self.key = key
        self.line = line
        self.hint = hint
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.source:
            where.append(f"{self.source}:{self.line}" if self.line else self.source)
        if self.entry:
            where.append(f"{self.entry_kind} '{self.entry}'")
        if self.key:
            where.append(f"key '{self.key}'")
        text = ": ".join(where + [self.reason]) if where else self.reason
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a 'did you mean ...?' hint for a misspelled word, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
