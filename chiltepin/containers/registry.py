"""What a registry says about an image, without pulling it (skopeo), and its settings
(``registries.conf``: which registries speak plain HTTP)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from chiltepin.containers.reference import ImageRef

logger = logging.getLogger(__name__)

SYSTEM_REGISTRIES_CONF = "/etc/containers/registries.conf"


def registries_conf() -> str | None:
    """The registries.conf podman/skopeo use here ($CONTAINERS_REGISTRIES_CONF first)."""
    path = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    if path and Path(path).is_file():
        return path
    return SYSTEM_REGISTRIES_CONF if Path(SYSTEM_REGISTRIES_CONF).is_file() else None


def insecure_registry(domain: str) -> bool:
    """Whether registries.conf marks ``domain`` as insecure (plain HTTP or no TLS check)."""
    path = registries_conf()
    if path is None:
        return False
    try:
        import tomllib
    except ImportError:  # Python 3.10: no TOML parser in the standard library
        return False
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError):
        return False
    for entry in data.get("registry", []):
        location = str(entry.get("location") or entry.get("prefix") or "")
        if location.split("/", 1)[0] == domain and entry.get("insecure"):
            return True
    return False


def remote_digest(ref: ImageRef, timeout: float = 120) -> str | None:
    """The manifest digest the registry serves for ``ref`` (None when unknown: no skopeo,
    registry unreachable)."""
    if ref.digest:
        return ref.digest
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        return None
    args = [skopeo]
    conf = registries_conf()
    if conf:
        args += ["--registries-conf", conf]
    args += ["inspect", "--no-tags", "--format", "{{.Digest}}", ref.docker_uri]
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("skopeo inspect %s: %s", ref, exc)
        return None
    if proc.returncode != 0:
        logger.debug("skopeo inspect %s failed: %s", ref, proc.stderr.strip())
        return None
    digest = proc.stdout.strip()
    return digest if digest.startswith("sha256:") else None
