"""Method markers ``agent_action`` / ``agent_loop`` and the class decorator ``chiltepin_agent``.

The markers only tag a method (they return it unchanged); ``chiltepin_agent`` reads the tags
and builds the Academy agent. Every misuse that can be seen at definition time raises a
TypeError that says how to fix it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from chiltepin.agents._academy_compat import academy_method_kind
from chiltepin.agents._definition import (
    ACTION,
    LOOP,
    ROLE_ATTR,
    function_of,
    include_list,
    role_of,
)
from chiltepin.config.source import WorkflowSource
from chiltepin.tasks import TaskFunction


def agent_action(method: Any = None) -> Any:
    """Expose a method (sync, async, or a ``@python_task``/``@bash_task``) as an agent action.

    Sync actions run in a thread, so they never stall the agent's other actions or loops.
    Task actions return the task's result to the caller. Order with the task decorators
    does not matter.
    """
    if method is None:  # @agent_action()
        return agent_action
    target = function_of(method)
    _refuse_academy(target, "agent_action")
    name = _name(target)
    if not callable(target):
        raise TypeError(f"@agent_action decorates a method, got {type(method).__name__}")
    if inspect.isasyncgenfunction(target) or inspect.isgeneratorfunction(target):
        raise TypeError(
            f"@agent_action method '{name}' is a generator; actions return one value: "
            "return a list instead of yielding"
        )
    if role_of(target) == LOOP:
        raise TypeError(_both_message(name))
    _set_role(target, ACTION)
    return method


def agent_loop(method: Any = None) -> Any:
    """Run an async method ``(self, shutdown)`` in the background for the agent's life.

    ``shutdown`` is an ``asyncio.Event`` set when the agent stops. Checked here: the method
    must be ``async def``, take exactly ``self`` and ``shutdown``, and not be an action.
    """
    if method is None:  # @agent_loop()
        return agent_loop
    if isinstance(method, (staticmethod, classmethod)):
        raise TypeError(
            "@agent_loop decorates an instance method: write 'async def name(self, shutdown): ...'"
        )
    _refuse_academy(method, "agent_loop")
    name = _name(method)
    if role_of(method) == ACTION:
        raise TypeError(_both_message(name))
    if isinstance(method, TaskFunction):
        raise TypeError(
            f"@agent_loop method '{name}' is a task; loops run on the agent itself. "
            "Make the loop 'async def' and call the task from inside it "
            "(await asyncio.wrap_future(self.task_method()))"
        )
    if not inspect.iscoroutinefunction(method):
        raise TypeError(
            f"@agent_loop method '{name}' must be async: write 'async def {name}(self, shutdown):'"
            " (loops share the agent's event loop; put blocking work in an @agent_action"
            " or a task)"
        )
    params = list(inspect.signature(method).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if (
        len(params) != 2
        or any(p.kind not in positional for p in params)
        or params[1].name != "shutdown"
    ):
        shown = ", ".join(str(p) for p in params)
        raise TypeError(
            f"@agent_loop method '{name}({shown})' must take exactly one parameter after self,"
            f" named 'shutdown' (an asyncio.Event): write 'async def {name}(self, shutdown):'"
        )
    _set_role(method, LOOP)
    return method


def chiltepin_agent(
    cls: type | None = None,
    *,
    agent_workflow_include: Iterable[str] | None = None,
    agent_workflow_run_dir: str | None = None,
    agent_workflow: WorkflowSource | None = None,
) -> Any:
    """Turn a plain, picklable class into an Academy agent that runs its own Workflow.

    The agent starts ``Workflow(config, include=..., run_dir=...)`` when it starts and cleans
    it up when it stops; the config comes from ``ChiltepinManager.launch``. The arguments here
    are defaults that ``launch`` may override: ``agent_workflow`` (a
    :class:`~chiltepin.config.source.WorkflowSource`), whose include and run directory
    ``agent_workflow_include`` / ``agent_workflow_run_dir`` replace. Only ``@agent_action``
    and ``@agent_loop`` methods are exposed.
    """
    include = include_list(agent_workflow_include)
    if agent_workflow is not None and not isinstance(agent_workflow, WorkflowSource):
        raise TypeError(
            f"agent_workflow must be a WorkflowSource, got {type(agent_workflow).__name__}"
        )
    workflow = WorkflowSource.of(agent_workflow, include=include, run_dir=agent_workflow_run_dir)

    def decorate(target: type) -> type:
        # One direction only: behaviour never imports this module.
        from chiltepin.agents.behaviour import build_agent_class

        return build_agent_class(target, workflow=workflow)

    if cls is None:
        return decorate
    if not isinstance(cls, type):
        raise TypeError(
            "chiltepin_agent takes keyword arguments only: "
            "@chiltepin_agent(agent_workflow_include=[...])"
        )
    return decorate(cls)


def _refuse_academy(obj: Any, decorator: str) -> None:
    kind = academy_method_kind(obj)
    if kind is not None:
        raise TypeError(
            f"@{decorator} on '{_name(obj)}', which already has Academy's @{kind}: "
            f"remove Academy's @{kind} (chiltepin's @agent_action/@agent_loop replace it)"
        )


def _both_message(name: str) -> str:
    return (
        f"method '{name}' is marked both @agent_action and @agent_loop; choose one: "
        "an action answers calls, a loop runs in the background. Split it into two methods"
    )


def _set_role(obj: Any, role: str) -> None:
    try:
        setattr(obj, ROLE_ATTR, role)
    except AttributeError:
        raise TypeError(f"cannot mark {obj!r} as an agent {role}: decorate a function") from None


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", None) or type(obj).__name__


__all__ = ["agent_action", "agent_loop", "chiltepin_agent"]
