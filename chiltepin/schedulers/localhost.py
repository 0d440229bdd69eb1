"""This machine, no batch system: Parsl's LocalProvider."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from chiltepin.schedulers.base import Scheduler, Setting

if TYPE_CHECKING:
    from chiltepin.config.schema import Resource


class LocalhostScheduler(Scheduler):
    name: ClassVar[str] = "localhost"
    provider_class: ClassVar[str] = "LocalProvider"
    htex_launcher: ClassVar[str] = "SingleNodeLauncher"
    local: ClassVar[bool] = True

    def settings(self, res: Resource) -> list[Setting]:
        return []  # one node per block (LocalProvider's default)
