"""Slurm: Parsl's SlurmProvider; workers start with srun, MPI ranks with srun."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from chiltepin.schedulers.base import BatchScheduler, Options, Setting

if TYPE_CHECKING:
    from chiltepin.config.schema import Resource


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
