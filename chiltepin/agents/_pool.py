"""The executor agents run on: one executor of a workflow the caller owns (imports Parsl)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from parsl.concurrent import ParslPoolExecutor


@dataclasses.dataclass(frozen=True)
class WorkerCount:
    """Workers of the executors agents run on: how many there can be, how many are busy
    (tasks outstanding: each running agent is one), and how they are sized."""

    total: int
    busy: int
    sizing: str


class AgentPoolExecutor(Executor):
    """Runs agents on Parsl executors of a started workflow, through Parsl's
    ``ParslPoolExecutor``, without owning the workflow.

    Academy shuts a manager's executors down when the manager closes, after its agents
    have stopped. ``ParslPoolExecutor.shutdown`` would then wait for *every* task of the
    workflow (other managers' agents included); this one only lets go of the workflow,
    which its owner cleans up.
    """

    def __init__(self, dfk: Any, executors: list[str]) -> None:
        self.executors = list(executors)
        self.dfk = dfk
        self._pool: ParslPoolExecutor | None = ParslPoolExecutor(dfk=dfk, executors=self.executors)

    def workers(self) -> WorkerCount | None:
        """How many workers agents can hold here and how many are busy; None if the
        executors do not say (not block-based high-throughput executors)."""
        total = busy = 0
        sizing: list[str] = []
        for name in self.executors:
            executor = self.dfk.executors.get(name)
            per_node = getattr(executor, "workers_per_node", None)
            provider = getattr(executor, "provider", None)
            if not isinstance(per_node, (int, float)) or per_node == math.inf or provider is None:
                return None
            nodes, blocks = provider.nodes_per_block, provider.max_blocks
            total += int(per_node) * nodes * blocks
            busy += executor.outstanding()
            wanted = getattr(executor, "max_workers_per_node", per_node)
            cores = getattr(executor, "cores_per_worker", None)
            sizing.append(
                f"'{name}': {int(per_node)} workers per node (max_workers_per_node="
                f"{wanted if wanted != math.inf else 'unset'}, cores_per_worker={cores}) x "
                f"nodes_per_block={nodes} x max_blocks={blocks}"
            )
        return WorkerCount(total=total, busy=busy, sizing="; ".join(sizing))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._pool is None:
            raise RuntimeError("Executor has been shut down.")
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(executors={self.executors!r})"


def pool_executors(dfk: Any, names: list[str]) -> dict[str, AgentPoolExecutor]:
    return {name: AgentPoolExecutor(dfk=dfk, executors=[name]) for name in names}
