"""Load a resource configuration (YAML file or dict) into validated resources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chiltepin.config.loader import LineMap, Origin, read_yaml, require_mapping, validate_model
from chiltepin.config.schema import AnyResource, RemoteResource, Resource
from chiltepin.errors import ConfigError, did_you_mean
from chiltepin.names import check_name as _check_name

#: The built-in resource: this machine, one worker. A configuration may redefine it.
LOCAL_NAME = "local"
BUILTIN_LOCAL: dict[str, Any] = {
    "provider": "localhost",
    "init_blocks": 1,
    "max_workers_per_node": 1,
}

#: The built-in ``local`` kept although ``include`` omits it: it starts no worker until a
#: task asks for it (as chiltepin 0.1.x's built-in local).
IMPLICIT_LOCAL: dict[str, Any] = {**BUILTIN_LOCAL, "init_blocks": 0}

ConfigSource = None | str | Path | Mapping[str, Any]


def load_resources(
    config: ConfigSource = None,
    *,
    include: Iterable[str] | None = None,
    source: str | None = None,
) -> dict[str, AnyResource]:
    """Validate ``config`` and return the selected resources by name.

    ``config`` is a YAML path, a mapping, or None (only the built-in ``local``).
    ``include`` selects resources; None selects all. ``local`` is always among them (see
    :func:`select`). Raises ConfigError.
    """
    lines: LineMap = {}
    if config is None:
        data: Any = {}
        source = source or "<built-in>"
    elif isinstance(config, (str, Path)):
        source = str(config)
        data, lines = read_yaml(config)
        data = require_mapping(data, source, "resource configuration")
    elif isinstance(config, Mapping):
        data = config
        source = source or "<config dict>"
    else:
        raise ConfigError(
            f"config must be a YAML path, a mapping or None, got {type(config).__name__}"
        )
    resources: dict[str, AnyResource] = {LOCAL_NAME: Resource.model_validate(BUILTIN_LOCAL)}
    for name, settings in data.items():
        resources[check_name(name, source, lines)] = parse_resource(
            settings, origin=Origin.of_file(source, lines), name=str(name)
        )
    return select(resources, include, source)


def parse_resource(
    settings: Any,
    *,
    origin: Origin,
    name: str,
    path: tuple[str, ...] | None = None,
    entry_kind: str = "executor",
) -> AnyResource:
    """Validate one resource's settings (a Globus Compute endpoint if it names one)."""
    model = RemoteResource if isinstance(settings, Mapping) and "endpoint" in settings else Resource
    return validate_model(
        model,
        settings,
        origin=origin,
        path=(name,) if path is None else path,
        entry=name,
        entry_kind=entry_kind,
    )


def check_name(name: Any, source: str, lines: LineMap) -> str:
    return _check_name("executor", name, source=source, line=lines.get((str(name),)))


def select(
    resources: dict[str, AnyResource], include: Iterable[str] | None, source: str
) -> dict[str, AnyResource]:
    """The resources ``include`` names, in its order (all for None).

    ``local`` stays available when ``include`` omits it, as in chiltepin 0.1.x: it comes
    last, and the built-in one then starts no worker until a task asks for it. (Which
    resources were *selected* is :func:`selected_names`.)
    """
    if include is None:
        return resources
    if isinstance(include, str):
        include = [include]
    chosen: dict[str, AnyResource] = {}
    for name in include:
        if name not in resources:
            hint = did_you_mean(name, resources) or f"defined: {', '.join(sorted(resources))}"
            raise ConfigError(
                f"included executor '{name}' is not defined", source=source, entry=name, hint=hint
            )
        chosen[name] = resources[name]
    if not chosen:
        raise ConfigError(
            "include selects no executors",
            source=source,
            hint="name at least one executor, or pass include=None for all",
        )
    if LOCAL_NAME not in chosen and LOCAL_NAME in resources:
        local = resources[LOCAL_NAME]
        if local == Resource.model_validate(BUILTIN_LOCAL):
            local = Resource.model_validate(IMPLICIT_LOCAL)
        chosen[LOCAL_NAME] = local
    return chosen


def selected_names(
    resources: Mapping[str, AnyResource], include: Iterable[str] | None
) -> list[str]:
    """The names of ``resources`` that ``include`` selected: all but a ``local`` that
    :func:`select` kept without being asked."""
    if include is None:
        return list(resources)
    wanted = [include] if isinstance(include, str) else list(include)
    return [name for name in resources if name in wanted]
