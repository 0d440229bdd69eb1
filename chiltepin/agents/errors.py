"""Errors of the agent layer."""

from __future__ import annotations


class AgentFailedError(RuntimeError):
    """An agent stopped with an error (for example, its workflow failed to start).

    Raised to a caller whose action or ping found the agent gone; ``__cause__`` is the
    agent's own exception.
    """
