"""``AgentSystem``: a ChiltepinManager on a Workflow's executors and an exchange."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from chiltepin.agents.exchange import exchange_settings, open_exchange
from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)


class AgentSystem:
    """Everything a manager needs: where agents run and how they talk.

    ``workflow``: a started :class:`~chiltepin.Workflow` whose executors run the agents;
    ``executor_names``: which of them (default: all); ``exchange``: ``ExchangeSettings``,
    a mapping of them, or an Academy ``ExchangeFactory`` (default: the site's, else an
    embedded HTTP exchange on loopback that lives as long as each manager context).

    With ``site=`` and no workflow, the system makes ``Workflow(site=..., include=
    executor_names)`` itself, starts it for each manager and cleans it up after.

    ``async with await system.manager() as manager:`` gives a :class:`ChiltepinManager`.

    Each running agent holds one worker of its executor for its whole life: give the
    executor at least as many workers as agents (a local worker pool starts at most
    cores / ``cores_per_worker`` of them, so agent hosts want a small ``cores_per_worker``).
    An agent launched beyond that waits, unstarted, for a worker to free up.
    """

    def __init__(
        self,
        workflow: Any = None,
        executor_names: Iterable[str] | None = None,
        *,
        exchange: Any = None,
        site: str | None = None,
        default_executor: str | None = None,
        max_retries: int = 0,
    ) -> None:
        if workflow is not None and site is not None:
            raise ConfigError(
                "give AgentSystem either a workflow or a site, not both",
                hint="the site's workflow is made from its profile",
            )
        if workflow is None and site is None:
            raise ConfigError(
                "AgentSystem needs the workflow its agents run on",
                hint="pass workflow=<a started Workflow> or site=<site profile name>",
            )
        if isinstance(executor_names, str):
            executor_names = [executor_names]
        self.workflow = workflow
        self.executor_names = list(executor_names) if executor_names is not None else None
        self.site = site
        self.default_executor = default_executor
        self.max_retries = max_retries
        self._site_profile: Any = None
        if site is not None:
            from chiltepin.agents._site import load_site

            self._site_profile = load_site(site)
            if exchange is None:
                exchange = getattr(self._site_profile, "exchange", None)
        self.exchange = exchange_settings(exchange)

    async def manager(self) -> Any:
        """A new :class:`ChiltepinManager`; use it as ``async with`` to close it.

        Closing it stops its agents, then the embedded exchange (if any), then the site
        workflow (if the system made it).
        """
        from chiltepin.agents.manager import ChiltepinManager

        workflow, owned = self._workflow()
        if owned:
            await asyncio.to_thread(workflow.start)
        stop_exchange = None
        try:
            names = self._executor_names(workflow)
            from chiltepin.agents._pool import pool_executors

            factory, stop_exchange = await open_exchange(self.exchange)
            manager = await ChiltepinManager.from_exchange_factory(
                factory,
                executors=pool_executors(workflow.dfk, names),
                default_executor=self.default_executor or names[0],
                max_retries=self.max_retries,
            )
        except BaseException:
            if stop_exchange is not None:
                await stop_exchange()
            if owned:
                await asyncio.to_thread(workflow.cleanup)
            raise
        if owned:
            manager.on_close(lambda: asyncio.to_thread(workflow.cleanup))
        if stop_exchange is not None:
            manager.on_close(stop_exchange)
        return manager

    def _workflow(self) -> tuple[Any, bool]:
        if self.workflow is not None:
            if self.workflow.dfk is None:
                raise ConfigError(
                    "the workflow is not started",
                    hint="call workflow.start() before system.manager() "
                    "(and workflow.cleanup() after the manager context)",
                )
            return self.workflow, False
        from chiltepin.agents._site import require_sites
        from chiltepin.workflow import Workflow

        require_sites()
        return Workflow(site=self.site, include=self.executor_names), True

    def _executor_names(self, workflow: Any) -> list[str]:
        names = self.executor_names or list(workflow.executor_names)
        available = [label for label in workflow.dfk.executors if not label.startswith("_")]
        for name in names:
            if name not in available:
                raise ConfigError(
                    f"executor {name!r} is not in the workflow",
                    key="executor_names",
                    hint=f"available: {', '.join(available)}",
                )
        if self.default_executor is not None and self.default_executor not in names:
            raise ConfigError(
                f"default executor {self.default_executor!r} is not in executor_names",
                key="default_executor",
                hint=f"choose one of: {', '.join(names)}",
            )
        return names
