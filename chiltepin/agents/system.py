"""``AgentSystem``: a ChiltepinManager on a Workflow's executors and an exchange.

chiltepin 0.1.7 calls it ``AgentRuntime`` (:mod:`chiltepin.agent_runtime`): one class,
both names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from chiltepin.agents.exchange import exchange_settings, open_exchange
from chiltepin.config.source import ResolvedResources, WorkflowSource, config_or_site
from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)

#: ``auth_method`` values (chiltepin 0.1.x, Academy's ``HttpExchangeFactory``).
AUTH_METHODS = (None, "globus")


class AgentSystem:
    """Everything a manager needs: where agents run and how they talk.

    ``workflow``: a started :class:`~chiltepin.Workflow` whose executors run the agents,
    or a :class:`~chiltepin.config.source.WorkflowSource` the system makes that workflow
    from; ``executor_names``: which executors (default: all); ``exchange``:
    ``ExchangeSettings``, a mapping of them, or an Academy ``ExchangeFactory`` (default:
    the site's, else an embedded HTTP exchange on loopback that lives as long as each
    manager context).

    With ``site=`` (or a WorkflowSource) and no started workflow, the system makes
    ``Workflow(site=..., include=executor_names)`` itself, starts it for each manager and
    cleans it up after. The site profile is read once, here.

    As in chiltepin 0.1.x, ``exchange_address`` and ``auth_method`` may name the exchange
    instead: ``auth_method="globus"`` is Academy's hosted exchange (at
    ``exchange_address`` if given), otherwise ``exchange_address`` is an HTTP exchange
    (``http(s)://HOST:PORT``) or a Redis server (``redis://HOST[:PORT]``).

    ``async with await system.manager() as manager:`` gives a :class:`ChiltepinManager`.

    Each running agent holds one worker of its executor for its whole life: give the
    executor at least as many workers as agents (a local worker pool starts at most
    cores / ``cores_per_worker`` of them, so agent hosts want a small ``cores_per_worker``).
    ``launch`` beyond that raises :class:`~chiltepin.errors.NoFreeWorkerError` at once,
    naming the executor's sizing keys (no agent waits unseen for a worker).
    """

    def __init__(  # noqa: PLR0913
        self,
        workflow: Any = None,
        executor_names: Iterable[str] | None = None,
        exchange_address: str | None = None,
        auth_method: str | None = None,
        *,
        exchange: Any = None,
        site: str | None = None,
        default_executor: str | None = None,
        max_retries: int = 0,
    ) -> None:
        config_or_site(
            workflow,
            site,
            labels=("a workflow", "a site"),
            subject="AgentSystem",
            hint="the site's workflow is made from its profile",
        )
        if workflow is None and site is None:
            raise ConfigError(
                "AgentSystem needs the workflow its agents run on",
                hint="pass workflow=<a started Workflow> or site=<site profile name>",
            )
        if isinstance(executor_names, str):
            executor_names = [executor_names]
        self.executor_names = list(executor_names) if executor_names is not None else None
        self.default_executor = default_executor
        self.max_retries = max_retries
        self._resolved: ResolvedResources | None = None
        if site is not None or isinstance(workflow, WorkflowSource):
            source = WorkflowSource.of(workflow, site=site, include=self.executor_names)
            self._resolved = source.resolve()
            workflow = None
        self.workflow = workflow
        self.site = self._resolved.site if self._resolved is not None else None
        exchange = _exchange_choice(exchange, exchange_address, auth_method)
        if exchange is None and self._resolved is not None:
            exchange = self._resolved.exchange
        self.exchange = exchange_settings(exchange)
        self.exchange_address = exchange_address
        self.auth_method = auth_method
        self._executors: dict[str, Any] | None = None

    @property
    def executors(self) -> dict[str, Any] | None:
        """The executors (one per name) of the latest manager; None before the first."""
        return self._executors

    async def manager(self) -> Any:
        """A new :class:`ChiltepinManager`; use it as ``async with`` to close it.

        Closing it stops its agents, then the embedded exchange (if any), then the site
        workflow (if the system made it).
        """
        from chiltepin.agents.exchange.base import quiet_academy_logs
        from chiltepin.agents.manager import ChiltepinManager

        quiet_academy_logs()
        workflow, owned = self._workflow()
        if owned:
            await asyncio.to_thread(workflow.start)
        stop_exchange = None
        try:
            names = self._executor_names(workflow)
            from chiltepin.agents._pool import pool_executors

            factory, stop_exchange = await open_exchange(self.exchange)
            executors = pool_executors(workflow.dfk, names)
            manager = await ChiltepinManager.from_exchange_factory(
                factory,
                executors=executors,
                default_executor=self.default_executor or names[0],
                max_retries=self.max_retries,
            )
            self._executors = executors
        except BaseException:
            if stop_exchange is not None:
                await stop_exchange()
            if owned:
                await asyncio.to_thread(workflow.cleanup)
            raise
        exchange = self._exchange_label()

        def agents() -> list[dict[str, Any]]:
            return [{**row, "exchange": exchange} for row in manager.agent_rows()]

        workflow.add_status("agents", agents)
        if owned:
            manager.on_close(lambda: asyncio.to_thread(workflow.cleanup))
        else:
            manager.on_close(lambda: workflow.remove_status("agents", agents))
        if stop_exchange is not None:
            manager.on_close(stop_exchange)
            manager.watch_exchange(stop_exchange.server.died())
        return manager

    def _exchange_label(self) -> str:
        """Where this system's agents talk, for ``chiltepin status`` (no credentials)."""
        from chiltepin.agents.exchange import get_kind
        from chiltepin.config.schema import ExchangeSettings

        if isinstance(self.exchange, ExchangeSettings):
            kind = get_kind(self.exchange.kind)
            label = kind.label(self.exchange)
            return f"{label} (in this program)" if kind.owned else label
        return type(self.exchange).__name__

    def _workflow(self) -> tuple[Any, bool]:
        if self.workflow is not None:
            if self.workflow.dfk is None:
                raise ConfigError(
                    "the workflow is not started",
                    hint="call workflow.start() before system.manager() "
                    "(and workflow.cleanup() after the manager context)",
                )
            return self.workflow, False
        from chiltepin.workflow import Workflow

        return Workflow(self._resolved), True

    def _executor_names(self, workflow: Any) -> list[str]:
        names = self.executor_names or list(workflow.executor_names)
        from chiltepin.workflow import start_deferred

        start_deferred(workflow.dfk, names)
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


def _exchange_choice(exchange: Any, address: str | None, auth_method: str | None) -> Any:
    """``exchange``, or the exchange 0.1.x's ``exchange_address``/``auth_method`` name."""
    if address is None and auth_method is None:
        return exchange
    if exchange is not None:
        raise ConfigError(
            "give AgentSystem either exchange or exchange_address/auth_method, not both",
            key="exchange",
        )
    if auth_method not in AUTH_METHODS:
        raise ConfigError(
            f"auth_method {auth_method!r} is not supported",
            key="auth_method",
            hint="use 'globus' (Academy's hosted exchange, Globus login) or None "
            "(an exchange without login at exchange_address)",
        )
    if auth_method == "globus":
        return {"kind": "hosted", **({"url": address} if address is not None else {})}
    from chiltepin.agents.exchange import parse_exchange_url

    return parse_exchange_url(str(address), option="exchange_address")
