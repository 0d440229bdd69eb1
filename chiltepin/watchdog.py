"""Nothing a workflow starts outlives it: the run directory's ledger and the interchange
watchdog (imports no Parsl).

Every scheduler job and interchange a Workflow starts is written to a ledger in its run
directory (``.chiltepin-owned.jsonl``, one JSON object a line, 0600), with the driver
process that owns it (pid and start time, so a reused pid is not mistaken for it).

* The interchange is started through this module
  (``python -m chiltepin.watchdog --owner PID --owner-created T --run-dir DIR -- python -m
  chiltepin._parsl_lean interchange.py``):
  it runs in a session of its own (Ctrl-C in the driver's terminal does not reach it, so
  the driver's cleanup can still talk to it), and a small watchdog process beside it
  stops it and cancels the owner's jobs within :data:`POLL_SECONDS` of the owner's death
  (SIGKILL, OOM). Workers then lose their interchange and their jobs are cancelled.
* Parsl's monitoring starts processes of its own beside the driver (its database and
  router, by ``multiprocessing`` spawn, which do not notice the driver's death):
  :func:`record_children` writes them to the ledger, and the watchdog stops them too.
* :func:`reap` (run by every ``Workflow.start``) cleans what a dead predecessor in the
  same run directory left: interchanges and helper processes still running, jobs not
  cancelled.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LEDGER_NAME = ".chiltepin-owned.jsonl"
LOG_NAME = "chiltepin-watchdog.log"
#: How often the watchdog checks the owner (seconds).
POLL_SECONDS = 0.5
#: How long a stopped interchange has between SIGTERM and SIGKILL (seconds).
TERM_GRACE = 5.0


def process_created(pid: int) -> float | None:
    """``pid``'s start time (None if it is gone or a zombie)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def alive(pid: int, created: float | None) -> bool:
    """Whether ``pid`` runs and, given ``created``, is the process that started then."""
    now = process_created(pid)
    return now is not None and (created is None or abs(now - created) < 1.0)


@dataclass
class Ledger:
    """The run directory's record of what its workflows started."""

    run_dir: Path
    owner: int = field(default_factory=os.getpid)
    owner_created: float | None = None

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        if self.owner_created is None:
            self.owner_created = process_created(self.owner)

    @property
    def path(self) -> Path:
        return self.run_dir / LEDGER_NAME

    def _append(self, entry: dict[str, Any]) -> None:
        entry = {**entry, "owner": self.owner, "owner_created": self.owner_created}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:  # one short write: lines never interleave
            handle.write(json.dumps(entry) + "\n")

    def job(self, job_id: str, cancel: Iterable[str], executor: str | None = None) -> None:
        """Record a submitted scheduler job; ``cancel``: the command that cancels it."""
        self._append(
            {"kind": "job", "id": str(job_id), "cancel": list(cancel), "executor": executor}
        )

    def job_done(self, job_id: str) -> None:
        self._append({"kind": "job-done", "id": str(job_id)})

    def interchange(self, pid: int) -> None:
        self._append({"kind": "interchange", "pid": pid, "created": process_created(pid)})

    def process(self, pid: int, *, group: bool = False) -> None:
        """Record a helper process of the driver (Parsl's monitoring database and router)
        that would outlive a killed driver: stopped as its interchange is. ``group``: stop
        its whole process group (a local block: its shell, worker pool and workers)."""
        entry = {"kind": "process", "pid": pid, "created": process_created(pid)}
        self._append({**entry, "group": True} if group else entry)

    def entries(self) -> list[dict[str, Any]]:
        return read_entries(self.run_dir)


def read_entries(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ledger's entries (unreadable lines skipped)."""
    from chiltepin._files import read_own_bytes

    try:
        text = read_own_bytes(Path(run_dir) / LEDGER_NAME).decode("utf-8", "replace")
    except (OSError, ValueError):
        return []
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                out.append(entry)
    return out


@dataclass
class Reaped:
    """What :func:`reap` stopped."""

    interchanges: list[int] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.interchanges or self.jobs)


def open_jobs(entries: list[dict[str, Any]], owner: int | None = None) -> list[dict[str, Any]]:
    """Job entries not yet marked done (of ``owner`` only, if given)."""
    done = {e.get("id") for e in entries if e.get("kind") == "job-done"}
    return [
        e
        for e in entries
        if e.get("kind") == "job"
        and e.get("id") not in done
        and (owner is None or e.get("owner") == owner)
    ]


def cancel_jobs(jobs: list[dict[str, Any]]) -> list[str]:
    """Cancel ``jobs`` (ledger entries) with their own cancel commands; the ids asked."""
    by_command: dict[tuple[str, ...], list[str]] = {}
    for job in jobs:
        by_command.setdefault(tuple(job.get("cancel") or ()), []).append(str(job["id"]))
    cancelled = []
    for command, ids in by_command.items():
        if not command:
            continue
        try:  # a job that has finished already is refused: that is fine
            subprocess.run(
                [*command, *ids], capture_output=True, timeout=60, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("could not cancel jobs %s with %s: %s", ids, command[0], exc)
            continue
        cancelled.extend(ids)
    return cancelled


def stop_process(pid: int, created: float | None, grace: float = TERM_GRACE) -> bool:
    """SIGTERM ``pid`` (if it is still that process), SIGKILL after ``grace``; True if
    it was running."""
    if not alive(pid, created):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid, created) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid, created):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


#: Ledger entries of processes stopped when their driver dies.
STOPPED_KINDS = ("interchange", "process")


def stop_group(pid: int, created: float | None, grace: float = TERM_GRACE) -> bool:
    """SIGTERM the process group of ``pid`` (if it is still that process and the group is
    not this process's own), SIGKILL what is left after ``grace``; True if it was running."""
    if not alive(pid, created):
        return False
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return False
    if group == os.getpgrp():
        return stop_process(pid, created, grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    for member in _group_members(group):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return True


def _group_members(group: int) -> list[int]:
    """Live processes of process group ``group`` (zombies, whose parent has yet to reap
    them, are not: a killed group may stay signalable for as long as they last)."""
    import psutil

    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == group:
                members.append(proc.pid)
    return members


def stop_entry(entry: dict[str, Any]) -> bool:
    """Stop the process a ledger entry of :data:`STOPPED_KINDS` names; True if it ran."""
    pid = entry.get("pid")
    if entry.get("kind") not in STOPPED_KINDS or not isinstance(pid, int):
        return False
    stop = stop_group if entry.get("group") else stop_process
    return stop(pid, entry.get("created"))


def children() -> set[int]:
    """This process's direct children."""
    import psutil

    try:
        return {child.pid for child in psutil.Process().children()}
    except psutil.Error:
        return set()


def record_children(run_dir: str | Path, before: set[int]) -> None:
    """Write this process's children not in ``before`` to the ledger as helper processes."""
    ledger = Ledger(Path(run_dir))
    for pid in sorted(children() - before):
        with contextlib.suppress(OSError):
            ledger.process(pid)


def stop_child(proc: subprocess.Popen[Any], grace: float = TERM_GRACE) -> None:
    """Stop a child process: SIGTERM, SIGKILL after ``grace`` seconds; reaped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def reap(run_dir: str | Path) -> Reaped:
    """Stop what workflows whose driver died left in ``run_dir``: their interchanges,
    and their scheduler jobs not cancelled. Live owners' entries are kept."""
    run_dir = Path(run_dir)
    entries = read_entries(run_dir)
    if not entries:
        return Reaped()
    dead: dict[int, bool] = {}

    def owner_dead(entry: dict[str, Any]) -> bool:
        owner = entry.get("owner")
        if not isinstance(owner, int):
            return True
        if owner not in dead:
            dead[owner] = not alive(owner, entry.get("owner_created"))
        return dead[owner]

    reaped = Reaped()
    for entry in entries:
        if entry.get("kind") in STOPPED_KINDS and owner_dead(entry) and stop_entry(entry):
            reaped.interchanges.append(entry["pid"])
    jobs = [job for job in open_jobs(entries) if owner_dead(job)]
    if jobs:
        reaped.jobs = cancel_jobs(jobs)
    keep = [e for e in entries if not owner_dead(e)]
    _rewrite(run_dir, keep)
    if reaped:
        logger.warning(
            "cleaned up after a workflow in %s whose driver died: processes %s, jobs %s",
            run_dir,
            reaped.interchanges or "none",
            reaped.jobs or "none",
        )
    return reaped


def _rewrite(run_dir: Path, entries: list[dict[str, Any]]) -> None:
    path = run_dir / LEDGER_NAME
    if not entries:
        with contextlib.suppress(OSError):
            path.unlink()
        return
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in entries)
    os.replace(tmp, path)


# ------------------------------------------------------------------ the watchdog


def launch_command(run_dir: str | Path, command: Iterable[str] | None = None) -> list[str]:
    """The interchange launch command (HTEX's ``interchange_launch_cmd``): ``command``
    (default: Parsl's interchange, started by :mod:`chiltepin._parsl_lean`) started
    through this module, watched on behalf of this process."""
    from chiltepin._parsl_lean import command as lean

    command = lean("interchange.py") if command is None else command
    created = process_created(os.getpid())
    return [
        sys.executable,
        "-m",
        "chiltepin.watchdog",
        "--owner",
        str(os.getpid()),
        "--owner-created",
        repr(created),
        "--run-dir",
        str(run_dir),
        "--",
        *command,
    ]


def pool_command(command: str) -> str:
    """A worker pool's launch command (a shell string) run under :func:`guard`: nothing
    the pool starts outlives it, or its job."""
    return f"{shlex.quote(sys.executable)} -m chiltepin.watchdog --guard -- {command}"


def guard(command: list[str]) -> int:
    """Run ``command``; adopt its orphans (Linux's child subreaper); when it exits, or
    this process is told to stop, stop everything it left. Return its exit status."""
    import psutil

    _set_subreaper()
    child = subprocess.Popen(command)
    stopping: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            status = child.wait(timeout=TERM_GRACE if stopping else None)
            break
        except subprocess.TimeoutExpired:
            child.kill()
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
    left = psutil.Process().children(recursive=True)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs(left, timeout=TERM_GRACE)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(still, timeout=TERM_GRACE)
    return status if status >= 0 else 128 - status


def _set_subreaper() -> None:
    """Orphans of this process's descendants become its children, not init's (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--guard", "--"]:
        return guard(argv[2:])
    parser = argparse.ArgumentParser(prog="python -m chiltepin.watchdog")
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--owner-created", type=float, default=None)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        os.setsid()  # out of the driver's process group: Ctrl-C there is the driver's
    target = os.getpid()
    first = os.fork()
    if first == 0:
        # The watchdog: forked twice, so it is nobody's unreaped child.
        if os.fork() != 0:
            os._exit(0)
        try:
            _watch(target, args.owner, args.owner_created, Path(args.run_dir))
        finally:
            os._exit(0)
    os.waitpid(first, 0)
    os.execvp(args.command[0], args.command)
    return 127  # pragma: no cover - execvp does not return


def _watch(target: int, owner: int, owner_created: float | None, run_dir: Path) -> None:
    """Until ``target`` exits: if ``owner`` dies, stop ``target`` and cancel the owner's jobs."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # the interchange's configuration arrives on stdin: not ours
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(f"chiltepin-watchdog of pid {target}")
    target_created = process_created(target)
    ledger = Ledger(run_dir, owner=owner, owner_created=owner_created)
    with contextlib.suppress(OSError):
        ledger.interchange(target)
    # SIGTERM: the owner's job is ending (Slurm signals every process of a cancelled
    # job, a pool's guard its leftovers): do what the owner's death calls for, now.
    told: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: told.append(signum))
    while alive(target, target_created):
        if told or not alive(owner, owner_created):
            why = "was told to stop" if told else "is gone"
            _log(run_dir, f"driver {owner} {why}: stopping interchange {target}")
            stop_process(target, target_created)
            for entry in read_entries(run_dir):
                if entry.get("kind") == "process" and entry.get("owner") == owner:
                    if stop_entry(entry):
                        what = "the process group of pid" if entry.get("group") else "process"
                        _log(run_dir, f"stopped {what} {entry['pid']} of driver {owner}")
            jobs = open_jobs(read_entries(run_dir), owner=owner)
            if jobs:
                ids = cancel_jobs(jobs)
                _log(run_dir, f"cancelled jobs {', '.join(ids)} of driver {owner}")
            for job in jobs:
                with contextlib.suppress(OSError):
                    ledger.job_done(job["id"])
            return
        time.sleep(POLL_SECONDS)


def _log(run_dir: Path, message: str) -> None:
    with contextlib.suppress(OSError):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(run_dir / LOG_NAME, "a") as handle:
            handle.write(f"{stamp} {message}\n")


if __name__ == "__main__":
    raise SystemExit(main())
