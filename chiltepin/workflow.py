"""``Workflow``: a Parsl DataFlowKernel started from a resource configuration or site."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import sys
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from chiltepin._files import run_dir_umask
from chiltepin.config import ConfigSource
from chiltepin.config.resources import selected_names
from chiltepin.config.source import ResolvedResources, WorkflowSource
from chiltepin.errors import ConfigError, ServiceError

logger = logging.getLogger(__name__)


def unique_run_dir(base: str | Path = "runinfo") -> str:
    """A run directory no other workflow (or agent) will pick."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path(base).absolute() / f"{stamp}-{uuid.uuid4().hex[:8]}")


#: Seconds a Workflow's cleanup waits for Parsl's before stopping what is left directly.
CLEANUP_TIMEOUT = 30.0

#: Started workflows' selected executor names, by DataFlowKernel (see task_executors).
_SELECTED: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


#: Executors a started workflow keeps in reserve, by DataFlowKernel: the ``local`` that
#: stays available when ``include`` omits it (chiltepin 0.1.x) is started on first use, so
#: a workflow (and every agent's) runs no idle interchange for it.
_DEFERRED: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_DEFERRED_LOCK = threading.Lock()


def start_deferred(dfk: Any, names: Iterable[str]) -> None:
    """Start those of ``names`` that ``dfk``'s workflow keeps in reserve (no-op otherwise)."""
    with _DEFERRED_LOCK:
        reserve = _DEFERRED.get(dfk) or {}
        wanted = [n for n in names if n in reserve and n not in dfk.executors]
        if not wanted:
            return
        from chiltepin.config.blocks import hold_initial_blocks, launch_initial_blocks
        from chiltepin.config.executors import build_executor

        run_dir = str(Path(dfk.run_dir).parent)  # Parsl's run_dir is <Workflow's>/NNN
        executors = [build_executor(n, reserve.pop(n), run_dir=run_dir) for n in wanted]
        held = hold_initial_blocks(executors)
        dfk.add_executors(executors)
        launch_initial_blocks(dfk.executors, held)


#: Workflows this process is starting in the background (start_in_background), each with
#: the event that lets a delayed start begin, and the error the latest one failed with:
#: tasks submitted meanwhile wait for them.
_BACKGROUND: dict[concurrent.futures.Future[Any], threading.Event] = {}
_BACKGROUND_FAILURE: list[BaseException] = []
_BACKGROUND_LOCK = threading.Lock()


def start_in_background(
    start: Callable[[], Any], *, after: float = 0.0
) -> concurrent.futures.Future[Any]:
    """Call ``start`` (which starts a Workflow) in a new thread and return its future.

    With ``after``, the call waits that many seconds first, or until something needs the
    workflow (:func:`hurry_background_starts`). Until it returns, a task submitted in this
    process (:func:`loaded_dfk`) waits for it rather than finding no DataFlowKernel; if it
    raised, such a task raises its error. :func:`cancel_background_start` drops a start
    that has not begun.
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    go = threading.Event()
    with _BACKGROUND_LOCK:
        _BACKGROUND[future] = go
        _BACKGROUND_FAILURE.clear()

    def run() -> None:
        try:
            go.wait(after)
            if not future.set_running_or_notify_cancel():
                return  # cancel_background_start came first
            future.set_result(start())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            with _BACKGROUND_LOCK:
                _BACKGROUND_FAILURE[:] = [exc]
            future.set_exception(exc)
        finally:
            with _BACKGROUND_LOCK:
                _BACKGROUND.pop(future, None)

    threading.Thread(target=run, name="chiltepin-workflow-start", daemon=True).start()
    return future


def cancel_background_start(future: concurrent.futures.Future[Any]) -> bool:
    """Drop a :func:`start_in_background` that has not begun (True); False if it has
    begun, or is done: then it runs to its end, and its workflow needs a cleanup."""
    if not future.cancel():
        return False
    with _BACKGROUND_LOCK:
        go = _BACKGROUND.pop(future, None)
    if go is not None:
        go.set()  # its thread ends now
    return True


def hurry_background_starts() -> None:
    """Let every delayed :func:`start_in_background` of this process begin now."""
    with _BACKGROUND_LOCK:
        for go in _BACKGROUND.values():
            go.set()


def loaded_dfk() -> Any:
    """The DataFlowKernel tasks go to (Parsl's loaded one), once every workflow this
    process starts in the background is up; the start's error if it failed."""
    from parsl.dataflow.dflow import DataFlowKernelLoader
    from parsl.errors import NoDataFlowKernelError

    hurry_background_starts()
    with _BACKGROUND_LOCK:
        pending = list(_BACKGROUND)
    for future in pending:
        with contextlib.suppress(concurrent.futures.CancelledError):
            future.result()
    try:
        return DataFlowKernelLoader.dfk()
    except NoDataFlowKernelError:
        with _BACKGROUND_LOCK:
            failure = list(_BACKGROUND_FAILURE)
        if failure:
            raise failure[0] from None
        raise


def task_executors(dfk: Any) -> list[str] | str:
    """Where a task without ``executor=`` may run on ``dfk``: the executors its Workflow
    selected, or Parsl's ``"all"`` for a DataFlowKernel no Workflow started."""
    return list(_SELECTED.get(dfk, ())) or "all"


class Workflow:
    """Run Parsl tasks on the configured resources.

    Use as a context manager (``with Workflow(cfg) as dfk:``) or call :meth:`start` and
    :meth:`cleanup`. ``config`` is a YAML path, a resource mapping, None (the built-in
    ``local`` only), a :class:`~chiltepin.config.source.WorkflowSource`, or its
    already resolved :class:`~chiltepin.config.source.ResolvedResources`. Configuration
    is validated in the constructor, before anything starts. Cleanup always shuts down
    executors, workers and scheduler jobs, within :data:`CLEANUP_TIMEOUT` seconds.

    Driver death: in the main thread, SIGTERM and SIGINT raise
    :class:`~chiltepin.errors.Interrupted` (a KeyboardInterrupt; uncaught, the process
    exits 143 or 130 without a traceback) so the ``with`` block cleans up. Interchanges run
    in their own session (a terminal's Ctrl-C does not kill them first), watched on this
    process's behalf: if it is killed, they are stopped and its jobs cancelled
    (:mod:`chiltepin.watchdog`). ``start`` cleans what a killed predecessor in the same
    run directory left.

    ``client`` (as in chiltepin 0.1.x) is a Globus Compute client for remote
    (``endpoint:``) resources: their executors use it instead of the stored login.
    """

    def __init__(  # noqa: PLR0913
        self,
        config: ConfigSource | WorkflowSource | ResolvedResources = None,
        *,
        site: str | None = None,
        include: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
        client: Any = None,
        log_file: str | Path | None = None,
        log_level: int | str | None = None,
    ) -> None:
        if isinstance(config, ResolvedResources):
            if site is not None or include is not None:
                raise TypeError(
                    "Workflow(resolved) takes no site= or include=: they are resolved already"
                )
            resolved = config
        else:
            resolved = WorkflowSource.of(config, site=site, include=include).resolve()
        self.resolved = resolved
        self.source = resolved.source
        self.resources = resolved.resources
        self._executor_names = selected_names(self.resources, resolved.source.include)
        self.site = resolved.site
        run_dir = run_dir if run_dir is not None else resolved.source.run_dir
        self.run_dir = str(Path(run_dir).absolute()) if run_dir else unique_run_dir()
        self.client = client
        self.log_file = str(log_file) if log_file else None
        self.log_level = _level(log_level)
        self.dfk: Any = None
        #: Labels this run's containers (podman/docker) so cleanup can find them.
        self.run_id = uuid.uuid4().hex[:12]
        self._containers: Any = None
        self._log_handler: _LogHandler | None = None
        self._signals: _StopSignals | None = None
        #: Seconds the DataFlowKernel's cleanup may take before its interchanges are
        #: killed and its jobs cancelled directly.
        self.cleanup_timeout = CLEANUP_TIMEOUT
        self._monitor: Any = None  # chiltepin.runs.RunMonitor: feedback, status file

    @property
    def executor_names(self) -> list[str]:
        """The resources ``include`` selected (all when it is None), in its order.

        ``local`` stays available when ``include`` omits it (chiltepin 0.1.x
        compatibility: ``executor="local"`` always works; its executor starts when a task
        first asks for it, see :func:`start_deferred`), but it is not listed here: agents
        default to these executors, and a task without ``executor=`` runs on one of these
        (see :func:`task_executors`), not on that implicit ``local``.
        """
        return list(self._executor_names)

    def start(self) -> Any:
        """Start the executors; return the Parsl DataFlowKernel.

        Raises RuntimeError if this workflow is already started (call :meth:`cleanup`).
        """
        import parsl

        from chiltepin.config.parsl_config import build_parsl_config

        if self.dfk is not None:
            raise RuntimeError("Workflow already started. Call cleanup() first.")
        from chiltepin.preflight import preflight

        preflight(self.resolved, self._executor_names)  # against the live scheduler
        from chiltepin.containers.wiring import ContainerPlan

        # Validates every container (runtime command, image, binds) before anything starts.
        plan = ContainerPlan(
            self.resources,
            run_dir=self.run_dir,
            run_id=self.run_id,
            origins=self.resolved.origins,
        )
        _ensure_worker_scripts_on_path()
        with run_dir_umask(self.resolved.run_dirs):
            Path(self.run_dir).mkdir(parents=True, exist_ok=True)
            from chiltepin.watchdog import reap

            reap(self.run_dir)  # what a killed predecessor in this run directory left
            resources = plan.prepare()
            selected = {n: r for n, r in resources.items() if n in self._executor_names}
            reserve = {n: r for n, r in resources.items() if n not in self._executor_names}
            config = build_parsl_config(
                selected,
                run_dir=self.run_dir,
                worker_prefix=plan.worker_prefix,
                client=self.client,
                origins=self.resolved.origins,
            )
            if self.log_file:
                self._log_handler = _LogHandler.add(self.log_file, self.log_level or logging.DEBUG)
            self._containers = plan if plan else None
            from chiltepin.config.blocks import hold_initial_blocks, launch_initial_blocks
            from chiltepin.watchdog import children, record_children

            before = children() if config.monitoring is not None else None
            held = hold_initial_blocks(config.executors)
            try:
                self.dfk = parsl.load(config)
                launch_initial_blocks(self.dfk.executors, held)
                if before is not None:
                    record_children(self.run_dir, before)
            except parsl.errors.ConfigurationError as exc:
                self._remove_log_handler()
                if "already" in str(exc):
                    raise ConfigError(
                        "another Workflow is already running in this process",
                        hint="clean it up first, or run this one in its own process",
                    ) from None
                raise
            except BaseException:
                _shutdown_started(config)
                self._cleanup_containers()
                self._remove_log_handler()
                raise
        _SELECTED[self.dfk] = self.executor_names
        _DEFERRED[self.dfk] = reserve
        self._signals = _StopSignals.install()
        from chiltepin.runs import RunMonitor

        self._monitor = RunMonitor.start_for(self)
        parsl_logger = logging.getLogger("parsl")
        # Parsl logs to its own file (run_dir/.../parsl.log or log_file); keep its
        # debug flood out of the application's handlers.
        parsl_logger.propagate = False
        if self.log_level is not None:
            parsl_logger.setLevel(self.log_level)
        return self.dfk

    def cleanup(self, suppress_exceptions: bool = False) -> None:
        """Stop executors, cancel scheduler jobs, remove this run's containers and log
        handler. Safe to call more than once.

        Every step is attempted. If one fails, ``dfk`` stays set for inspection and a
        :class:`~chiltepin.errors.ServiceError` is raised from the first failure
        (``__cause__``); with ``suppress_exceptions=True`` the failure is only logged.
        Calling cleanup again retries what is left.
        """
        failures: list[BaseException] = []
        dfk = self.dfk
        if self._signals is not None:
            self._signals.cleaning = True
        if self._monitor is not None:
            self._monitor.halt()  # stop polling the executors before they shut down
        if dfk is not None:
            try:
                # A DataFlowKernel cleans up once: a retry after a failed cleanup goes on
                # with the steps after it.
                if not getattr(dfk, "cleanup_called", False):
                    _bounded_dfk_cleanup(dfk, self.cleanup_timeout)
            except Exception as exc:  # noqa: BLE001 - reported below, after every step
                failures.append(exc)
            finally:
                _forget_loaded(dfk)
        steps = (
            self._stop_monitor,
            self._cancel_left_jobs,
            self._cleanup_containers,
            self._remove_log_handler,
        )
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - reported below, after every step
                failures.append(exc)
        if not failures:
            self.dfk = None
            if self._signals is not None:
                self._signals, signals = None, self._signals
                signals.uninstall()
            return
        summary = "; ".join(f"{type(e).__name__}: {e}" for e in failures)
        if suppress_exceptions:
            logger.warning(
                "workflow cleanup failed (suppressed): %s", summary, exc_info=failures[0]
            )
            return
        raise ServiceError(
            f"workflow cleanup failed: {summary} (the DataFlowKernel is kept as "
            "workflow.dfk; call cleanup() again to retry)"
        ) from failures[0]

    def _cancel_left_jobs(self) -> None:
        """Cancel this process's jobs the ledger still lists (a cleanup that could not
        reach its interchange, a block Parsl lost track of)."""
        from chiltepin.watchdog import cancel_jobs, open_jobs, read_entries

        jobs = open_jobs(read_entries(self.run_dir), owner=os.getpid())
        if jobs:
            ids = cancel_jobs(jobs)
            logger.debug("cancelled jobs left after cleanup: %s", ids)

    def _cleanup_containers(self) -> None:
        """Remove containers (podman/docker) still labelled with this run."""
        plan, self._containers = self._containers, None
        if plan is not None:
            plan.cleanup()

    def add_status(self, name: str, section: Callable[[], list[Any]]) -> None:
        """Add ``section()`` (a list of JSON values, called from the run monitor's thread)
        to the list ``name`` of this run in ``chiltepin status`` while it runs."""
        if self._monitor is not None:
            self._monitor.sections.setdefault(name, []).append(section)

    def remove_status(self, name: str, section: Callable[[], list[Any]]) -> None:
        if self._monitor is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._monitor.sections[name].remove(section)

    def _stop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop()

    def _remove_log_handler(self) -> None:
        handler, self._log_handler = self._log_handler, None
        if handler is not None:
            handler.remove()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Never hide the user's exception behind a cleanup failure.
        self.cleanup(suppress_exceptions=exc is not None)


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


def _forget_loaded(dfk: Any) -> None:
    """Let Parsl load another DataFlowKernel in this process, if ``dfk`` is the loaded one."""
    import parsl
    from parsl.errors import NoDataFlowKernelError

    try:
        loaded = parsl.dfk()
    except NoDataFlowKernelError:
        return
    if loaded is dfk:
        parsl.clear()


@dataclasses.dataclass
class _LogHandler:
    """The file handler ``parsl.set_file_logger`` added for a workflow's ``log_file``."""

    unregister: Any
    handlers: list[logging.Handler]

    @classmethod
    def add(cls, path: str, level: int) -> _LogHandler:
        import parsl

        parsl_logger = logging.getLogger("parsl")
        before = set(parsl_logger.handlers)
        unregister = parsl.set_file_logger(path, level=level)
        return cls(unregister, [h for h in parsl_logger.handlers if h not in before])

    def remove(self) -> None:
        self.unregister()
        for handler in self.handlers:
            handler.close()  # Parsl's unregister leaves the file open


class _StopSignals:
    """SIGTERM and SIGINT while a workflow runs in the main thread (and nobody else
    handles them): raise :class:`~chiltepin.errors.Interrupted` (exit status 143 or
    130, no traceback), so the ``with`` block's cleanup runs. A second signal during
    that cleanup exits at once; the interchange's watchdog then stops what is left."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.cleaning = False

    @classmethod
    def install(cls) -> _StopSignals | None:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return None
        stops = cls()
        for name in cls.SIGNALS:
            sig = getattr(signal, name)
            current = signal.getsignal(sig)
            if current in (signal.SIG_DFL, signal.default_int_handler):
                stops.previous[sig] = current
                signal.signal(sig, stops._handle)
        return stops if stops.previous else None

    def uninstall(self) -> None:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self.previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        from chiltepin.errors import Interrupted

        name = signal.Signals(signum).name
        if self.cleaning:
            logger.warning("%s during cleanup: exiting now", name)
            os._exit(128 + signum)
        self.cleaning = True
        logger.warning("%s: cleaning up the workflow", name)
        raise Interrupted(128 + signum)


def _bounded_dfk_cleanup(dfk: Any, timeout: float) -> None:
    """``dfk.cleanup()``, given at most ``timeout`` seconds. Parsl waits without a limit
    for an interchange that stopped answering: executors whose interchange died are
    failed first (Parsl then skips them), and after the timeout interchanges are killed
    (their jobs are cancelled from the ledger by the caller)."""
    for executor in dfk.executors.values():
        proc = getattr(executor, "interchange_proc", None)
        if proc is not None and proc.poll() is not None and not executor.bad_state_is_set:
            executor.set_bad_state_and_fail_all(
                ServiceError(f"executor '{executor.label}': its interchange exited")
            )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            dfk.cleanup()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=run, name="chiltepin-cleanup", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        for executor in dfk.executors.values():
            proc = getattr(executor, "interchange_proc", None)
            if proc is not None and proc.poll() is None:
                proc.kill()
        raise ServiceError(
            f"Parsl's cleanup did not finish within {timeout:.0f} s: its interchanges "
            "were killed and its jobs cancelled"
        )
    if errors:
        raise errors[0]
