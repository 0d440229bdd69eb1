"""``ChiltepinManager``: Academy's Manager, launching ``@chiltepin_agent`` classes.

``launch`` takes the agent's workflow infrastructure (``agent_workflow`` or
``agent_workflow_config`` / ``site``, ``agent_workflow_include``, ``agent_workflow_run_dir``)
besides Academy's own arguments, checks it here, and hands it to the agent as an explicit
argument (:meth:`ChiltepinAgent.with_workflow`), never mixed into the user's ``kwargs``; the
agent builds its Workflow when it starts. Handles it returns report an agent's failure
(:class:`AgentFailedError`).

Built on Academy's public API only (the one exception is isolated and explained in
:mod:`chiltepin.agents._academy_compat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from academy.agent import Agent
from academy.exception import BadEntityIdError, MailboxTerminatedError, raise_exceptions
from academy.identifier import AgentId
from academy.manager import Manager

from chiltepin.agents._academy_compat import stop_restarts
from chiltepin.agents._definition import definition_of, is_chiltepin_agent
from chiltepin.agents.behaviour import ChiltepinAgent
from chiltepin.agents.handle import AgentHandle
from chiltepin.agents.spec import AgentWorkflowSpec
from chiltepin.config.source import WorkflowSource
from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)

Closer = Callable[[], "Awaitable[None] | None"]
AgentT = TypeVar("AgentT", bound=ChiltepinAgent)
#: Academy's name for "run the agent in this event loop".
EVENT_LOOP = "event_loop"
#: ``launch`` options that describe the agent's own workflow (the others are Academy's).
WORKFLOW_OPTIONS = (
    "agent_workflow",
    "agent_workflow_config",
    "agent_workflow_include",
    "agent_workflow_run_dir",
    "site",
)


class ChiltepinManager(Manager):
    """Launch and manage ``@chiltepin_agent`` agents (use ``academy.manager.Manager`` for
    native Academy agents).

    Made by :meth:`AgentSystem.manager` or, like any Academy manager, with
    ``await ChiltepinManager.from_exchange_factory(factory, executors)``.
    """

    def __init__(
        self,
        exchange_client: Any,
        executors: Executor | Mapping[str, Executor | None] | None = None,
        *,
        default_executor: str = EVENT_LOOP,
        max_retries: int = 0,
        log_config: Any = None,
    ) -> None:
        super().__init__(
            exchange_client,
            executors,  # type: ignore[arg-type]
            default_executor=default_executor,
            max_retries=max_retries,
            log_config=log_config,
        )
        # What Academy was given (it keeps no public record): launch checks and close use it.
        self._chiltepin_executors: dict[str, Executor | None] = {EVENT_LOOP: None}
        if isinstance(executors, Executor):
            self._chiltepin_executors["default"] = executors
            default_executor = "default"
        elif executors is not None:
            self._chiltepin_executors.update(executors)
        self._chiltepin_default = default_executor
        self._chiltepin_handles: dict[AgentId[Any], AgentHandle[Any]] = {}
        self._closers: list[Closer] = []
        self._labels: dict[AgentId[Any], str] = {}  # every agent launched here -> class name
        self._placed: dict[AgentId[Any], str] = {}  # every agent launched here -> executor
        self._launching = asyncio.Lock()
        self._exchange_lost: str | None = None
        self._exchange_gone = asyncio.Event()

    def add_executor(self, name: str, executor: Executor) -> ChiltepinManager:
        super().add_executor(name, executor)
        self._chiltepin_executors[name] = executor
        return self

    def set_default_executor(self, name: str) -> ChiltepinManager:
        super().set_default_executor(name)
        self._chiltepin_default = name
        return self

    @property
    def executor_names(self) -> list[str]:
        """Names ``launch(executor=...)`` accepts (``event_loop``: this process)."""
        return list(self._chiltepin_executors)

    def agent_rows(self) -> list[dict[str, Any]]:
        """The agents launched here, as ``chiltepin status`` lists them: ``agent_id``,
        ``agent_class``, ``executor``, ``state`` (running or stopped)."""
        running = self.running()
        return [
            {
                "agent_id": str(agent_id.uid),
                "agent_class": label,
                "executor": self._placed.get(agent_id),
                "state": "running" if agent_id in running else "stopped",
            }
            for agent_id, label in list(self._labels.items())
        ]

    def watch_exchange(self, died: Awaitable[str | None]) -> None:
        """``died`` returns why the exchange is gone (or None when it was stopped): then
        every pending and later action of this manager's handles fails at once with an
        ExchangeError saying so."""

        def record(task: asyncio.Task[str | None]) -> None:
            if not task.cancelled() and task.exception() is None and task.result():
                self._exchange_lost = task.result()
                logger.error("%s", self._exchange_lost)
                self._exchange_gone.set()

        watch = asyncio.ensure_future(died)
        watch.add_done_callback(record)
        self.on_close(watch.cancel)

    async def exchange_lost(self) -> str:
        """Wait until the exchange is gone (see :meth:`watch_exchange`); why."""
        await self._exchange_gone.wait()
        return self._exchange_lost or "the exchange is gone"

    def on_close(self, closer: Closer) -> None:
        """Run ``closer`` (sync or async) after the manager has closed, even on error."""
        self._closers.append(closer)

    async def close(self, close_exchange: bool = True) -> None:
        """Stop every agent, close the exchange client and executors, run ``on_close``
        callbacks; then raise the errors agents stopped with (as Academy does).

        Unlike Academy 1.0's ``Manager.close``, a failed agent does not cut this short:
        all agents are waited for and everything is closed before the errors are raised.
        """
        stop_restarts(self)
        try:
            launched = list(self._labels)
            for agent_id in self.running():
                with contextlib.suppress(MailboxTerminatedError):
                    await self.get_handle(agent_id).shutdown()
            if launched:
                await self.wait(launched)
            failures = [f for f in [await self._failure_of(a) for a in launched] if f]
            try:
                if close_exchange:
                    await self.exchange_client.close()
            finally:
                for executor in self._chiltepin_executors.values():
                    if executor is not None:
                        executor.shutdown(wait=True, cancel_futures=True)
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

    async def launch(  # type: ignore[override]  # noqa: PLR0913
        self,
        agent: type[AgentT],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        agent_workflow: WorkflowSource | None = None,
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
    ) -> AgentHandle[AgentT]:
        """Launch ``agent`` (a ``@chiltepin_agent`` class) and return its handle.

        ``args``/``kwargs`` go to the class's ``__init__`` (they may be given by position,
        as chiltepin 0.1.x allows). The agent's own Workflow:
        ``agent_workflow`` (a :class:`~chiltepin.config.source.WorkflowSource`) or the
        decorator's defaults, with ``agent_workflow_config`` or ``site``,
        ``agent_workflow_include`` and ``agent_workflow_run_dir`` overriding them (an unset
        run directory is unique per agent). ``executor`` names the manager executor the
        agent runs on. Other arguments are Academy's.
        """
        prepared = self.prepare(
            agent,
            args=args,
            kwargs=kwargs,
            agent_workflow=agent_workflow,
            agent_workflow_config=agent_workflow_config,
            agent_workflow_include=agent_workflow_include,
            agent_workflow_run_dir=agent_workflow_run_dir,
            site=site,
            executor=executor,
        )
        return await self._launch_prepared(
            prepared,
            config=config,
            executor=executor,
            submit_kwargs=submit_kwargs,
            name=name,
            registration=registration,
            log_config=log_config,
        )

    def prepare(  # noqa: PLR0913
        self,
        agent: type[AgentT],
        *,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        agent_workflow: WorkflowSource | None = None,
        agent_workflow_config: Any = None,
        agent_workflow_include: Iterable[str] | None = None,
        agent_workflow_run_dir: str | Path | None = None,
        site: str | None = None,
        executor: str | None = None,
    ) -> AgentT:
        """Check everything ``launch`` would (TypeError or ConfigError before anything
        starts) and return the unstarted agent it would run."""
        check_launchable(agent)
        check_init_args(agent, args, kwargs)
        spec = self.workflow_spec(
            agent,
            source=agent_workflow,
            config=agent_workflow_config,
            include=agent_workflow_include,
            run_dir=agent_workflow_run_dir,
            site=site,
        )
        self._check_executor(executor)
        return agent.with_workflow(spec, args, kwargs)  # type: ignore[return-value]

    async def _launch_prepared(self, prepared: AgentT, **academy: Any) -> AgentHandle[AgentT]:
        chosen = academy.get("executor") or self._chiltepin_default
        async with self._launching:  # the check and the submission, one launch at a time
            self._check_free_worker(type(prepared).__name__, chosen)
            handle = await super().launch(prepared, **academy)
        self._labels[handle.agent_id] = type(prepared).__name__
        self._placed[handle.agent_id] = chosen
        return handle  # type: ignore[return-value]

    def _check_free_worker(self, label: str, executor: str) -> None:
        """NoFreeWorkerError now, rather than an agent that waits unstarted and unseen, if
        every worker of ``executor`` holds a running agent (or a task)."""
        from chiltepin.agents._pool import AgentPoolExecutor

        pool = self._chiltepin_executors.get(executor)
        if not isinstance(pool, AgentPoolExecutor):
            return
        count = pool.workers()
        if count is None:
            return
        running = self.running()
        mine = sum(1 for a, e in self._placed.items() if e == executor and a in running)
        busy = max(count.busy, mine)
        if busy < count.total:
            return
        from chiltepin.errors import NoFreeWorkerError

        raise NoFreeWorkerError(
            f"cannot launch {label} on executor {executor!r}: all {count.total} of its "
            f"workers are busy ({mine} with agents launched here; each running agent holds "
            f"one worker for its whole life). Executor {count.sizing}. Give the executor more "
            "workers (raise max_workers_per_node; a local pool starts at most "
            "cores / cores_per_worker of them, so lower cores_per_worker; or raise "
            "nodes_per_block or max_blocks), or shut an agent down first"
        )

    def launch_batch(self) -> ChiltepinBatch:  # type: ignore[override]
        """Like Academy's ``launch_batch``; ``batch.queue`` takes ``launch``'s arguments."""
        return ChiltepinBatch(self)

    def get_handle(self, agent: Any) -> AgentHandle[Any]:
        """A handle to a running agent (an :class:`AgentHandle`)."""
        agent_id = agent if isinstance(agent, AgentId) else agent.agent_id
        handle = self._chiltepin_handles.get(agent_id)
        if handle is None:
            handle = AgentHandle(agent_id, manager=self)
            self._chiltepin_handles[agent_id] = handle
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

    def workflow_spec(  # noqa: PLR0913
        self,
        agent: Any,
        *,
        source: WorkflowSource | None = None,
        config: Any = None,
        include: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
        site: str | None = None,
    ) -> AgentWorkflowSpec:
        """Check ``agent`` and build (and check) its workflow spec; raises TypeError or
        ConfigError before anything is launched."""
        check_launchable(agent)
        if source is not None and not isinstance(source, WorkflowSource):
            raise TypeError(f"agent_workflow must be a WorkflowSource, got {type(source).__name__}")
        spec = AgentWorkflowSpec.for_launch(
            agent.__name__,
            defaults=source if source is not None else definition_of(agent).workflow,
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
            await self.wait([agent], timeout=timeout)
        except (BadEntityIdError, TimeoutError):
            return None
        return await self._failure_of(agent)

    async def _failure_of(self, agent: AgentId[Any]) -> BaseException | None:
        """The exception a stopped agent of ours ended with (None: clean, or cancelled)."""
        try:
            await self.wait([agent], raise_error=True, timeout=0)
        except (BadEntityIdError, TimeoutError):
            return None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and getattr(current, "cancelling", lambda: 0)():
                raise  # we are being cancelled, not looking at a cancelled agent
            return None
        except Exception as failure:  # noqa: BLE001 - that is the agent's error
            return failure
        return None

    def agent_label(self, agent: AgentId[Any]) -> str:
        name = self._labels.get(agent)
        return f"{name} ({agent})" if name else str(agent)

    def _check_executor(self, executor: str | None) -> None:
        chosen = executor if executor is not None else self._chiltepin_default
        executors = self._chiltepin_executors
        if chosen not in executors:
            known = ", ".join(sorted(executors))
            raise ConfigError(
                f"no manager executor named {chosen!r}",
                key="executor",
                hint=f"available: {known}",
            )
        if executors[chosen] is None and _process_runs_a_workflow():
            raise ConfigError(
                f"executor {chosen!r} runs the agent in this process, which already runs a "
                "Workflow (Parsl allows one per process) while the agent needs its own",
                key="executor",
                hint="launch it on a Parsl executor, e.g. executor='<manager executor name>'",
            )
        from academy.exchange.local import LocalExchangeFactory

        if executors[chosen] is not None and isinstance(
            self.exchange_factory, LocalExchangeFactory
        ):
            raise ConfigError(
                f"agents on executor {chosen!r} run in other processes and cannot reach a "
                "LocalExchangeFactory (it lives in this process)",
                key="exchange",
                hint="use AgentSystem's default embedded exchange, or an http/redis exchange",
            )


@dataclasses.dataclass
class _Queued:
    agent: ChiltepinAgent  # prepared, not started
    handle: AgentHandle[Any]
    name: str | None
    academy: dict[str, Any]


class ChiltepinBatch:
    """``manager.launch_batch()``: queue several launches, register them together.

    Made of Academy's public ``register_agents`` and ``launch(registration=...)``, as
    Academy's own batch is. Each ``queue`` is checked at once; handles it returns are
    unbound until the batch is submitted (at the end of ``async with``, or ``submit()``).
    """

    def __init__(self, manager: ChiltepinManager) -> None:
        self.manager = manager
        self._queued: list[_Queued] = []
        self._closed = False

    async def __aenter__(self) -> ChiltepinBatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._closed:
            return
        if exc is not None:
            self._closed = True
            self._queued.clear()
            return
        await self.submit()

    async def queue(
        self,
        agent: type[AgentT],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        **options: Any,
    ) -> AgentHandle[AgentT]:
        """Check and queue one launch: ``launch``'s arguments, without ``registration``."""
        if self._closed:
            raise RuntimeError("batch is closed")
        workflow = {key: options.pop(key) for key in WORKFLOW_OPTIONS if key in options}
        prepared = self.manager.prepare(
            agent, args=args, kwargs=kwargs, executor=options.get("executor"), **workflow
        )
        handle: AgentHandle[AgentT] = AgentHandle(manager=self.manager)
        self._queued.append(_Queued(prepared, handle, name, options))
        return handle

    async def submit(self) -> None:
        """Register every queued agent (one consent prompt where the exchange batches
        auth), then launch them in order; a failed launch retires the ones after it."""
        if self._closed:
            raise RuntimeError("batch is closed")
        self._closed = True
        queued, self._queued = self._queued, []
        if not queued:
            return
        manager = self.manager
        registrations = await manager.register_agents(
            [(type(item.agent), item.name) for item in queued]
        )
        launched = 0
        try:
            for item, registration in zip(queued, registrations, strict=True):
                item.handle.agent_id = registration.agent_id
                manager._chiltepin_handles[registration.agent_id] = item.handle
                await manager._launch_prepared(
                    item.agent, registration=registration, name=item.name, **item.academy
                )
                launched += 1
        except Exception:
            orphans = registrations[launched:]
            manager._chiltepin_handles.pop(orphans[0].agent_id, None)
            await asyncio.gather(
                *(manager.exchange_client.terminate(r.agent_id) for r in orphans),
                return_exceptions=True,
            )
            raise


def check_init_args(
    agent: type, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None
) -> None:
    """TypeError now, rather than on the worker, if ``args``/``kwargs`` do not fit
    the class's ``__init__``."""
    signature = _init_signature(agent.__dict__["Behaviour"])
    if signature is None:
        return  # nothing to check against
    plain = dict(kwargs or {})
    try:
        signature.bind(*(args or ()), **plain)
    except TypeError as exc:
        raise TypeError(
            f"{agent.__name__}{signature} cannot take args={tuple(args or ())!r}, "
            f"kwargs={plain!r}: {exc}"
        ) from None


@functools.lru_cache(maxsize=256)
def _init_signature(behaviour: type) -> inspect.Signature | None:
    """The signature of the class (its ``__init__``), once per class: a launch checks it."""
    try:
        return inspect.signature(behaviour)
    except (TypeError, ValueError):
        return None


def _process_runs_a_workflow() -> bool:
    import sys

    if "parsl" not in sys.modules:
        return False
    import parsl
    from parsl.errors import NoDataFlowKernelError

    try:
        parsl.dfk()
    except NoDataFlowKernelError:
        return False
    return True


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
