"""The resource schema: one place that says what a resource may contain.

A resource configuration maps resource names (which become Parsl executor labels) to
either a :class:`Resource` (a high-throughput or MPI executor on a local or batch
provider) or a :class:`RemoteResource` (a Globus Compute endpoint).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
# Values that end up in #SBATCH/#PBS lines or on a command line: no spaces, quotes or '$'.
SchedulerToken = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.,:=+&|()\[\]*!%/@-]+$")]

WALLTIME_RE = re.compile(r"^\d+:[0-5]\d:[0-5]\d$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

Provider = Literal["localhost", "slurm", "pbspro"]


def _check_walltime(value: str) -> str:
    if not WALLTIME_RE.match(value):
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

    runtime: Literal["apptainer", "singularity", "podman", "docker", "charliecloud"]
    image: str = Field(min_length=1)
    cache_dir: str | None = None
    binds: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list, description="Variables passed through")
    gpus: bool = False


class ExchangeSettings(_Strict):
    """Where agents exchange messages (a site profile's ``exchange:`` block).

    ``embedded``: the toolkit runs Academy's HTTP exchange for the life of an
    AgentSystem, bound to ``host`` (default loopback) on ``port`` (0: any free port);
    ``http``: a self-hosted exchange at ``url``; ``redis``: a Redis server at
    ``host``:``port``; ``hosted``: Academy's public exchange (Globus login).
    """

    kind: Literal["embedded", "http", "redis", "hosted"] = "embedded"
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9_.:-]+$")
    port: int | None = Field(default=None, ge=0, le=65535)

    @model_validator(mode="after")
    def _consistent(self) -> ExchangeSettings:
        given = self.model_fields_set
        allowed = {
            "embedded": {"host", "port"},
            "http": {"url"},
            "redis": {"host", "port"},
            "hosted": {"url"},
        }[self.kind] | {"kind"}
        for key in sorted(given - allowed):
            raise _KeyProblem(
                key,
                f"'{key}' is not used by exchange kind '{self.kind}'",
                f"kind '{self.kind}' takes {', '.join(sorted(allowed - {'kind'}))}",
            )
        if self.kind == "http" and not self.url:
            raise _KeyProblem("url", "exchange kind 'http' needs a url", "e.g. http://host:8700")
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
    contact_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")


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
    """A Globus Compute endpoint; every key but ``endpoint`` is its user endpoint config."""

    model_config = ConfigDict(extra="allow", frozen=True)

    endpoint: str = Field(min_length=1, description="Endpoint UUID or local endpoint name")

    @property
    def user_endpoint_config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


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
    schema["title"] = "chiltepin resource configuration"
    schema["propertyNames"] = {"pattern": NAME_RE.pattern}
    return schema
