"""A site profile's container as globus-compute-endpoint engine container settings.

The engine wraps the worker pool command itself (``container_type``, ``container_uri``,
``container_cmd_options``): docker/podman as ``RUNTIME run OPTIONS -v RUNDIR:RUNDIR -t
IMAGE CMD``, apptainer/singularity as ``RUNTIME run OPTIONS IMAGE CMD``; Charliecloud
has no engine type and becomes a ``custom`` command.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable

from chiltepin.config.schema import ContainerSettings

#: Returns the cached image file/directory for a site, or None (see :func:`cached_image`).
ImageLocator = Callable[[str, ContainerSettings], "str | None"]

FILE_IMAGE_RUNTIMES = ("apptainer", "singularity", "charliecloud")


def cached_image(site: str, container: ContainerSettings) -> str | None:
    """Where ``chiltepin image path --site SITE`` says the site's image is cached.

    Only file-based runtimes (apptainer, singularity, charliecloud) run from a cache
    path; None when the command is unavailable or reports no cached image.
    """
    if container.runtime not in FILE_IMAGE_RUNTIMES:
        return None
    cmd = [sys.executable, "-m", "chiltepin.cli.main", "image", "path", "--site", site]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1].strip() if out.returncode == 0 and lines else None


def engine_container(container: ContainerSettings, image_path: str | None = None) -> dict[str, str]:
    """``container_type``, ``container_uri`` and ``container_cmd_options`` for the engine."""
    runtime = container.runtime
    if runtime in ("podman", "docker"):
        opts = ["--rm", "--init", "--network", "host", "--security-opt", "label=disable"]
        if not any(o in ("--user", "-u") or o.startswith("--user=") for o in container.options):
            # The user the job runs as (evaluated in the batch script), not the image's USER:
            # workers write logs and task files into the engine's run directory.
            opts += ["--user", "$(id -u):$(id -g)"]
        for bind in container.binds:
            opts += ["-v", bind if ":" in bind else f"{bind}:{bind}"]
        for var in container.env:
            opts += ["-e", var]
        if container.gpus:
            opts += ["--device", "nvidia.com/gpu=all"] if runtime == "podman" else ["--gpus", "all"]
        opts += container.options
        return {
            "container_type": runtime,
            "container_uri": container.image,
            "container_cmd_options": " ".join(_shell_word(o) for o in opts),
        }
    uri = image_path or _registry_uri(container.image)
    if runtime in ("apptainer", "singularity"):
        opts = []
        if container.binds:
            opts += ["--bind", ",".join(container.binds)]
        if container.gpus:
            opts.append("--nv")
        opts += container.options
        return {
            "container_type": runtime,
            "container_uri": uri,
            "container_cmd_options": shlex.join(opts),
        }
    # charliecloud: ch-run shares the host network; {EXECUTOR_LAUNCH_CMD} is the engine's
    # placeholder for the worker pool command.
    opts = ["ch-run", "--set-env"]
    for bind in container.binds:
        opts += ["-b", bind]
    opts += container.options
    command = f"{shlex.join(opts)} {shlex.quote(uri)} -- {{EXECUTOR_LAUNCH_CMD}}"
    return {"container_type": "custom", "container_uri": uri, "container_cmd_options": command}


def _shell_word(word: str) -> str:
    """Quote ``word`` for the batch script, but leave ``$(id -u):$(id -g)`` to the shell."""
    return word if word == "$(id -u):$(id -g)" else shlex.quote(word)


def _registry_uri(image: str) -> str:
    """A registry reference as apptainer understands it (paths are left alone)."""
    if image.startswith(("/", ".")) or "://" in image or os.path.exists(image):
        return image
    return f"docker://{image}"
