"""Parsl's worker-side programs (interchange, worker pool) without the driver's optional
packages: ``python -m chiltepin._parsl_lean interchange.py|process_worker_pool.py ARGS``.

Why this exists: ``import parsl`` imports every executor and the monitoring database, so
each Python process on the way to a workflow's first task (interchange, worker pool, the
pool's multiprocessing manager, each worker) also imports ``globus_compute_sdk`` and
``sqlalchemy``: half its import time (0.33 of 0.66 s measured here) and 42 of its 88 MB.
None of these processes uses them, and Parsl treats both as optional (it checks for them
where they are needed: a GlobusComputeExecutor, the monitoring database, both in the
driver). Parsl has no switch for this, so this module is the workaround, in one place:
while it imports Parsl for the program, those two packages are not found; once Parsl is
imported they are importable again (task code may use them).

The program's source runs as this module's ``__main__`` so that the worker pool's
``multiprocessing`` (spawn) children import this module as their main module too, and
get the same start (their program is passed down in :data:`PROGRAM_ENV`); a child runs
the program only when it looks something of it up (the pool's manager process never
does: 1 s of imports less, here, before the pool can start its workers).

A worker that becomes a driver (it hosts an agent, whose workflow may use monitoring or
a Globus Compute endpoint) calls :func:`as_driver` first: the Parsl modules that found a
package it needs missing are imported again, and its own children start normally.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: The programs by script name (as Parsl launches them) and the module each one is.
PROGRAMS = {
    "interchange.py": "parsl.executors.high_throughput.interchange",
    "process_worker_pool.py": "parsl.executors.high_throughput.process_worker_pool",
}
#: Packages only a driver uses, not found while Parsl is imported for a program.
DRIVER_ONLY = ("globus_compute_sdk", "sqlalchemy")
#: The program a spawned child of the worker pool defines as its main module.
PROGRAM_ENV = "CHILTEPIN_PARSL_PROGRAM"
#: Set in a child's main module once the program has run there.
_LOADED = "_chiltepin_program_loaded"
#: The Parsl module that looks for each driver-only package when imported, and how it
#: says that it did not find it.
_LOOKED_FOR: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "sqlalchemy": (
        "parsl.monitoring.monitoring",
        lambda module: getattr(module, "_db_manager_excepts", None) is not None,
    ),
    "globus_compute_sdk": (
        "parsl.executors.globus_compute",
        lambda module: getattr(module, "_globus_compute_enabled", None) is False,
    ),
}


def command(program: str | None = None) -> list[str]:
    """The argv that starts ``program`` (a key of :data:`PROGRAMS`) this way; without
    one, the argv to put before a command line that starts with the program."""
    here = [sys.executable, "-m", __spec__.name if __spec__ else __name__]
    return [*here, program] if program else here


def as_driver(*packages: str) -> None:
    """Make this process fit to drive a workflow that uses ``packages`` (of
    :data:`DRIVER_ONLY`): a no-op unless Parsl was imported here by this module."""
    os.environ.pop(PROGRAM_ENV, None)
    for package in packages:
        name, missed = _LOOKED_FOR[package]
        module = sys.modules.get(name)
        if module is not None and missed(module):
            # Runs the module again in its own namespace: what other modules imported
            # from it (functions, classes) sees the package from now on.
            importlib.reload(module)


class _DriverOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in DRIVER_ONLY:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@contextlib.contextmanager
def _without_driver_only() -> Iterator[None]:
    finder = _DriverOnly()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _program_code(program: str) -> object:
    with _without_driver_only():
        module = importlib.import_module(PROGRAMS[program])
    with open(module.__file__, "rb") as source:  # type: ignore[arg-type]
        return compile(source.read(), module.__file__, "exec")  # type: ignore[arg-type]


def _main(argv: list[str]) -> None:
    if not argv or argv[0] not in PROGRAMS:
        print(f"usage: python -m {__spec__.name} {{{','.join(PROGRAMS)}}} [ARGS]", file=sys.stderr)
        sys.exit(2)
    program = argv[0]
    code = _program_code(program)
    os.environ[PROGRAM_ENV] = program
    sys.argv = [program, *argv[1:]]
    exec(code, globals())  # noqa: S102 - Parsl's own program, as its script would run it


if __name__ == "__main__":
    _main(sys.argv[1:])
elif __name__ == "__mp_main__" and os.environ.get(PROGRAM_ENV) in PROGRAMS:

    def __getattr__(name: str) -> Any:
        """A multiprocessing child's main module must define what the parent's defined,
        but only a child that unpickles something of it needs that (a worker: its target
        is the program's ``worker``); the pool's multiprocessing manager, started first
        and waited for, never does. So the program (its ``if __name__ == "__main__"``
        part does not run here) runs on the first lookup of a name the module lacks,
        in the module multiprocessing made of this one."""
        main = sys.modules.get("__mp_main__")
        if name.startswith("__") or main is None or main.__dict__.get(_LOADED):
            raise AttributeError(f"module '__mp_main__' has no attribute {name!r}")
        main.__dict__[_LOADED] = True
        exec(_program_code(os.environ[PROGRAM_ENV]), main.__dict__)  # noqa: S102
        try:
            return main.__dict__[name]
        except KeyError:
            raise AttributeError(f"module '__mp_main__' has no attribute {name!r}") from None
