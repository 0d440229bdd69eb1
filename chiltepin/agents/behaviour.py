"""The Academy agent generated for a ``@chiltepin_agent`` class.

The generated class subclasses :class:`ChiltepinAgent` (an ``academy.agent.Agent``) and
*holds* an instance of the user's plain class: state lives there, so task methods receive
a plain picklable ``self`` with no Academy or Parsl objects in it. The generated class
takes the user class's name, module and qualified name (so it pickles by reference and
Academy discovery by class works); the user class stays reachable as ``<Name>.Behaviour``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import weakref
from typing import Any, ClassVar

from academy.agent import Agent, action, loop

from chiltepin.agents._academy_compat import academy_method_kind
from chiltepin.agents._definition import (
    ACTION,
    BEHAVIOUR_ATTR,
    DEFINITION_ATTR,
    LOOP,
    AgentDefinition,
    academy_decorator_message,
    is_chiltepin_agent,
    role_of,
)
from chiltepin.agents.errors import reported
from chiltepin.agents.spec import AgentWorkflowSpec
from chiltepin.config.source import WorkflowSource
from chiltepin.tasks import TaskFunction

logger = logging.getLogger(__name__)

#: Seconds an agent's workflow start waits unless something needs the workflow first (a
#: task action starts it at once). A fresh agent is usually called straight away, and the
#: start (about 0.3 s of CPU in the agent and its interchange) would hold those calls up
#: on a small node: answered first, they cost the workflow this much at most.
WORKFLOW_START_DELAY = 0.05

# Names a handle answers itself, so an action with that name could not be called.
_HANDLE_NAMES = frozenset({"action", "ping", "shutdown", "agent_stats", "agent_status"})

__all__ = ["AgentDefinition", "ChiltepinAgent", "build_agent_class", "is_chiltepin_agent"]


class WorkflowNotStarted(RuntimeError):
    """A task action came while the agent was stopping, before its workflow started."""


class ChiltepinAgent(Agent):
    """Base of every generated agent class; not subclassed by hand.

    Starts the agent's Workflow in the background when the agent starts and serves actions
    and loops meanwhile: task actions wait for the workflow. If the workflow fails to
    start, task actions raise its error, other actions still answer, and the agent stops
    with that error when it is shut down. The workflow is always cleaned up in
    ``agent_on_shutdown``.

    Two ways to make one: ``Cls(*args, **kwargs)`` (Academy's own path, e.g. a plain
    ``academy.manager.Manager`` launching the class: the workflow is the decorator's
    defaults), or :meth:`with_workflow`, which takes the workflow spec as an explicit
    argument beside the user's ``__init__`` arguments.
    """

    Behaviour: ClassVar[type]
    __chiltepin_agent__: ClassVar[AgentDefinition]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if DEFINITION_ATTR not in cls.__dict__:
            parents = [b for b in cls.__mro__[1:] if DEFINITION_ATTR in b.__dict__]
            if parents:
                parent = parents[0].__name__
                raise TypeError(
                    f"cannot subclass the chiltepin agent '{parent}': put the shared methods "
                    f"in a plain (undecorated) base class, e.g. 'class {parent}Base: ...', and "
                    f"decorate each subclass of it with @chiltepin_agent()"
                )
            raise TypeError(
                "do not subclass ChiltepinAgent: write a plain class and decorate it with "
                "@chiltepin_agent()"
            )
        super().__init_subclass__(**kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._chiltepin_setup(self.default_workflow(), args, kwargs)
        self.build_behaviour()

    @classmethod
    def default_workflow(cls) -> AgentWorkflowSpec:
        """The decorator's defaults for this agent's workflow."""
        return AgentWorkflowSpec.for_launch(cls.__name__, defaults=cls.__chiltepin_agent__.workflow)

    @classmethod
    def with_workflow(
        cls,
        workflow: WorkflowSource,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> ChiltepinAgent:
        """An agent that will run ``workflow``, made of the user's class with ``args`` and
        ``kwargs``; the user's ``__init__`` runs when the agent starts, where it runs (or
        earlier, with :meth:`build_behaviour`). Academy's ``Manager.launch`` takes it as
        the agent instance to run."""
        agent = cls.__new__(cls)
        Agent.__init__(agent)
        agent._chiltepin_setup(workflow, args or (), kwargs or {})
        return agent

    def _chiltepin_setup(
        self, workflow: WorkflowSource, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if not isinstance(workflow, AgentWorkflowSpec):
            workflow = AgentWorkflowSpec.for_launch(type(self).__name__, defaults=workflow)
        self._chiltepin_spec: AgentWorkflowSpec = workflow
        self._chiltepin_init = (tuple(args), dict(kwargs))
        self._chiltepin_workflow: Any = None
        self._chiltepin_starting: concurrent.futures.Future[Any] | None = None
        self._chiltepin_running: set[asyncio.Task[Any]] = set()
        self._behaviour: Any = None

    def build_behaviour(self) -> Any:
        """Make the instance of the user's class now, if it is not made yet; return it."""
        if self._behaviour is None:
            args, kwargs = self._chiltepin_init
            self._behaviour = type(self).Behaviour(*args, **kwargs)
        return self._behaviour

    @property
    def behaviour(self) -> Any:
        """The instance of the user's class that holds the agent's state (None until the
        agent made by :meth:`with_workflow` starts)."""
        return self._behaviour

    @property
    def workflow_spec(self) -> AgentWorkflowSpec:
        """Where the agent's workflow comes from."""
        return self._chiltepin_spec

    @property
    def workflow(self) -> Any:
        """The agent's running Workflow (None before startup and after shutdown)."""
        return self._chiltepin_workflow

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __reduce_ex__(self, protocol: Any) -> Any:
        cls = type(self)
        if cls.__module__ != "__main__":
            return super().__reduce_ex__(protocol)  # by reference: the worker imports it
        # Defined in the script that launches it: a worker cannot import it, so the class
        # travels by value (dill), as Parsl sends such classes. Its generated methods made
        # that 5.4 ms of a 25 ms launch here; made once per class, a launch takes 0.4 ms.
        return (_agent_of_class, (_class_by_value(cls),), self.__dict__)

    async def agent_on_startup(self) -> None:
        # Actions and loops wait for startup to finish, so they always find the behaviour;
        # they do not wait for the workflow, which starts in the background.
        self.build_behaviour()
        from chiltepin.workflow import start_in_background

        spec = self._chiltepin_spec
        name = type(self).__name__

        def start() -> Any:
            workflow = spec.create_workflow()
            self._chiltepin_workflow = workflow
            workflow.start()
            logger.info(
                "agent %s started its workflow (%s) in %s",
                name,
                ", ".join(workflow.executor_names),
                workflow.run_dir,
            )
            return workflow

        self._chiltepin_starting = start_in_background(start, after=WORKFLOW_START_DELAY)

    async def agent_on_shutdown(self) -> None:
        try:
            await self._stop_running()
        finally:
            starting = self._chiltepin_starting
            from chiltepin.workflow import cancel_background_start

            # A start that has not begun is dropped (an agent stopped at once costs no
            # workflow); one that has cannot be interrupted: it finishes, then is cleaned up.
            if starting is not None and not cancel_background_start(starting):
                with contextlib.suppress(BaseException):
                    await await_future(starting)
            await self._stop_workflow()

    async def _workflow_started(self, needed: bool = True) -> Any:
        """The agent's Workflow once it has started (raises the error its start failed
        with). ``needed``: the caller needs it now (a delayed start begins at once)."""
        starting = self._chiltepin_starting
        if starting is None:
            raise RuntimeError(f"agent {type(self).__name__} has not started")
        if needed:
            from chiltepin.workflow import hurry_background_starts

            hurry_background_starts()
        try:
            return await await_future(starting)
        except concurrent.futures.CancelledError:
            raise WorkflowNotStarted(
                f"agent {type(self).__name__} is shutting down: its workflow was not started"
            ) from None

    @loop
    async def agent_workflow_watch(self, shutdown: asyncio.Event) -> None:
        """If the workflow fails to start, the agent keeps serving (its task actions raise
        that error) and stops with that error when it is shut down."""
        try:
            await self._workflow_started(needed=False)
        except WorkflowNotStarted:
            return  # stopped before it began: nothing failed
        except Exception as failure:
            logger.error(
                "agent %s: its workflow failed to start (%s: %s); its task actions will "
                "raise that error",
                type(self).__name__,
                type(failure).__name__,
                failure,
            )
            with contextlib.suppress(asyncio.CancelledError):
                await shutdown.wait()
            raise failure from None

    @action
    async def agent_workflow_info(self, wait: bool = False) -> dict[str, Any]:
        """The agent's own workflow: run directory, executors, site, and its state
        (``starting``, ``running``, ``failed`` with its ``error``, ``stopped``).

        ``wait``: first wait for the workflow to start (raises its error if it failed).
        """
        if wait:
            await self._workflow_started()
        workflow = self._chiltepin_workflow
        starting = self._chiltepin_starting
        error = None
        if starting is None:
            state = "stopped"
        elif not starting.done():
            state = "starting"
        elif starting.cancelled():
            state = "stopped"
        elif starting.exception() is not None:
            state, failure = "failed", starting.exception()
            error = f"{type(failure).__name__}: {failure}"
        else:
            state = "running" if workflow is not None and workflow.dfk is not None else "stopped"
        return {
            "run_dir": workflow.run_dir if workflow is not None else self._chiltepin_spec.run_dir,
            "executors": list(workflow.executor_names) if workflow is not None else [],
            "site": self._chiltepin_spec.site,
            "state": state,
            "running": state == "running",
            "error": error,
        }

    async def _stop_running(self) -> None:
        # Actions and loops may be using the workflow: stop them before it goes away.
        # (Academy cancels them right after this callback anyway.)
        current = asyncio.current_task()
        running = [t for t in self._chiltepin_running if t is not current and not t.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=10)

    async def _stop_workflow(self) -> None:
        workflow, self._chiltepin_workflow = self._chiltepin_workflow, None
        if workflow is None:
            return
        await asyncio.to_thread(workflow.cleanup)
        logger.info("agent %s cleaned up its workflow", type(self).__name__)

    @contextlib.contextmanager
    def _tracked(self) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self._chiltepin_running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._chiltepin_running.discard(task)


_BY_VALUE: weakref.WeakKeyDictionary[type, bytes] = weakref.WeakKeyDictionary()


def _class_by_value(cls: type) -> bytes:
    """``cls`` pickled by value, once (class changes made after its first launch do not
    reach later launches' workers)."""
    data = _BY_VALUE.get(cls)
    if data is None:
        import dill

        data = _BY_VALUE[cls] = dill.dumps(cls, byref=False)
    return data


@functools.lru_cache(maxsize=64)
def _class_of(data: bytes) -> type:
    """The class :func:`_class_by_value` made ``data`` of, once per process: the agents
    of one class that a worker hosts share it."""
    import dill

    return dill.loads(data)  # noqa: S301 - sent by our own manager, as Parsl sends tasks


def _agent_of_class(data: bytes) -> ChiltepinAgent:
    cls = _class_of(data)
    return cls.__new__(cls)


async def await_future(future: concurrent.futures.Future) -> Any:
    """Await a concurrent (e.g. Parsl) future without blocking the loop.

    Unlike ``asyncio.wrap_future``, cancelling the waiter never calls ``future.cancel()``
    (Parsl futures raise NotImplementedError there).
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()

    def copy_result(done: concurrent.futures.Future) -> None:
        if waiter.done():
            return
        if done.cancelled():
            waiter.set_exception(concurrent.futures.CancelledError())
            return
        exc = done.exception()
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(done.result())

    def on_done(done: concurrent.futures.Future) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(copy_result, done)

    future.add_done_callback(on_done)
    return await waiter


async def _settle(result: Any) -> Any:
    if isinstance(result, concurrent.futures.Future):
        return await await_future(result)
    return result


def build_agent_class(user_cls: type, *, workflow: WorkflowSource) -> type[ChiltepinAgent]:
    """Generate the Academy agent class for ``user_cls`` (see the module docstring)."""
    if not isinstance(user_cls, type):
        raise TypeError(f"@chiltepin_agent decorates a class, got {type(user_cls).__name__}")
    if isinstance(user_cls, type) and issubclass(user_cls, ChiltepinAgent):
        raise TypeError(
            f"'{user_cls.__name__}' is already a chiltepin agent: apply @chiltepin_agent "
            "once (put include/run_dir defaults in that one decorator)"
        )
    if issubclass(user_cls, Agent):
        raise TypeError(
            f"@chiltepin_agent takes a plain class, but '{user_cls.__name__}' inherits from "
            "academy.agent.Agent: drop that base class (chiltepin generates the Academy agent), "
            "or run it as a native agent with academy.manager.Manager"
        )
    actions, loops = _scan(user_cls)
    name, qualname, module = user_cls.__name__, user_cls.__qualname__, user_cls.__module__
    namespace: dict[str, Any] = {
        "__module__": module,
        "__qualname__": qualname,
        "__doc__": user_cls.__doc__,
        DEFINITION_ATTR: AgentDefinition(
            workflow=workflow,
            actions={n: kind for n, (kind, _) in actions.items()},
            loops=tuple(loops),
        ),
        BEHAVIOUR_ATTR: user_cls,
    }
    for action_name, (kind, func) in actions.items():
        namespace[action_name] = _make_action(action_name, kind, func, qualname, module)
    for loop_name, func in loops.items():
        namespace[loop_name] = _make_loop(loop_name, func, qualname, module)
    agent_cls = type(name, (ChiltepinAgent,), namespace)
    # The user class stays importable by reference (pickle/dill) under the agent's name.
    user_cls.__qualname__ = f"{qualname}.{BEHAVIOUR_ATTR}"
    return agent_cls


def _scan(user_cls: type) -> tuple[dict[str, tuple[str, Any]], dict[str, Any]]:
    members: dict[str, Any] = {}
    for klass in reversed(user_cls.__mro__[:-1]):  # base classes first, object excluded
        members.update(vars(klass))
    reserved = set(dir(ChiltepinAgent)) | _HANDLE_NAMES | {BEHAVIOUR_ATTR}
    actions: dict[str, tuple[str, Any]] = {}
    loops: dict[str, Any] = {}
    for name, raw in members.items():
        academy_kind = academy_method_kind(raw)
        if academy_kind is not None:
            raise TypeError(academy_decorator_message(name, academy_kind))
        role = role_of(raw)
        if role is None:
            continue
        if name.startswith("_"):
            raise TypeError(
                f"agent {role} '{name}' starts with '_', and private methods are not exposed: "
                f"rename it (e.g. '{name.lstrip('_')}') or remove @agent_{role}"
            )
        if name in reserved:
            raise TypeError(
                f"agent {role} name '{name}' is reserved by the agent or its handles: rename it"
            )
        func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        if role == LOOP:
            loops[name] = func
        elif role == ACTION:
            actions[name] = (_action_kind(func), func)
    return actions, loops


def _action_kind(func: Any) -> str:
    if isinstance(func, TaskFunction):
        return "task"
    if inspect.iscoroutinefunction(func):
        return "async"
    return "sync"


def _make_action(name: str, kind: str, func: Any, owner_qualname: str, module: str) -> Any:
    if kind == "task":

        async def call(self: ChiltepinAgent, *args: Any, **kwargs: Any) -> Any:
            with self._tracked():
                await self._workflow_started()  # its error if the workflow did not start
                # Submitting a Parsl app only queues it; the result is awaited off-loop.
                future = getattr(self._behaviour, name)(*args, **kwargs)
                return await await_future(future)

    elif kind == "async":

        async def call(self: ChiltepinAgent, *args: Any, **kwargs: Any) -> Any:
            with self._tracked():
                return await _settle(await getattr(self._behaviour, name)(*args, **kwargs))

    else:

        async def call(self: ChiltepinAgent, *args: Any, **kwargs: Any) -> Any:
            with self._tracked():
                method = getattr(self._behaviour, name)
                return await _settle(await self.agent_run_sync(method, *args, **kwargs))

    source = func.func if isinstance(func, TaskFunction) else func
    call = reported(call)  # a Parsl error that cannot be pickled still reaches the caller
    _describe(call, name, source, owner_qualname, module)
    call = action(call, allow_protected_name=True)
    call.__wrapped__ = source  # signature, docs and type hints of the user's method
    return call


def _make_loop(name: str, func: Any, owner_qualname: str, module: str) -> Any:
    async def run(self: ChiltepinAgent, shutdown: asyncio.Event) -> None:
        with self._tracked():
            await getattr(self._behaviour, name)(shutdown)

    _describe(run, name, func, owner_qualname, module)
    run.__annotations__ = {"shutdown": "asyncio.Event", "return": "None"}
    return loop(run)


def _describe(fn: Any, name: str, source: Any, owner_qualname: str, module: str) -> None:
    fn.__name__ = name
    fn.__qualname__ = f"{owner_qualname}.{name}"
    fn.__module__ = module
    fn.__doc__ = getattr(source, "__doc__", None)
    annotations = getattr(source, "__annotations__", None)
    if isinstance(annotations, dict):
        fn.__annotations__ = dict(annotations)
