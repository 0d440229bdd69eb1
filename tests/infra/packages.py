"""Debian packages the tests need, installed when missing and this process may (root with
apt-get): ``ensure("redis-server", "redis-server")`` returns the binary's path or None."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess

#: Held around apt-get here and in slurm.sh, slurm_accounting.sh and containers.sh: the
#: test lanes may install at once, and `apt-get update` does not wait for its lock.
APT_LOCK = "/var/tmp/chiltepin-apt.lock"


def ensure(binary: str, package: str) -> str | None:
    """``binary``, from Debian's ``package`` if it is missing and we may install it."""
    found = shutil.which(binary)
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        with open(APT_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another test lane may be installing
            found = shutil.which(binary) or _install(binary, package)
    return found


def _install(binary: str, package: str) -> str | None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q"]
    install += ["--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return shutil.which(binary)
