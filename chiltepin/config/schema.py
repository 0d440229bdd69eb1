"""The resource schema: one place that says what a resource may contain.

A resource configuration maps resource names (which become Parsl executor labels) to
either a :class:`Resource` (a high-throughput or MPI executor on a local or batch
provider) or a :class:`RemoteResource` (a Globus Compute endpoint).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import core_schema

from chiltepin import names
from chiltepin.containers import RUNTIMES
from chiltepin.errors import ConfigWarning, did_you_mean
from chiltepin.names import NAME_RE  # noqa: F401 - the one name rule, re-exported
from chiltepin.schedulers import (
    SCHEDULERS,
    LocalhostScheduler,
    Scheduler,
    get_scheduler,
    schedulers_taking,
)

# Upper bounds: far beyond any cluster, so that no value can have a worker pool start
# billions of processes, sleep for ever, or a scheduler get a number it overflows on.
Nodes = Annotated[int, Field(gt=0, le=1_000_000)]
Blocks = Annotated[int, Field(gt=0, le=100_000)]
BlockCount = Annotated[int, Field(ge=0, le=100_000)]
Workers = Annotated[int, Field(gt=0, le=10_000)]
Cores = Annotated[int, Field(gt=0, le=100_000)]
Gigabytes = Annotated[int, Field(gt=0, le=1_000_000)]
Gpus = Annotated[int, Field(gt=0, le=1_024)]
Retries = Annotated[int, Field(ge=0, le=1_000)]
Seconds = Annotated[int, Field(gt=0, le=86_400)]
# Values that end up in #SBATCH/#PBS lines or on a command line: no spaces, quotes or '$'.
_TOKEN_CHARS = r"[A-Za-z0-9_.,:=+&|()\[\]*!%/@-]"
TOKEN_PATTERN = f"^{_TOKEN_CHARS}+$"
#: A token or "" (chiltepin 0.1.x clients send "" for "none").
TOKEN_OR_BLANK_PATTERN = f"^{_TOKEN_CHARS}*$"
SchedulerToken = Annotated[str, Field(min_length=1, pattern=TOKEN_PATTERN)]
#: A scheduler token, or "" for none (as chiltepin 0.1.x sends).
SchedulerTokenOrBlank = Annotated[str, Field(pattern=TOKEN_OR_BLANK_PATTERN)]

#: A literal address (IPv4, IPv6 or a host name) that workers on other hosts connect to.
NetworkAddress = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:-]+$")]
#: A network interface name as Linux allows it (at most 15 characters, e.g. ``ib0``).
InterfaceName = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.:@-]+$")]
PortNumber = Annotated[int, Field(ge=1, le=65535)]

WALLTIME_RE = re.compile(r"^\d{1,5}:[0-5]\d:[0-5]\d$")  # up to 99999 hours
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


class Provider(str):
    """A scheduler name from :data:`chiltepin.schedulers.SCHEDULERS` (checked, and listed
    in JSON schemas, against the registry as it is when used)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return core_schema.no_info_after_validator_function(
            _check_provider, core_schema.str_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"enum": list(SCHEDULERS), "type": "string"}


def _check_provider(value: str) -> str:
    if value not in SCHEDULERS:
        names = [repr(n) for n in SCHEDULERS]
        choices = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise ValueError(f"must be one of {choices}, got {value!r}")
    return value


#: A container runtime's name: one of chiltepin.containers.RUNTIMES (imports no Parsl).
RuntimeName = Literal[tuple(RUNTIMES)]  # type: ignore[misc]


def _check_walltime(value: str) -> str:
    if not WALLTIME_RE.fullmatch(value):  # fullmatch: '$' alone lets "01:00:00\n" through
        raise ValueError(f"walltime must be HH:MM:SS, got {value!r} (e.g. '01:30:00')")
    return value


Walltime = Annotated[str, AfterValidator(_check_walltime)]

MPI_ONLY_KEYS = ("max_mpi_apps", "mpi_launcher")
HTEX_ONLY_KEYS = ("cores_per_worker", "max_workers_per_node")
#: chiltepin 0.1.x wrote "" for "none" (its remote resources default to it).
BLANK_MEANS_UNSET = ("account", "partition", "queue")


def drop_blank(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys whose empty value means none (as in chiltepin 0.1.x)."""
    return {k: v for k, v in data.items() if not (k in BLANK_MEANS_UNSET and v == "")}


def inapplicable(key: str, provider: str, mpi: bool) -> tuple[str, str] | None:
    """Why resource key ``key`` means nothing on ``provider`` (an MPI resource if ``mpi``):
    (message, hint), or None when it applies. The scheduler classes say which of the
    scheduler-specific keys they take."""
    if not get_scheduler(provider).applies(key):
        return (
            f"'{key}' is not used by provider '{provider}'",
            f"it applies to provider {' or '.join(schedulers_taking(key))}",
        )
    if key in MPI_ONLY_KEYS and not mpi:
        return f"'{key}' applies only to MPI executors", "add 'mpi: true'"
    if key in HTEX_ONLY_KEYS and mpi:
        return (
            f"'{key}' is not used by MPI executors",
            "use 'max_mpi_apps' to set how many MPI tasks run at once",
        )
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ContainerSettings(_Strict):
    """How an executor's workers run inside a container image.

    Filled in from a site profile's ``container:`` block; ``runtime`` and ``image``
    are required once a container is in use.
    """

    runtime: RuntimeName  # type: ignore[valid-type]
    image: str = Field(min_length=1)
    cache_dir: str | None = None
    binds: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list, description="Variables passed through")
    gpus: bool = False


# The published schema's view of exchange values; the kinds check them, with messages that
# name the problem (and mask credentials in URLs).
_UrlText = Annotated[str, WithJsonSchema({"type": "string", "pattern": r"^https?://\S+$"})]
_HostText = Annotated[str, WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9_.:-]+$"})]
_PortNumber = Annotated[int, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 65535})]


def _kind_enum(schema: dict[str, Any]) -> None:
    from chiltepin.agents.exchange import KINDS

    schema["enum"] = list(KINDS)


class ExchangeSettings(_Strict):
    """Where agents exchange messages (a site profile's ``exchange:`` block).

    ``embedded``: the toolkit runs Academy's HTTP exchange for the life of an
    AgentSystem, bound to ``host`` (default loopback) or to the address of
    ``interface``, on ``port`` (0: any free port);
    ``http``: a self-hosted exchange at ``url``; ``redis``: a Redis server at
    ``host``:``port``; ``hosted``: Academy's public exchange (Globus login).

    Beyond loopback an exchange must authenticate its clients: the embedded one makes a
    bearer token and a self-signed TLS certificate by itself; ``http`` takes
    ``token_file`` (a 0600 file holding the bearer token) and ``ca_file`` (the PEM
    certificate to trust for ``https``); ``redis`` takes ``password_file``, ``tls`` and
    ``ca_file``. ``insecure: true`` accepts an unauthenticated exchange (one warning).
    """

    # Each kind is a class in chiltepin.agents.exchange: it says which keys it takes and
    # checks their values (imported when a value is checked, not with this module).
    kind: str = Field(default="embedded", json_schema_extra=_kind_enum)
    url: _UrlText | None = None
    host: _HostText = "127.0.0.1"
    port: _PortNumber | None = None
    token_file: str | None = Field(default=None, min_length=1)
    password_file: str | None = Field(default=None, min_length=1)
    ca_file: str | None = Field(default=None, min_length=1)
    tls: bool = False
    insecure: bool = False
    interface: InterfaceName | None = Field(
        default=None,
        description="embedded: listen on (and advertise) this interface's address, the "
        "one agents on other hosts reach (e.g. ib0); instead of host",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExchangeSettings:
        from chiltepin.agents.exchange import KINDS

        kind = KINDS.get(self.kind)
        if kind is None:
            names = list(KINDS)
            expected = ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
            raise _KeyProblem(
                "kind",
                f"must be one of {expected}, got {self.kind!r}",
                did_you_mean(self.kind, names),
            )
        allowed = kind.keys | {"kind"}
        for key in sorted(self.model_fields_set - allowed):
            raise _KeyProblem(
                key,
                f"'{key}' is not used by exchange kind '{self.kind}'",
                f"kind '{self.kind}' takes {', '.join(sorted(kind.keys))}",
            )
        kind.check(self)
        return self


class EndpointSettings(_Strict):
    """How ``chiltepin endpoint configure`` sets up this site's Globus Compute endpoints
    (a site profile's ``endpoint:`` block).

    ``multi_user``: one privileged endpoint that maps Globus identities to local users
    (needs root, an identity mapping and a contact email); otherwise each endpoint runs
    tasks as the user who starts it. ``display_name`` may use ``{site}``, ``{executor}``
    and ``{name}``.
    """

    multi_user: bool = False
    display_name: str | None = Field(default=None, min_length=1, max_length=128)
    contact_email: str | None = Field(default=None, pattern=EMAIL_RE.pattern)


class Resource(_Strict):
    """A Parsl executor on this machine or on a batch scheduler."""

    provider: Provider = LocalhostScheduler.name
    mpi: bool = False
    max_mpi_apps: Workers = 1
    mpi_launcher: Literal["srun", "mpiexec", "aprun"] | None = None
    cores_per_node: Cores | None = None
    nodes_per_block: Nodes = 1
    init_blocks: BlockCount = 0
    min_blocks: BlockCount = 0
    max_blocks: Blocks = 1
    exclusive: bool = True
    partition: SchedulerToken | None = None
    queue: SchedulerToken | None = Field(default=None, description="Slurm QOS or PBS queue")
    account: SchedulerToken | None = None
    walltime: Walltime = Field(default="00:10:00", description="HH:MM:SS")  # as chiltepin 0.1.x
    environment: list[str] = Field(
        default_factory=list, description="Shell lines run before workers start"
    )
    cores_per_worker: float = Field(default=1.0, ge=0.01, le=100_000)
    max_workers_per_node: Workers | None = None
    constraint: SchedulerToken | None = None
    gres: SchedulerToken | None = None
    mem_per_node: Gigabytes | None = Field(default=None, description="GB")
    gpus_per_node: Gpus | None = None
    scheduler_options: str | None = None
    retries: Retries = 0
    heartbeat_period: Seconds = Field(
        default=10, description="Seconds between a worker pool's heartbeats"
    )
    heartbeat_threshold: Seconds = Field(
        default=30,
        description="Seconds without a heartbeat after which a worker pool (or, seen from "
        "the pool, the workflow) counts as lost: its tasks fail (or retry) and its job is "
        "cancelled and replaced",
    )
    encrypted: bool = Field(
        default=True,
        description="Encrypt the interchange's traffic with workers (Parsl's CurveZMQ); "
        "false turns it off",
    )
    address: NetworkAddress | None = Field(
        default=None,
        description="The address of the submitting host that workers connect to; the "
        "interchange listens only there",
    )
    interface: InterfaceName | None = Field(
        default=None,
        description="The network interface (e.g. ib0) whose address workers connect to; "
        "it must exist on the submitting host",
    )
    worker_port_range: list[PortNumber] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[low, high]: the ports the interchange may listen on for workers",
    )
    preflight: bool = Field(
        default=True,
        description="Check partition, limits, account and QOS against the live scheduler "
        "when a workflow starts (false: skip)",
    )
    monitoring: bool = Field(
        default=False,
        description="Record the workflow's tasks in Parsl's monitoring database "
        "(RUN_DIR/monitoring.db; view it with: chiltepin monitor RUN_DIR); one executor "
        "asking turns it on for the whole workflow",
    )
    container: ContainerSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any, info: ValidationInfo) -> Any:
        """Load what chiltepin 0.1.x loads: an empty account, partition or queue means
        none, and a key that means nothing for the provider or kind (``partition`` on
        localhost, ``max_mpi_apps`` without ``mpi``, ...) is dropped with a warning.
        Unknown keys stay errors.

        The warnings go to ``info.context["ignored"]`` (a list of :class:`Ignored`) when
        the caller passes one, so it can name file and line; else they are issued here.
        """
        if not isinstance(data, Mapping):
            return data
        data = drop_blank(data)
        provider = data.get("provider", LocalhostScheduler.name)
        mpi = data.get("mpi", False)
        if provider not in SCHEDULERS or not isinstance(mpi, bool):
            return data  # reported as errors by the field checks
        sink = (info.context or {}).get("ignored")
        for key in [k for k in data if k in cls.model_fields]:
            problem = inapplicable(key, provider, mpi)
            if problem:
                del data[key]
                ignored = Ignored(key, *problem)
                if sink is None:
                    warnings.warn(ignored.warning(), stacklevel=2)
                else:
                    sink.append(ignored)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Resource:
        if self.min_blocks > self.max_blocks:
            raise _KeyProblem("min_blocks", "min_blocks is larger than max_blocks", None)
        if self.init_blocks > self.max_blocks:
            raise _KeyProblem("init_blocks", "init_blocks is larger than max_blocks", None)
        if self.heartbeat_threshold <= self.heartbeat_period:
            raise _KeyProblem(
                "heartbeat_threshold",
                "heartbeat_threshold must be larger than heartbeat_period",
                "a few periods, e.g. heartbeat_period: 10, heartbeat_threshold: 30",
            )
        if self.address is not None and self.interface is not None:
            raise _KeyProblem(
                "interface",
                "give 'address' or 'interface', not both",
                "an interface stands for its address on the submitting host",
            )
        if self.worker_port_range is not None:
            low, high = self.worker_port_range
            if low > high:
                raise _KeyProblem(
                    "worker_port_range", f"[{low}, {high}] is empty", "write [low, high]"
                )
        return self

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler class instance for ``provider``."""
        return get_scheduler(self.provider)

    @property
    def launcher_for_mpi(self) -> str:
        """The MPI launcher: explicit, else the scheduler's default (srun on Slurm)."""
        return self.scheduler.mpi_launcher(self)


@dataclass(frozen=True)
class Ignored:
    """A resource key that was dropped because it means nothing there."""

    key: str
    message: str
    hint: str

    def warning(self, **where: Any) -> ConfigWarning:
        """The warning naming this key (``where``: source, line, entry, entry_kind)."""
        return ConfigWarning(f"{self.message}; ignored", key=self.key, hint=self.hint, **where)


#: The ``user_endpoint_config`` keys chiltepin 0.1.x's endpoint template reads, with the
#: defaults 0.1.x sends when a resource leaves them out (``mpi_launcher``: the provider's).
V01_ENDPOINT_DEFAULTS: dict[str, Any] = {
    "mpi": False,
    "max_mpi_apps": 1,
    "mpi_launcher": None,
    "provider": LocalhostScheduler.name,
    "cores_per_node": 1,
    "nodes_per_block": 1,
    "init_blocks": 0,
    "min_blocks": 0,
    "max_blocks": 1,
    "exclusive": True,
    "partition": "",
    "queue": "",
    "account": "",
    "walltime": "00:10:00",
    "worker_init": "",
}
#: The option listing which keys of a user endpoint config are filled-in defaults, so
#: endpoints chiltepin generates keep their site profile's values for them.
DEFAULTED_OPTION = "chiltepin_defaults"


class RemoteResource(BaseModel):
    """A Globus Compute endpoint; every key but ``endpoint`` is its user endpoint config.

    The options endpoints made by ``chiltepin endpoint configure`` take are checked here
    with the same types as a resource's (and as those endpoints' user_config_schema.json);
    other keys pass through to the endpoint as they are.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    endpoint: str = Field(min_length=1, description="Endpoint UUID or local endpoint name")
    executor: str | None = Field(
        default=None, pattern=names.NAME_PATTERN, max_length=names.NAME_MAX_LENGTH
    )
    partition: SchedulerTokenOrBlank | None = None
    account: SchedulerTokenOrBlank | None = None
    queue: SchedulerTokenOrBlank | None = None
    walltime: Walltime | None = None
    nodes_per_block: Nodes | None = None
    max_blocks: Blocks | None = None
    max_workers_per_node: Workers | None = None
    worker_init: str | None = None

    @property
    def user_endpoint_config(self) -> dict[str, Any]:
        """What is sent to the endpoint: the resource's keys, ``environment`` as
        ``worker_init`` (joined lines), and every key chiltepin 0.1.x's endpoint template
        reads, defaulted as 0.1.x does (so endpoints 0.1.x configured work), plus
        :data:`DEFAULTED_OPTION` naming the defaulted keys (ignored by 0.1.x)."""
        given = self.model_dump(exclude_unset=True)
        given.pop("endpoint", None)
        environment = given.pop("environment", None)
        if environment is not None:
            lines = [environment] if isinstance(environment, str) else list(environment)
            if "worker_init" in given:
                lines.append(given["worker_init"])
            given["worker_init"] = "\n".join(str(line) for line in lines)
        provider = given.get("provider", V01_ENDPOINT_DEFAULTS["provider"])
        defaults = dict(V01_ENDPOINT_DEFAULTS)
        scheduler = SCHEDULERS.get(provider) if isinstance(provider, str) else None
        defaults["mpi_launcher"] = (scheduler or Scheduler).default_mpi_launcher
        filled = [key for key in defaults if key not in given]
        return {**defaults, **given, DEFAULTED_OPTION: filled}


AnyResource = Resource | RemoteResource


class _KeyProblem(ValueError):
    """Raised inside validators to point at one key."""

    def __init__(self, key: str, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.hint = hint


#: Where the published JSON Schemas live (their ``$id`` is this plus the repository path).
SCHEMA_URL = "https://raw.githubusercontent.com/NOAA-GSL/chiltepin/main/"


def resource_json_schema() -> dict[str, Any]:
    """JSON Schema of a resource configuration file (name -> resource), published as
    schemas/resources.schema.json."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(dict[str, AnyResource]).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_URL + "schemas/resources.schema.json"
    schema["title"] = "chiltepin executor configuration"
    schema["propertyNames"] = names.json_schema()
    return schema
