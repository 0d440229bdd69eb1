"""Apptainer and Singularity: ``.sif`` images in a shared cache directory.

``exec --bind ... [--pwd DIR] [--nv] IMAGE.sif``: these runtimes share the host's
network, process and IPC namespaces and pass the host environment by default, so Parsl
workers reach the interchange and MPI ranks reach the PMIx server without extra flags.
Images are pulled once on the login node (``apptainer pull <cache>/<name>_<tag>.sif
docker://<reference>``) into a directory every compute node sees.

Neither runtime can be installed on the project's test machines: their commands are
checked as built, not run (tests named ``..._apptainer_command_construction_only``).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from chiltepin.containers.base import (
    NOWHERE,
    Bind,
    ImageInfo,
    Where,
    parse_bind,
)
from chiltepin.containers.cached import CachedImageRuntime
from chiltepin.containers.reference import is_local_path, parse_image_ref
from chiltepin.containers.registry import insecure_registry

logger = logging.getLogger(__name__)


class ApptainerRuntime(CachedImageRuntime):
    name = "apptainer"
    binary = "apptainer"
    engine_type = "apptainer"
    image_kind = "file"

    def _command(
        self,
        settings,
        *,
        binds: list[Bind],
        env_names: list[str],
        workdir: str | None,
        labels: Mapping[str, str],
        mpi: bool,
    ) -> tuple[list[str], list[str]]:
        args = [self.binary, "exec"]
        for bind in binds:
            spec = f"{bind.src}:{bind.dst}" + (f":{bind.options}" if bind.options else "")
            args += ["--bind", spec]
        if workdir:
            args += ["--pwd", workdir]
        if settings.gpus:
            args.append("--nv")
        args += list(settings.options)
        return args, [self.image_for(settings)]

    def _engine_settings(self, settings) -> dict[str, str]:
        # The engine adds ``run OPTIONS IMAGE CMD``.
        opts = []
        if settings.binds:
            opts += ["--bind", ",".join(str(parse_bind(b, check=False)) for b in settings.binds)]
        if settings.gpus:
            opts.append("--nv")
        opts += settings.options
        return {
            "container_type": self.engine_type,
            "container_uri": self.image_for(settings),
            "container_cmd_options": shlex.join(opts),
        }

    def _rank_shell(self, settings, bound: list[str]) -> list[str]:
        return [
            "# the PMIx server's rendezvous directory (under slurmd's spool) and the cwd",
            'if [ -n "${PMIX_SERVER_TMPDIR:-}" ] && [ -d "$PMIX_SERVER_TMPDIR" ]; then',
            '    args+=(--bind "$PMIX_SERVER_TMPDIR")',
            "fi",
            'args+=(--pwd "$PWD")',
        ]

    # ------------------------------------------------------------------ images
    suffix = ".sif"

    def _present(self, path: Path) -> bool:
        return path.is_file()

    def _size(self, path: Path) -> str | None:
        return f"{path.stat().st_size / 1e6:.1f} MB"

    def check_image_present(self, settings, where: Where = NOWHERE) -> None:
        if is_local_path(settings.image):
            return
        path = self.image_path(settings.image, settings.cache_dir)
        if not Path(path).is_file():
            raise where.error(
                f"image {settings.image} is not in the cache ({path} missing)",
                key="image",
                hint="run 'chiltepin image pull"
                + (f" --site {where.site}'" if where.site else f" --runtime {self.name}'"),
            )

    def pull_command(self, image: str, dest: str, progress: bool = True) -> list[str]:
        """``apptainer pull`` of ``image`` into the file ``dest``."""
        ref = parse_image_ref(image)
        args = [self.binary]
        if not progress:
            args.append("--quiet")
        args += ["pull", "--force"]
        if insecure_registry(ref.domain):
            args.append("--no-https")
        return [*args, dest, ref.docker_uri]

    def _fetch(self, ref, part: Path, progress: bool) -> str | None:
        self._run(
            self.pull_command(str(ref), str(part), progress),
            progress=progress,
            what=f"{self.name} pull {ref}",
        )
        return None

    def list_images(self, cache_dir: str | None = None) -> list[ImageInfo]:
        """The cache's ``.sif`` files, each with its labels where :func:`sif_labels` can
        read them."""
        return [
            dataclasses.replace(info, labels=sif_labels(info.path)) if info.path else info
            for info in super().list_images(cache_dir)
        ]


def sif_labels(path: str) -> dict[str, str] | None:
    """A ``.sif`` image's labels, read with spython's ``Client.inspect`` (the optional
    ``apptainer`` extra). spython always runs ``singularity`` (never ``apptainer``), so
    without that command, or without spython, or when inspect fails: None."""
    if shutil.which("singularity") is None:
        return None
    try:
        from spython.main import Client
    except ImportError:
        return None
    try:
        result = Client.inspect(path, quiet=True)
    except (OSError, ValueError) as exc:  # the command vanished; output that is not JSON
        logger.debug("singularity inspect %s: %s", path, exc)
        return None
    attributes = result.get("attributes") if isinstance(result, dict) else None
    labels = attributes.get("labels") if isinstance(attributes, dict) else None
    if not isinstance(labels, dict):  # inspect failed: spython returns its message instead
        logger.debug("singularity inspect %s gave no labels: %s", path, result)
        return None
    return {str(key): str(value) for key, value in labels.items()}


class SingularityRuntime(ApptainerRuntime):
    """SingularityCE / legacy Singularity: the same command line as Apptainer."""

    name = "singularity"
    binary = "singularity"
    engine_type = "singularity"
