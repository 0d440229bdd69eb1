"""The executor agents run on: one executor of a workflow the caller owns (imports Parsl)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from parsl.concurrent import ParslPoolExecutor


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
        self._pool: ParslPoolExecutor | None = ParslPoolExecutor(dfk=dfk, executors=self.executors)

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
