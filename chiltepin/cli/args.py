"""Command-line arguments checked while parsing, before a command does any work.

Each check is an argparse ``type=``: a bad value ends the command with one line on
stderr and exit status 2, like every other input error.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn

from chiltepin.errors import MESSAGE_PART_CHARS, shorten


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``chiltepin: error: ...``."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes the offending arguments, which may be megabytes long.
        message = shorten(" ".join(message.split()), MESSAGE_PART_CHARS)
        self.exit(2, f"chiltepin: error: {message} (see: {self.prog} --help)\n")


#: The longest timeout (about 31 years): a thread's wait overflows on much more.
MAX_SECONDS = 1e9


def positive_seconds(text: str) -> float:
    """A timeout: a number of seconds greater than 0, at most :data:`MAX_SECONDS`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds (at most {MAX_SECONDS:.0e}), got {text!r}"[:200]
        )
    return value


def output_dir(text: str) -> str:
    """A directory to write into: an existing directory, or one that can be made (no
    existing file in the way)."""
    path = Path(text)
    try:
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
        for parent in path.absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    raise argparse.ArgumentTypeError(f"{str(parent)!r} is not a directory")
                break
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text[:200]!r}: {exc.strerror}") from None
    return text


def port_number(text: str) -> int:
    """A TCP port: 0 (any free one) to 65535."""
    value = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text!r}"[:200])
    return value
