"""The resource schema: one place that says what a resource may contain.

A resource configuration maps resource names (which become Parsl executor labels) to
either a :class:`Resource` (a high-throughput or MPI executor on a local or batch
provider) or a :class:`RemoteResource` (a Globus Compute endpoint).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from chiltepin import names
from chiltepin.containers import RUNTIMES
from chiltepin.errors import did_you_mean
from chiltepin.names import NAME_RE  # noqa: F401 - the one name rule, re-exported

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
# Values that end up in #SBATCH/#PBS lines or on a command line: no spaces, quotes or '$'.
SchedulerToken = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.,:=+&|()\[\]*!%/@-]+$")]

WALLTIME_RE = re.compile(r"^\d+:[0-5]\d:[0-5]\d$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")

Provider = Literal["localhost", "slurm", "pbspro"]
#: A container runtime's name: one of chiltepin.containers.RUNTIMES (imports no Parsl).
RuntimeName = Literal[tuple(RUNTIMES)]  # type: ignore[misc]


def _check_walltime(value: str) -> str:
    if not WALLTIME_RE.fullmatch(value):  # fullmatch: '$' alone lets "01:00:00\n" through
        raise ValueError(f"walltime must be HH:MM:SS, got {value!r} (e.g. '01:30:00')")
    return value


Walltime = Annotated[str, AfterValidator(_check_walltime)]

# Keys that only some providers understand; anything else is provider-neutral.
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "partition": ("slurm",),
    "exclusive": ("slurm",),
    "constraint": ("slurm",),
    "gres": ("slurm",),
    "mem_per_node": ("slurm",),
    "gpus_per_node": ("slurm", "pbspro"),
    "queue": ("slurm", "pbspro"),
    "account": ("slurm", "pbspro"),
    "walltime": ("slurm", "pbspro"),
    "scheduler_options": ("slurm", "pbspro"),
}
MPI_ONLY_KEYS = ("max_mpi_apps", "mpi_launcher")
HTEX_ONLY_KEYS = ("cores_per_worker", "max_workers_per_node")


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
    AgentSystem, bound to ``host`` (default loopback) on ``port`` (0: any free port);
    ``http``: a self-hosted exchange at ``url``; ``redis``: a Redis server at
    ``host``:``port``; ``hosted``: Academy's public exchange (Globus login).
    """

    # Each kind is a class in chiltepin.agents.exchange: it says which keys it takes and
    # checks their values (imported when a value is checked, not with this module).
    kind: str = Field(default="embedded", json_schema_extra=_kind_enum)
    url: _UrlText | None = None
    host: _HostText = "127.0.0.1"
    port: _PortNumber | None = None

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

    provider: Provider = "localhost"
    mpi: bool = False
    max_mpi_apps: PositiveInt = 1
    mpi_launcher: Literal["srun", "mpiexec", "aprun"] | None = None
    cores_per_node: PositiveInt | None = None
    nodes_per_block: PositiveInt = 1
    init_blocks: NonNegativeInt = 0
    min_blocks: NonNegativeInt = 0
    max_blocks: PositiveInt = 1
    exclusive: bool = True
    partition: SchedulerToken | None = None
    queue: SchedulerToken | None = Field(default=None, description="Slurm QOS or PBS queue")
    account: SchedulerToken | None = None
    walltime: Walltime = Field(default="01:00:00", description="HH:MM:SS")
    environment: list[str] = Field(
        default_factory=list, description="Shell lines run before workers start"
    )
    cores_per_worker: float = Field(default=1.0, gt=0)
    max_workers_per_node: PositiveInt | None = None
    constraint: SchedulerToken | None = None
    gres: SchedulerToken | None = None
    mem_per_node: PositiveInt | None = Field(default=None, description="GB")
    gpus_per_node: PositiveInt | None = None
    scheduler_options: str | None = None
    retries: NonNegativeInt = 0
    container: ContainerSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Resource:
        given = self.model_fields_set
        for key, providers in PROVIDER_KEYS.items():
            if key in given and self.provider not in providers:
                raise _KeyProblem(
                    key,
                    f"'{key}' is not used by provider '{self.provider}'",
                    f"it applies to provider {' or '.join(providers)}",
                )
        if not self.mpi:
            for key in MPI_ONLY_KEYS:
                if key in given:
                    raise _KeyProblem(
                        key, f"'{key}' applies only to MPI resources", "add 'mpi: true'"
                    )
        else:
            for key in HTEX_ONLY_KEYS:
                if key in given:
                    raise _KeyProblem(
                        key,
                        f"'{key}' is not used by MPI resources",
                        "use 'max_mpi_apps' to set how many MPI tasks run at once",
                    )
        if self.min_blocks > self.max_blocks:
            raise _KeyProblem("min_blocks", "min_blocks is larger than max_blocks", None)
        if self.init_blocks > self.max_blocks:
            raise _KeyProblem("init_blocks", "init_blocks is larger than max_blocks", None)
        return self

    @property
    def launcher_for_mpi(self) -> str:
        """The MPI launcher: explicit, else srun on Slurm and mpiexec elsewhere."""
        if self.mpi_launcher:
            return self.mpi_launcher
        return "srun" if self.provider == "slurm" else "mpiexec"


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
    partition: SchedulerToken | None = None
    account: SchedulerToken | None = None
    queue: SchedulerToken | None = None
    walltime: Walltime | None = None
    nodes_per_block: PositiveInt | None = None
    max_blocks: PositiveInt | None = None
    max_workers_per_node: PositiveInt | None = None
    worker_init: str | None = None

    @property
    def user_endpoint_config(self) -> dict[str, Any]:
        options = self.model_dump(exclude_unset=True)
        options.pop("endpoint", None)
        return options


AnyResource = Resource | RemoteResource


class _KeyProblem(ValueError):
    """Raised inside validators to point at one key."""

    def __init__(self, key: str, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.hint = hint


def resource_json_schema() -> dict[str, Any]:
    """JSON Schema of a resource configuration file (name -> resource)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(dict[str, AnyResource]).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "chiltepin resource configuration"
    schema["propertyNames"] = names.json_schema()
    return schema
