"""Blocks: the initial ones launched at once; lost ones found within a heartbeat
threshold, cancelled, replaced, and explained.

Parsl's scaling strategy launches an executor's ``init_blocks`` on its first pass after
the executor starts, up to ``strategy_period`` after its interchange is up: a wait on the
path to every workflow's (and agent's) first task. :func:`hold_initial_blocks` and
:func:`launch_initial_blocks` launch them as soon as the executor has started instead
(the provider's ``init_blocks`` is zeroed so that the strategy does not launch them again).

Two public Parsl hooks handle lost blocks:

* :class:`BlockWatch` is each executor's ``block_error_handler`` (called after every
  status poll). It fails the executor's tasks at once if its interchange died; it cancels
  a running job whose worker pool (or one of its nodes' pools) stopped answering, so the
  scaling strategy replaces it while work remains; then it applies Parsl's own rule
  (every block failed: the executor fails).
* :func:`retry_handler` (the Config's): a task lost with its worker counts as one
  failure against ``retries``; once they are used up it fails with a
  :class:`~chiltepin.errors.WorkerLostError` (or
  :class:`~chiltepin.errors.WalltimeExceeded`) naming node, job id and cause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chiltepin.errors import ServiceError, WalltimeExceeded, WorkerLostError

logger = logging.getLogger(__name__)

#: What Slurm's step daemon writes to a job's stderr when it ends a job, and the cause.
_SLURM_ENDINGS = (
    ("DUE TO TIME LIMIT", "walltime"),
    ("DUE TO NODE FAILURE", "node failure"),
    ("DUE TO PREEMPTION", "preemption"),
    ("CANCELLED AT", "cancelled"),
)
_PBS_ENDINGS = (("walltime", "walltime"),)


class BlockWatch:
    """An executor's ``block_error_handler`` (see the module docstring)."""

    def __init__(self, res: Any) -> None:
        self.walltime: str = res.walltime
        #: Parsl's rule counts blocks against the initial ones (held off the provider).
        self.init_blocks: int = res.init_blocks
        self.heartbeat_threshold: int = res.heartbeat_threshold
        self.grace: float = float(res.heartbeat_period)
        #: manager id -> block id, for every manager seen.
        self.managers: dict[str, str] = {}
        #: block id -> the most managers seen connected at once.
        self.peak: dict[str, int] = {}
        self.short_since: dict[str, float] = {}
        #: block id -> why this watch cancelled it.
        self.cancelled: dict[str, str] = {}
        #: block id -> the node names of its job.
        self.nodes: dict[str, str] = {}

    def __call__(self, executor: Any, status: dict[str, Any]) -> None:
        if self._interchange_died(executor):
            return
        try:
            self._check_managers(executor, status)
        except Exception:  # noqa: BLE001 - never break Parsl's poller
            logger.debug("checking the worker pools of %s failed", executor.label, exc_info=True)
        # A block that had workers and then ended (its pool killed, its node lost, its job
        # cancelled here) is replaced by the strategy; only blocks that never got a worker
        # to connect say the executor cannot work (Parsl's rule applies to those).
        never_ran = {
            block: job
            for block, job in status.items()
            if not self.peak.get(block) and block not in self.cancelled
        }
        self._fail_if_no_block_started(executor, never_ran)

    def _fail_if_no_block_started(self, executor: Any, never_ran: dict[str, Any]) -> None:
        """Parsl's ``simple_error_handler`` rule, counted against this resource's
        ``init_blocks`` (the provider's is held at 0, see the module docstring): once as
        many blocks as that (at least one) have been tried and every one failed, the
        executor fails its tasks with what the scheduler said."""
        from parsl.jobs.errors import TooManyJobFailuresError
        from parsl.jobs.states import JobState

        failed = [j for j in never_ran.values() if j.state in (JobState.FAILED, JobState.MISSING)]
        if not failed or len(failed) < max(1, self.init_blocks) or len(failed) < len(never_ran):
            return
        said = []
        for job in failed:
            parts = [job.message, job.stderr_summary]
            if job.exit_code is not None:
                parts.append(f"exit code {job.exit_code}")
            said.append("; ".join(str(p).strip() for p in parts if p) or "no message")
        executor.set_bad_state_and_fail_all(
            TooManyJobFailuresError(
                f"executor '{executor.label}': none of its {len(failed)} block(s) started: "
                + " | ".join(said)
            )
        )

    def _interchange_died(self, executor: Any) -> bool:
        proc = getattr(executor, "interchange_proc", None)
        if proc is None or proc.poll() is None:
            return False
        if not executor.bad_state_is_set:
            error = ServiceError(
                f"executor '{executor.label}': its interchange (pid {proc.pid}) exited with "
                f"status {proc.returncode}; its tasks cannot finish (hint: the run "
                "directory's interchange.log says why)"
            )
            logger.error("%s", error)
            executor.set_bad_state_and_fail_all(error)
        return True

    def _check_managers(self, executor: Any, status: dict[str, Any]) -> None:
        from parsl.jobs.states import JobState

        now = time.monotonic()
        connected: dict[str, int] = {}
        for manager in executor.connected_managers():
            block = str(manager["block_id"])
            self.managers[manager["manager"]] = block
            if manager.get("active", True):
                connected[block] = connected.get(block, 0) + 1
        for block, count in connected.items():
            if count > self.peak.get(block, 0):
                self.peak[block] = count
                self._remember_nodes(executor, block)
        for block, job in status.items():
            peak = self.peak.get(block, 0)
            if job.state != JobState.RUNNING or block in self.cancelled or not peak:
                self.short_since.pop(block, None)
                continue
            if connected.get(block, 0) >= peak:
                self.short_since.pop(block, None)
                continue
            since = self.short_since.setdefault(block, now)
            if now - since >= self.grace:
                self._cancel(executor, block, peak - connected.get(block, 0))

    def _cancel(self, executor: Any, block: str, lost: int) -> None:
        job_id = executor.blocks_to_job_id.get(block)
        reason = (
            f"{lost} worker pool(s) of block {block} stopped answering "
            f"(no heartbeat for {self.heartbeat_threshold} s)"
        )
        self.cancelled[block] = reason
        logger.warning(
            "executor '%s': %s; cancelling job %s (nodes %s) so a new block replaces it",
            executor.label,
            reason,
            job_id,
            self.nodes.get(block, "?"),
        )
        if job_id is not None:
            executor.provider.cancel([job_id])

    def _remember_nodes(self, executor: Any, block: str) -> None:
        job_id = executor.blocks_to_job_id.get(block)
        ask = getattr(executor.provider, "job_nodes", None)
        if job_id is not None and ask is not None:
            nodes = ask(job_id)
            if nodes:
                self.nodes[block] = nodes

    # ------------------------------------------------------------------ explaining

    def explain(self, executor: Any, error: BaseException) -> WorkerLostError:
        """The error a task lost with its worker fails with (naming node, job, cause)."""
        manager = getattr(error, "manager_id", None)
        if isinstance(manager, bytes):
            manager = manager.decode(errors="replace")
        block = self.managers.get(manager) if manager else None
        host = getattr(error, "hostname", None) or "?"
        job_id = executor.blocks_to_job_id.get(block) if block is not None else None
        cause = _ending(executor.provider, job_id) if job_id is not None else None
        if block is None:  # a worker lost inside its pool: which block ended, and why?
            block, job_id, cause = _latest_ending(executor)
        if cause is None and block in self.cancelled:
            cause = self.cancelled[block]
        where = f"executor '{executor.label}'"
        if block is not None:
            where += f", block {block}"
        if job_id is not None:
            where += f" (job {job_id}"
            node = self.nodes.get(block or "")
            where += f" on {node})" if node else ")"
        where += f", host {host}"
        if cause == "walltime":
            return WalltimeExceeded(
                f"task killed at its block's walltime ({self.walltime}): {where}; "
                f"raise 'walltime' of executor '{executor.label}' (site profile or resource "
                "config), or split the task"
            )
        cause = cause or (
            f"its worker pool stopped answering (no heartbeat for {self.heartbeat_threshold} s)"
        )
        return WorkerLostError(f"task lost with its worker: {where}: {cause}")


def hold_initial_blocks(executors: Iterable[Any]) -> dict[str, int]:
    """Take the initial block count off each block executor's provider (leaving 0 there)
    before Parsl starts them; the counts by label, for :func:`launch_initial_blocks`."""
    held = {}
    for executor in executors:
        provider = getattr(executor, "provider", None)
        count = getattr(provider, "init_blocks", 0)
        if count and hasattr(executor, "scale_out_facade"):
            provider.init_blocks = 0
            held[executor.label] = count
    return held


def launch_initial_blocks(executors: Mapping[str, Any], held: Mapping[str, int]) -> None:
    """Launch the held initial blocks of the started ``executors`` (by label) now."""
    for label, count in held.items():
        executor = executors.get(label)
        if executor is not None and not executor.bad_state_is_set:
            # As the strategy does: a status poll first (of no jobs yet, so nothing is
            # asked), so the next comes a polling interval after the submission, not at
            # once (a scheduler may not know a job it has just accepted: Slurm's sacct
            # then shows nothing, which Parsl takes for a finished job).
            executor.poll_facade()
            executor.scale_out_facade(count)


def _ending(provider: Any, job_id: str) -> str | None:
    """Why the scheduler ended ``job_id``, from what it wrote to the job's stderr (kept
    however soon the scheduler forgets the job)."""
    record = getattr(provider, "resources", {}).get(job_id) or {}
    path = record.get("job_stderr_path")
    if not path:
        return None
    try:
        text = Path(path).read_text(errors="replace")[-20000:]
    except OSError:
        return None
    for marker, cause in (*_SLURM_ENDINGS, *_PBS_ENDINGS):
        if marker in text:
            return cause
    return None


def _latest_ending(executor: Any) -> tuple[str | None, str | None, str | None]:
    """The newest of ``executor``'s blocks whose job the scheduler ended, with why."""
    for block, job_id in sorted(executor.blocks_to_job_id.items(), key=lambda item: -int(item[0])):
        cause = _ending(executor.provider, job_id)
        if cause is not None:
            return block, job_id, cause
    return None, None, None


def retry_handler(error: BaseException, task_record: Any) -> float:
    """The Config's ``retry_handler``: every failure costs one retry; a task lost with its
    worker, out of retries, fails with an error that says where and why."""
    from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

    if not isinstance(error, (ManagerLost, WorkerLost)):
        return 1.0
    dfk = task_record["dfk"]
    if task_record["fail_cost"] + 1 <= dfk.config.retries:
        return 1.0
    executor = dfk.executors.get(task_record["executor"])
    watch = getattr(executor, "block_error_handler", None)
    if isinstance(watch, BlockWatch):
        raise watch.explain(executor, error) from error
    raise WorkerLostError(f"task lost with its worker: {error}") from error
