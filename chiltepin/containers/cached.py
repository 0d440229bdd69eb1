"""Runtimes whose images are files or directories in a shared cache directory.

Apptainer/Singularity keep ``<cache>/<name>_<tag>.sif``; Charliecloud keeps a directory
``<cache>/<name>_<tag>``. Beside each image a ``.digest`` file records the registry
digest it was pulled from, so a second pull of the same digest does nothing. Pulls go
to a temporary name first and replace the image atomically: a failed pull never leaves
a half-written image where workers would find it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from chiltepin.containers.base import (
    ContainerRuntime,
    ImageInfo,
    PullResult,
    cache_dir_of,
    check_writable_dir,
    timed,
)
from chiltepin.containers.reference import ImageRef, is_local_path, parse_image_ref
from chiltepin.containers.registry import remote_digest


class CachedImageRuntime(ContainerRuntime):
    """Base for runtimes with images in a cache directory (see the module docstring)."""

    #: File name suffix of images in the cache ("" for directory images).
    suffix = ""

    def _present(self, path: Path) -> bool:
        """Whether ``path`` holds a usable image."""
        raise NotImplementedError

    def _fetch(self, ref: ImageRef, part: Path, progress: bool) -> str | None:
        """Fetch ``ref`` into ``part``; return its digest if the tool reports one."""
        raise NotImplementedError

    def _size(self, path: Path) -> str | None:
        return None

    def image_path(self, image: str, cache_dir: str | None = None) -> str:
        if is_local_path(image):
            return os.path.abspath(os.path.expanduser(image))
        ref = parse_image_ref(image)
        return str(cache_dir_of(cache_dir) / f"{ref.file_stem}{self.suffix}")

    def has_image(self, image: str, cache_dir: str | None = None) -> bool:
        return self._present(Path(self.image_path(image, cache_dir)))

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
        dest = Path(self.image_path(image, cache_dir))
        check_writable_dir(str(dest.parent))
        sidecar = _sidecar(dest)
        have = _recorded_digest(dest)
        remote = remote_digest(ref)
        if self._present(dest) and not force and (remote is None or have == remote):
            return PullResult(str(dest), have, changed=False, seconds=0)
        part = dest.with_name(f"{dest.name}.part-{os.getpid()}")
        try:
            remove_path(part)
            fetched = self._fetch(ref, part, progress)
            remove_path(dest)
            os.replace(part, dest)
        finally:
            remove_path(part)
        digest = remote or fetched
        if digest:
            sidecar.write_text(digest + "\n")
        else:
            sidecar.unlink(missing_ok=True)
        return PullResult(str(dest), digest, changed=True, seconds=0)

    def list_images(self, cache_dir: str | None = None) -> list[ImageInfo]:
        cache = cache_dir_of(cache_dir)
        images = []
        for entry in sorted(cache.iterdir()) if cache.is_dir() else []:
            if not entry.name.endswith(self.suffix) or not self._present(entry):
                continue
            images.append(
                ImageInfo(
                    name=entry.name,
                    digest=_recorded_digest(entry),
                    size=self._size(entry),
                    path=str(entry),
                )
            )
        return images


def _sidecar(image: Path) -> Path:
    return image.with_name(image.name + ".digest")


def _recorded_digest(image: Path) -> str | None:
    """The digest recorded beside a pulled image (None: none, or not readable as one)."""
    from chiltepin._files import read_own_bytes

    try:
        text = read_own_bytes(_sidecar(image), 4096).decode("ascii").strip()
    except (OSError, ValueError):
        return None
    return text if text and len(text) <= 4096 and text.isprintable() else None


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree, if it exists."""
    if path.is_dir() and not path.is_symlink():
        _rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _rmtree(path: Path) -> None:
    # Images may hold read-only directories (ch-convert makes them u+w, others may not).
    def onerror(func, name, _exc):
        os.chmod(name, 0o700)
        func(name)

    shutil.rmtree(path, onerror=onerror)  # noqa: B028 - onerror is fine on 3.10-3.13
