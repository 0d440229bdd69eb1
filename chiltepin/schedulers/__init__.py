"""Schedulers: where a resource's workers run (this machine, Slurm, PBS Pro).

One small class per scheduler behind :class:`Scheduler` (like Parsl's providers and
:mod:`chiltepin.containers`): :class:`LocalhostScheduler`, :class:`SlurmScheduler`,
:class:`PBSProScheduler`. :func:`get_scheduler` picks one by the name a resource's
``provider:`` or a site profile's ``scheduler:`` uses; the resource schema, site
defaults, the Parsl builders and the endpoint generator all read these classes. Adding
a scheduler is one class here plus :func:`register`. Nothing here imports Parsl.
"""

from __future__ import annotations

from chiltepin.errors import ConfigError, did_you_mean
from chiltepin.schedulers.base import BatchScheduler, JobInfo, Options, Problem, Scheduler, Setting
from chiltepin.schedulers.localhost import LocalhostScheduler
from chiltepin.schedulers.pbspro import PBSProScheduler
from chiltepin.schedulers.slurm import SlurmScheduler

#: Scheduler classes by name, in the order docs and schemas list them.
SCHEDULERS: dict[str, type[Scheduler]] = {
    cls.name: cls for cls in (LocalhostScheduler, SlurmScheduler, PBSProScheduler)
}


def register(cls: type[Scheduler]) -> type[Scheduler]:
    """Add a scheduler class to the registry (usable as a class decorator)."""
    SCHEDULERS[cls.name] = cls
    return cls


def get_scheduler(name: str) -> Scheduler:
    """The scheduler called ``name``; ConfigError (with a 'did you mean') if unknown."""
    cls = SCHEDULERS.get(name)
    if cls is None:
        hint = did_you_mean(name, SCHEDULERS) or ""
        raise ConfigError(
            f"unknown scheduler {name!r}",
            hint=f"{hint} schedulers: {', '.join(SCHEDULERS)}".strip(),
        )
    return cls()


def scheduler_keys() -> frozenset[str]:
    """Every key some scheduler owns; the others apply to all schedulers."""
    return frozenset().union(*(cls.keys for cls in SCHEDULERS.values()))


def schedulers_taking(key: str) -> list[str]:
    """Names of the schedulers that take ``key``, in registry order."""
    return [name for name, cls in SCHEDULERS.items() if key in cls.keys]


__all__ = [
    "SCHEDULERS",
    "BatchScheduler",
    "JobInfo",
    "LocalhostScheduler",
    "Options",
    "PBSProScheduler",
    "Problem",
    "Scheduler",
    "Setting",
    "SlurmScheduler",
    "get_scheduler",
    "register",
    "scheduler_keys",
    "schedulers_taking",
]
