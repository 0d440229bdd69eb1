"""A second, unprivileged Unix user who plays "another user on the login node".

The test setup creates it once (``useradd``, no home directory, no login shell) and
leaves it in place: it owns nothing, and creating it again is a no-op. Commands run as
that user through ``runuser`` with this checkout and the venv importable (both are
world-readable, as an installed toolkit would be).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.infra import REPO, TESTS, require

OTHER_USER = "chiltepin-other"


def ensure_other_user() -> str:
    """Create :data:`OTHER_USER` if it does not exist (needs root); return its name."""
    require(os.geteuid() == 0 and shutil.which("useradd") is not None, "root and useradd")
    if subprocess.run(["id", "-u", OTHER_USER], capture_output=True).returncode != 0:
        made = subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
            capture_output=True,
            text=True,
        )
        # Another session may have made it in between.
        taken = subprocess.run(["id", "-u", OTHER_USER], capture_output=True).returncode == 0
        assert made.returncode == 0 or taken, made.stderr
    return OTHER_USER


def as_other(argv: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``argv`` (a system command, e.g. ``cat``) as :data:`OTHER_USER`."""
    return subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )


#: Imported before the probe becomes the other user: this machine's interpreter lives
#: under /root, which that user cannot read.
_PRELOAD = (
    "asyncio, json, ssl, socket, sys, time, zmq, aiohttp, "
    "academy.exchange.cloud.client, academy.exchange.redis, academy.agent, academy.handle"
)


def python_as_other(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Python ``code`` (``args`` in ``sys.argv[1:]``) in a process that is
    :data:`OTHER_USER` (real and effective uid and gid, no supplementary groups) before
    it touches any file or socket of the test; only libraries are loaded before that."""
    drop = textwrap.dedent(
        f"""
        import os, pwd
        import {_PRELOAD}
        _pw = pwd.getpwnam({OTHER_USER!r})
        os.setgroups([])
        os.setgid(_pw.pw_gid)
        os.setuid(_pw.pw_uid)
        assert os.getuid() == os.geteuid() == _pw.pw_uid and os.getgroups() == []
        os.chdir("/")
        """
    )
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
        "HOME": "/nonexistent",
    }
    return subprocess.run(
        [sys.executable, "-c", drop + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def readable_by_other(path: Path) -> bool:
    """True if :data:`OTHER_USER` can read ``path`` (a file's bytes, a directory's list)."""
    argv = ["ls", str(path)] if path.is_dir() else ["head", "-c", "1", str(path)]
    return as_other(argv).returncode == 0
