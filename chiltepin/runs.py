"""A running workflow, told while it runs: each block's life, a status file, a registry.

:class:`RunMonitor` watches a started :class:`~chiltepin.Workflow` from a thread:

* every block's life is logged once per change on the ``chiltepin.runs`` logger:
  submitted (with the scheduler's job id), pending (with the scheduler's reason),
  running, workers connected, finished. Those lines always go to the run's log
  (``RUN_DIR/chiltepin.log``); the ``chiltepin`` command shows them on stderr (not under
  ``-q``), and a script shows them with :func:`show_progress`.
* ``RUN_DIR/status.json`` (0600) holds the run's blocks and task counts, rewritten
  atomically on every change, and ``$XDG_STATE_HOME/chiltepin/runs/<run id>.json``
  (0600, in a 0700 directory) points at it, so ``chiltepin status`` in another shell
  finds the run. Both are removed when the workflow is cleaned up; an entry whose
  process is gone is pruned by the next ``chiltepin status``.

Block states come from Parsl's public executor interface (``blocks_to_job_id``,
``status_facade`` as Parsl's own poller last saw it, ``connected_blocks()``) and, for the
pending reason and a fresh state, from the scheduler class (``Scheduler.jobs``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds between two looks at the blocks.
PERIOD = 3.0
STATUS_FILE = "status.json"
LOG_FILE = "chiltepin.log"
#: Block phases, in the order a block goes through them.
SUBMITTED, PENDING, RUNNING, CONNECTED, FINISHED = (
    "submitted",
    "pending",
    "running",
    "connected",
    "finished",
)
_RANK = {SUBMITTED: 0, PENDING: 1, RUNNING: 2, CONNECTED: 3, FINISHED: 4}
_SCHEDULER_RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "R", "E"}
_SCHEDULER_PENDING = {"PENDING", "REQUEUED", "RESV_DEL_HOLD", "Q", "H", "W"}
#: Parsl's task states, as ``chiltepin status`` counts them.
TASK_GROUPS = {
    "pending": ("unsched", "pending"),
    "running": ("launched", "running", "running_ended", "joining", "fail_retryable"),
    "done": ("exec_done", "memo_done"),
    "failed": ("failed", "dep_fail"),
}


def runs_dir() -> Path:
    """The per-user registry of running workflows."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "chiltepin" / "runs"


def show_progress(level: int = logging.INFO) -> None:
    """Print block feedback (``chiltepin.runs``) on stderr, for scripts (idempotent)."""
    runs_logger = logging.getLogger(__name__)
    if not any(getattr(h, "_chiltepin_progress", False) for h in runs_logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("chiltepin: %(message)s"))
        handler._chiltepin_progress = True  # type: ignore[attr-defined]
        runs_logger.addHandler(handler)
    if runs_logger.getEffectiveLevel() > level:
        runs_logger.setLevel(level)


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically, readable by the owner only."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())  # a crash leaves the old file or the new, never half
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunMonitor:
    """Watches one started workflow (see the module docstring); ``stop`` ends it."""

    def __init__(self, workflow: Any, period: float = PERIOD) -> None:
        self.workflow = workflow
        self.dfk = workflow.dfk
        self.period = period
        self.run_dir = Path(workflow.run_dir)
        self.status_path = self.run_dir / STATUS_FILE
        self.entry_path = runs_dir() / f"{workflow.run_id}.json"
        #: (executor, block id) -> {"job_id", "state", "reason"}
        self.blocks: dict[tuple[str, str], dict[str, Any]] = {}
        self.started = _now()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._handler: logging.Handler | None = None
        self._last: dict[str, Any] | None = None
        #: Extra sections of the snapshot: name -> callables each giving a list of JSON
        #: values; the section is their concatenation.
        self.sections: dict[str, list[Callable[[], list[Any]]]] = {}

    @classmethod
    def start_for(cls, workflow: Any) -> RunMonitor | None:
        """A started monitor of ``workflow``; None (logged) if it cannot start: feedback
        never stops a workflow."""
        monitor = cls(workflow)
        try:
            monitor.start()
        except Exception:  # noqa: BLE001 - a workflow runs without feedback rather than not
            logger.warning("no block feedback or status for %s", workflow.run_dir, exc_info=True)
            with contextlib.suppress(Exception):
                monitor.stop()
            return None
        return monitor

    def start(self) -> None:
        handle = os.fdopen(
            os.open(self.run_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a"
        )
        self._handler = logging.StreamHandler(handle)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self._handler.setLevel(logging.INFO)
        logger.addHandler(self._handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        self.poll()
        directory = runs_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        write_private(
            self.entry_path,
            {
                "run_dir": str(self.run_dir),
                "status_file": str(self.status_path),
                "pid": os.getpid(),
                "pid_created": _created(os.getpid()),
                "host": socket.gethostname(),
                "started": self.started,
            },
        )
        self._thread = threading.Thread(target=self._loop, name="chiltepin-runs", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Stop looking at the executors (before they shut down: a question to an
        interchange that is going away may never be answered). Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def stop(self) -> None:
        """One last look (blocks cancelled by cleanup are reported finished), then remove
        the status file and registry entry and close the run's log. Idempotent."""
        self.halt()
        try:
            # Never wait on a look that hangs (a stuck thread holds the lock): skip it.
            if self._lock.acquire(timeout=10):
                self._lock.release()
                self.poll(final=True)
        finally:
            for path in (self.entry_path, self.status_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            if self._handler is not None:
                logger.removeHandler(self._handler)
                self._handler.close()
                self._handler = None

    def _loop(self) -> None:
        polls = 0
        # Quick looks at first (workers of a local or idle cluster connect in seconds).
        while not self._stop.wait(self.period if polls >= 10 else min(self.period, 0.5)):
            polls += 1
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - feedback must never break the run
                logger.debug("run monitor poll failed", exc_info=True)

    # ------------------------------------------------------------------------ poll

    def poll(self, final: bool = False) -> dict[str, Any]:
        """Look at every block once, log what changed, rewrite the status file."""
        with self._lock:
            executors = self._executors()
            seen = self._observe(executors, final)
            for key, info in seen.items():
                self._update(key, info)
            status = self.snapshot()
            if not final and status != self._last:
                write_private(self.status_path, {**status, "updated": _now()})
                self._last = status
            return status

    def _executors(self) -> dict[str, Any]:
        return {
            label: ex
            for label, ex in dict(self.dfk.executors).items()
            if not label.startswith("_") and hasattr(ex, "blocks_to_job_id")
        }

    def _observe(self, executors: dict[str, Any], final: bool) -> dict[tuple[str, str], dict]:
        from chiltepin.config.schema import Resource

        found: dict[tuple[str, str], dict] = {}
        by_scheduler: dict[str, list[str]] = {}
        for label, ex in executors.items():
            res = self.workflow.resources.get(label)
            provider = res.provider if isinstance(res, Resource) else None
            connected: set[str] = set()
            if not final and hasattr(ex, "connected_blocks"):
                with contextlib.suppress(Exception):
                    connected = {str(b) for b in ex.connected_blocks()}
            parsl_status = dict(getattr(ex, "status_facade", None) or {})
            for block, job_id in dict(ex.blocks_to_job_id).items():
                block = str(block)
                if self.blocks.get((label, block), {}).get("state") == FINISHED:
                    continue
                status = parsl_status.get(block)
                found[(label, block)] = {
                    "job_id": None if job_id is None else str(job_id),
                    "provider": provider,
                    "connected": block in connected,
                    "parsl": getattr(getattr(status, "state", None), "name", None),
                    "terminal": bool(getattr(status, "terminal", False)),
                }
                if provider and job_id is not None:
                    by_scheduler.setdefault(provider, []).append(str(job_id))
        jobs: dict[str, Any] = {}
        if by_scheduler:
            from chiltepin.schedulers import get_scheduler

            for provider, ids in by_scheduler.items():
                with contextlib.suppress(Exception):
                    jobs.update(get_scheduler(provider).jobs(ids))
        for info in found.values():
            info["job"] = jobs.get(info["job_id"] or "")
            info["final"] = final
        return found

    def _update(self, key: tuple[str, str], info: dict[str, Any]) -> None:
        label, block = key
        job = info["job"]
        old = self.blocks.get(key)
        where = f"{label}: block {block}" + (f" (job {info['job_id']})" if info["job_id"] else "")
        if old is None:
            old = self.blocks[key] = {"job_id": info["job_id"], "state": SUBMITTED, "reason": None}
            kind = info["provider"] or "the provider"
            job_id = info["job_id"]
            logger.info("%s: block %s submitted to %s as job %s", label, block, kind, job_id)
        reason = None
        if info["final"]:  # the workflow is cleaning up: its blocks are cancelled
            ended = job is not None and job.state not in _SCHEDULER_RUNNING | _SCHEDULER_PENDING
            state, reason = FINISHED, job.state if ended else "cancelled at cleanup"
        elif info["connected"]:
            state = CONNECTED
        elif job is not None and job.state in _SCHEDULER_PENDING:
            state, reason = PENDING, job.reason
        elif job is not None and job.state in _SCHEDULER_RUNNING:
            state = RUNNING
        elif job is not None:
            state, reason = FINISHED, job.state
        elif info["terminal"] or info["parsl"] in ("CANCELLED", "SCALED_IN"):
            state, reason = FINISHED, info["parsl"]
        elif info["parsl"] == "RUNNING":
            state = RUNNING
        elif info["parsl"] == "PENDING" or old["state"] == SUBMITTED:
            state = PENDING
        else:  # the scheduler no longer lists a job it listed: it ended
            state, reason = FINISHED, "left the queue"
        if (state, reason) == (old["state"], old["reason"]):
            return
        if _RANK[state] < _RANK[old["state"]]:
            return  # a stale look (Parsl's last poll) never moves a block back
        old.update(state=state, reason=reason)
        if state == PENDING:
            logger.info("%s pending%s", where, f": {reason}" if reason else "")
        elif state == RUNNING:
            logger.info("%s running", where)
        elif state == CONNECTED:
            logger.info("%s: workers connected", where)
        else:
            logger.info("%s finished%s", where, f" ({reason})" if reason else "")

    def snapshot(self) -> dict[str, Any]:
        """The run as ``chiltepin status`` shows it."""
        executors: dict[str, Any] = {}
        for (label, block), info in sorted(self.blocks.items()):
            executors.setdefault(label, {"blocks": []})["blocks"].append(
                {"block": block, **{k: info[k] for k in ("job_id", "state", "reason")}}
            )
        for label in self.workflow.executor_names:
            executors.setdefault(label, {"blocks": []})
        return {
            "run_dir": str(self.run_dir),
            "run_id": self.workflow.run_id,
            "site": self.workflow.site,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.started,
            "executors": executors,
            "tasks": task_counts(self.dfk),
            **{name: _section(name, makers) for name, makers in list(self.sections.items())},
        }


def _section(name: str, makers: list[Callable[[], list[Any]]]) -> list[Any]:
    items: list[Any] = []
    for make in list(makers):
        try:
            items.extend(make())
        except Exception:  # noqa: BLE001 - a section never stops the status file
            logger.debug("status section %s failed", name, exc_info=True)
    return items


def task_counts(dfk: Any) -> dict[str, int]:
    """Tasks pending, running, done and failed (Parsl's ``task_state_counts``)."""
    counts = {group: 0 for group in TASK_GROUPS}
    lock = getattr(dfk, "task_state_counts_lock", None) or contextlib.nullcontext()
    with lock:
        by_state = {getattr(s, "name", str(s)): n for s, n in dfk.task_state_counts.items()}
    for group, states in TASK_GROUPS.items():
        counts[group] = sum(by_state.get(s, 0) for s in states)
    return counts


# ----------------------------------------------------------------------- registry


def _created(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - no psutil or no process: no creation time
        return None


def _alive(entry: dict[str, Any]) -> bool | None:
    """Whether the run's process lives (None: it runs on another host)."""
    if entry.get("host") != socket.gethostname():
        return None
    from chiltepin.agents.serve.state import process_alive

    return process_alive(entry.get("pid", -1), entry.get("pid_created"))


def running_runs(prune: bool = True) -> list[dict[str, Any]]:
    """Every registered run of this user with its last status; entries whose process is
    gone are removed (``prune``) and left out."""
    from chiltepin._files import read_own_json

    directory = runs_dir()
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        try:
            entry = read_own_json(path)
        except (OSError, ValueError):
            continue  # unreadable: skipped, kept
        if not _is_entry(entry):
            continue  # not an entry this toolkit wrote
        if _alive(entry) is False:
            if prune:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            continue
        status: Any = {}
        with contextlib.suppress(OSError, ValueError):
            status = read_own_json(entry["status_file"])
        found.append({**_status_part(status), **entry})
    return found


#: A registry entry's keys and their JSON types (as Run.start writes them).
_ENTRY_TYPES: dict[str, tuple[type, ...]] = {
    "run_dir": (str,),
    "status_file": (str,),
    "pid": (int,),
    "host": (str,),
}
#: The keys of a run's status that ``chiltepin status`` shows, and their JSON types.
_STATUS_TYPES: dict[str, tuple[type, ...]] = {
    "site": (str, type(None)),
    "tasks": (dict,),
    "executors": (dict,),
    "agents": (list,),
}


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(key), types) and not isinstance(entry.get(key), bool)
        for key, types in _ENTRY_TYPES.items()
    )


def _status_part(status: Any) -> dict[str, Any]:
    """What of a status file is shown, each value of its expected shape (a file
    damaged by hand loses only what is wrong in it)."""
    if not isinstance(status, dict):
        return {}
    shown = {k: v for k, v in status.items() if isinstance(v, _STATUS_TYPES.get(k, object))}
    executors = shown.get("executors") or {}
    shown["executors"] = {
        str(name): {
            **executor,
            "blocks": [b for b in executor.get("blocks") or [] if isinstance(b, dict)]
            if isinstance(executor.get("blocks"), list)
            else [],
        }
        for name, executor in executors.items()
        if isinstance(executor, dict)
    }
    shown["agents"] = [a for a in shown.get("agents") or [] if isinstance(a, dict)]
    if "tasks" in shown:
        shown["tasks"] = {k: v for k, v in shown["tasks"].items() if isinstance(v, int)}
    return shown
