"""The interface every scheduler (a Parsl execution provider) implements.

A scheduler class knows everything that differs between providers: which resource keys
it takes, the Parsl provider class and its keyword arguments, the launcher that starts
high-throughput workers on every node of a block, the default MPI launcher, whether its
workers run on this machine, and which options a Globus Compute endpoint made for it
lets users override. Parsl is imported only inside methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from parsl.launchers.base import Launcher
    from parsl.providers.base import ExecutionProvider

    from chiltepin.config.schema import Resource

#: JSON-schema properties of endpoint user options, by option name.
Options = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Setting:
    """One keyword argument of the Parsl provider.

    ``option``: the endpoint user option that may override it (None: fixed by the
    profile). A None ``value`` is left to Parsl's default (and, without an option, left
    out of an endpoint template).
    """

    key: str
    value: Any
    option: str | None = None


@dataclass(frozen=True)
class Problem:
    """One way a resource does not fit what the live scheduler reports.

    ``key``: the resource key at fault; ``valid``: the values the scheduler reported
    that would fit (shown to the user as the hint).
    """

    key: str
    message: str
    valid: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobInfo:
    """What the scheduler says about one job now: its state and, if pending, why."""

    job_id: str
    state: str
    reason: str | None = None


class Scheduler(ABC):
    """One batch system (or none), as Parsl's providers model it."""

    #: The name a resource's ``provider:`` and a site profile's ``scheduler:`` use.
    name: ClassVar[str]
    #: Parsl provider class (in ``parsl.providers``).
    provider_class: ClassVar[str]
    #: Parsl launcher (in ``parsl.launchers``) starting high-throughput workers on each node.
    htex_launcher: ClassVar[str]
    #: MPI launcher when a resource names none.
    default_mpi_launcher: ClassVar[str] = "mpiexec"
    #: Scheduler-specific resource keys this scheduler takes (other schedulers' are ignored).
    keys: ClassVar[frozenset[str]] = frozenset()
    #: Workers run on this machine: the interchange listens on loopback only.
    local: ClassVar[bool] = False

    def applies(self, key: str) -> bool:
        """Whether resource key ``key`` means something to this scheduler: one of its
        own keys, or a key no scheduler owns (geometry, environment, ...)."""
        from chiltepin.schedulers import scheduler_keys

        return key in self.keys or key not in scheduler_keys()

    @abstractmethod
    def settings(self, res: Resource) -> list[Setting]:
        """The provider's keyword arguments for ``res``, beyond blocks, worker_init and
        launcher, in the order an endpoint template lists them."""

    def endpoint_options(self, executors: Iterable[Resource]) -> Options:
        """User options an endpoint for ``executors`` admits, beyond the common ones."""
        return {}

    # ------------------------------------------------------------------ Parsl objects

    def launcher_class(self, res: Resource) -> str:
        """MPI workers start once per block (the MPI launcher spreads ranks);
        high-throughput workers start on every node of a block."""
        return "SimpleLauncher" if res.mpi else self.htex_launcher

    def build_launcher(self, res: Resource) -> Launcher:
        import parsl.launchers

        return getattr(parsl.launchers, self.launcher_class(res))()

    def build_provider(self, res: Resource) -> ExecutionProvider:
        import parsl.providers

        from chiltepin.schedulers._parsl_providers import TRACKED

        kwargs = {s.key: s.value for s in self.settings(res) if s.value is not None}
        # Batch jobs are recorded in the run's ledger (chiltepin.watchdog) and polled often.
        cls = TRACKED.get(self.provider_class) or getattr(parsl.providers, self.provider_class)
        return cls(
            **kwargs,
            init_blocks=res.init_blocks,
            min_blocks=res.min_blocks,
            max_blocks=res.max_blocks,
            worker_init="\n".join(res.environment),
            launcher=self.build_launcher(res),
        )

    def mpi_launcher(self, res: Resource) -> str:
        """The MPI launcher: the resource's, else this scheduler's default."""
        return res.mpi_launcher or self.default_mpi_launcher

    def executor_options(self) -> dict[str, Any]:
        """Extra high-throughput executor keyword arguments."""
        # Workers on this machine reach the interchange on loopback; skip address probing.
        return {"address": "127.0.0.1"} if self.local else {}

    # ------------------------------------------------------------- live scheduler

    def preflight(self, resources: Mapping[str, Resource]) -> dict[str, list[Problem]]:
        """Check ``resources`` (by executor name) against the live scheduler before
        anything is submitted: the problems found, by executor. The default checks
        nothing; raises :class:`~chiltepin.errors.SchedulerUnavailable` when the
        scheduler cannot be asked."""
        return {}

    def jobs(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        """The scheduler's view of ``job_ids`` (state and pending reason), by job id;
        jobs it does not report are left out. The default reports none."""
        return {}


class BatchScheduler(Scheduler):
    """A batch system: jobs have an account, a queue, a walltime and node counts."""

    keys: ClassVar[frozenset[str]] = frozenset(
        {"account", "queue", "walltime", "scheduler_options", "gpus_per_node", "preflight"}
    )

    def batch_settings(self, res: Resource) -> list[Setting]:
        """Settings every batch system shares, after its own."""
        return [
            Setting("nodes_per_block", res.nodes_per_block, "nodes_per_block"),
            Setting("walltime", res.walltime, "walltime"),
            Setting("scheduler_options", res.scheduler_options or None),
        ]

    def endpoint_options(self, executors: Iterable[Resource]) -> Options:
        from chiltepin.config.schema import TOKEN_OR_BLANK_PATTERN, WALLTIME_RE

        # "" means "the profile's" (chiltepin 0.1.x clients send it for "none"). Python's
        # re (globus-compute-endpoint's jsonschema) lets '$' match before a final newline,
        # pydantic's regex engine does not: refuse newlines outright, so an option is held
        # to exactly the rule its resource key is.
        one_line = {"not": {"pattern": "\n"}}
        return {
            "account": {"type": "string", "pattern": TOKEN_OR_BLANK_PATTERN, **one_line},
            "queue": {
                "type": "string",
                "pattern": TOKEN_OR_BLANK_PATTERN,
                **one_line,
                "description": "Slurm QOS or PBS queue",
            },
            "walltime": {
                "type": "string",
                "pattern": WALLTIME_RE.pattern,
                **one_line,
                "description": "HH:MM:SS",
            },
            "nodes_per_block": {"type": "integer", "minimum": 1},
        }
