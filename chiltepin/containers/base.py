"""The interface every container runtime implements, and what they share.

A runtime turns a site's ``container:`` settings into commands:

* :meth:`ContainerRuntime.worker_command` prefixes the Parsl worker pool command, so a
  high-throughput executor's workers start inside the image;
* :meth:`ContainerRuntime.exec_command` runs one program inside the image, e.g. each
  rank an MPI launcher starts (:meth:`ContainerRuntime.exec_script` wraps it in a script
  that adds what is known only when the rank starts: the launcher's environment and the
  PMIx rendezvous directory);
* :meth:`ContainerRuntime.pull`, :meth:`has_image`, :meth:`list_images` and
  :meth:`image_path` manage the image where the runtime keeps it (podman/docker: their
  store; apptainer/singularity: a ``.sif`` file in the cache directory; charliecloud: a
  directory image in the cache directory).

Every value reaches a shell through :func:`shlex.quote`. Commands are built on the
submitting host and run on compute nodes, so they name the runtime by its command name
(found on the node's ``PATH``), never by a path found here.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from chiltepin.containers.reference import ImageRef, is_local_path, parse_image_ref
from chiltepin.errors import ConfigError, PullError

if TYPE_CHECKING:
    from chiltepin.config.schema import ContainerSettings

#: Label put on every podman/docker container a workflow starts: ``chiltepin.run=<run id>``.
RUN_LABEL = "chiltepin.run"
EXECUTOR_LABEL = "chiltepin.executor"

#: Environment variable name patterns an MPI rank's container receives from the launcher
#: (process-management interface, scheduler, MPI and fabric settings).
RANK_ENV_PATTERNS = (
    "PMIX_*",
    "PMI_*",
    "SLURM*",
    "OMPI_*",
    "PRTE_*",
    "HYDRA_*",
    "MPIR_*",
    "I_MPI_*",
    "MPICH_*",
    "FI_*",
    "UCX_*",
    "PALS_*",
    "PBS_*",
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
)

#: Characters a batch script would expand even inside single quotes (Parsl's srun
#: launcher writes the worker command through an unquoted here-document).
_SHELL_EXPANDED = re.compile(r"[$`\\\n]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\*?$")
#: Characters a value may hold to reach globus-compute-endpoint's container launch
#: command. The engine re-splits that command on whitespace (dropping any quoting) and
#: re-joins it with spaces; Parsl then applies ``str.format`` to it and a batch script
#: runs it through a shell. Only words needing no quoting survive that as one argument.
ENGINE_SAFE = re.compile(r"[A-Za-z0-9_./:=,+@%-]+")
ENGINE_SAFE_HINT = "letters, digits and _ . / : = , + @ % -"
#: Host directories never bound implicitly (they would hide the image's own).
_SYSTEM_DIRS = frozenset(
    "/ /bin /boot /dev /etc /lib /lib32 /lib64 /opt /proc /root /run /sbin /sys /usr /var".split()
)


@dataclass(frozen=True)
class Where:
    """Where container settings came from, for error messages."""

    site: str | None = None
    executor: str | None = None
    option: str | None = None  # a command-line option, e.g. --runtime
    source: str | None = None  # the profile file that set the container, when known
    line: int | None = None
    #: (key, file, line) of the executor's other settings, when known
    places: tuple[tuple[str, str | None, int | None], ...] = ()

    def error(self, message: str, *, key: str | None = None, hint: str | None = None):
        if self.option:
            return ConfigError(f"{self.option}: {message}", hint=hint)
        kind = f"site '{self.site}' executor" if self.site else "executor"
        if self.executor is None:
            kind, entry = ("site", self.site) if self.site else ("entry", None)
        else:
            entry = self.executor
        return ConfigError(
            message,
            source=self.source,
            line=self.line,
            entry=entry,
            entry_kind=kind,
            key=f"container.{key}" if key else None,
            hint=hint,
        )

    def key_error(self, message: str, key: str, hint: str | None = None) -> ConfigError:
        """A ConfigError about the executor's (not its container's) ``key``, naming the
        file and line that set it when known."""
        source, line = (None if self.site else self.source), None
        for name, file, at in self.places:
            if name == key:
                source, line = file or source, at
        kind = f"site '{self.site}' executor" if self.site else "executor"
        return ConfigError(
            message,
            source=source,
            line=line,
            entry=self.executor,
            entry_kind=kind,
            key=key,
            hint=hint,
        )

    @classmethod
    def of(cls, site: str, executor: str, provenance: Mapping) -> Where:
        """Where a site executor's container was set (``provenance``: from Site.resolve)."""
        _label, source, line = provenance.get("container", (None, None, None))
        places = tuple((key, file, at) for key, (_l, file, at) in provenance.items() if file)
        return cls(site=site, executor=executor, source=source, line=line, places=places)

    def __str__(self) -> str:
        if self.option:
            return self.option
        parts = []
        if self.site:
            parts.append(f"site '{self.site}'")
        if self.executor:
            parts.append(f"executor '{self.executor}'")
        return " ".join(parts) or "container settings"


#: No location known (errors then name only the problem).
NOWHERE = Where()


@dataclass(frozen=True)
class Bind:
    """A bind mount ``SRC[:DST[:OPTIONS]]`` (DST defaults to SRC)."""

    src: str
    dst: str
    options: str = ""

    def __str__(self) -> str:
        text = self.src if self.dst == self.src and not self.options else f"{self.src}:{self.dst}"
        return f"{text}:{self.options}" if self.options else text


def parse_bind(text: str, where: Where = NOWHERE, *, check: bool = True) -> Bind:
    """Parse one bind spec; with ``check`` the source must exist on this host."""
    expanded = expand(text.strip())
    parts = expanded.split(":")
    if not expanded or len(parts) > 3 or not all(parts[:2]):
        raise where.error(
            f"bind {text!r} is not SRC[:DST[:OPTIONS]]",
            key="binds",
            hint="e.g. /scratch or /scratch/me:/data:ro",
        )
    src = parts[0]
    dst = parts[1] if len(parts) > 1 else src
    options = parts[2] if len(parts) > 2 else ""
    for path in (src, dst):
        if not path.startswith("/"):
            raise where.error(
                f"bind {text!r}: {path!r} is not an absolute path",
                key="binds",
                hint="bind paths start with '/' (or '~' / $VARIABLE, expanded here)",
            )
    if check and not os.path.exists(src):
        raise where.error(
            f"bind source {src!r} does not exist",
            key="binds",
            hint="create it, fix the path, or remove it from the container's binds",
        )
    return Bind(os.path.normpath(src), os.path.normpath(dst), options)


@dataclass(frozen=True)
class PullResult:
    """The outcome of :meth:`ContainerRuntime.pull`."""

    image: str  # what workers run: a reference (podman/docker) or a path
    digest: str | None
    changed: bool  # False: the same digest was already there
    seconds: float


@dataclass(frozen=True)
class ImageInfo:
    name: str
    digest: str | None = None
    size: str | None = None
    path: str | None = None
    labels: Mapping[str, str] | None = None  # the image's own labels, where they were read


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.getuid())


def expand(path: str) -> str:
    """``~`` and ``$VARIABLES`` expanded (on the submitting host)."""
    return os.path.expandvars(os.path.expanduser(path))


def cache_dir_of(cache_dir: str | None) -> Path:
    """The image cache directory: the given one (expanded), else the default."""
    return Path(expand(cache_dir or default_cache_dir()))


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "chiltepin" / "images")


def check_writable_dir(path: str, where: Where = NOWHERE) -> Path:
    """Create ``path`` if needed and prove a file can be written in it."""
    directory = Path(expand(path))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".chiltepin-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise where.error(
            f"image cache directory {str(directory)!r} is not writable ({reason})",
            key="cache_dir",
            hint="point cache_dir at a directory you can write (shared by the compute "
            "nodes), or ask the site's admins for one",
        ) from None
    return directory


class ContainerRuntime:
    """One container runtime (subclasses: podman, docker, apptainer, singularity,
    charliecloud). Instances are cheap; ``binary`` may be overridden (tests, wrappers)."""

    name: ClassVar[str]
    binary: str
    #: How images are kept: "store" (the runtime's own), "file" (.sif) or "directory".
    image_kind: ClassVar[str]
    #: Whether env names may be patterns (``SLURM*``) in ``env:``.
    env_patterns: ClassVar[bool] = False
    #: globus-compute-endpoint's ``container_type`` ("custom": a command template).
    engine_type: ClassVar[str]

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or type(self).binary

    def __repr__(self) -> str:
        return f"{type(self).__name__}(binary={self.binary!r})"

    # ------------------------------------------------------------------ presence
    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def require(self, where: Where = NOWHERE, environment: Sequence[str] = ()) -> None:
        """Raise ConfigError unless the runtime command is on PATH here (or after the
        executor's ``environment`` lines, e.g. ``module load apptainer``)."""
        if self.available() or (environment and _found_after(environment, self.binary)):
            return
        raise where.error(
            f"container runtime '{self.name}' needs the '{self.binary}' command, which is "
            "not on PATH",
            key="runtime",
            hint=f"install {self.name} or load its module (e.g. an 'environment' line "
            f"'module load {self.name}'), or choose another runtime",
        )

    # ------------------------------------------------------------------ validation
    def validate(
        self,
        settings: ContainerSettings,
        where: Where = NOWHERE,
        *,
        environment: Sequence[str] = (),
        need_image: bool = True,
    ) -> None:
        """Check settings as a workflow would use them; raise ConfigError on the first problem.

        Order: image reference, cache directory, binds, options/env, runtime command, image.
        """
        self.check_image_value(settings.image, where)
        if settings.cache_dir and self.image_kind != "store" and not is_local_path(settings.image):
            cache = Path(expand(settings.cache_dir))
            if not cache.is_dir():
                raise where.error(
                    f"image cache directory {str(cache)!r} does not exist",
                    key="cache_dir",
                    hint="create it, or run 'chiltepin image pull' which creates it",
                )
        for text in settings.binds:
            bind = parse_bind(text, where)
            if _SHELL_EXPANDED.search(str(bind)):
                raise where.error(
                    f"bind {text!r} contains '$', '`', a backslash or a newline after "
                    "expansion, which the batch script would expand again",
                    key="binds",
                    hint="use a path without those characters",
                )
        for name in settings.env:
            if not _ENV_NAME.match(name) or (name.endswith("*") and not self.env_patterns):
                pattern = " or NAME* patterns" if self.env_patterns else ""
                raise where.error(
                    f"env entry {name!r} is not a variable name",
                    key="env",
                    hint=f"list names of variables to pass through{pattern}; "
                    f"{self.name} takes no values here",
                )
        for value in settings.options:
            if _SHELL_EXPANDED.search(value):
                raise where.error(
                    f"option {value!r} contains '$', '`', a backslash or a newline, which the "
                    "batch script would expand",
                    key="options",
                    hint="write the value out",
                )
        self.require(where, environment)
        if need_image:
            self.check_image_present(settings, where)

    def check_image_value(self, image: str, where: Where = NOWHERE) -> None:
        if is_local_path(image):
            path = Path(os.path.expanduser(image))
            if self.image_kind == "store":
                raise where.error(
                    f"{self.name} runs images from its store, not the path {image!r}",
                    key="image",
                    hint="give a reference such as ghcr.io/noaa-gsl/chiltepin:0.1.0",
                )
            if not path.exists():
                raise where.error(
                    f"image path {image!r} does not exist",
                    key="image",
                    hint="fix the path, or give a registry reference and run "
                    "'chiltepin image pull'",
                )
            return
        try:
            parse_image_ref(image)
        except ConfigError as exc:
            raise where.error(exc.reason, key="image", hint=exc.hint) from None

    def check_image_present(self, settings: ContainerSettings, where: Where = NOWHERE) -> None:
        """File-based runtimes need the image pulled into the shared cache first."""

    # ------------------------------------------------------------------ commands
    def worker_command(
        self,
        settings: ContainerSettings,
        *,
        run_dir: str,
        env_names: Iterable[str] = (),
        workdir: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The command that, followed by the worker pool command, runs it in the image."""
        return self._full_command(settings, run_dir, env_names, workdir, labels, mpi=False)

    def exec_command(
        self,
        settings: ContainerSettings,
        *,
        run_dir: str,
        env_names: Iterable[str] = (),
        workdir: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The command that, followed by a program and its arguments, runs it in the image
        the way an MPI rank needs (host network, IPC and process namespaces)."""
        return self._full_command(settings, run_dir, env_names, workdir, labels, mpi=True)

    def _full_command(
        self,
        settings: ContainerSettings,
        run_dir: str,
        env_names: Iterable[str],
        workdir: str | None,
        labels: Mapping[str, str] | None,
        *,
        mpi: bool,
    ) -> list[str]:
        head, tail = self._command(
            settings,
            binds=self.binds_for(settings, run_dir, workdir),
            env_names=[*env_names, *settings.env],
            workdir=workdir,
            labels=labels or {},
            mpi=mpi,
        )
        return [*head, *tail]

    def run_wrapper(self) -> str | None:
        """A script to put before the runtime's command so the batch system's signals
        reach the container (podman/docker: see oci.RUN_WRAPPER), or None."""
        return None

    def exec_script(
        self,
        settings: ContainerSettings,
        *,
        run_dir: str,
        env_names: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        comment: str = "",
        wrapper: str | None = None,
    ) -> str:
        """A bash script running ``"$@"`` in the image as :meth:`exec_command` does, adding
        at run time the launcher's environment, the PMIx directory and the working directory.
        """
        binds = self.binds_for(settings, run_dir, None)
        head, tail = self._command(
            settings,
            binds=binds,
            env_names=[*env_names, *settings.env],
            workdir=None,
            labels=labels or {},
            mpi=True,
        )
        lines = [
            "#!/bin/bash",
            "# Generated by chiltepin: runs one program (e.g. an MPI rank) inside the container:",
            "#   $PARSL_MPI_PREFIX <this script> PROGRAM [ARGS...]",
        ]
        lines += [f"# {line}" for line in comment.splitlines() if line]
        lines += ["set -e", "args=()", *self._rank_shell(settings, [b.dst for b in binds])]
        command = " ".join(shlex.quote(a) for a in ([wrapper] if wrapper else []) + head)
        command += ' "${args[@]}" ' + " ".join(shlex.quote(a) for a in tail) + ' "$@"'
        lines.append(f"exec {command}")
        return "\n".join(lines) + "\n"

    def _command(
        self,
        settings: ContainerSettings,
        *,
        binds: list[Bind],
        env_names: list[str],
        workdir: str | None,
        labels: Mapping[str, str],
        mpi: bool,
    ) -> tuple[list[str], list[str]]:
        """(options part, image part): run-time arguments go between the two."""
        raise NotImplementedError

    def _rank_shell(self, settings: ContainerSettings, bound: list[str]) -> list[str]:
        """Bash lines appending run-time arguments to the array ``args``; ``bound``: the
        destinations already bound."""
        return []

    def binds_for(
        self, settings: ContainerSettings, run_dir: str, workdir: str | None
    ) -> list[Bind]:
        """The run directory and working directory (unless system dirs), then the site's."""
        binds: list[Bind] = []
        for path in (run_dir, workdir):
            if path and os.path.normpath(path) not in _SYSTEM_DIRS:
                binds.append(Bind(os.path.normpath(path), os.path.normpath(path)))
        binds += [parse_bind(b, check=False) for b in settings.binds]
        unique: dict[str, Bind] = {}
        for bind in binds:
            unique.setdefault(bind.dst, bind)
        return list(unique.values())

    # ------------------------------------------------------------------ endpoint
    def engine_settings(
        self, settings: ContainerSettings, where: Where = NOWHERE
    ) -> dict[str, str]:
        """``container_type``, ``container_uri`` and ``container_cmd_options`` of a
        globus-compute-endpoint engine running its workers in this image.

        The engine builds the worker command from these itself and loses any quoting
        (see :data:`ENGINE_SAFE`): a value that would not survive as one word is a
        ConfigError naming its key, never an argument split or a shell command.
        """
        self._check_engine_values(settings, where)
        return self._engine_settings(settings)

    def _engine_settings(self, settings: ContainerSettings) -> dict[str, str]:
        raise NotImplementedError

    def _check_engine_values(self, settings: ContainerSettings, where: Where) -> None:
        values: list[tuple[str, str, str]] = [("option", "options", o) for o in settings.options]
        values += [("bind", "binds", str(parse_bind(b, check=False))) for b in settings.binds]
        values += [("env entry", "env", e) for e in settings.env]
        if settings.cache_dir and self.image_kind != "store":
            values.append(("image cache directory", "cache_dir", expand(settings.cache_dir)))
        values.append(("image", "image", self.image_for(settings)))
        for what, key, value in values:
            if not ENGINE_SAFE.fullmatch(value) or (key == "binds" and "," in value):
                shown = value if len(value) <= 80 else value[:77] + "..."
                raise where.error(
                    f"{what} {shown!r} cannot be passed to a Globus Compute endpoint: its "
                    "engine re-splits the container command on spaces and runs it in a shell",
                    key=key,
                    hint=f"use only {ENGINE_SAFE_HINT}"
                    + (" (no ',')" if key == "binds" else "")
                    + (", one option per list item" if key == "options" else ""),
                )

    # ------------------------------------------------------------------ images
    def image_for(self, settings: ContainerSettings) -> str:
        """What the command line names: a reference, or a path in the cache."""
        if is_local_path(settings.image):
            return os.path.abspath(os.path.expanduser(settings.image))
        return self.image_path(settings.image, settings.cache_dir)

    def image_path(self, image: str, cache_dir: str | None = None) -> str:
        raise NotImplementedError

    def has_image(self, image: str, cache_dir: str | None = None) -> bool:
        raise NotImplementedError

    def pull(
        self,
        image: str,
        cache_dir: str | None = None,
        progress: bool = True,
        force: bool = False,
    ) -> PullResult:
        """Fetch ``image`` unless the registry's digest is already here (or ``force``)."""
        raise NotImplementedError

    def prepare(
        self, settings: ContainerSettings, binds: list[Bind], where: Where = NOWHERE
    ) -> None:
        """Anything needed on the shared filesystem before workers start (default: none)."""

    def list_images(self, cache_dir: str | None = None) -> list[ImageInfo]:
        raise NotImplementedError

    # ------------------------------------------------------------------ leftovers
    def containers(self, run_id: str) -> list[str]:
        """Ids of containers still present that a run started (podman/docker only)."""
        return []

    def remove_containers(self, run_id: str) -> list[str]:
        """Remove the run's containers; return their ids."""
        return []

    # ------------------------------------------------------------------ helpers
    def _run(
        self,
        args: Sequence[str],
        *,
        progress: bool = False,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        what: str = "",
    ) -> subprocess.CompletedProcess:
        """Run a command; with ``progress`` its output goes to our stderr as it comes."""
        try:
            if progress:
                sys.stderr.flush()
                proc = subprocess.run(
                    list(args),
                    stdout=sys.stderr,
                    stderr=sys.stderr,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    env=dict(env) if env is not None else None,
                    text=True,
                )
            else:
                proc = subprocess.run(
                    list(args),
                    capture_output=True,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    env=dict(env) if env is not None else None,
                    text=True,
                )
        except FileNotFoundError:
            raise PullError(f"{args[0]}: command not found") from None
        except subprocess.TimeoutExpired:
            raise PullError(f"{what or args[0]} timed out after {timeout} s") from None
        if proc.returncode != 0:
            output = (proc.stderr or proc.stdout or "").strip().splitlines()
            detail = f": {output[-1]}" if output else " (see the output above)"
            raise PullError(
                f"{what or shlex.join(args)} failed with exit status {proc.returncode}{detail}"
            )
        return proc

    def _ref(self, image: str) -> ImageRef:
        return parse_image_ref(image)


def _found_after(environment: Sequence[str], binary: str) -> bool:
    """Whether ``binary`` is on PATH after running the executor's environment lines."""
    script = "\n".join([*environment, f"command -v {shlex.quote(binary)} >/dev/null"])
    try:
        proc = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def timed(fn):
    """Decorator for pull(): fill in ``seconds``."""

    def wrapper(self, *args, **kwargs) -> PullResult:
        start = time.perf_counter()
        result: PullResult = fn(self, *args, **kwargs)
        return PullResult(result.image, result.digest, result.changed, time.perf_counter() - start)

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper
