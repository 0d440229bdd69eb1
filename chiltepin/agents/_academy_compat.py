"""The few things chiltepin needs from Academy that its public API does not offer.

Everything else in the agent layer uses Academy's public API (``Manager``'s public
methods, ``Handle``, ``Runtime``, ``Agent``'s documented hooks). Each function here says
what it reads and why there is no public way; when Academy grows one, only this module
changes. Nothing here imports Academy at module level.
"""

from __future__ import annotations

from typing import Any

#: The attribute Academy's ``@action`` / ``@loop`` set on a function ("action" / "loop").
#: Academy has no public predicate for "is this decorated with @action/@loop", and
#: chiltepin must recognise Academy's decorators on a ``@chiltepin_agent`` class to refuse
#: them with a message that says how to fix it.
ACADEMY_METHOD_ATTR = "_agent_method_type"


def academy_method_kind(obj: Any) -> str | None:
    """ "action"/"loop" if Academy's own ``@action``/``@loop`` was applied to ``obj``."""
    function = obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj
    try:
        return vars(function).get(ACADEMY_METHOD_ATTR)
    except TypeError:
        return None


def action_names(agent: Any) -> list[str]:
    """The names of an agent instance's actions, as Academy's ``Runtime`` will serve them.

    ``Agent._agent_actions()`` is what the Runtime itself uses. The public alternative,
    the ``agent_describe`` action, also resolves every action's type hints, which fails
    for hints that only exist under ``TYPE_CHECKING``; an agent service must not fail to
    start over that.
    """
    return sorted(agent._agent_actions())


def stop_restarts(manager: Any) -> None:
    """Stop ``manager`` from restarting failed agents (``max_retries``).

    Academy 1.0's ``Manager.close`` sets its private ``_closed`` event first, then waits
    for the agents one by one and stops at the first that failed: the other agents, the
    exchange client and the executors are then never closed. ``ChiltepinManager.close``
    therefore closes with public calls itself, but needs this one step first (else an agent
    that fails while stopping is started again), and Academy has no public way to do it.
    """
    manager._closed.set()


def listener_error(runtime: Any) -> BaseException | None:
    """The error that ended a ``Runtime``'s exchange listener, or None.

    When the listener fails (its exchange unreachable after retries, or the exchange lost
    the agent's mailbox), Academy 1.0's Runtime only signals an unexpected shutdown; the
    cause stays on its private ``_exchange_listener_task``. An agent service needs it to
    tell a lost exchange (register again) from a requested stop.
    """
    task = getattr(runtime, "_exchange_listener_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


async def close_agent_client(runtime: Any, timeout: float) -> None:
    """Close a ``Runtime``'s exchange client after its listener failed (within ``timeout``).

    Academy 1.0's ``Runtime._shutdown`` re-raises the listener's error before it closes
    the client (``_exchange_client``, private), which would leave the client's heartbeat
    task running against the exchange.
    """
    import asyncio
    import contextlib

    client = getattr(runtime, "_exchange_client", None)
    if client is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), timeout)
