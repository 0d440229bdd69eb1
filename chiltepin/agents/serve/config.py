"""The service file of ``chiltepin agent serve``: one agent, its workflow, its exchange.

```yaml
name: forecaster                      # the service name: discovery, state file, unit name
agent: "mypkg.models:WeatherModel"     # a @chiltepin_agent class
args: [20.0]
kwargs: {}
site: local                            # or agent_workflow_config: (mapping or YAML path)
agent_workflow_include: [compute]
agent_workflow_run_dir: runs/forecaster
exchange: {kind: redis, host: 127.0.0.1, port: 6379}   # default: the site's exchange
python_path: [.]                       # where the agent's module is (for serve and workers)
environment: {OMP_NUM_THREADS: "1"}    # set in the service's process
reconnect: 120                         # seconds to retry a lost exchange (0: exit at once)
```

Relative paths are relative to the file. Everything is checked by :func:`load_service`
before anything starts; problems are ConfigErrors naming the file, line and key.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import ConfigError, did_you_mean, shown
from chiltepin.names import NAME_HINT, NAME_RE, is_valid_name

#: Service names follow the one name rule (chiltepin.names).
SERVICE_NAME_RE = NAME_RE
AGENT_REF_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ServiceConfig(BaseModel):
    """One agent run as a long-lived service (``chiltepin agent serve FILE``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(description="Service name: used for discovery, the state file, the unit")
    agent: str = Field(description="The @chiltepin_agent class, as 'package.module:ClassName'")
    description: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    site: str | None = Field(default=None, description="Site profile of the agent's workflow")
    agent_workflow_config: dict[str, Any] | str | None = None
    agent_workflow_include: list[str] | None = None
    agent_workflow_run_dir: str | None = None
    exchange: ExchangeSettings | None = Field(
        default=None, description="Default: the site's exchange, else embedded"
    )
    python_path: list[str] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    reconnect: float = Field(
        default=120,
        ge=0,
        le=86400,
        description="Seconds the service retries a lost exchange before it exits",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_valid_name(value):
            raise ValueError(f"invalid service name {shown(value)}: {NAME_HINT}")
        return value

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str) -> str:
        if not AGENT_REF_RE.fullmatch(value):
            raise ValueError(
                f"agent must be 'package.module:ClassName', got {value!r} "
                "(e.g. 'mypkg.models:WeatherModel')"
            )
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_NAME_RE.fullmatch(key):
                raise ValueError(f"invalid environment variable name {key!r}")
        return value


@dataclasses.dataclass(frozen=True)
class AgentService:
    """A checked service file: the class is imported and the workflow spec is valid."""

    config: ServiceConfig
    path: Path  # absolute
    agent_cls: type
    workflow_spec: Any  # chiltepin.agents.spec.AgentWorkflowSpec
    exchange: ExchangeSettings

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def agent_class_name(self) -> str:
        """Fully qualified class name, as Academy's discovery knows it."""
        return f"{self.agent_cls.__module__}.{self.agent_cls.__qualname__}"

    @property
    def python_path(self) -> list[str]:
        return [str(self.directory / p) for p in self.config.python_path]

    def apply_environment(self) -> None:
        """Set ``environment`` and ``python_path`` in this process (its children inherit
        them: the agent's Parsl workers unpickle its class by reference)."""
        os.environ.update(self.config.environment)
        add_python_path(self.python_path)


def add_python_path(paths: list[str]) -> None:
    """Put ``paths`` first on sys.path and on PYTHONPATH (for child processes)."""
    if not paths:
        return
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *(p for p in current if p not in paths)])


def load_service(path: str | Path) -> AgentService:
    """Read and check a service file (imports the agent class; raises ConfigError)."""
    from chiltepin.config.loader import Origin, read_yaml, require_mapping, validate_model

    path = Path(path).absolute()
    data, lines = read_yaml(path)
    source = str(path)
    data = require_mapping(data, source, "agent service file")
    origin = Origin.of_file(source, lines)
    # A misspelled key first: pydantic would report the key it misses instead.
    for key in data:
        if key not in ServiceConfig.model_fields:
            fields = list(ServiceConfig.model_fields)
            raise ConfigError(
                "unknown key",
                source=source,
                line=origin.locate((str(key),))[1],
                key=str(key),
                hint=did_you_mean(str(key), fields) or f"valid keys: {', '.join(fields)}",
            )
    config: ServiceConfig = validate_model(ServiceConfig, data, origin=origin)

    def problem(message: str, key: str, hint: str | None = None) -> ConfigError:
        return ConfigError(
            message, source=source, line=origin.locate((key,))[1], key=key, hint=hint
        )

    directory = path.parent
    add_python_path([str(directory / p) for p in config.python_path])
    agent_cls = _import_agent(config.agent, problem)
    _check_agent(agent_cls, config, problem)
    spec, resolved = _workflow_spec(agent_cls, config, directory, origin, problem)
    exchange = _exchange(config, problem, resolved.exchange if resolved is not None else None)
    return AgentService(
        config=config, path=path, agent_cls=agent_cls, workflow_spec=spec, exchange=exchange
    )


def _import_agent(ref: str, problem: Any) -> type:
    module_name, _, attr_path = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise problem(
            f"cannot import module '{module_name}': {exc}",
            "agent",
            "install the package, or list its directory in python_path (relative to this file)",
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise problem(
            f"importing module '{module_name}' failed: {type(exc).__name__}: {exc}", "agent"
        ) from None
    value: Any = module
    for part in attr_path.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            raise problem(
                f"module '{module_name}' has no '{attr_path}'",
                "agent",
                did_you_mean(part, names),
            )
        value = getattr(value, part)
    return value


def _check_agent(agent_cls: Any, config: ServiceConfig, problem: Any) -> None:
    from chiltepin.agents.manager import check_init_args, check_launchable

    try:
        check_launchable(agent_cls)
    except TypeError as exc:
        raise problem(f"'{config.agent}' cannot be served: {exc}", "agent") from None
    try:
        check_init_args(agent_cls, tuple(config.args), dict(config.kwargs))
    except TypeError as exc:
        key = "kwargs" if config.kwargs and not config.args else "args"
        raise problem(str(exc), key) from None


def _workflow_spec(
    agent_cls: type, config: ServiceConfig, directory: Path, origin: Any, problem: Any
) -> tuple[Any, Any]:
    """The agent's workflow spec, and its resolved resources (None when its config file is
    not on this machine)."""
    from chiltepin.agents._definition import definition_of
    from chiltepin.agents.spec import AgentWorkflowSpec
    from chiltepin.config.source import config_or_site

    try:
        config_or_site(
            config.agent_workflow_config,
            config.site,
            labels=("site", "agent_workflow_config"),
            hint="a site profile already defines the agent's resources",
        )
    except ConfigError as exc:
        raise problem(exc.reason, "agent_workflow_config", exc.hint) from None
    definition = definition_of(agent_cls)
    workflow_config: Any = config.agent_workflow_config
    if isinstance(workflow_config, str):
        workflow_config = str(directory / workflow_config)
        # The service runs on this machine: its workflow's file must be here too.
        if not Path(workflow_config).is_file():
            raise problem(
                f"agent_workflow_config file {workflow_config} "
                + ("is not a file" if Path(workflow_config).exists() else "does not exist"),
                "agent_workflow_config",
                "relative paths are relative to this service file",
            )
    run_dir = config.agent_workflow_run_dir
    if run_dir is not None:
        run_dir = str(directory / run_dir)
    try:
        spec = AgentWorkflowSpec.for_launch(
            config.name,
            defaults=definition.workflow,
            config=workflow_config,
            site=config.site,
            include=config.agent_workflow_include,
            run_dir=run_dir,
        )
        resolved = spec.check()
    except ConfigError as exc:
        raise _relocate(exc, config, origin) from None
    return spec, resolved


#: Messages of chiltepin.config.resources.select: the include list is what is wrong.
_INCLUDE_PROBLEMS = ("included executor", "include selects")


def _relocate(exc: ConfigError, config: ServiceConfig, origin: Any) -> ConfigError:
    """Point a problem found while checking the agent's workflow at the key of this file
    that caused it: an inline ``agent_workflow_config`` entry, ``agent_workflow_include``
    or ``site``. Problems inside another file (a profile, a config file) name that file."""
    inline = config.agent_workflow_config
    reason = exc.reason
    if reason.startswith(_INCLUDE_PROBLEMS):
        if config.site is not None:
            reason += f" in site '{config.site}'"
        elif isinstance(inline, str):
            reason += f" in {exc.source}"
        if config.agent_workflow_include is not None:
            where: tuple[str, ...] = ("agent_workflow_include",)
        else:  # the class's default include
            where = ("agent",)
            reason += f" (the default agent_workflow_include of '{config.agent}')"
    elif exc.source is None and config.site is not None:  # the site itself: unknown, bad name
        where = ("site",)
    elif exc.source in ("<config dict>", "<built-in>") and isinstance(inline, dict):
        keys = tuple(exc.key.split(".")) if exc.key else ()
        where = ("agent_workflow_config", *((exc.entry,) if exc.entry else ()), *keys)
    else:
        return exc
    source, line = origin.locate(where)
    key = ".".join(where)
    return ConfigError(reason, source=source, line=line, key=key, hint=exc.hint)


def _exchange(
    config: ServiceConfig, problem: Any, site_exchange: ExchangeSettings | None
) -> ExchangeSettings:
    exchange = config.exchange or site_exchange or ExchangeSettings()
    from chiltepin.agents.exchange import get_kind

    refusal = get_kind(exchange.kind).service_refusal()
    if refusal is not None:
        message, hint = refusal
        raise problem(message, "exchange", hint)
    return exchange


def service_json_schema() -> dict[str, Any]:
    """JSON Schema of an agent service file, published as schemas/service.schema.json."""
    from chiltepin.config.schema import SCHEMA_URL

    schema = ServiceConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_URL + "schemas/service.schema.json"
    schema["title"] = "chiltepin agent service"
    schema["properties"]["name"]["pattern"] = SERVICE_NAME_RE.pattern
    schema["properties"]["agent"]["pattern"] = AGENT_REF_RE.pattern
    return schema
