"""What an agent's own Workflow is made of: config or site, include, run directory.

An :class:`AgentWorkflowSpec` is a :class:`~chiltepin.config.source.WorkflowSource` that
also knows the agent's name (for its default run directory). ``ChiltepinManager.launch``
builds it from the decorator's defaults and the launch arguments (launch wins), checks it
where the manager runs when possible, and hands it to the agent as an explicit argument
(:meth:`ChiltepinAgent.with_workflow`); the agent builds its Workflow when it starts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chiltepin.agents._definition import include_list
from chiltepin.config.source import ResolvedResources, WorkflowSource, config_or_site
from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)

#: How launch words the "config or site" rule: the names of its own arguments.
LAUNCH_LABELS = ("agent_workflow_config", "site")


@dataclasses.dataclass(frozen=True)
class AgentWorkflowSpec(WorkflowSource):
    """The agent's Workflow: ``Workflow(config or site=..., include=..., run_dir=...)``.

    ``config`` is a resource mapping or a YAML path (read where the agent runs); ``site`` a
    site profile name; ``run_dir`` None means a new unique directory per agent.
    """

    agent_name: str = "agent"

    @classmethod
    def for_launch(  # noqa: PLR0913
        cls,
        agent_name: str,
        *,
        defaults: WorkflowSource | None = None,
        default_include: tuple[str, ...] | None = None,
        default_run_dir: str | None = None,
        config: Any = None,
        site: str | None = None,
        include: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
        labels: tuple[str, str] = LAUNCH_LABELS,
        subject: str = "the agent",
    ) -> AgentWorkflowSpec:
        """Launch-time values override the defaults (the decorator's, or ``defaults``).

        A config given at launch replaces a default site, and the other way round.
        """
        base = defaults or WorkflowSource(include=default_include, run_dir=default_run_dir)
        config_or_site(
            config,
            site,
            labels=labels,
            subject=subject,
            hint="a site profile already defines the agent's resources",
        )
        if config is not None and not isinstance(config, (str, Path, Mapping)):
            raise ConfigError(
                f"agent_workflow_config must be an executor mapping or a YAML path, "
                f"got {type(config).__name__}"
            )
        if config is None and site is None:
            config, site = base.config, base.site
        chosen_include = include_list(include) if include is not None else base.include
        chosen_run_dir = run_dir if run_dir is not None else base.run_dir
        return cls(
            config=config,
            site=site,
            include=chosen_include,
            run_dir=str(chosen_run_dir) if chosen_run_dir is not None else None,
            agent_name=agent_name,
        )

    def check(self) -> ResolvedResources | None:
        """Validate here what can be validated here (raises ConfigError); return the
        resolved resources, or None if they can only be resolved where the agent runs.

        A config path that does not exist on this machine is left to the agent: it may be a
        path on the machine where the agent runs.
        """
        if isinstance(self.config, str) and not Path(self.config).exists():
            logger.debug(
                "agent config %s is not on this machine; the agent will read it", self.config
            )
            return None
        resolved = self.resolve()
        # Kept for create_workflow in this process (an agent run here, e.g. a service):
        # the profile is then read once. Never pickled: where the agent runs, it resolves.
        object.__setattr__(self, "_resolved", resolved)
        return resolved

    def create_workflow(self) -> Any:
        """The agent's Workflow (validated, not started)."""
        from chiltepin.workflow import Workflow, unique_run_dir

        run_dir = self.run_dir
        if run_dir is None:
            run_dir = unique_run_dir(Path("runinfo") / "agents" / self.agent_name)
        return Workflow(self.__dict__.get("_resolved") or self, run_dir=run_dir)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_resolved", None)
        return state
