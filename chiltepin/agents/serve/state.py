"""State files of running agent services: ``$XDG_STATE_HOME/chiltepin/agents/<name>.json``.

``chiltepin agent serve`` writes one while it runs (and removes it when it stops); the
other ``chiltepin agent`` commands read them to find a service's agent and exchange. The
directory is private (0700), the files too (0600). A file left by a killed service is
*stale*: its process is gone; the next ``serve`` of that name takes its agent ID over.
Files are replaced atomically (temporary file, fsync, rename). One that still cannot be
read as a state (edited, truncated by a full disk, not a file) is a :class:`BrokenState`:
listed as corrupt, an error naming it for ``call``, removed by ``shutdown``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import uuid
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)

#: A state file is a few KiB; anything much larger is not one.
MAX_STATE_BYTES = 1 << 20
STARTING = "starting"
RUNNING = "running"
#: Lost its exchange; registering its agent again.
RECONNECTING = "reconnecting"


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
    # How clients reach an embedded exchange: ExchangeSettings fields of kind http (its
    # URL, and the paths of its token and certificate beside this file), or None.
    exchange_access: dict[str, Any] | None = None

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
        from chiltepin.agents.exchange import get_kind

        settings = self.exchange_settings()
        return get_kind(settings.kind).listing(settings, self.exchange_url)

    def exchange_settings(self) -> Any:
        from chiltepin.config.schema import ExchangeSettings

        return ExchangeSettings.model_validate(self.exchange)


@dataclasses.dataclass(frozen=True)
class BrokenState:
    """A state file that is not a service's state: corrupt, half-written, not a file."""

    name: str
    path: Path
    reason: str

    @property
    def message(self) -> str:
        return f"{self.path}: corrupt state file of agent service '{self.name}': {self.reason}"

    @property
    def hint(self) -> str:
        from chiltepin.agents.serve.config import SERVICE_NAME_RE

        if not SERVICE_NAME_RE.match(self.name):
            return "remove the file"
        return (
            f"run: chiltepin agent shutdown {self.name} (removes it if that service is not "
            "running), or remove the file"
        )

    def error(self) -> ConfigError:
        return ConfigError(self.message, hint=self.hint)


#: Linux's largest process ID (/proc/sys/kernel/pid_max can be at most 2**22).
PID_MAX = 2**22


def process_alive(pid: int, created: float | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, given ``created``, is the same process."""
    import psutil

    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= PID_MAX:
        return False  # from a damaged file: no process has it
    if created is not None and (isinstance(created, bool) or not isinstance(created, (int, float))):
        return False
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
    from chiltepin.runs import write_private

    ensure_state_dir()
    target = state_path(state.name)
    write_private(target, state.to_dict())
    return target


def read_state(name: str) -> ServiceState | None:
    """The state of service ``name``, or None: no state file, or a broken one (logged)."""
    state = load_state(state_path(name))
    if isinstance(state, BrokenState):
        logger.info("ignoring %s", state.message)
        return None
    return state


def find_state(name: str) -> ServiceState | None:
    """The state of service ``name``, None without a state file; ConfigError if broken."""
    state = load_state(state_path(name))
    if isinstance(state, BrokenState):
        raise state.error()
    return state


def load_state(path: Path) -> ServiceState | BrokenState | None:
    """The state in ``path``; a BrokenState saying what is wrong; None if there is none."""
    from chiltepin._files import NotRegularFile, read_own_bytes

    name = path.name.removesuffix(".json")
    try:
        raw = read_own_bytes(path, MAX_STATE_BYTES)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return BrokenState(name, path, "it is a directory, not a file")
    except NotRegularFile:
        return BrokenState(name, path, "it is not a regular file (a FIFO, socket or device)")
    except OSError as exc:
        return BrokenState(name, path, f"cannot read it: {exc.strerror or exc}")
    reason = _problem(name, raw)
    if reason is not None:
        return BrokenState(name, path, reason)
    return ServiceState.from_dict(json.loads(raw))


# Each key of a state file, and the JSON types it may have.
_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "agent_id": (str,),
    "agent": (str,),
    "agent_class": (str,),
    "actions": (list,),
    "exchange": (dict,),
    "exchange_url": (str, type(None)),
    "registration": (dict,),
    "pid": (int,),
    "pid_created": (int, float),
    "host": (str,),
    "config": (str,),
    "python_path": (list,),
    "status": (str,),
    "started": (str,),
    "exchange_access": (dict, type(None)),
}
_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _problem(name: str, raw: bytes) -> str | None:
    """What makes ``raw`` not a state file of service ``name`` (None: it is one)."""
    if len(raw) > MAX_STATE_BYTES:
        return f"it is larger than {MAX_STATE_BYTES >> 20} MiB"
    if not raw.strip():
        return "it is empty"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"it is not valid JSON ({exc})"
    if not isinstance(data, dict):
        return f"it holds {_JSON_NAMES.get(type(data), type(data).__name__)}, not a JSON object"
    defaults = {f.name for f in dataclasses.fields(ServiceState) if f.default is not MISSING}
    missing = [k for k in _STATE_TYPES if k not in data and k not in defaults]
    if missing:
        return f"it lacks {', '.join(repr(k) for k in missing)}"
    for key, types in _STATE_TYPES.items():
        value = data.get(key)
        if key in data and (not isinstance(value, types) or isinstance(value, bool)):
            wanted = " or ".join(_JSON_NAMES[t] for t in types)
            return f"'{key}' must be {wanted}, got {_JSON_NAMES.get(type(value), 'another value')}"
    for key in ("actions", "python_path"):
        if not all(isinstance(item, str) for item in data[key]):
            return f"'{key}' must be a list of strings"
    if data["name"] != name:
        return f"it names service {data['name']!r}, not {name!r}"
    try:
        uuid.UUID(data["agent_id"])
    except ValueError:
        return f"'agent_id' is not a UUID: {data['agent_id'][:40]!r}"
    if data["pid"] <= 0:
        return f"'pid' must be positive, got {data['pid']}"
    from chiltepin.agents.exchange.base import check_url, mask_url
    from chiltepin.config.schema import ExchangeSettings

    try:
        ExchangeSettings.model_validate(data["exchange"])
        if data.get("exchange_access") is not None:
            ExchangeSettings.model_validate(data["exchange_access"])
        if data["exchange_url"] is not None:
            check_url(data["exchange_url"], ("http", "https"), example="http://HOST:PORT")
    except ValueError as exc:
        key, reason = _first_problem(exc)
        return f"'{key}' is not valid: {mask_url(reason)}"
    return None


def _first_problem(exc: ValueError) -> tuple[str, str]:
    """(key, reason) of a problem in ``exchange`` or ``exchange_url``."""
    if hasattr(exc, "message"):  # the key problem of exchange_url
        return "exchange_url", exc.message
    first = exc.errors()[0]  # type: ignore[attr-defined]  # pydantic's ValidationError
    cause = (first.get("ctx") or {}).get("error")
    loc = [str(p) for p in first["loc"]]
    if cause is not None and hasattr(cause, "key"):
        return ".".join(["exchange", *loc, cause.key]), cause.message
    return ".".join(["exchange", *loc]), first["msg"]


def remove_state(name: str, *, pid: int | None = None) -> bool:
    """Remove the state file (only if it is ``pid``'s, when given)."""
    path = state_path(name)
    if pid is not None:
        current = read_state(name)
        if current is None or current.pid != pid:
            return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def scan_states() -> list[ServiceState | BrokenState]:
    """Every state file, good or broken, by name."""
    directory = state_dir()
    if not directory.is_dir():
        return []
    found = [load_state(path) for path in sorted(directory.glob("*.json"))]
    return [s for s in found if s is not None]


def all_states() -> list[ServiceState]:
    """The states of every service with a readable state file."""
    return [s for s in scan_states() if isinstance(s, ServiceState)]


def exchange_dir(name: str) -> Path:
    """Where service ``name``'s embedded exchange keeps its token and certificate."""
    return state_dir() / f"{name}.exchange"


def lock_path(name: str) -> Path:
    """The lock a running ``serve`` of ``name`` holds for its whole life."""
    return state_path(name).with_suffix(".lock")


def lock_held(name: str) -> bool:
    """Whether a ``serve`` of ``name`` on this host holds its lock (it runs)."""
    import fcntl

    try:
        fd = os.open(lock_path(name), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False
