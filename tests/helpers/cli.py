"""The one way tests run the real ``chiltepin`` console script."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from helpers.infra import BIN

CLI = str(BIN / "chiltepin")


def run(
    *args: str,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """``chiltepin ARGS`` as a subprocess; ``env`` is its whole environment (default:
    this process's), ``input`` its standard input (none by default)."""
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        cwd=cwd,
    )


def one_line_error(out: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single stderr line of a command that failed with ``code`` (no traceback)."""
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chiltepin: error: "), lines
    return lines[0]
