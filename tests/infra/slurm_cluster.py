"""Drive the real Slurm test cluster of ``tests/infra/slurm.sh`` from Python.

Stdlib only, so pytest fixtures (or anything else) can import it::

    from tests.infra import slurm_cluster   # or put tests/infra on sys.path

    env = slurm_cluster.start()      # {"SLURM_CONF": ..., "CHILTEPIN_SLURM_STATE": ...}
    os.environ.update(env)
    ...
    assert slurm_cluster.leftover_jobs() == []
    slurm_cluster.stop()

The state directory is ``$CHILTEPIN_SLURM_STATE`` (default ``/tmp/chiltepin-slurm``).
Nodes ``node1``..``node4`` (4 CPUs each) are separate hosts: each in its own network,
UTS and mount namespace (private ``/tmp``), reaching this machine (the login node) only
at ``$CHILTEPIN_SLURM_LOGIN_ADDR`` on the bridge ``$CHILTEPIN_SLURM_BRIDGE`` (both in
:func:`env`). Partitions ``service``, ``compute`` (default) and ``debug`` share them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("slurm.sh")

NODES = ("node1", "node2", "node3", "node4")
CPUS_PER_NODE = 4
PARTITIONS = ("service", "compute", "debug")
DEFAULT_PARTITION = "compute"
#: Partitions with limits (tests/infra/slurm.sh): short (node1-2, MaxTime 00:05:00,
#: MaxNodes 1) and maint (node4, down).
LIMITED_PARTITIONS = ("short", "maint")
#: Accounting (tests/infra/slurm_accounting.sh): accounts and QOS the users running the
#: tests (root and the current user) are associated with, and ones they are not.
USER_ACCOUNTS = ("chiltepin", "science")
OTHER_ACCOUNTS = ("other",)
USER_QOS = ("normal", "high")
OTHER_QOS = ("restricted",)


class SlurmClusterError(RuntimeError):
    """``slurm.sh`` failed; the message carries its output."""


def _run(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT), command],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmClusterError(f"slurm.sh {command} timed out after {timeout} s") from exc
    if result.returncode != 0 and command != "status":
        raise SlurmClusterError(
            f"slurm.sh {command} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def env() -> dict[str, str]:
    """The variables clients need (``SLURM_CONF``, ``CHILTEPIN_SLURM_STATE``), and the
    login node's side of the cluster network (``CHILTEPIN_SLURM_BRIDGE``,
    ``CHILTEPIN_SLURM_LOGIN_ADDR``)."""
    out: dict[str, str] = {}
    for line in _run("env", timeout=30).stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            out[key] = value
    if "SLURM_CONF" not in out:
        raise SlurmClusterError("slurm.sh env printed no SLURM_CONF")
    return out


#: Where run directories go: each node has a private /tmp, and workers must read their
#: run directory (its certificates); /var/tmp is the machine's, seen by every node.
SHARED_TMP = "/var/tmp"


def start(timeout: float = 900) -> dict[str, str]:
    """Start the cluster (installing packages on first use); return env vars to set.

    Quick (well under 2 s) when the cluster is already up and healthy.
    The timeout covers a first-time ``apt-get install``. A failed start stops what it
    started, so that no daemon outlives the failure.
    """
    try:
        _run("start", timeout=timeout)
    except SlurmClusterError:
        with contextlib.suppress(SlurmClusterError):
            stop()
        raise
    return env()


def shared_run_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A run directory the nodes see (their /tmp is their own), removed when done with."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=SHARED_TMP)


@contextlib.contextmanager
def started(timeout: float = 900) -> Iterator[dict[str, str]]:
    """The cluster for a ``with`` block (its env vars, also set in ``os.environ``): one
    that was not running is stopped when the block ends, however it ends, so that a
    benchmark leaves no daemon, job or namespace behind; one already up stays up."""
    was_running = is_running()
    variables = start(timeout)
    os.environ.update(variables)
    try:
        yield variables
    finally:
        if not was_running:
            stop()


def stop(timeout: float = 120) -> None:
    """Cancel every job, stop every daemon of the cluster and remove its network
    namespaces, veths and bridge. Idempotent."""
    _run("stop", timeout=timeout)


def is_running() -> bool:
    """True when every daemon runs and every node can take jobs."""
    return _run("status", timeout=30).returncode == 0


def leftover_jobs(wait: float = 15) -> list[str]:
    """One ``squeue`` line per job still in the queue (pending, running, completing...).

    Finished jobs are not listed. A job that is only COMPLETING (being
    cancelled or cleaned up) is given up to ``wait`` seconds to leave the queue;
    a pending or running job is reported at once.
    """
    cluster_env = {**os.environ, **env()}
    deadline = time.monotonic() + wait
    while True:
        result = subprocess.run(
            ["squeue", "-h", "-o", "%i %T %P %u %M %D %j %R"],
            capture_output=True,
            text=True,
            timeout=30,
            env=cluster_env,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise SlurmClusterError(f"squeue failed: {result.stderr.strip()}")
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        only_completing = all(line.split()[1] == "COMPLETING" for line in lines)
        if not lines or not only_completing or time.monotonic() >= deadline:
            return lines
        time.sleep(0.25)


def cancel_all(timeout: float = 30) -> None:
    """``scancel`` every job (for fixtures that clean up before failing a test)."""
    cluster_env = {**os.environ, **env()}
    ids = subprocess.run(
        ["squeue", "-h", "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cluster_env,
        stdin=subprocess.DEVNULL,
    ).stdout.split()
    if ids:
        subprocess.run(
            ["scancel", *ids],
            capture_output=True,
            timeout=timeout,
            env=cluster_env,
            stdin=subprocess.DEVNULL,
        )
