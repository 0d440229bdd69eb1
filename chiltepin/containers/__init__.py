"""Container runtimes: run Parsl workers (and MPI ranks) inside the project's image.

One small class per runtime behind :class:`ContainerRuntime` (like Parsl's executors
and providers): :class:`PodmanRuntime`, :class:`DockerRuntime`, :class:`ApptainerRuntime`,
:class:`SingularityRuntime`, :class:`CharliecloudRuntime`. :func:`get_runtime` picks one
by the name a site profile's ``container: runtime:`` uses. Nothing here imports Parsl.
"""

from __future__ import annotations

from chiltepin.containers.apptainer import ApptainerRuntime, SingularityRuntime
from chiltepin.containers.base import (
    EXECUTOR_LABEL,
    NOWHERE,
    RUN_LABEL,
    Bind,
    ContainerRuntime,
    ImageInfo,
    PullError,
    PullResult,
    Where,
    parse_bind,
)
from chiltepin.containers.charliecloud import CharliecloudRuntime
from chiltepin.containers.oci import DockerRuntime, OCIRuntime, PodmanRuntime
from chiltepin.containers.reference import ImageRef, is_local_path, parse_image_ref
from chiltepin.errors import ConfigError, did_you_mean

RUNTIMES: dict[str, type[ContainerRuntime]] = {
    cls.name: cls
    for cls in (
        ApptainerRuntime,
        SingularityRuntime,
        PodmanRuntime,
        DockerRuntime,
        CharliecloudRuntime,
    )
}


def get_runtime(name: str, where: Where = NOWHERE) -> ContainerRuntime:
    """The runtime called ``name``; ConfigError (with a 'did you mean') if unknown."""
    cls = RUNTIMES.get(name)
    if cls is None:
        hint = did_you_mean(name, RUNTIMES) or ""
        raise ConfigError(
            f"{where}: unknown container runtime {name!r}"
            if where != NOWHERE
            else f"unknown container runtime {name!r}",
            hint=f"{hint} runtimes: {', '.join(RUNTIMES)}".strip(),
        )
    return cls()


__all__ = [
    "EXECUTOR_LABEL",
    "RUNTIMES",
    "RUN_LABEL",
    "ApptainerRuntime",
    "Bind",
    "CharliecloudRuntime",
    "ContainerRuntime",
    "DockerRuntime",
    "ImageInfo",
    "ImageRef",
    "OCIRuntime",
    "PodmanRuntime",
    "PullError",
    "PullResult",
    "SingularityRuntime",
    "Where",
    "get_runtime",
    "is_local_path",
    "parse_bind",
    "parse_image_ref",
]
