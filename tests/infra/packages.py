"""Debian packages the tests need, installed when missing and this process may (root with
apt-get): ``ensure("redis-server", "redis-server")`` returns the binary's path or None."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure(binary: str, package: str) -> str | None:
    """``binary``, from Debian's ``package`` if it is missing and we may install it."""
    found = shutil.which(binary)
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [
            "apt-get",
            "-o",
            "DPkg::Lock::Timeout=300",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            package,
        ]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = shutil.which(binary)
    return found
