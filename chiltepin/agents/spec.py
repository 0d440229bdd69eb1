"""What an agent's own Workflow is made of: config or site, include, run directory.

Built by ``ChiltepinManager.launch`` from the decorator defaults and the launch arguments
(launch wins), checked where the manager runs when possible, and carried to the agent,
which builds the Workflow when it starts.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)

#: Keyword the manager uses to hand the spec to the agent class on the worker.
SPEC_KWARG = "__chiltepin_agent_workflow__"


@dataclasses.dataclass(frozen=True)
class AgentWorkflowSpec:
    """The agent's Workflow: ``Workflow(config or site=..., include=..., run_dir=...)``.

    ``config`` is a resource mapping or a YAML path (read where the agent runs); ``site`` a
    site profile name; ``run_dir`` None means a new unique directory per agent.
    """

    config: dict[str, Any] | str | None = None
    site: str | None = None
    include: tuple[str, ...] | None = None
    run_dir: str | None = None
    agent_name: str = "agent"

    @classmethod
    def for_launch(
        cls,
        agent_name: str,
        *,
        default_include: tuple[str, ...] | None,
        default_run_dir: str | None,
        config: Any = None,
        site: str | None = None,
        include: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
    ) -> AgentWorkflowSpec:
        """Launch-time values override the decorator's defaults."""
        if config is not None and site is not None:
            raise ConfigError(
                "give the agent either agent_workflow_config or site, not both",
                hint="a site profile already defines the agent's resources",
            )
        if site is not None and not isinstance(site, str):
            raise ConfigError(f"site must be a site profile name, got {type(site).__name__}")
        chosen_include = _include(include) if include is not None else default_include
        chosen_run_dir = run_dir if run_dir is not None else default_run_dir
        return cls(
            config=_config(config),
            site=site,
            include=chosen_include,
            run_dir=str(chosen_run_dir) if chosen_run_dir is not None else None,
            agent_name=agent_name,
        )

    def check(self) -> None:
        """Validate here what can be validated here (raises ConfigError).

        A config path that does not exist on this machine is left to the agent: it may be a
        path on the machine where the agent runs.
        """
        if isinstance(self.config, str) and not Path(self.config).exists():
            logger.debug(
                "agent config %s is not on this machine; the agent will read it", self.config
            )
            return
        self._workflow(run_dir="unused")

    def create_workflow(self) -> Any:
        """The agent's Workflow (validated, not started)."""
        run_dir = self.run_dir
        if run_dir is None:
            from chiltepin.workflow import unique_run_dir

            run_dir = unique_run_dir(Path("runinfo") / "agents" / self.agent_name)
        return self._workflow(run_dir=run_dir)

    def _workflow(self, *, run_dir: str) -> Any:
        from chiltepin.workflow import Workflow

        if self.site is not None:
            from chiltepin.agents._site import require_sites

            require_sites()
            return Workflow(site=self.site, include=self.include, run_dir=run_dir)
        return Workflow(self.config, include=self.include, run_dir=run_dir)


def _config(config: Any) -> dict[str, Any] | str | None:
    if config is None:
        return None
    if isinstance(config, (str, Path)):
        return str(config)
    if isinstance(config, Mapping):
        # A private plain copy: the caller may change theirs after launch, and it must pickle.
        return copy.deepcopy(dict(config))
    raise ConfigError(
        f"agent_workflow_config must be a resource mapping or a YAML path, "
        f"got {type(config).__name__}"
    )


def _include(include: Iterable[str]) -> tuple[str, ...]:
    from chiltepin.agents.decorators import _include_list

    names = _include_list(include)
    assert names is not None
    return names
