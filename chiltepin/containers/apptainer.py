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

import os
from collections.abc import Mapping
from pathlib import Path

from chiltepin.containers.base import (
    NOWHERE,
    Bind,
    ContainerRuntime,
    ImageInfo,
    PullResult,
    Where,
    cache_dir_of,
    check_writable_dir,
    timed,
)
from chiltepin.containers.reference import is_local_path, parse_image_ref
from chiltepin.containers.registry import insecure_registry, remote_digest


class ApptainerRuntime(ContainerRuntime):
    name = "apptainer"
    binary = "apptainer"
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

    def _rank_shell(self, settings, bound: list[str]) -> list[str]:
        return [
            "# the PMIx server's rendezvous directory (under slurmd's spool) and the cwd",
            'if [ -n "${PMIX_SERVER_TMPDIR:-}" ] && [ -d "$PMIX_SERVER_TMPDIR" ]; then',
            '    args+=(--bind "$PMIX_SERVER_TMPDIR")',
            "fi",
            'args+=(--pwd "$PWD")',
        ]

    # ------------------------------------------------------------------ images
    def image_path(self, image: str, cache_dir: str | None = None) -> str:
        if is_local_path(image):
            return os.path.abspath(os.path.expanduser(image))
        ref = parse_image_ref(image)
        cache = cache_dir_of(cache_dir)
        return str(cache / f"{ref.file_stem}.sif")

    def has_image(self, image: str, cache_dir: str | None = None) -> bool:
        return Path(self.image_path(image, cache_dir)).is_file()

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

    @timed
    def pull(
        self,
        image: str,
        cache_dir: str | None = None,
        progress: bool = True,
        force: bool = False,
    ) -> PullResult:
        if is_local_path(image):
            return PullResult(self.image_path(image), None, changed=False, seconds=0)
        ref = parse_image_ref(image)
        sif = Path(self.image_path(image, cache_dir))
        check_writable_dir(str(sif.parent))
        sidecar = sif.with_name(sif.name + ".digest")
        have = sidecar.read_text().strip() if sidecar.is_file() else None
        remote = remote_digest(ref)
        if sif.is_file() and not force and (remote is None or have == remote):
            return PullResult(str(sif), have, changed=False, seconds=0)
        part = sif.with_name(f"{sif.name}.part-{os.getpid()}")
        try:
            self._run(
                self.pull_command(image, str(part), progress),
                progress=progress,
                what=f"{self.name} pull {ref}",
            )
            os.replace(part, sif)
        finally:
            part.unlink(missing_ok=True)
        if remote:
            sidecar.write_text(remote + "\n")
        else:
            sidecar.unlink(missing_ok=True)
        return PullResult(str(sif), remote, changed=True, seconds=0)

    def list_images(self, cache_dir: str | None = None) -> list[ImageInfo]:
        cache = cache_dir_of(cache_dir)
        images = []
        for sif in sorted(cache.glob("*.sif")) if cache.is_dir() else []:
            sidecar = sif.with_name(sif.name + ".digest")
            images.append(
                ImageInfo(
                    name=sif.name,
                    digest=sidecar.read_text().strip() if sidecar.is_file() else None,
                    size=f"{sif.stat().st_size / 1e6:.1f} MB",
                    path=str(sif),
                )
            )
        return images


class SingularityRuntime(ApptainerRuntime):
    """SingularityCE / legacy Singularity: the same command line as Apptainer."""

    name = "singularity"
    binary = "singularity"
