"""Slurm: Parsl's SlurmProvider; workers start with srun, MPI ranks with srun.

Besides the provider's settings, this class knows how to ask a live Slurm what it has
(:class:`SlurmSnapshot`: partitions, nodes, and with accounting the user's associations,
accounts and QOS) and checks resources against it before anything is submitted.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from chiltepin.errors import SchedulerUnavailable
from chiltepin.schedulers.base import BatchScheduler, JobInfo, Options, Problem, Setting

if TYPE_CHECKING:
    from chiltepin.config.schema import Resource

logger = logging.getLogger(__name__)

#: How long one snapshot of the scheduler serves every check of this process (a run).
SNAPSHOT_TTL = 120.0
#: Seconds one scheduler command may take.
COMMAND_TIMEOUT = 30.0
_FIELD = re.compile(r"(\w+)=(\S*)")
_UNLIMITED = {"UNLIMITED", "INFINITE", "NONE", ""}


class SlurmScheduler(BatchScheduler):
    name: ClassVar[str] = "slurm"
    provider_class: ClassVar[str] = "SlurmProvider"
    htex_launcher: ClassVar[str] = "SrunLauncher"
    default_mpi_launcher: ClassVar[str] = "srun"
    keys: ClassVar[frozenset[str]] = BatchScheduler.keys | {
        "partition",
        "exclusive",
        "constraint",
        "gres",
        "mem_per_node",
    }

    def settings(self, res: Resource) -> list[Setting]:
        return [
            Setting("partition", res.partition, "partition"),
            Setting("account", res.account, "account"),
            Setting("qos", res.queue, "queue"),
            Setting("constraint", res.constraint),
            Setting("gres", res.gres),
            Setting("mem_per_node", res.mem_per_node),
            Setting("gpus_per_node", res.gpus_per_node),
            Setting("cores_per_node", res.cores_per_node),
            Setting("exclusive", res.exclusive),
            *self.batch_settings(res),
        ]

    def endpoint_options(self, executors: Iterable[Resource]) -> Options:
        partitions: list[str] = []
        for res in executors:
            if res.partition and res.partition not in partitions:
                partitions.append(res.partition)
        options: Options = {}
        if partitions:
            # "": the executor's own (chiltepin 0.1.x clients send it for "none").
            options["partition"] = {"type": "string", "enum": [*partitions, ""]}
        return options | super().endpoint_options(executors)

    # ------------------------------------------------------------- live scheduler

    def preflight(self, resources: Mapping[str, Resource]) -> dict[str, list[Problem]]:
        if not resources:
            return {}
        snap = SlurmSnapshot.current()
        return {name: problems for name, res in resources.items() if (problems := snap.check(res))}

    def jobs(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        ids = [str(j) for j in job_ids if str(j).strip()]
        if not ids or shutil.which("squeue") is None:
            return {}
        try:
            out = _run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"])
        except SchedulerUnavailable:
            return {}  # finished jobs leave squeue; "Invalid job id" for all of them
        found: dict[str, JobInfo] = {}
        for line in out.splitlines():
            job_id, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            reason = reason.strip()
            found[job_id.strip()] = JobInfo(
                job_id.strip(), state.strip(), None if reason in ("", "None") else reason
            )
        return found


# --------------------------------------------------------------------- snapshot


def _run(argv: list[str]) -> str:
    """One scheduler command's stdout; SchedulerUnavailable (its stderr) if it fails."""
    if shutil.which(argv[0]) is None:
        raise SchedulerUnavailable(
            f"'{argv[0]}' is not on PATH: cannot check resources against Slurm here "
            "(run this on the cluster's login node, or set 'preflight: false')"
        )
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise SchedulerUnavailable(
            f"'{' '.join(argv[:3])}' did not answer within {COMMAND_TIMEOUT:.0f} s"
        ) from None
    if result.returncode != 0:
        detail = " ".join(result.stderr.split())[:300] or f"exit {result.returncode}"
        raise SchedulerUnavailable(f"'{' '.join(argv[:3])}' failed: {detail}")
    return result.stdout


def _fields(line: str) -> dict[str, str]:
    return dict(_FIELD.findall(line))


def slurm_seconds(text: str) -> int | None:
    """Seconds in a Slurm time limit (``[D-]HH:MM:SS``, ``MM:SS``, ``MM``);
    None for no limit."""
    text = text.strip()
    if text.upper() in _UNLIMITED:
        return None
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        days = int(d)
    parts = [int(p) for p in text.split(":")] if text else [0]
    if len(parts) == 1:  # minutes
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:  # minutes:seconds
        h, (m, s) = 0, parts
    else:
        h, m, s = parts[-3:]
    return ((days * 24 + h) * 60 + m) * 60 + s


def _gpus(gres: str) -> int:
    """GPUs in a node's ``Gres`` (``gpu:4``, ``gpu:a100:2(S:0-1)``, ...)."""
    total = 0
    for item in gres.split(","):
        words = re.sub(r"\(.*?\)", "", item).split(":")
        if words[0] == "gpu" and words[-1].isdigit() and len(words) > 1:
            total += int(words[-1])
    return total


def _listing(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class Partition:
    name: str
    state: str
    default: bool
    max_time: int | None  # seconds; None: unlimited
    max_time_text: str
    max_nodes: int | None
    min_nodes: int
    allow_accounts: tuple[str, ...] | None  # None: all
    allow_qos: tuple[str, ...] | None


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: int
    partitions: tuple[str, ...]


@dataclass
class SlurmSnapshot:
    """What one round of ``scontrol``/``sacctmgr`` calls reported, and the checks on it."""

    user: str
    partitions: dict[str, Partition]
    nodes: list[Node]
    #: With accounting: every account and QOS, and this user's (account, partition, QOS
    #: list) associations; None without accounting (nothing to check account/QOS against).
    accounts: set[str] | None = None
    qos: set[str] | None = None
    associations: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    _cache: ClassVar[dict[tuple[str, str], tuple[float, SlurmSnapshot]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def current(cls) -> SlurmSnapshot:
        """The snapshot of this process's Slurm (``SLURM_CONF``), asked at most once per
        :data:`SNAPSHOT_TTL`."""
        import getpass

        key = (os.environ.get("SLURM_CONF", ""), getpass.getuser())
        with cls._lock:
            cached = cls._cache.get(key)
            if cached and time.monotonic() - cached[0] < SNAPSHOT_TTL:
                return cached[1]
            snap = cls.query(key[1])
            cls._cache[key] = (time.monotonic(), snap)
            return snap

    @classmethod
    def forget(cls) -> None:
        """Drop cached snapshots (the next check asks the scheduler again)."""
        with cls._lock:
            cls._cache.clear()

    @classmethod
    def query(cls, user: str) -> SlurmSnapshot:
        """Ask the live scheduler (raises SchedulerUnavailable)."""
        config = {}
        for line in _run(["scontrol", "show", "config"]).splitlines():
            key, sep, value = line.partition("=")
            if sep:
                config[key.strip()] = value.strip()
        partitions = {}
        for line in _run(["scontrol", "-o", "show", "partition"]).splitlines():
            f = _fields(line)
            if "PartitionName" not in f:
                continue
            max_nodes = f.get("MaxNodes", "UNLIMITED")
            partitions[f["PartitionName"]] = Partition(
                name=f["PartitionName"],
                state=f.get("State", "UNKNOWN"),
                default=f.get("Default") == "YES",
                max_time=slurm_seconds(f.get("MaxTime", "UNLIMITED")),
                max_time_text=f.get("MaxTime", "UNLIMITED"),
                max_nodes=None if max_nodes.upper() in _UNLIMITED else int(max_nodes),
                min_nodes=int(f.get("MinNodes", "0") or 0),
                allow_accounts=_allowed(f.get("AllowAccounts", "ALL")),
                allow_qos=_allowed(f.get("AllowQos", "ALL")),
            )
        nodes = []
        for line in _run(["scontrol", "-o", "show", "node"]).splitlines():
            f = _fields(line)
            if "NodeName" not in f:
                continue
            nodes.append(
                Node(
                    name=f["NodeName"],
                    cpus=int(f.get("CPUTot", "0") or 0),
                    memory_mb=int(f.get("RealMemory", "0") or 0),
                    gpus=_gpus(f.get("Gres", "")),
                    partitions=tuple(p for p in f.get("Partitions", "").split(",") if p),
                )
            )
        snap = cls(user=user, partitions=partitions, nodes=nodes)
        if config.get("AccountingStorageType", "accounting_storage/none").endswith("/slurmdbd"):
            snap._query_accounting(config.get("ClusterName", ""))
        return snap

    def _query_accounting(self, cluster: str) -> None:
        sacctmgr = ["sacctmgr", "-n", "-P", "show"]
        self.accounts = {a.strip() for a in _run([*sacctmgr, "account", "format=account"]).split()}
        self.qos = {q.strip() for q in _run([*sacctmgr, "qos", "format=name"]).split()}
        where = [f"user={self.user}"] + ([f"cluster={cluster}"] if cluster else [])
        out = _run([*sacctmgr, "assoc", *where, "format=account,partition,qos"])
        for line in out.splitlines():
            account, partition, qos = ([*line.split("|"), "", ""])[:3]
            if account:
                qos_list = tuple(q for q in qos.split(",") if q)
                self.associations.append((account, partition, qos_list))

    # --------------------------------------------------------------------- checks

    def check(self, res: Resource) -> list[Problem]:
        """Every way ``res`` does not fit this cluster."""
        part, problems = self._partition(res)
        if part is None:
            return problems
        problems += self._limits(res, part)
        problems += self._nodes(res, part)
        problems += self._association(res, part)
        return problems

    def _partition(self, res: Resource) -> tuple[Partition | None, list[Problem]]:
        names = _listing(self.partitions)
        if res.partition is None:
            default = next((p for p in self.partitions.values() if p.default), None)
            if default is None:
                return None, [
                    Problem("partition", "no partition given and Slurm has no default", names)
                ]
            part = default
        else:
            part = self.partitions.get(res.partition)
            if part is None:
                return None, [
                    Problem("partition", f"partition '{res.partition}' does not exist", names)
                ]
        if part.state != "UP":
            up = _listing(p.name for p in self.partitions.values() if p.state == "UP")
            return part, [Problem("partition", f"partition '{part.name}' is {part.state}", up)]
        return part, []

    def _limits(self, res: Resource, part: Partition) -> list[Problem]:
        problems = []
        wall = slurm_seconds(res.walltime)
        if part.max_time is not None and wall is not None and wall > part.max_time:
            problems.append(
                Problem(
                    "walltime",
                    f"walltime {res.walltime} is above partition '{part.name}' MaxTime "
                    f"{part.max_time_text}",
                    (f"at most {part.max_time_text}",),
                )
            )
        in_part = [n for n in self.nodes if part.name in n.partitions]
        most = len(in_part) if part.max_nodes is None else min(part.max_nodes, len(in_part))
        if res.nodes_per_block > most:
            problems.append(
                Problem(
                    "nodes_per_block",
                    f"nodes_per_block {res.nodes_per_block} is more than partition "
                    f"'{part.name}' allows ({most})",
                    (f"at most {most}",),
                )
            )
        elif res.nodes_per_block < part.min_nodes:
            problems.append(
                Problem(
                    "nodes_per_block",
                    f"nodes_per_block {res.nodes_per_block} is below partition "
                    f"'{part.name}' MinNodes {part.min_nodes}",
                    (f"at least {part.min_nodes}",),
                )
            )
        return problems

    def _nodes(self, res: Resource, part: Partition) -> list[Problem]:
        in_part = [n for n in self.nodes if part.name in n.partitions]
        wanted = min(res.nodes_per_block, len(in_part)) or 1
        problems = []
        for key, asked, have, unit in (
            ("cores_per_node", res.cores_per_node, lambda n: n.cpus, "CPUs"),
            ("gpus_per_node", res.gpus_per_node, lambda n: n.gpus, "GPUs"),
            ("mem_per_node", res.mem_per_node, lambda n: n.memory_mb // 1024, "GB of memory"),
        ):
            if asked is None:
                continue
            fit = [n for n in in_part if have(n) >= asked]
            if len(fit) < wanted:
                values = sorted({have(n) for n in in_part})
                problems.append(
                    Problem(
                        key,
                        f"{key} {asked}: partition '{part.name}' has "
                        f"{len(fit)} node(s) with {asked} {unit}, {wanted} needed",
                        (f"its nodes have {', '.join(map(str, values))} {unit}",),
                    )
                )
        return problems

    def _association(self, res: Resource, part: Partition) -> list[Problem]:
        if self.accounts is None or self.qos is None:
            return []  # no accounting: Slurm takes any account and QOS
        problems = []
        mine = [a for a in self.associations if a[1] in ("", part.name)]
        my_accounts = _listing(a[0] for a in mine)
        account = res.account
        if account is not None:
            if account not in self.accounts:
                problems.append(
                    Problem("account", f"account '{account}' does not exist", my_accounts)
                )
            elif account not in my_accounts:
                problems.append(
                    Problem(
                        "account",
                        f"user '{self.user}' is not associated with account '{account}'"
                        + ("" if res.partition is None else f" on partition '{part.name}'"),
                        my_accounts,
                    )
                )
            elif part.allow_accounts is not None and account not in part.allow_accounts:
                problems.append(
                    Problem(
                        "account",
                        f"partition '{part.name}' does not allow account '{account}'",
                        part.allow_accounts,
                    )
                )
        if res.queue is not None:
            # The QOS of the account asked for; all the user's if it has none of them.
            usable = [a for a in mine if account is None or a[0] == account] or mine
            my_qos = _listing(q for a in usable for q in a[2])
            if res.queue not in self.qos:
                problems.append(Problem("queue", f"QOS '{res.queue}' does not exist", my_qos))
            elif res.queue not in my_qos:
                with_account = f" with account '{account}'" if account else ""
                problems.append(
                    Problem(
                        "queue",
                        f"user '{self.user}' may not use QOS '{res.queue}'{with_account}",
                        my_qos,
                    )
                )
            elif part.allow_qos is not None and res.queue not in part.allow_qos:
                problems.append(
                    Problem(
                        "queue",
                        f"partition '{part.name}' does not allow QOS '{res.queue}'",
                        part.allow_qos,
                    )
                )
        return problems


def _allowed(text: str) -> tuple[str, ...] | None:
    return None if text.upper() == "ALL" else tuple(t for t in text.split(",") if t)
