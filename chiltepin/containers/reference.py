"""Image references: ``[registry[:port]/]path[:tag][@sha256:digest]`` and local paths.

The grammar is the OCI distribution one (what docker, podman, skopeo and apptainer's
``docker://`` accept). A reference without a registry means Docker Hub, as everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chiltepin.errors import ConfigError

DEFAULT_REGISTRY = "docker.io"
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$")
_PATH_PART = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
TRANSPORTS = ("docker://",)
EXAMPLE = "ghcr.io/noaa-gsl/chiltepin:0.1.0"


@dataclass(frozen=True)
class ImageRef:
    """A parsed registry reference."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The last path component, e.g. ``chiltepin``."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def version(self) -> str:
        """The tag, else a short form of the digest, else ``latest``."""
        if self.tag:
            return self.tag
        if self.digest:
            algo, _, hexa = self.digest.partition(":")
            return f"{algo}-{hexa[:12]}"
        return "latest"

    @property
    def file_stem(self) -> str:
        """``<name>_<tag>``: the name of a .sif file or directory image in a cache."""
        return f"{self.name}_{self.version}"

    @property
    def docker_uri(self) -> str:
        return f"docker://{self}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag or not self.digest:
            text += f":{self.tag or 'latest'}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_local_path(text: str) -> bool:
    """Whether an ``image`` value names a local file or directory, not a registry image."""
    return text.startswith(("/", "./", "../", "~")) or text in (".", "..")


def parse_image_ref(text: str, *, where: str | None = None) -> ImageRef:
    """Parse a registry reference; raise ConfigError naming ``where`` when malformed."""
    raw = text.strip()
    for prefix in TRANSPORTS:
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
    problem = _problem(raw)
    if problem:
        raise ConfigError(
            f"malformed image reference {text!r}: {problem}",
            entry=where,
            entry_kind="container of",
            hint=f"use [registry/]name[:tag][@sha256:digest], e.g. {EXAMPLE}",
        )
    rest, _, digest = raw.partition("@")
    name, tag = rest, None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
    first, _, remainder = name.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_REGISTRY, name
        if "/" not in path:
            path = f"library/{path}"
    return ImageRef(domain=domain, path=path, tag=tag, digest=digest or None)


def _problem(raw: str) -> str | None:
    if not raw:
        return "it is empty"
    if any(c.isspace() for c in raw):
        return "it contains white space"
    if len(raw) > 255 + 129 + 72:
        return "it is too long"
    rest, at, digest = raw.partition("@")
    if at and not _DIGEST.match(digest):
        return f"digest {digest!r} is not ALGORITHM:HEX (e.g. sha256:<64 hex digits>)"
    name = rest
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            return f"tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128)"
    if not name:
        return "the repository name is empty"
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.match(first):
            return f"registry {first!r} is not a host name with an optional port"
        parts = parts[1:]
    for part in parts:
        if not part:
            return "it has an empty path component ('//' or a trailing '/')"
        if not _PATH_PART.match(part):
            return (
                f"path component {part!r} is not valid (lower-case letters, digits and "
                "single separators '.', '_', '__' or '-')"
            )
    if len(name) > 255:
        return "the repository name is longer than 255 characters"
    return None


def _default_image() -> str:
    from chiltepin._version import __version__

    return f"ghcr.io/noaa-gsl/chiltepin:{__version__}"


#: The project's runtime image for this version (containers/Dockerfile, chiltepin.def).
DEFAULT_IMAGE = _default_image()
