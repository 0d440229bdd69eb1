"""The toolkit's one error tree: each error is one message, and carries its CLI exit status.

``chiltepin`` prints ``chiltepin: error: <message>`` for any :class:`ChiltepinError` and
exits with its ``exit_code``: 2 for input that is the user's to fix (:class:`ConfigError`,
:class:`EndpointError`), 1 for something that failed while running (a service, an agent,
an exchange, an image pull).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar

#: How much of a value (or of one part of a message) an error shows.
SHOWN_VALUE_CHARS = 80
MESSAGE_PART_CHARS = 1000


def shorten(text: str, limit: int = MESSAGE_PART_CHARS) -> str:
    """``text`` on one line (line breaks become spaces), at most ``limit`` characters."""
    text = " ".join(str(text).splitlines())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: Any, limit: int = SHOWN_VALUE_CHARS) -> str:
    """``repr(value)`` bounded for an error message: a multi-MB value is never echoed."""
    return shorten(repr(value), limit)


class ChiltepinError(Exception):
    """Base of every error the toolkit reports to users."""

    #: The ``chiltepin`` command's exit status when this error ends it.
    exit_code: ClassVar[int] = 2


class _Located:
    """A message that names where the problem is: file, line, entry, key, and a hint."""

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
        self.reason = shorten(message)
        super().__init__(self._format())

    def _format(self) -> str:
        """``FILE:LINE: <kind> 'ENTRY': key 'KEY': REASON (hint: HINT)``, unknown parts left out."""
        # Every part bounded and on one line: the CLI prints exactly one line per error.
        where = []
        if self.source:
            source = shorten(self.source)
            where.append(f"{source}:{self.line}" if self.line else source)
        if self.entry:
            where.append(f"{self.entry_kind} '{shorten(self.entry, SHOWN_VALUE_CHARS)}'")
        if self.key:
            where.append(f"key '{shorten(self.key, SHOWN_VALUE_CHARS)}'")
        text = ": ".join(where + [self.reason]) if where else self.reason
        if self.hint:
            text += f" (hint: {shorten(self.hint)})"
        return text


class ConfigError(_Located, ChiltepinError, ValueError):
    """A configuration, profile or argument is invalid.

    The message names the file (and line when known), the entry, the key and a hint.
    """


class ConfigWarning(_Located, UserWarning):
    """A configuration loads, but part of it is ignored (e.g. a key chiltepin 0.1.x
    accepted that means nothing for the resource's provider or kind).

    Named like a :class:`ConfigError` (file, line, entry, key, hint); the ``chiltepin``
    command prints it as one ``chiltepin: warning: <message>`` line.
    """


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a 'did you mean ...?' hint for a misspelled word, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class EndpointError(ChiltepinError, RuntimeError):
    """An endpoint cannot be configured, rendered, started or managed as asked, or a
    Globus login is needed (a RuntimeError, as chiltepin 0.1.x raised)."""


class TransferError(ChiltepinError, RuntimeError):
    """A Globus Transfer task could not be submitted or did not succeed, or Globus
    Transfer cannot be reached (a RuntimeError, as chiltepin 0.1.x raised)."""

    exit_code = 1


class ServiceError(ChiltepinError):
    """Something went wrong with a running service or exchange (not the user's input)."""

    exit_code = 1


class ActionFailed(ServiceError):
    """An agent's action raised; the message is the action's error."""


class ActionTimeout(ServiceError, TimeoutError):
    """An agent's action did not finish within its timeout (the message says how to
    allow more)."""


class AgentFailedError(ChiltepinError, RuntimeError):
    """An agent stopped with an error (for example, its workflow failed to start).

    Raised to a caller whose action or ping found the agent gone; ``__cause__`` is the
    agent's own exception.
    """

    exit_code = 1


class NoFreeWorkerError(ChiltepinError, RuntimeError):
    """An agent was launched on an executor whose workers all hold running agents (each
    running agent holds one worker for its whole life); the message says how to size it."""

    exit_code = 1


class ExchangeError(ChiltepinError, RuntimeError):
    """An agent exchange could not be started or reached."""

    exit_code = 1


class PullError(ChiltepinError):
    """Pulling an image failed (registry unreachable, image missing, runtime error)."""

    exit_code = 1


class WorkerLostError(ChiltepinError, RuntimeError):
    """A task's worker pool (or its node, or its scheduler job) was lost while it ran; the
    message names the executor, node, job id and cause. ``__cause__``: Parsl's error."""


class SchedulerUnavailable(ChiltepinError, RuntimeError):
    """The batch scheduler's commands cannot be run or fail (not on a login node, the
    controller is down), so resources cannot be checked against it."""

    exit_code = 1


class WalltimeExceeded(WorkerLostError):
    """A task ran until its block's job reached the scheduler's time limit."""


class Interrupted(SystemExit, KeyboardInterrupt):
    """The driver got SIGINT or SIGTERM: the workflow was cleaned up, and the process
    exits with ``code`` (130 or 143) and no traceback. Still a KeyboardInterrupt, so
    ``except KeyboardInterrupt`` keeps working."""


class PreflightError(ChiltepinError, ValueError):
    """Resources do not fit what the live scheduler reports (checked before submitting).

    ``problems``: one :class:`ConfigError` per problem (file, executor, key and the
    values the scheduler reported); the message is the first, with how many follow.
    """

    def __init__(self, problems: Iterable[ConfigError]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "preflight failed"
        more = len(self.problems) - 1
        if more:
            first += f" (and {more} more; 'chiltepin site check' lists each)"
        super().__init__(first)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its problems, not its message: it crosses processes (an agent's
        # workflow failing to start reaches the caller pickled).
        return (type(self), (self.problems,))
