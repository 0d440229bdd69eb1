"""Named agent state that survives a restart: Academy's ``academy.state.FileState``.

An agent served by ``chiltepin agent serve`` keeps its state under its service's state
directory (``$XDG_STATE_HOME/chiltepin/agents/<service>.d/``, 0700): a restarted service
(by hand, or by its systemd unit) opens the same stores and resumes::

    from chiltepin.agents import agent_action, agent_state, chiltepin_agent

    @chiltepin_agent()
    class Counter:
        def __init__(self):
            self.state = agent_state()          # a dict-like FileState
            self.state.setdefault("count", 0)

        @agent_action
        async def increment(self) -> int:
            self.state["count"] += 1
            self.state.sync()                   # on disk now: survives a kill
            return self.state["count"]

The service closes the stores when it stops. Outside a service, pass ``directory=``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from chiltepin.errors import ConfigError

#: Set by ``chiltepin agent serve`` for its agent: the service's state directory.
STATE_DIR_ENV = "CHILTEPIN_AGENT_STATE_DIR"

_OPEN: list[Any] = []
_LOCK = threading.Lock()


def agent_state(name: str = "state", *, directory: str | os.PathLike | None = None) -> Any:
    """The store ``name`` (an ``academy.state.FileState``) of this agent service, or in
    ``directory``. Opened again after a restart, it holds what was stored (and synced)."""
    from chiltepin.names import check_name

    check_name("agent state", name)
    where = directory if directory is not None else os.environ.get(STATE_DIR_ENV)
    if not where:
        raise ConfigError(
            "agent_state() has no state directory: this agent is not run by "
            "'chiltepin agent serve'",
            key="directory",
            hint="serve the agent as a service, or pass agent_state(directory=...)",
        )
    path = Path(where)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    from academy.state import FileState

    store: Any = FileState(str(path / name))
    with _LOCK:
        _OPEN.append(store)
    return store


def close_all() -> None:
    """Close every store this process opened (the service does, when it stops)."""
    with _LOCK:
        stores, _OPEN[:] = list(_OPEN), []
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closing one store must not skip the others
            continue
