"""State files of running agent services: ``$XDG_STATE_HOME/chiltepin/agents/<name>.json``.

``chiltepin agent serve`` writes one while it runs (and removes it when it stops); the
other ``chiltepin agent`` commands read them to find a service's agent and exchange. The
directory is private (0700), the files too (0600). A file left by a killed service is
*stale*: its process is gone; the next ``serve`` of that name takes its agent ID over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STARTING = "starting"
RUNNING = "running"


class _DropCancelledRequests(logging.Filter):
    """Academy's HTTP client logs a traceback for every request cancelled by a normal
    close (e.g. a heartbeat in flight); those are not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        import asyncio

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


_FILTER = _DropCancelledRequests()


def quiet_cancelled_requests() -> None:
    """Keep Academy's cancelled-request tracebacks out of the logs (idempotent)."""
    academy_http = logging.getLogger("academy.exchange.cloud.client")
    if _FILTER not in academy_http.filters:
        academy_http.addFilter(_FILTER)


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "chiltepin" / "agents"


def state_path(name: str) -> Path:
    return state_dir() / f"{name}.json"


def log_path(name: str) -> Path:
    """Where ``chiltepin agent launch`` sends a service's output."""
    return state_dir() / f"{name}.log"


def ensure_state_dir() -> Path:
    directory = state_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    return directory


@dataclasses.dataclass
class ServiceState:
    """What a running service tells the other commands."""

    name: str
    agent_id: str  # the agent's UUID
    agent: str  # "package.module:ClassName" as in the service file
    agent_class: str  # fully qualified, as Academy's discovery knows it
    actions: list[str]
    exchange: dict[str, Any]  # ExchangeSettings fields
    exchange_url: str | None  # the URL an embedded exchange got, or the http url
    registration: dict[str, Any]  # Academy's AgentRegistration, as JSON
    pid: int
    pid_created: float  # psutil create_time of pid: tells a reused pid apart
    host: str
    config: str  # absolute path of the service file
    python_path: list[str]
    status: str = STARTING
    started: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def process_alive(self) -> bool | None:
        """Whether the service's process runs (None: it runs on another host)."""
        if not self.on_this_host:
            return None
        return process_alive(self.pid, self.pid_created)

    @property
    def exchange_label(self) -> str:
        kind = self.exchange.get("kind", "embedded")
        if kind == "redis":
            return f"redis://{self.exchange.get('host')}:{self.exchange.get('port') or 6379}"
        if self.exchange_url:
            return f"{self.exchange_url}" + (" (embedded)" if kind == "embedded" else "")
        return kind

    def exchange_settings(self) -> Any:
        from chiltepin.config.schema import ExchangeSettings

        return ExchangeSettings.model_validate(self.exchange)


def process_alive(pid: int, created: float | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, given ``created``, is the same process."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(proc.create_time() - created) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def process_created(pid: int) -> float:
    import psutil

    return psutil.Process(pid).create_time()


def write_state(state: ServiceState) -> Path:
    """Write atomically, readable by the owner only."""
    directory = ensure_state_dir()
    target = state_path(state.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{state.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state.to_dict(), handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def read_state(name: str) -> ServiceState | None:
    return _read(state_path(name))


def _read(path: Path) -> ServiceState | None:
    try:
        return ServiceState.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable agent service state %s: %s", path, exc)
        return None


def remove_state(name: str, *, pid: int | None = None) -> bool:
    """Remove the state file (only if it is ``pid``'s, when given)."""
    path = state_path(name)
    if pid is not None:
        current = _read(path)
        if current is None or current.pid != pid:
            return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def all_states() -> list[ServiceState]:
    directory = state_dir()
    if not directory.is_dir():
        return []
    states = [_read(path) for path in sorted(directory.glob("*.json"))]
    return [s for s in states if s is not None]
