"""Charliecloud: a directory image run with ``ch-run`` (unprivileged, no daemon).

``env USER=<user> ch-run --set-env -b SRC:DST ... -c WORKDIR IMAGE_DIR -- CMD``: ch-run
enters only user and mount namespaces, so the host's network (the interchange), process
and IPC namespaces (MPI, PMIx) and ``/tmp`` are shared; the host environment passes
through and ``--set-env`` applies the image's own (``ch/environment``: its ``PATH``
first). ch-run refuses to start without ``$USER``. Bind destinations must exist in the
image: chiltepin creates the mount points in the image directory before workers start.

Images: a directory path, or a registry reference pulled into ``<cache>/<name>_<tag>``
with ``ch-image pull`` + ``ch-convert -i ch-image -o dir`` (ch-image speaks HTTPS only;
for a registry that registries.conf marks insecure, podman pulls and ``ch-convert -i
podman`` converts).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from chiltepin.containers.base import (
    NOWHERE,
    Bind,
    PullError,
    Where,
    current_user,
    parse_bind,
)
from chiltepin.containers.cached import CachedImageRuntime
from chiltepin.containers.reference import is_local_path, parse_image_ref
from chiltepin.containers.registry import insecure_registry

#: ch-run binds the host's /tmp: paths under it need no bind.
SHARED_TMP = "/tmp"


def _under_tmp(path: str) -> bool:
    return path == SHARED_TMP or path.startswith(SHARED_TMP + "/")


class CharliecloudRuntime(CachedImageRuntime):
    name = "charliecloud"
    binary = "ch-run"
    engine_type = "custom"
    image_kind = "directory"
    convert_binary = "ch-convert"
    image_binary = "ch-image"

    def validate(self, settings, where: Where = NOWHERE, **kwargs) -> None:
        for bind in settings.binds:
            if bind.count(":") >= 2:
                raise where.error(
                    f"bind {bind!r}: ch-run binds take no options",
                    key="binds",
                    hint="use SRC or SRC:DST",
                )
        super().validate(settings, where, **kwargs)

    def binds_for(self, settings, run_dir: str, workdir: str | None) -> list[Bind]:
        return [
            b
            for b in super().binds_for(settings, run_dir, workdir)
            if not (b.src == b.dst and _under_tmp(b.src))
        ]

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
        args = ["env", f"USER={current_user()}", self.binary, "--set-env"]
        for bind in binds:
            args += ["-b", bind.src if bind.src == bind.dst else f"{bind.src}:{bind.dst}"]
        if workdir:
            args += ["-c", workdir]
        args += list(settings.options)
        return args, [self.image_for(settings), "--"]

    def _engine_settings(self, settings) -> dict[str, str]:
        # No engine type of its own: a "custom" command, in which the engine replaces
        # {EXECUTOR_LAUNCH_CMD} by the worker pool command. ch-run shares the host network.
        image = self.image_for(settings)
        opts = [self.binary, "--set-env"]
        for bind in settings.binds:
            opts += ["-b", str(parse_bind(bind, check=False))]
        opts += settings.options
        command = f"{shlex.join(opts)} {shlex.quote(image)} -- {{EXECUTOR_LAUNCH_CMD}}"
        return {
            "container_type": self.engine_type,
            "container_uri": image,
            "container_cmd_options": command,
        }

    def _rank_shell(self, settings, bound: list[str]) -> list[str]:
        image = shlex.quote(self.image_for(settings))
        skip = "|".join(shlex.quote(d) for d in ["/", *bound])
        return [
            f"img={image}",
            "bind_dir() {  # bind a host directory at the same path (mount point in the image)",
            '    case "$1" in /tmp|/tmp/*) return ;; esac',
            '    mkdir -p "$img$1" 2>/dev/null || true',
            '    args+=(-b "$1")',
            "}",
            "# the PMIx server's rendezvous directory (under slurmd's spool) and the cwd",
            'if [ -n "${PMIX_SERVER_TMPDIR:-}" ] && [ -d "$PMIX_SERVER_TMPDIR" ]; then',
            '    bind_dir "$PMIX_SERVER_TMPDIR"',
            "fi",
            f'case "$PWD" in {skip}) ;; *) bind_dir "$PWD" ;; esac',
            'args+=(-c "$PWD")',
        ]

    def prepare(self, settings, binds: list[Bind], where: Where = NOWHERE) -> None:
        """Create bind mount points inside the image directory (ch-run needs them)."""
        root = Path(self.image_for(settings))
        for bind in binds:
            target = root / bind.dst.lstrip("/")
            if target.exists():
                continue
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise where.error(
                    f"cannot create the mount point {bind.dst} in the image directory "
                    f"{root} ({exc.strerror or exc})",
                    key="binds",
                    hint="bind onto a directory the image has (SRC:/mnt/...), or use a "
                    "writable copy of the image",
                ) from None

    # ------------------------------------------------------------------ images
    def _present(self, path: Path) -> bool:
        return _is_image_dir(path)

    def check_image_present(self, settings, where: Where = NOWHERE) -> None:
        path = self.image_for(settings)
        if _is_image_dir(Path(path)):
            return
        if is_local_path(settings.image):
            hint = "make one with 'ch-convert -o dir IMAGE DIR'"
        else:
            target = f"--site {where.site}" if where.site else f"--runtime {self.name}"
            hint = f"run 'chiltepin image pull {target}'"
        raise where.error(f"{path} is not a Charliecloud directory image", key="image", hint=hint)

    def pull_commands(self, image: str, dest: str, storage: str) -> tuple[str, list[list[str]]]:
        """(tool, commands) that fetch ``image`` and unpack it into the directory ``dest``;
        ch-image commands run with ``CH_IMAGE_STORAGE=storage``."""
        ref = parse_image_ref(image)
        name = str(ref)
        if insecure_registry(ref.domain) and shutil.which("podman"):
            return "podman", [
                ["podman", "pull", name],
                [self.convert_binary, "-i", "podman", "-o", "dir", name, dest],
            ]
        return "ch-image", [
            [self.image_binary, "pull", name],
            [self.convert_binary, "-i", "ch-image", "-o", "dir", name, dest],
        ]

    def _fetch(self, ref, part: Path, progress: bool) -> str | None:
        storage = str(part.parent / ".ch-image")
        tool, commands = self.pull_commands(str(ref), str(part), storage)
        env = {**_system_python_env(), "CH_IMAGE_STORAGE": storage}
        for args in commands:
            if not shutil.which(args[0], path=env["PATH"]):
                raise PullError(
                    f"pulling {ref} for charliecloud needs '{args[0]}', which is not on PATH"
                )
            self._run(args, progress=progress, env=env, what=f"{shlex.join(args[:2])} {ref}")
        return _podman_digest(str(ref)) if tool == "podman" else None


def _is_image_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "ch").is_dir() or (path / "bin").exists())


def _system_python_env() -> dict[str, str]:
    """os.environ without this virtualenv on PATH: ch-image runs on ``python3`` from PATH
    and needs the system's (with its ``lark`` module), not the venv's."""
    drop = {os.path.dirname(sys.executable)}
    if os.environ.get("VIRTUAL_ENV"):
        drop.add(os.path.join(os.environ["VIRTUAL_ENV"], "bin"))
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in drop]
    env = {**os.environ, "PATH": os.pathsep.join(path or ["/usr/bin", "/bin"])}
    env.setdefault("USER", current_user())  # Charliecloud's tools refuse to run without it
    return env


def _podman_digest(ref: str) -> str | None:
    proc = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Digest}}", ref],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    digest = proc.stdout.strip()
    return digest if proc.returncode == 0 and digest.startswith("sha256:") else None
