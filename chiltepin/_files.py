"""Who may read what chiltepin writes (run directories, their logs and scripts), and
reading files back without blocking on a FIFO or reading a huge one whole.

A site profile's ``run_dirs`` says it: ``private`` (the default: 0700 directories, 0600
files, the user only) or ``group`` (0750/0640, also the user's group; never others).
Parsl creates most files of a run itself, so a workflow sets the process umask while it
creates the run directory and starts Parsl (:func:`run_dir_umask`), and the interchange
and other processes Parsl starts then inherit it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from collections.abc import Iterator
from typing import Any

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


class NotRegularFile(OSError):
    """A FIFO, socket or device where a file was expected."""


#: The most a file chiltepin writes for itself (a state file, a run's registry entry or
#: status, a ledger, a manifest) may hold when it is read back.
OWN_FILE_MAX_BYTES = 16 * 1024 * 1024


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of the regular file ``path`` (close it). A FIFO is never
    waited on: IsADirectoryError, NotRegularFile or the OSError of the open instead."""
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fsdecode(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", os.fsdecode(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``fd``."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 16, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_own_bytes(path: str | os.PathLike[str], limit: int = OWN_FILE_MAX_BYTES) -> bytes:
    """Up to ``limit`` + 1 bytes of a regular file (more than ``limit``: it is too large)."""
    fd = open_regular(path)
    try:
        return read_at_most(fd, limit + 1)
    finally:
        os.close(fd)


def read_own_json(path: str | os.PathLike[str], limit: int = OWN_FILE_MAX_BYTES) -> Any:
    """The JSON data of a file chiltepin wrote for itself and reads back. OSError if it
    cannot be read as a regular file; ValueError for anything wrong inside (too large,
    not UTF-8, not JSON, nested too deeply): the caller treats it as unreadable."""
    data = read_own_bytes(path, limit)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
