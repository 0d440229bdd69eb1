"""``AgentHandle``: an Academy handle that says *why* an agent is gone.

When an agent fails (its workflow did not start, ``__init__`` raised, a loop crashed)
Academy closes its mailbox and a caller only sees "mailbox terminated" (or, for a request
that arrived while the agent was starting, "cancelled by the agent"). Handles made by a
``ChiltepinManager`` ask the manager for the agent's exception and raise
:class:`AgentFailedError` from it instead. Pickled, they become plain Academy handles.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from academy.exception import (
    ActionCancelledError,
    BadEntityIdError,
    MailboxTerminatedError,
    PingCancelledError,
)
from academy.handle import Handle

from chiltepin.agents.errors import AgentFailedError
from chiltepin.errors import ActionTimeout, ExchangeError

if TYPE_CHECKING:
    from academy.agent import Agent

AgentT = TypeVar("AgentT", bound="Agent")

#: How long to wait for a terminated agent's exception to reach the manager.
FAILURE_WAIT_S = 15.0
#: How long an action may take, unless a handle (``with_timeout``) or ``agent call
#: --timeout`` says otherwise; ``CHILTEPIN_ACTION_TIMEOUT`` (seconds) changes it.
DEFAULT_ACTION_TIMEOUT = 3600.0


def default_action_timeout() -> float:
    """:data:`DEFAULT_ACTION_TIMEOUT`, or ``CHILTEPIN_ACTION_TIMEOUT`` when set."""
    value = os.environ.get("CHILTEPIN_ACTION_TIMEOUT", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_ACTION_TIMEOUT
    return seconds if seconds > 0 else DEFAULT_ACTION_TIMEOUT


class AgentHandle(Handle[AgentT], Generic[AgentT]):
    """A handle to an agent of type ``AgentT`` (what ``ChiltepinManager.launch`` returns)."""

    def __init__(self, agent_id: Any = None, *, manager: Any = None, **kwargs: Any) -> None:
        # Set first: Handle.__getattr__ answers any missing attribute with a remote call.
        self._chiltepin_manager = weakref.ref(manager) if manager is not None else None
        self._chiltepin_timeout: float | None = None
        super().__init__(agent_id, **kwargs)

    @property
    def action_timeout(self) -> float:
        """Seconds an action called through this handle may take."""
        return self._chiltepin_timeout or default_action_timeout()

    def with_timeout(self, seconds: float) -> AgentHandle[AgentT]:
        """This handle, with actions allowed ``seconds`` (e.g.
        ``await handle.with_timeout(7200).run_model()``)."""
        if not seconds > 0:
            raise ValueError(f"an action timeout is a positive number of seconds, got {seconds!r}")
        other = object.__new__(type(self))  # not copy.copy: pickling makes a plain Handle
        other.__dict__.update(self.__dict__)
        other._chiltepin_timeout = float(seconds)
        return other

    async def action(self, action: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``action``; fail with :class:`~chiltepin.errors.ActionTimeout` after
        :attr:`action_timeout`, or with :class:`AgentFailedError` as soon as the agent
        (its process, its host job) is gone, whichever comes first."""
        timeout = self.action_timeout
        call = asyncio.ensure_future(self._action(action, *args, **kwargs))
        gone = asyncio.ensure_future(self._agent_gone())
        lost = asyncio.ensure_future(self._exchange_lost())
        try:
            done, _ = await asyncio.wait(
                {call, gone, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if call in done:
                return call.result()
            if lost in done:
                raise ExchangeError(
                    f"agent {self._label()}: action '{action}' cannot finish: {lost.result()}"
                )
            if gone in done and gone.result():
                await self._raise_agent_failure()
                raise AgentFailedError(f"agent {self._label()} stopped during action '{action}'")
            raise ActionTimeout(
                f"agent {self._label()}: action '{action}' did not finish within "
                f"{timeout:g} s (hint: handle.with_timeout(SECONDS), "
                "CHILTEPIN_ACTION_TIMEOUT, or 'chiltepin agent call --timeout')"
            )
        finally:
            for pending in (call, gone, lost):
                if not pending.done():
                    pending.cancel()

    def _label(self) -> str:
        manager = self._chiltepin_manager() if self._chiltepin_manager is not None else None
        try:
            agent = self.agent_id
        except RuntimeError:
            return "(not launched yet)"
        return manager.agent_label(agent) if manager is not None else str(agent)

    async def _agent_gone(self) -> bool:
        """Return True once the agent launched by our manager has stopped (never
        returns for an agent that is not ours: the timeout then applies)."""
        manager = self._chiltepin_manager() if self._chiltepin_manager is not None else None
        try:
            agent = self.agent_id
        except RuntimeError:
            manager = None
        if manager is None:
            await asyncio.Event().wait()
            return False
        try:
            await manager.wait([agent])
        except BadEntityIdError:
            await asyncio.Event().wait()
        except Exception:  # noqa: BLE001 - stopped, with an error: the caller reports it
            return True
        return True

    async def _exchange_lost(self) -> str:
        """Why the exchange of our manager is gone, once it is (never returns otherwise)."""
        manager = self._chiltepin_manager() if self._chiltepin_manager is not None else None
        if manager is None:
            await asyncio.Event().wait()
        return await manager.exchange_lost()

    async def _action(self, action: str, /, *args: Any, **kwargs: Any) -> Any:
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
