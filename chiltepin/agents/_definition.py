"""What the agent modules share: the markers, the record ``@chiltepin_agent`` keeps on a
class, and the include-list check. A leaf module: it imports no other agent module, so
``decorators``, ``behaviour``, ``spec`` and ``manager`` all import it and not each other
in a cycle."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from chiltepin.config.source import WorkflowSource

#: Attribute set on a marked method: "action" or "loop".
ROLE_ATTR = "__chiltepin_role__"
ACTION = "action"
LOOP = "loop"
#: Class attribute of a generated agent class holding its :class:`AgentDefinition`.
DEFINITION_ATTR = "__chiltepin_agent__"
#: Class attribute of a generated agent class holding the user's class.
BEHAVIOUR_ATTR = "Behaviour"


@dataclasses.dataclass(frozen=True)
class AgentDefinition:
    """What ``@chiltepin_agent`` recorded about a class."""

    #: The decorator's defaults for the agent's workflow (launch arguments override them).
    workflow: WorkflowSource
    actions: dict[str, str]  # name -> "task" | "async" | "sync"
    loops: tuple[str, ...]

    @property
    def include(self) -> tuple[str, ...] | None:
        return self.workflow.include

    @property
    def run_dir(self) -> str | None:
        return self.workflow.run_dir


def is_chiltepin_agent(obj: Any) -> bool:
    """Whether ``obj`` is a class made by ``@chiltepin_agent`` (not a subclass of one)."""
    return isinstance(obj, type) and DEFINITION_ATTR in getattr(obj, "__dict__", {})


def definition_of(agent_cls: type) -> AgentDefinition:
    return agent_cls.__dict__[DEFINITION_ATTR]


def role_of(obj: Any) -> str | None:
    """The chiltepin role marked on ``obj`` ("action", "loop") or None."""
    return own_attr(function_of(obj), ROLE_ATTR)


def function_of(obj: Any) -> Any:
    return obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj


def own_attr(obj: Any, name: str) -> Any:
    # Look only in the object's own __dict__: some objects (e.g. Academy handles) answer
    # every attribute through __getattr__.
    try:
        return vars(obj).get(name)
    except TypeError:
        return None


def include_list(include: Iterable[str] | None) -> tuple[str, ...] | None:
    """``agent_workflow_include`` as a tuple (one string is one name); TypeError otherwise."""
    if include is None:
        return None
    if isinstance(include, str):
        return (include,)
    names = tuple(include)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"agent_workflow_include must list executor names (strings), got {name!r}"
            )
    return names


def academy_decorator_message(name: str, kind: str) -> str:
    return (
        f"method '{name}' uses Academy's @{kind} inside a @chiltepin_agent class; use "
        f"chiltepin's @agent_{kind} instead (from chiltepin.agents import agent_{kind}). "
        "Academy's decorators are for academy.agent.Agent subclasses run by academy's Manager"
    )
