"""How much the command prints besides its results: the global ``-v``/``-q`` options.

Results go to stdout (``--json`` makes them machine-readable); everything else goes to
stderr. ``-q`` silences the informational stderr lines (progress, "next:" hints); errors
and warnings still print. ``-v`` shows chiltepin's log messages (INFO; ``-vv`` DEBUG).
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: -1 quiet, 0 default, 1 INFO logs, 2+ DEBUG logs (set once, by chiltepin.cli.main).
_verbosity = 0


def set_verbosity(level: int) -> None:
    """Apply ``-v`` (``level`` > 0) or ``-q`` (``level`` < 0) for this process."""
    global _verbosity
    _verbosity = level
    if level == 0:
        from chiltepin.runs import show_progress

        show_progress()  # block feedback of the workflows this command runs
    if level <= 0:
        return
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("chiltepin: %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("chiltepin")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if level == 1 else logging.DEBUG)
    logger.propagate = False  # once, even where a command configures the root logger too


def quiet() -> bool:
    """True under ``-q``: informational lines are not printed."""
    return _verbosity < 0


def info(message: str) -> None:
    """An informational line on stderr (not a result, not an error); ``-q`` drops it."""
    if not quiet():
        print(message, file=sys.stderr)


def print_json(data: Any) -> None:
    """A ``--json`` result: one JSON document on stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False))
