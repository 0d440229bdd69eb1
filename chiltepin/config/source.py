"""Where a workflow's resources come from, resolved once, with each executor's origin.

A :class:`WorkflowSource` names a resource configuration (a YAML path or a mapping) *or*
a site profile, plus which resources to include and the run directory. It is a small,
frozen, picklable value: it can be checked where it is made and travel to where the
workflow runs (an agent's worker). :meth:`WorkflowSource.resolve` reads and validates
it once into :class:`ResolvedResources`: the resources, where each executor's settings
came from (for error messages), and the site's exchange settings. ``Workflow``,
``AgentSystem``, ``ChiltepinManager.launch``, agent services and ``@chiltepin_agent``
all take this one value.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chiltepin.errors import ConfigError

if TYPE_CHECKING:
    from chiltepin.config.schema import AnyResource, ExchangeSettings
    from chiltepin.containers.base import Where

#: How a config or site conflict is worded: what the caller calls the two choices.
CONFIG_LABEL = "a config"
SITE_LABEL = "a site"


def config_or_site(
    config: Any,
    site: Any,
    *,
    labels: tuple[str, str] = (CONFIG_LABEL, SITE_LABEL),
    subject: str = "",
    hint: str = "put site-specific resources in a site profile override",
) -> None:
    """The one "config or site, not both" rule (raises ConfigError).

    ``labels`` and ``subject`` word the message in the caller's vocabulary (the names of
    its own parameters), so each caller's message stays what its users know.
    """
    if config is not None and site is not None:
        who = f"{subject} " if subject else ""
        raise ConfigError(f"give {who}either {labels[0]} or {labels[1]}, not both", hint=hint)
    if site is not None and not isinstance(site, str):
        raise ConfigError(f"site must be a site profile name, got {type(site).__name__}")


@dataclasses.dataclass(frozen=True)
class WorkflowSource:
    """A resource configuration or a site profile, plus include and run directory.

    ``config``: None (only the built-in ``local``), a YAML path (read where the workflow
    runs), or a resource mapping (copied: later changes by the caller do not leak in);
    ``site``: a site profile name; ``include``: the resource names to use (None: all);
    ``run_dir``: None means a new unique directory per workflow.
    """

    config: dict[str, Any] | str | None = None
    site: str | None = None
    include: tuple[str, ...] | None = None
    run_dir: str | None = None

    def __post_init__(self) -> None:
        config_or_site(self.config, self.site)
        object.__setattr__(self, "config", _config(self.config))
        if isinstance(self.include, str):
            object.__setattr__(self, "include", (self.include,))
        elif self.include is not None:
            object.__setattr__(self, "include", tuple(self.include))
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", str(self.run_dir))

    @classmethod
    def of(
        cls,
        config: Any = None,
        *,
        site: str | None = None,
        include: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
    ) -> WorkflowSource:
        """``config`` as a source: a WorkflowSource passes through (with no other argument)."""
        if isinstance(config, WorkflowSource):
            if site is not None or include is not None or run_dir is not None:
                return dataclasses.replace(
                    config,
                    site=site if site is not None else config.site,
                    include=include if include is not None else config.include,
                    run_dir=run_dir if run_dir is not None else config.run_dir,
                )
            return config
        return cls(config=config, site=site, include=include, run_dir=run_dir)  # type: ignore[arg-type]

    def resolve(self) -> ResolvedResources:
        """Read and validate the config or site profile once (raises ConfigError)."""
        from chiltepin.containers.base import Where

        if self.site is None:
            from chiltepin.config.resources import load_resources

            resources = load_resources(self.config, include=self.include)
            path = self.config if isinstance(self.config, str) else None
            origins = {name: Where(executor=name, source=path) for name in resources}
            return ResolvedResources(self, resources, origins)
        from chiltepin.config.resources import BUILTIN_LOCAL, LOCAL_NAME, select
        from chiltepin.config.schema import Resource

        site = load_site_profile(self.site)
        resolved = {name: site.resolve(name) for name in site.executor_names}
        every: dict[str, AnyResource] = {LOCAL_NAME: Resource.model_validate(BUILTIN_LOCAL)}
        every.update({name: resource for name, (resource, _) in resolved.items()})
        resources = select(every, self.include, f"site '{site.name}'")
        # The built-in ``local`` has no place in the profile.
        origins = {
            name: Where.of(site.name, name, resolved[name][1] if name in resolved else {})
            for name in resources
        }
        provenance = {name: resolved[name][1] for name in resources if name in resolved}
        return ResolvedResources(
            self,
            resources,
            origins,
            exchange=site.exchange,
            run_dirs=site.profile.run_dirs,
            provenance=provenance,
        )


@dataclasses.dataclass(frozen=True)
class ResolvedResources:
    """A :class:`WorkflowSource` read and validated: what a Workflow is built from."""

    source: WorkflowSource
    resources: dict[str, AnyResource]
    #: Per executor: where its settings came from (site, file and line of its container).
    origins: dict[str, Where]
    #: The site profile's exchange settings (None for a resource configuration).
    exchange: ExchangeSettings | None = None
    #: Who may read the run directory: "private" (0700/0600) or "group" (0750/0640).
    run_dirs: str = "private"
    #: Per site executor: where each key's value came from, (label, file, line) by key
    #: (see ``Site.resolve``); empty for a resource configuration.
    provenance: dict[str, dict[str, tuple[str, str | None, int | None]]] = dataclasses.field(
        default_factory=dict
    )

    @property
    def site(self) -> str | None:
        return self.source.site

    @property
    def executor_names(self) -> list[str]:
        return list(self.resources)


def _config(config: Any) -> dict[str, Any] | str | None:
    if config is None:
        return None
    if isinstance(config, (str, Path)):
        return str(config)
    if isinstance(config, Mapping):
        # A private plain copy: the caller may change theirs later, and it must pickle.
        return copy.deepcopy(dict(config))
    raise ConfigError(f"config must be a YAML path, a mapping or None, got {type(config).__name__}")


def require_sites() -> None:
    """Raise a clear ConfigError if this installation has no site profiles."""
    import importlib.util

    try:
        found = importlib.util.find_spec("chiltepin.sites") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            "site profiles are not available: this chiltepin has no chiltepin.sites module",
            key="site",
            hint="pass a resource configuration instead (workflow=... / agent_workflow_config=...)",
        )


def load_site_profile(name: str) -> Any:
    """The site profile ``name``, merged and validated: has ``.exchange``, ``.resolve(name)``."""
    require_sites()
    from chiltepin.sites import load_site

    return load_site(name)
