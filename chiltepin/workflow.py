"""``Workflow``: a Parsl DataFlowKernel started from a resource configuration or site."""

from __future__ import annotations

import logging
import os
import sys
import uuid
import weakref
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from chiltepin.config import ConfigSource, load_resources
from chiltepin.config.resources import selected_names
from chiltepin.config.schema import AnyResource
from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)


def unique_run_dir(base: str | Path = "runinfo") -> str:
    """A run directory no other workflow (or agent) will pick."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path(base).absolute() / f"{stamp}-{uuid.uuid4().hex[:8]}")


def resolve_resources(
    config: ConfigSource = None,
    *,
    site: str | None = None,
    include: Iterable[str] | None = None,
) -> dict[str, AnyResource]:
    """Validated resources from an explicit config or a named site profile."""
    if site is not None:
        if config is not None:
            raise ConfigError(
                "give either a config or a site, not both",
                hint="put site-specific resources in a site profile override",
            )
        from chiltepin.sites import site_resources

        return site_resources(site, include=include)
    return load_resources(config, include=include)


#: Started workflows' selected executor names, by DataFlowKernel (see task_executors).
_SELECTED: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def task_executors(dfk: Any) -> list[str] | str:
    """Where a task without ``executor=`` may run on ``dfk``: the executors its Workflow
    selected, or Parsl's ``"all"`` for a DataFlowKernel no Workflow started."""
    return list(_SELECTED.get(dfk, ())) or "all"


class Workflow:
    """Run Parsl tasks on the configured resources.

    Use as a context manager (``with Workflow(cfg) as dfk:``) or call :meth:`start` and
    :meth:`cleanup`. Configuration is validated in the constructor, before anything starts.
    Cleanup always shuts down executors, workers and scheduler jobs.
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        site: str | None = None,
        include: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
        log_file: str | Path | None = None,
        log_level: int | str | None = None,
    ) -> None:
        if include is not None and not isinstance(include, str):
            include = list(include)
        self.resources = resolve_resources(config, site=site, include=include)
        self._executor_names = selected_names(self.resources, include)
        self.site = site
        self.run_dir = str(Path(run_dir).absolute()) if run_dir else unique_run_dir()
        self.log_file = str(log_file) if log_file else None
        self.log_level = _level(log_level)
        self.dfk: Any = None
        #: Labels this run's containers (podman/docker) so cleanup can find them.
        self.run_id = uuid.uuid4().hex[:12]
        self._containers: Any = None

    @property
    def executor_names(self) -> list[str]:
        """The resources ``include`` selected (all when it is None), in its order.

        The Parsl configuration also has ``local`` when ``include`` omits it (chiltepin
        0.1.x compatibility: ``executor="local"`` always works), but it is not listed
        here: agents default to these executors, and a task without ``executor=`` runs
        on one of these (see :func:`task_executors`), not on that implicit ``local``.
        """
        return list(self._executor_names)

    def start(self) -> Any:
        """Start the executors; return the Parsl DataFlowKernel."""
        import parsl

        from chiltepin.config.parsl_config import build_parsl_config

        if self.dfk is not None:
            return self.dfk
        from chiltepin.containers.wiring import ContainerPlan

        # Validates every container (runtime command, image, binds) before anything starts.
        plan = ContainerPlan(
            self.resources, run_dir=self.run_dir, run_id=self.run_id, site=self.site
        )
        _ensure_worker_scripts_on_path()
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        resources = plan.prepare()
        config = build_parsl_config(
            resources, run_dir=self.run_dir, worker_prefix=plan.worker_prefix
        )
        if self.log_file:
            parsl.set_file_logger(self.log_file, level=self.log_level or logging.DEBUG)
        self._containers = plan if plan else None
        try:
            self.dfk = parsl.load(config)
        except parsl.errors.ConfigurationError as exc:
            if "already" in str(exc):
                raise ConfigError(
                    "another Workflow is already running in this process",
                    hint="clean it up first, or run this one in its own process",
                ) from None
            raise
        except BaseException:
            _shutdown_started(config)
            self._cleanup_containers()
            raise
        _SELECTED[self.dfk] = self.executor_names
        parsl_logger = logging.getLogger("parsl")
        # Parsl logs to its own file (run_dir/.../parsl.log or log_file); keep its
        # debug flood out of the application's handlers.
        parsl_logger.propagate = False
        if self.log_level is not None:
            parsl_logger.setLevel(self.log_level)
        return self.dfk

    def cleanup(self) -> None:
        """Stop executors and cancel scheduler jobs. Safe to call more than once."""
        dfk, self.dfk = self.dfk, None
        if dfk is None:
            self._cleanup_containers()
            return
        import parsl

        try:
            dfk.cleanup()
        finally:
            if parsl.DataFlowKernelLoader._dfk is dfk:
                parsl.clear()
            self._cleanup_containers()

    def _cleanup_containers(self) -> None:
        """Remove containers (podman/docker) still labelled with this run."""
        plan, self._containers = self._containers, None
        if plan is not None:
            plan.cleanup()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.cleanup()
            return
        try:
            self.cleanup()
        except Exception:
            # Never hide the user's exception behind a cleanup failure.
            logger.exception("workflow cleanup failed while handling another error")


def _level(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    level = logging.getLevelName(str(value).upper())
    if not isinstance(level, int):
        raise ConfigError(
            f"unknown log level {value!r}",
            key="log_level",
            hint="use DEBUG, INFO, WARNING or ERROR",
        )
    return level


def _ensure_worker_scripts_on_path() -> None:
    # Parsl starts interchange.py and process_worker_pool.py by name; they live beside
    # this interpreter, which may not be on PATH (a venv used without activation).
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path


def _shutdown_started(config: Any) -> None:
    for executor in config.executors:
        try:
            executor.shutdown()
        except Exception:  # noqa: BLE001 - best effort after a failed start
            logger.debug("shutdown of %s after failed start", executor.label, exc_info=True)
