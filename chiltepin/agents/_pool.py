"""The Parsl executor agents run on (imports Parsl)."""

from __future__ import annotations

from typing import Any

from parsl.concurrent import ParslPoolExecutor


class AgentPoolExecutor(ParslPoolExecutor):
    """``ParslPoolExecutor`` on a workflow the caller owns.

    Academy shuts a manager's executors down when the manager closes, after its agents
    have stopped. Parsl's ``shutdown`` would then wait for *every* task of the workflow
    (other managers' agents included); this one only lets go of the workflow.
    """

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._dfk = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(executors={self.executors!r})"


def pool_executors(dfk: Any, names: list[str]) -> dict[str, AgentPoolExecutor]:
    return {name: AgentPoolExecutor(dfk=dfk, executors=[name]) for name in names}
