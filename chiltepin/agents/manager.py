"""``ChiltepinManager``: Academy's Manager, launching ``@chiltepin_agent`` classes.

``launch`` takes the agent's workflow infrastructure (``agent_workflow_config``,
``agent_workflow_include``, ``agent_workflow_run_dir`` or ``site``) besides Academy's own
arguments, checks it here, and hands it to the agent, which builds its Workflow when it
starts. Handles it returns report an agent's failure (:class:`AgentFailedError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from academy.agent import Agent
from academy.exception import BadEntityIdError, MailboxTerminatedError, raise_exceptions
from academy.identifier import AgentId
from academy.manager import Manager, _BatchLauncher

from chiltepin.agents.behaviour import DEFINITION_ATTR, ChiltepinAgent, is_chiltepin_agent
from chiltepin.agents.handle import AgentHandle
from chiltepin.agents.spec import SPEC_KWARG, AgentWorkflowSpec
from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)

Closer = Callable[[], "Awaitable[None] | None"]


class ChiltepinManager(Manager):
    """Launch and manage ``@chiltepin_agent`` agents (use ``academy.manager.Manager`` for
    native Academy agents).

    Made by :meth:`AgentSystem.manager` or, like any Academy manager, with
    ``await ChiltepinManager.from_exchange_factory(factory, executors)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closers: list[Closer] = []
        self._labels: dict[AgentId[Any], str] = {}

    def on_close(self, closer: Closer) -> None:
        """Run ``closer`` (sync or async) after the manager has closed, even on error."""
        self._closers.append(closer)

    async def close(self, close_exchange: bool = True) -> None:
        """Stop every agent, close the exchange client and executors, run ``on_close``
        callbacks; then raise the errors agents stopped with (as Academy does).

        Unlike Academy 1.0's ``Manager.close``, a failed agent does not cut this short:
        all agents are waited for and everything is closed before the errors are raised.
        """
        self._closed.set()  # no more restarts
        try:
            acbs = list(self._acbs.values())
            for acb in acbs:
                if not acb.task.done():
                    with contextlib.suppress(MailboxTerminatedError):
                        await self.get_handle(acb.agent_id).shutdown()
            await asyncio.gather(*(acb.task for acb in acbs), return_exceptions=True)
            try:
                if close_exchange:
                    await self.exchange_client.close()
            finally:
                for executor in self._executors.values():
                    if executor is not None:
                        executor.shutdown(wait=True, cancel_futures=True)
            failures = [
                acb.task.exception()
                for acb in acbs
                if not acb.task.cancelled() and acb.task.exception() is not None
            ]
            raise_exceptions(failures, message="Caught failures in agent while shutting down.")
            logger.info("closed manager %s", self.user_id)
        finally:
            closers, self._closers = self._closers, []
            for closer in reversed(closers):
                try:
                    result = closer()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    logger.exception("cleanup after closing the manager failed")

    async def launch(  # noqa: PLR0913
        self,
        agent: Any,
        *,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        agent_workflow_config: Any = None,
        agent_workflow_include: Iterable[str] | None = None,
        agent_workflow_run_dir: str | Path | None = None,
        site: str | None = None,
        config: Any = None,
        executor: str | None = None,
        submit_kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        registration: Any = None,
        log_config: Any = None,
    ) -> Any:
        """Launch ``agent`` (a ``@chiltepin_agent`` class) and return its handle.

        ``args``/``kwargs`` go to the class's ``__init__``; ``agent_workflow_*`` or
        ``site`` describe the agent's own Workflow (they override the decorator's
        defaults; an unset run directory is unique per agent); ``executor`` names the
        manager executor the agent runs on. Other arguments are Academy's.
        """
        check_launchable(agent)
        check_init_args(agent, args, kwargs)
        kwargs = dict(kwargs or {})
        if SPEC_KWARG not in kwargs or any(
            v is not None
            for v in (agent_workflow_config, agent_workflow_include, agent_workflow_run_dir, site)
        ):
            kwargs[SPEC_KWARG] = self.workflow_spec(
                agent,
                config=agent_workflow_config,
                include=agent_workflow_include,
                run_dir=agent_workflow_run_dir,
                site=site,
            )
        self._check_executor(executor)
        handle = await super().launch(
            agent,
            args=args,
            kwargs=kwargs,
            config=config,
            executor=executor,
            submit_kwargs=submit_kwargs,
            name=name,
            registration=registration,
            log_config=log_config,
        )
        self._labels[handle.agent_id] = agent.__name__
        return handle

    def launch_batch(self) -> ChiltepinBatch:
        """Like Academy's ``launch_batch``; ``batch.queue`` takes ``launch``'s arguments."""
        return ChiltepinBatch(self)

    def get_handle(self, agent: Any) -> Any:
        """A handle to a running agent (an :class:`AgentHandle`)."""
        agent_id = agent if isinstance(agent, AgentId) else agent.agent_id
        handle = self._handles.get(agent_id)
        if handle is None:
            handle = AgentHandle(agent_id, manager=self)
            self._handles[agent_id] = handle
        return handle

    async def discover(
        self, agent: type | str, *, allow_subclasses: bool = True
    ) -> tuple[AgentId[Any], ...]:
        """IDs of running agents of class ``agent`` (a class or "module.Class") on the
        exchange, whoever launched them."""
        return await self.exchange_client.discover(agent, allow_subclasses=allow_subclasses)

    async def find_agents(self, agent: type | str, *, allow_subclasses: bool = True) -> list[Any]:
        """Handles to the running agents of class ``agent`` on the exchange."""
        ids = await self.discover(agent, allow_subclasses=allow_subclasses)
        return [self.get_handle(agent_id) for agent_id in ids]

    async def find_agent(self, agent: type | str) -> Any:
        """A handle to one running agent of class ``agent``; LookupError if there is none."""
        handles = await self.find_agents(agent)
        if not handles:
            name = agent if isinstance(agent, str) else agent.__name__
            raise LookupError(f"no running {name} agent on this exchange")
        return handles[0]

    def workflow_spec(
        self,
        agent: Any,
        *,
        config: Any = None,
        include: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
        site: str | None = None,
    ) -> AgentWorkflowSpec:
        """Check ``agent`` and build (and check) its workflow spec; raises TypeError or
        ConfigError before anything is launched."""
        check_launchable(agent)
        definition = agent.__dict__[DEFINITION_ATTR]
        spec = AgentWorkflowSpec.for_launch(
            agent.__name__,
            default_include=definition.include,
            default_run_dir=definition.run_dir,
            config=config,
            site=site,
            include=include,
            run_dir=run_dir,
        )
        spec.check()
        return spec

    async def agent_failure(
        self, agent: AgentId[Any], *, timeout: float | None = None
    ) -> BaseException | None:
        """The exception an agent launched here stopped with, waiting up to ``timeout``
        for it to stop; None if it is running, stopped cleanly, or is not ours."""
        try:
            await self.wait([agent], raise_error=True, timeout=timeout)
        except (BadEntityIdError, TimeoutError):
            return None
        except Exception as failure:  # noqa: BLE001 - that is the agent's error
            return failure
        return None

    def agent_label(self, agent: AgentId[Any]) -> str:
        name = self._labels.get(agent)
        return f"{name} ({agent})" if name else str(agent)

    def _check_executor(self, executor: str | None) -> None:
        chosen = executor if executor is not None else self._default_executor
        if chosen not in self._executors:
            known = ", ".join(sorted(self._executors))
            raise ConfigError(
                f"no manager executor named {chosen!r}",
                key="executor",
                hint=f"available: {known}",
            )
        if self._executors[chosen] is None and _process_runs_a_workflow():
            raise ConfigError(
                f"executor {chosen!r} runs the agent in this process, which already runs a "
                "Workflow (Parsl allows one per process) while the agent needs its own",
                key="executor",
                hint="launch it on a Parsl executor, e.g. executor='<manager executor name>'",
            )
        from academy.exchange.local import LocalExchangeFactory

        if self._executors[chosen] is not None and isinstance(
            self.exchange_factory, LocalExchangeFactory
        ):
            raise ConfigError(
                f"agents on executor {chosen!r} run in other processes and cannot reach a "
                "LocalExchangeFactory (it lives in this process)",
                key="exchange",
                hint="use AgentSystem's default embedded exchange, or an http/redis exchange",
            )


class ChiltepinBatch(_BatchLauncher):
    """``manager.launch_batch()``: queue several launches, register them together."""

    async def queue(  # noqa: PLR0913
        self,
        agent: Any,
        *,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        agent_workflow_config: Any = None,
        agent_workflow_include: Iterable[str] | None = None,
        agent_workflow_run_dir: str | Path | None = None,
        site: str | None = None,
        **academy_kwargs: Any,
    ) -> Any:
        manager: ChiltepinManager = self._manager  # type: ignore[assignment]
        check_launchable(agent)
        check_init_args(agent, args, kwargs)
        kwargs = dict(kwargs or {})
        kwargs[SPEC_KWARG] = manager.workflow_spec(
            agent,
            config=agent_workflow_config,
            include=agent_workflow_include,
            run_dir=agent_workflow_run_dir,
            site=site,
        )
        manager._check_executor(academy_kwargs.get("executor"))
        handle = await super().queue(agent, args=args, kwargs=kwargs, **academy_kwargs)
        intents = getattr(self, "_intents", None)
        if intents and getattr(intents[-1], "handle", None) is handle:
            handle = intents[-1].handle = AgentHandle(manager=manager)
        return handle


def check_init_args(
    agent: type, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None
) -> None:
    """TypeError now, rather than on the worker, if ``args``/``kwargs`` do not fit
    the class's ``__init__``."""
    import inspect

    behaviour = agent.__dict__["Behaviour"]
    try:
        signature = inspect.signature(behaviour)
    except (TypeError, ValueError):
        return  # nothing to check against
    plain = {k: v for k, v in (kwargs or {}).items() if k != SPEC_KWARG}
    try:
        signature.bind(*(args or ()), **plain)
    except TypeError as exc:
        raise TypeError(
            f"{agent.__name__}{signature} cannot take args={tuple(args or ())!r}, "
            f"kwargs={plain!r}: {exc}"
        ) from None


def _process_runs_a_workflow() -> bool:
    import sys

    parsl = sys.modules.get("parsl")
    return parsl is not None and parsl.DataFlowKernelLoader._dfk is not None


def check_launchable(agent: Any) -> None:
    """TypeError, with the fix, unless ``agent`` is a ``@chiltepin_agent`` class."""
    if isinstance(agent, ChiltepinAgent):
        raise TypeError(
            f"launch the class, not an instance: "
            f"manager.launch({type(agent).__name__}, args=(...), kwargs={{...}})"
        )
    if not isinstance(agent, type):
        raise TypeError(f"launch expects a @chiltepin_agent class, got {type(agent).__name__}")
    if is_chiltepin_agent(agent):
        return
    if issubclass(agent, Agent):
        raise TypeError(
            f"ChiltepinManager launches only @chiltepin_agent classes; '{agent.__name__}' is a "
            "native Academy agent: launch it with academy.manager.Manager"
        )
    raise TypeError(
        f"'{agent.__name__}' is not a chiltepin agent: decorate the class with "
        "@chiltepin_agent() (from chiltepin.agents import chiltepin_agent) and mark its "
        "exposed methods with @agent_action / @agent_loop"
    )
