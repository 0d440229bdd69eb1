"""How a Workflow runs its executors inside containers (imports no Parsl).

* High-throughput executors: the worker pool starts inside the image. The runtime's
  :meth:`~chiltepin.containers.ContainerRuntime.worker_command` is put before Parsl's
  worker command (``launch_cmd``), on every node of every block.
* MPI executors follow the usual HPC "hybrid" model: the MPI worker pool (which only
  dispatches tasks and runs ``srun``/``mpiexec``) stays on the host, where the launcher
  and the scheduler's PMIx server are; each *rank* runs in the image. The executor's
  ``worker_init`` exports ``CHILTEPIN_CONTAINER_EXEC`` (a script in the run directory
  that runs its arguments in the image), and chiltepin's tasks turn ``$PARSL_MPI_PREFIX``
  into ``"$PARSL_MPI_PREFIX $CHILTEPIN_CONTAINER_EXEC"``, so ``$PARSL_MPI_PREFIX ./app``
  runs each rank of ``./app`` in the container unchanged.
* Cleanup removes any podman/docker container still labelled with the run.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chiltepin.containers import RUN_LABEL, ContainerRuntime, Where, get_runtime
from chiltepin.containers.base import EXECUTOR_LABEL

logger = logging.getLogger(__name__)

#: Exported in an MPI executor's worker_init: the command that runs one rank in the image.
EXEC_VAR = "CHILTEPIN_CONTAINER_EXEC"


def checked_runtime(resource: Any, where: Where) -> ContainerRuntime:
    """The runtime of ``resource``'s container, after every check a workflow makes of it
    (image reference, cache, binds, options, env, runtime command, image present)."""
    settings = resource.container
    runtime = get_runtime(settings.runtime, where)
    runtime.validate(settings, where, environment=resource.environment)
    return runtime


def worker_launch_cmd(prefix: str | None) -> str:
    """An executor's whole ``launch_cmd``: ``prefix`` (a quoted shell string), then Parsl's
    worker pool command. Braces in the prefix are escaped for the two ``str.format``
    passes Parsl applies to ``launch_cmd``. A pool on the host runs under
    :func:`chiltepin.watchdog.guard`, so nothing it starts outlives it (a container's
    init does that job inside the container)."""
    from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

    from chiltepin._parsl_lean import command
    from chiltepin.watchdog import pool_command

    if not prefix:
        # On the host the pool starts through chiltepin._parsl_lean (a container's image
        # may hold another chiltepin, or none, so there it starts as Parsl's script).
        lean = pool_command(shlex.join(command()))
        return _escaped(lean) + " " + DEFAULT_LAUNCH_CMD
    return _escaped(prefix) + " " + DEFAULT_LAUNCH_CMD


def _escaped(text: str) -> str:
    """``text`` through the two ``str.format`` passes Parsl applies to ``launch_cmd``."""
    return text.replace("{", "{{{{").replace("}", "}}}}")


@dataclass
class _Containerized:
    name: str
    resource: Any  # chiltepin.config.schema.Resource with a container
    runtime: ContainerRuntime
    where: Where

    @property
    def settings(self) -> Any:
        return self.resource.container


class ContainerPlan:
    """Validate the containers of a set of resources, and wire them into executors.

    Construction checks every containerized resource (runtime command present, image
    reference, cache, binds) and raises ConfigError before anything starts.
    """

    def __init__(
        self,
        resources: Mapping[str, Any],
        *,
        run_dir: str,
        run_id: str,
        origins: Mapping[str, Where] | None = None,
        workdir: str | None = None,
    ) -> None:
        self.resources = dict(resources)
        self.run_dir = str(run_dir)
        self.run_id = run_id
        #: Per executor: where its container settings came from (for error messages).
        self.origins = dict(origins or {})
        self.workdir = workdir or os.getcwd()
        self.entries: dict[str, _Containerized] = {}
        for name, res in self.resources.items():
            settings = getattr(res, "container", None)
            if settings is None:
                continue
            where = self.origins.get(name) or Where(executor=name)
            self.entries[name] = _Containerized(name, res, checked_runtime(res, where), where)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def labels(self, name: str) -> dict[str, str]:
        return {RUN_LABEL: self.run_id, EXECUTOR_LABEL: name}

    def exec_script_path(self, name: str) -> Path:
        return Path(self.run_dir) / "containers" / f"{name}-exec.sh"

    def wrapper_path(self, runtime: ContainerRuntime) -> Path | None:
        if runtime.run_wrapper() is None:
            return None
        return Path(self.run_dir) / "containers" / f"{runtime.name}-run.sh"

    def prepare(self) -> dict[str, Any]:
        """Write each MPI executor's rank script, create what the runtimes need on the
        shared filesystem; return the resources to build executors from."""
        out = dict(self.resources)
        for name, entry in self.entries.items():
            workdir = None if entry.resource.mpi else self.workdir
            binds = entry.runtime.binds_for(entry.settings, self.run_dir, workdir)
            entry.runtime.prepare(entry.settings, binds, entry.where)
            wrapper = self.wrapper_path(entry.runtime)
            if wrapper is not None:
                _write_script(wrapper, entry.runtime.run_wrapper() or "")
            if not entry.resource.mpi:
                continue
            script = self.exec_script_path(name)
            _write_script(
                script,
                entry.runtime.exec_script(
                    entry.settings,
                    run_dir=self.run_dir,
                    labels=self.labels(name),
                    comment=f"executor '{name}' of run {self.run_id}, runtime "
                    f"{entry.runtime.name}, image {entry.settings.image}",
                    wrapper=str(wrapper) if wrapper else None,
                ),
            )
            export = f"export {EXEC_VAR}={shlex.quote(str(script))}"
            out[name] = entry.resource.model_copy(
                update={"environment": [*entry.resource.environment, export]}
            )
        return out

    def worker_command(self, name: str) -> list[str] | None:
        """The command put before a high-throughput executor's worker pool command."""
        entry = self.entries.get(name)
        if entry is None or entry.resource.mpi:
            return None
        command = entry.runtime.worker_command(
            entry.settings,
            run_dir=self.run_dir,
            workdir=self.workdir,
            labels=self.labels(name),
        )
        wrapper = self.wrapper_path(entry.runtime)
        return [str(wrapper), *command] if wrapper else command

    def worker_prefix(self, name: str, resource: Any = None) -> str | None:
        """:func:`build_parsl_config`'s hook: the quoted prefix (a shell string) that
        :func:`worker_launch_cmd` puts before the worker pool command."""
        command = self.worker_command(name)
        return None if command is None else shlex.join(command)

    def leftovers(self) -> list[str]:
        ids: list[str] = []
        for runtime in self._runtimes():
            ids += runtime.containers(self.run_id)
        return ids

    def cleanup(self, timeout: float = 30.0) -> list[str]:
        """Remove containers still labelled with this run; return the ids removed."""
        removed: list[str] = []
        deadline = time.monotonic() + timeout
        for runtime in self._runtimes():
            while True:
                try:
                    ids = runtime.remove_containers(self.run_id)
                except Exception:  # noqa: BLE001 - cleanup must go on
                    logger.warning("removing %s containers failed", runtime.name, exc_info=True)
                    break
                removed += [i for i in ids if i not in removed]
                if not ids or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        if removed:
            logger.info("removed %d leftover container(s) of run %s", len(removed), self.run_id)
        return removed

    def _runtimes(self) -> list[ContainerRuntime]:
        seen: dict[str, ContainerRuntime] = {}
        for entry in self.entries.values():
            if type(entry.runtime).containers is not ContainerRuntime.containers:
                seen.setdefault(entry.runtime.name, entry.runtime)
        return list(seen.values())


def _write_script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    from chiltepin._files import current_umask

    path.chmod(0o755 & ~current_umask())  # the run directory's umask: private by default
