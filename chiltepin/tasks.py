"""Task decorators over Parsl apps: ``python_task``, ``bash_task`` and ``join_task``.

A decorated function is called like the plain function plus two keywords:

* ``executor``: the resource name (or list of names) to run on; default: any.
* ``chiltepin_task_geometry``: ``{"num_nodes", "num_ranks", "ranks_per_node"}`` for MPI
  resources; merged into Parsl's ``parsl_resource_specification`` (the geometry's keys
  win over the same keys given there).

Each call returns a Parsl ``AppFuture``. The Parsl app behind a task is created once per
(workflow, executors) pair and reused, so a task call costs what a raw Parsl app call does.
"""

from __future__ import annotations

import functools
import inspect
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal

Kind = Literal["python", "bash", "join"]
ExecutorChoice = "str | Sequence[str]"

GEOMETRY_KEYS = ("num_nodes", "num_ranks", "ranks_per_node")


class _KeywordFilter:
    """Calls ``func`` with only the keywords it declares (all of them if it has **kwargs).

    Parsl hands every app keyword (``walltime``, ``parsl_resource_specification``, ...)
    to the function; user functions should not have to declare those they do not use.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        params = inspect.signature(func).parameters.values()
        self.takes_all = any(p.kind is p.VAR_KEYWORD for p in params)
        self.accepted = frozenset(
            p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.takes_all:
            kwargs = {k: v for k, v in kwargs.items() if k in self.accepted}
        _container_mpi_prefix()
        return self.func(*args, **kwargs)


def _container_mpi_prefix() -> None:
    """On an MPI executor whose ranks run in a container, make ``$PARSL_MPI_PREFIX``
    launch each rank through the script named by ``EXEC_VAR`` (chiltepin.containers.wiring).

    Runs in the worker, after Parsl set the task's ``PARSL_MPI_PREFIX``: bash tasks' shells
    and Python tasks' subprocesses inherit the rewritten value.
    """
    from chiltepin.containers.wiring import EXEC_VAR

    exec_prefix = os.environ.get(EXEC_VAR)
    prefix = os.environ.get("PARSL_MPI_PREFIX")
    if exec_prefix and prefix and not prefix.endswith(exec_prefix):
        os.environ["PARSL_MPI_PREFIX"] = f"{prefix} {exec_prefix}"


class TaskFunction:
    """A function or method that runs as a Parsl app when called."""

    def __init__(self, func: Callable[..., Any], kind: Kind) -> None:
        self.func = func
        self.kind = kind
        self._target = _KeywordFilter(func)
        self._apps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        functools.update_wrapper(self, func)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_apps"] = None  # Parsl apps hold the DataFlowKernel; rebuilt on first call
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._apps = weakref.WeakKeyDictionary()

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __call__(
        self,
        *args: Any,
        executor: str | Sequence[str] = "all",
        chiltepin_task_geometry: dict[str, int] | None = None,
        **kwargs: Any,
    ):
        if chiltepin_task_geometry is not None:
            spec = merge_geometry(
                chiltepin_task_geometry, kwargs.get("parsl_resource_specification")
            )
            if spec:
                kwargs["parsl_resource_specification"] = spec
        return self.app(executor)(*args, **kwargs)

    def app(self, executor: str | Sequence[str] = "all", dfk: Any = None) -> Any:
        """The Parsl app for ``executor`` on ``dfk`` (default: the active workflow's)."""
        if dfk is None:
            from chiltepin.workflow import loaded_dfk

            dfk = loaded_dfk()  # waits for a workflow starting in the background
        key = executor if isinstance(executor, str) else tuple(executor)
        per_dfk = self._apps.get(dfk)
        if per_dfk is None:
            per_dfk = self._apps[dfk] = {}
        app = per_dfk.get(key)
        if app is None:
            app = per_dfk[key] = self._make_app(dfk, executor)
        return app

    def _make_app(self, dfk: Any, executor: str | Sequence[str]) -> Any:
        if self.kind == "join":
            # Join apps only wait on other tasks: Parsl runs them in the submitting process.
            from parsl.app.python import PythonApp

            return PythonApp(
                self._target, data_flow_kernel=dfk, join=True, executors=["_parsl_internal"]
            )
        if executor == "all":
            from chiltepin.workflow import task_executors

            executors = task_executors(dfk)
        else:
            executors = _as_list(executor)
        if executors != "all":
            from chiltepin.workflow import start_deferred

            start_deferred(dfk, executors)
            missing = [e for e in executors if e not in dfk.executors]
            if missing:
                from chiltepin.errors import ConfigError

                known = sorted(e for e in dfk.executors if not e.startswith("_"))
                raise ConfigError(
                    f"task '{self.__name__}' asks for executor {missing[0]!r}, which this "
                    "workflow does not have",
                    hint=f"available: {', '.join(known)}",
                )
        if self.kind == "bash":
            from parsl.app.bash import BashApp

            return BashApp(self._target, data_flow_kernel=dfk, executors=executors)
        from parsl.app.python import PythonApp

        return PythonApp(self._target, data_flow_kernel=dfk, executors=executors)


def merge_geometry(geometry: dict[str, int], explicit: dict[str, Any] | None) -> dict[str, Any]:
    """Parsl resource specification: ``explicit`` updated with the task geometry (the
    geometry wins on the keys both set). A geometry that is not a dict is a TypeError."""
    if not isinstance(geometry, dict):
        raise TypeError(f"chiltepin_task_geometry must be a dict, got {type(geometry).__name__}")
    unknown = set(geometry) - set(GEOMETRY_KEYS)
    if unknown:
        from chiltepin.errors import ConfigError

        raise ConfigError(
            f"unknown task geometry key {sorted(unknown)[0]!r}",
            key="chiltepin_task_geometry",
            hint=f"use {', '.join(GEOMETRY_KEYS)}",
        )
    return {**(explicit or {}), **geometry}


def _as_list(executor: str | Sequence[str]) -> list[str]:
    return [executor] if isinstance(executor, str) else list(executor)


def _decorator(kind: Kind, func: Callable[..., Any] | None) -> Any:
    if func is None:
        return lambda f: TaskFunction(f, kind)
    return TaskFunction(func, kind)


def python_task(func: Callable[..., Any] | None = None) -> Any:
    """Run ``func`` as a Parsl Python app; calls return an AppFuture of its result."""
    return _decorator("python", func)


def bash_task(func: Callable[..., Any] | None = None) -> Any:
    """``func`` returns a shell command line; calls return an AppFuture of its exit code."""
    return _decorator("bash", func)


def join_task(func: Callable[..., Any] | None = None) -> Any:
    """``func`` returns futures of other tasks; the call's future waits for them."""
    return _decorator("join", func)
