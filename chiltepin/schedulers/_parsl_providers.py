"""Parsl's batch providers, with what surviving faults needs (imports Parsl).

Workarounds of Parsl's providers live here, and only here:

* Every submitted job is written to the run directory's ledger
  (:mod:`chiltepin.watchdog`), so a watchdog or the next Workflow can cancel it after
  the driver died; a local block as its process group, to be stopped. Parsl has no hook
  on submission: ``submit``/``cancel`` are extended.
* Status is polled every ``status_period`` seconds (Parsl fixes 60 s for Slurm and PBS,
  so a lost block is replaced a minute late at best).
* Slurm forgets a finished job after ``MinJobAge`` (the test cluster: 30 s, Slurm's
  default: 300 s). Asked only about forgotten jobs, ``squeue`` fails with "Invalid job id
  specified" and Parsl then keeps the last state (running) forever, so no block is ever
  replaced. Parsl has no hook for this: here that failure reads as an empty listing,
  which Parsl takes as "finished" (as it does for a job missing from a listing).
"""

from __future__ import annotations

import contextlib
from typing import Any

from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

from chiltepin.watchdog import Ledger

#: The scheduler's words for "no such job (any more)".
_FORGOTTEN = ("Invalid job id", "Unknown Job Id")


class _Tracked:
    """A provider whose jobs go to the run directory's ledger."""

    #: Set by the Parsl config builder: where this run's jobs are recorded.
    chiltepin_ledger: Ledger | None = None
    #: The executor label, for the ledger.
    chiltepin_executor: str | None = None
    #: Seconds between status polls.
    chiltepin_status_period: float = 60.0
    #: The command that cancels jobs (job ids appended).
    cancel_command: tuple[str, ...] = ()

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl") -> Any:
        job_id = super().submit(command, tasks_per_node, job_name)  # type: ignore[misc]
        if job_id and self.chiltepin_ledger is not None:
            self.chiltepin_ledger.job(job_id, self.cancel_command, self.chiltepin_executor)
        return job_id

    def cancel(self, job_ids: list[Any]) -> list[bool]:
        result = super().cancel(job_ids)  # type: ignore[misc]
        if self.chiltepin_ledger is not None:
            for job_id, done in zip(job_ids, result, strict=False):
                if done:
                    self.chiltepin_ledger.job_done(job_id)
        return result

    @property
    def status_polling_interval(self) -> float:
        return self.chiltepin_status_period

    def execute_wait(self, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        retcode, out, err = super().execute_wait(cmd, timeout)  # type: ignore[misc]
        if retcode != 0 and self._is_status(cmd) and any(w in err for w in _FORGOTTEN):
            return 0, "", ""  # every job asked about is finished and forgotten
        return retcode, out, err

    def _is_status(self, cmd: str) -> bool:
        return False


class TrackedSlurmProvider(_Tracked, SlurmProvider):
    """Parsl's SlurmProvider; jobs in the ledger, forgotten jobs finished."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        clusters = getattr(self, "clusters", None)
        self.cancel_command = ("scancel", *([f"--clusters={clusters}"] if clusters else []))

    def _is_status(self, cmd: str) -> bool:
        return cmd.startswith(("squeue", "sacct")) and "--job" in cmd

    def job_nodes(self, job_id: str) -> str | None:
        """The nodes ``job_id`` runs on (None if unknown)."""
        retcode, out, _ = super().execute_wait(f"squeue --noheader --format=%N --job {job_id}")
        return (out.strip() or None) if retcode == 0 else None


class TrackedPBSProProvider(_Tracked, PBSProProvider):
    """Parsl's PBSProProvider; jobs in the ledger."""

    cancel_command = ("qdel",)

    def _is_status(self, cmd: str) -> bool:
        return cmd.startswith("qstat")


class TrackedLocalProvider(LocalProvider):
    """Parsl's LocalProvider; each block (a shell in a process group of its own, with the
    worker pool under it) in the ledger, so a watchdog or the next Workflow stops it after
    the driver died, rather than it waiting out its heartbeat threshold."""

    chiltepin_ledger: Ledger | None = None
    chiltepin_executor: str | None = None
    chiltepin_status_period: float = 60.0  # set by the config builder; Parsl's polling stays

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl") -> Any:
        job_id = super().submit(command, tasks_per_node, job_name)
        if job_id and self.chiltepin_ledger is not None:
            with contextlib.suppress(OSError, ValueError):
                self.chiltepin_ledger.process(int(job_id), group=True)
        return job_id


#: Parsl provider class name -> the tracked class.
TRACKED: dict[str, type] = {
    "SlurmProvider": TrackedSlurmProvider,
    "PBSProProvider": TrackedPBSProProvider,
    "LocalProvider": TrackedLocalProvider,
}
