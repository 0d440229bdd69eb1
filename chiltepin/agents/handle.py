"""``AgentHandle``: an Academy handle that says *why* an agent is gone.

When an agent fails (its workflow did not start, ``__init__`` raised, a loop crashed)
Academy closes its mailbox and a caller only sees "mailbox terminated" (or, for a request
that arrived while the agent was starting, "cancelled by the agent"). Handles made by a
``ChiltepinManager`` ask the manager for the agent's exception and raise
:class:`AgentFailedError` from it instead. Pickled, they become plain Academy handles.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from academy.exception import ActionCancelledError, MailboxTerminatedError, PingCancelledError
from academy.handle import Handle

from chiltepin.agents.errors import AgentFailedError

if TYPE_CHECKING:
    from academy.agent import Agent

AgentT = TypeVar("AgentT", bound="Agent")

#: How long to wait for a terminated agent's exception to reach the manager.
FAILURE_WAIT_S = 15.0


class AgentHandle(Handle[AgentT], Generic[AgentT]):
    """A handle to an agent of type ``AgentT`` (what ``ChiltepinManager.launch`` returns)."""

    def __init__(self, agent_id: Any = None, *, manager: Any = None, **kwargs: Any) -> None:
        # Set first: Handle.__getattr__ answers any missing attribute with a remote call.
        self._chiltepin_manager = weakref.ref(manager) if manager is not None else None
        super().__init__(agent_id, **kwargs)

    async def action(self, action: str, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().action(action, *args, **kwargs)
        except MailboxTerminatedError as exc:
            await self._raise_failure(exc)
            raise
        except ActionCancelledError:
            # Requests received during startup wait for it; if it fails, they are cancelled.
            await self._raise_agent_failure()
            raise

    async def ping(self, *, timeout: float | None = None) -> float:
        try:
            return await super().ping(timeout=timeout)
        except MailboxTerminatedError as exc:
            await self._raise_failure(exc)
            raise
        except PingCancelledError:
            await self._raise_agent_failure()
            raise

    async def _raise_failure(self, terminated: MailboxTerminatedError) -> None:
        try:
            mine = self.agent_id
        except RuntimeError:  # not bound yet (a queued batch launch): nothing to report
            return
        if getattr(terminated, "uid", None) != mine:
            return  # our own mailbox (the caller's), not the agent's
        await self._raise_agent_failure()

    async def _raise_agent_failure(self) -> None:
        """Raise AgentFailedError if the agent stopped with an error (waiting a little for
        it to stop); return if it is running or stopped cleanly."""
        manager = self._chiltepin_manager() if self._chiltepin_manager is not None else None
        if manager is None:
            return
        failure = await manager.agent_failure(self.agent_id, timeout=FAILURE_WAIT_S)
        if failure is None:
            return
        label = manager.agent_label(self.agent_id)
        raise AgentFailedError(
            f"agent {label} stopped with {type(failure).__name__}: {failure}"
        ) from failure
