"""Errors of the agent layer (defined in :mod:`chiltepin.errors`, the one error tree)."""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from typing import Any

from chiltepin.errors import (
    ActionFailed,
    AgentFailedError,
    ExchangeError,
    NoFreeWorkerError,
    shorten,
)

__all__ = ["AgentFailedError", "ExchangeError", "NoFreeWorkerError", "reported"]


def sendable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the trip to the caller (it pickles), else an
    :class:`~chiltepin.errors.ActionFailed` with its type and message: Parsl's
    ``BadStateException`` (e.g. ``sbatch: error: invalid partition``) holds its executor
    and cannot be sent, so the caller used to see only a serialization error."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip means "not sendable"
        return ActionFailed(f"{type(exc).__name__}: {shorten(str(exc))}")
    return exc


def reported(call: Callable[..., Any]) -> Callable[..., Any]:
    """An action whose errors reach the caller as they are, or as :func:`sendable` says."""

    @functools.wraps(call)
    async def action(*args: Any, **kwargs: Any) -> Any:
        try:
            return await call(*args, **kwargs)
        except Exception as exc:
            replacement = sendable(exc)
            if replacement is exc:
                raise
        # Raised outside the handler: with tblib's pickling support (Parsl installs it)
        # an exception's context is pickled too, and that context is what cannot be.
        raise replacement

    return action
