"""PBS Pro: Parsl's PBSProProvider; workers start with mpiexec."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from chiltepin.schedulers.base import BatchScheduler, Setting

if TYPE_CHECKING:
    from chiltepin.config.schema import Resource


class PBSProScheduler(BatchScheduler):
    name: ClassVar[str] = "pbspro"
    provider_class: ClassVar[str] = "PBSProProvider"
    htex_launcher: ClassVar[str] = "MpiExecLauncher"

    def settings(self, res: Resource) -> list[Setting]:
        gpus = f"ngpus={res.gpus_per_node}" if res.gpus_per_node else None
        return [
            Setting("account", res.account, "account"),
            Setting("queue", res.queue, "queue"),
            Setting("cpus_per_node", res.cores_per_node or 1),
            Setting("select_options", gpus),
            *self.batch_settings(res),
        ]
