"""Build Parsl objects from resource settings: chiltepin 0.1.x's ``chiltepin.configure`` API.

Every function validates its input with the same schema as :class:`chiltepin.Workflow`
(unknown keys, wrong types and misplaced keys are a :class:`~chiltepin.errors.ConfigError`,
which is a ``ValueError``) and builds the object with the same builders, so a resource
means the same thing whichever way it is loaded::

    from chiltepin import configure
    import parsl

    config = configure.load(configure.parse_file("resources.yaml"), include=["compute"])
    with parsl.load(config):
        ...

``load`` always adds the built-in ``local`` resource (or the configuration's own
``local``) as the first executor, as 0.1.x does. Parsl is imported only when a function
that builds Parsl objects is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chiltepin.errors import ConfigError

if TYPE_CHECKING:
    from globus_compute_sdk import Client
    from parsl.config import Config
    from parsl.executors import GlobusComputeExecutor, HighThroughputExecutor, MPIExecutor
    from parsl.executors.base import ParslExecutor
    from parsl.providers.base import ExecutionProvider

    from chiltepin.config.schema import AnyResource

__all__ = [
    "create_executor",
    "create_globus_compute_executor",
    "create_htex_executor",
    "create_mpi_executor",
    "create_provider",
    "load",
    "parse_file",
]

_SOURCE = "<config dict>"
Kind = Literal["any", "provider", "htex", "mpi", "endpoint"]


def parse_file(filename: str | Path) -> dict[str, Any]:
    """Read a YAML resource configuration file into a dict (an empty file gives ``{}``).

    Raises ConfigError (naming the file and line) for a missing file, a YAML syntax
    error, or a document that is not a mapping of resource names to settings.
    """
    from chiltepin.config.loader import read_yaml, require_mapping

    data, _ = read_yaml(filename)
    if data is None:
        return {}
    return dict(require_mapping(data, str(filename), "resource configuration"))


def load(
    config: Mapping[str, Any] | str | Path | None,
    include: Iterable[str] | None = None,
    client: Client | None = None,
    run_dir: str | Path | None = None,
) -> Config:
    """A Parsl ``Config`` with one executor per resource of ``config``.

    ``config`` is a mapping (e.g. from :func:`parse_file`) or a YAML path. ``include``
    selects resources by name (None: all); ``local`` is always included, first.
    ``client`` is the Globus Compute client for endpoint resources (default: one from
    the stored login). ``run_dir`` defaults to Parsl's ``runinfo``.
    """
    from chiltepin.config.parsl_config import build_parsl_config
    from chiltepin.config.resources import LOCAL_NAME, load_resources

    if include is not None:
        names = [include] if isinstance(include, str) else list(include)
        include = [LOCAL_NAME, *(n for n in names if n != LOCAL_NAME)]
    resources = load_resources(config, include=include)
    return build_parsl_config(
        resources, run_dir=str(run_dir) if run_dir is not None else "runinfo", client=client
    )


def create_provider(config: Mapping[str, Any]) -> ExecutionProvider:
    """The Parsl provider (with its launcher) for one resource's settings."""
    from chiltepin.config.providers import build_provider

    return build_provider(_resource("provider", config, "provider"))  # type: ignore[arg-type]


def create_htex_executor(name: str, config: Mapping[str, Any]) -> HighThroughputExecutor:
    """A ``HighThroughputExecutor`` labelled ``name`` (the settings must not set ``mpi``)."""
    return _build(name, config, "htex")


def create_mpi_executor(name: str, config: Mapping[str, Any]) -> MPIExecutor:
    """An ``MPIExecutor`` labelled ``name``; ``mpi: true`` is implied."""
    return _build(name, config, "mpi")


def create_globus_compute_executor(
    name: str, config: Mapping[str, Any], client: Client | None = None
) -> GlobusComputeExecutor:
    """A ``GlobusComputeExecutor`` for the endpoint named by ``config["endpoint"]``.

    The other keys become the endpoint's user configuration. Without ``client``, the
    stored Globus login is used; when there is none and no terminal to log in on, this
    raises ConfigError instead of prompting.
    """
    return _build(name, config, "endpoint", client)


def create_executor(
    name: str, config: Mapping[str, Any], client: Client | None = None
) -> ParslExecutor:
    """The executor a resource describes: Globus Compute if it names an ``endpoint``,
    else MPI if ``mpi`` is true, else high-throughput."""
    return _build(name, config, "any", client)


def _build(name: str, config: Mapping[str, Any], kind: Kind, client: Any = None) -> Any:
    from chiltepin.config.executors import build_executor

    return build_executor(name, _resource(name, config, kind), client=client)


_OTHER = {
    "htex": "create_mpi_executor or create_executor",
    "mpi": "create_htex_executor or create_executor",
}


def _resource(name: str, config: Mapping[str, Any], kind: Kind) -> AnyResource:
    """Validate one resource's settings as the kind the calling function builds."""
    from chiltepin.config.loader import Origin
    from chiltepin.config.resources import check_name, parse_resource

    if kind != "provider":
        check_name(name, _SOURCE, {})
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"settings must be a mapping, got {type(config).__name__}",
            source=_SOURCE,
            entry=name,
            entry_kind="executor",
        )
    settings = dict(config)
    remote = "endpoint" in settings
    if kind == "endpoint" and not remote:
        raise ConfigError(
            "required key is missing",
            source=_SOURCE,
            entry=name,
            entry_kind="executor",
            key="endpoint",
            hint="give the endpoint's UUID or local name",
        )
    if kind in ("provider", "htex", "mpi") and remote:
        raise ConfigError(
            "a Globus Compute endpoint executor has no local "
            + ("provider" if kind == "provider" else "executor"),
            source=_SOURCE,
            entry=name,
            entry_kind="executor",
            key="endpoint",
            hint="use create_globus_compute_executor or create_executor",
        )
    if kind in ("htex", "mpi"):
        want = kind == "mpi"
        given = settings.setdefault("mpi", want) if want else settings.get("mpi", False)
        if isinstance(given, bool) and given is not want:
            raise ConfigError(
                f"'mpi: {str(given).lower()}' does not fit create_{kind}_executor",
                source=_SOURCE,
                entry=name,
                entry_kind="executor",
                key="mpi",
                hint=f"use {_OTHER[kind]}",
            )
    return parse_resource(settings, origin=Origin(_SOURCE), name=name)
