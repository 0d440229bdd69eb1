"""Who may read what chiltepin writes: run directories, their logs and scripts.

A site profile's ``run_dirs`` says it: ``private`` (the default: 0700 directories, 0600
files, the user only) or ``group`` (0750/0640, also the user's group; never others).
Parsl creates most files of a run itself, so a workflow sets the process umask while it
creates the run directory and starts Parsl (:func:`run_dir_umask`), and the interchange
and other processes Parsl starts then inherit it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

#: umask for each ``run_dirs`` value.
UMASKS = {"private": 0o077, "group": 0o027}
_LOCK = threading.RLock()


def umask_of(access: str) -> int:
    """The umask for ``access`` ("private" or "group")."""
    return UMASKS[access]


def mode_for(mode: int, access: str) -> int:
    """``mode`` (e.g. 0o755 for a script) without the bits ``access`` withholds."""
    return mode & ~umask_of(access)


def current_umask() -> int:
    """This process's umask (read by setting it and setting it back)."""
    with _LOCK:
        value = os.umask(0o077)
        os.umask(value)
        return value


@contextlib.contextmanager
def run_dir_umask(access: str) -> Iterator[None]:
    """Files and directories made in this block (by this process and the processes it
    starts) get at most the permissions ``access`` allows. The umask is per process:
    it is only ever narrowed, and restored afterwards."""
    with _LOCK:
        previous = os.umask(0o077)
        os.umask(previous | umask_of(access))
        try:
            yield
        finally:
            os.umask(previous)
