"""Errors of the agent layer (defined in :mod:`chiltepin.errors`, the one error tree)."""

from __future__ import annotations

from chiltepin.errors import AgentFailedError, ExchangeError, NoFreeWorkerError

__all__ = ["AgentFailedError", "ExchangeError", "NoFreeWorkerError"]
