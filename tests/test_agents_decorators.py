"""The agent decorators and launch checks: every misuse is a TypeError that names the fix.

No Parsl here: launch checks run against a manager on Academy's in-process exchange.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import guide_agents as G
import pytest
from academy.agent import Agent, action, loop
from academy.exchange import LocalExchangeFactory
from helpers import agents as S

from chiltepin.agents import (
    ChiltepinAgent,
    ChiltepinManager,
    agent_action,
    agent_loop,
    chiltepin_agent,
)
from chiltepin.agents.spec import AgentWorkflowSpec
from chiltepin.errors import ConfigError
from chiltepin.tasks import python_task

# --- what the decorators make -------------------------------------------------------------


def test_decorated_class_is_an_academy_agent_exposing_only_marked_methods():
    assert issubclass(S.Probe, ChiltepinAgent) and issubclass(S.Probe, Agent)
    assert S.Probe.__name__ == "Probe" and S.Probe.__module__ == "helpers.agents"
    definition = S.Probe.__chiltepin_agent__
    assert definition.actions == {
        "pid": "async",  # inherited from an undecorated base class, as is placement
        "placement": "async",
        "slow_sync": "sync",
        "ticks_now": "async",
        "fail_sync": "sync",
        "fail_async": "async",
        "fail_task": "task",
        "where": "task",
        "touch": "task",
        "via_task": "async",
    }
    assert definition.loops == ("ticker",)
    assert definition.include == ("compute",)
    assert S.Probe.slow_sync._agent_method_type == "action"
    assert S.Probe.ticker._agent_method_type == "loop"
    assert G.WeatherModel.forecast.__doc__ == "Generate a forecast based on current temperature."


def test_both_decorator_orders_give_task_actions():
    assert G.WeatherModel.__chiltepin_agent__.actions["forecast"] == "task"  # action outermost
    assert G.Computer.__chiltepin_agent__.actions["compute"] == "task"  # task outermost


def test_plain_class_stays_usable_and_everything_pickles_by_reference():
    behaviour = G.Computer.Behaviour()
    assert type(behaviour).__qualname__ == "Computer.Behaviour"
    assert pickle.loads(pickle.dumps(G.Computer)) is G.Computer
    copy = pickle.loads(pickle.dumps(behaviour))
    assert type(copy) is G.Computer.Behaviour
    model = pickle.loads(pickle.dumps(G.TemperatureModel.Behaviour(20.0, "Boulder, CO")))
    assert (model.temperature, model.location) == (20.0, "Boulder, CO")


def test_agent_instance_holds_the_plain_object():
    agent = G.TemperatureModel(3.0, "Fort Collins")  # what the manager does on the worker
    assert isinstance(agent.behaviour, G.TemperatureModel.Behaviour)
    assert agent.behaviour.location == "Fort Collins"
    assert agent.workflow is None  # started only in agent_on_startup


def test_decorator_without_parentheses_and_markers_with_parentheses():
    @chiltepin_agent
    class Bare:
        @agent_action()
        async def hello(self) -> str:
            return "hi"

    assert Bare.__chiltepin_agent__.actions == {"hello": "async"}


# --- misuse at definition time --------------------------------------------------------------


def test_academy_action_inside_a_chiltepin_agent():
    with pytest.raises(TypeError, match=r"Academy's @action.*use chiltepin's @agent_action"):

        @chiltepin_agent()
        class Wrong:
            @action
            async def go(self) -> None: ...


def test_academy_loop_inside_a_chiltepin_agent():
    with pytest.raises(TypeError, match=r"Academy's @loop.*use chiltepin's @agent_loop"):

        @chiltepin_agent()
        class Wrong:
            @loop
            async def spin(self, shutdown: asyncio.Event) -> None: ...


def test_academy_and_chiltepin_markers_on_one_method():
    with pytest.raises(TypeError, match="remove Academy's @action"):

        class Wrong:
            @agent_action
            @action
            async def go(self) -> None: ...


@pytest.mark.parametrize("order", ["action-then-loop", "loop-then-action"])
def test_action_and_loop_on_one_method(order):
    async def both(self, shutdown): ...

    first, second = (
        (agent_loop, agent_action) if order == "action-then-loop" else (agent_action, agent_loop)
    )
    with pytest.raises(TypeError, match="both @agent_action and @agent_loop; choose one"):
        second(first(both))


def test_decorating_a_class_twice():
    with pytest.raises(TypeError, match="already a chiltepin agent: apply @chiltepin_agent once"):
        chiltepin_agent(agent_workflow_include=["compute"])(G.Computer)


def test_subclassing_a_decorated_agent():
    with pytest.raises(TypeError, match=r"cannot subclass the chiltepin agent 'Computer'.*plain"):

        class MoreComputer(G.Computer):
            pass


def test_subclassing_the_base_by_hand():
    with pytest.raises(TypeError, match="do not subclass ChiltepinAgent"):

        class Handmade(ChiltepinAgent):
            pass


def test_decorating_a_native_academy_agent():
    class Native(Agent):
        pass

    with pytest.raises(TypeError, match="takes a plain class.*inherits from academy.agent.Agent"):
        chiltepin_agent()(Native)


def test_sync_loop():
    with pytest.raises(TypeError, match=r"must be async: write 'async def poll\(self, shutdown\)"):

        class Wrong:
            @agent_loop
            def poll(self, shutdown): ...


def test_task_as_loop():
    with pytest.raises(TypeError, match="is a task; loops run on the agent itself"):

        class Wrong:
            @agent_loop
            @python_task
            def poll(self, shutdown): ...


@pytest.mark.parametrize(
    "signature",
    ["self", "self, shutdown, extra", "self, stop", "self, *, shutdown", "self, *shutdown"],
)
def test_loop_with_wrong_parameters(signature):
    namespace: dict = {}
    exec(f"async def poll({signature}): ...", namespace)
    with pytest.raises(TypeError, match="exactly one parameter after self, named 'shutdown'"):
        agent_loop(namespace["poll"])


def test_private_and_reserved_names():
    with pytest.raises(TypeError, match="'_hidden' starts with '_'.*rename it"):

        @chiltepin_agent()
        class Private:
            @agent_action
            async def _hidden(self) -> None: ...

    with pytest.raises(TypeError, match="'shutdown' is reserved.*rename it"):

        @chiltepin_agent()
        class Clash:
            @agent_action
            async def shutdown(self) -> None: ...

    with pytest.raises(TypeError, match="'agent_describe' is reserved"):

        @chiltepin_agent()
        class Clash2:
            @agent_action
            async def agent_describe(self) -> None: ...


def test_generator_action():
    with pytest.raises(TypeError, match="is a generator"):

        class Wrong:
            @agent_action
            def numbers(self):
                yield 1


def test_decorator_arguments():
    with pytest.raises(TypeError, match="keyword arguments only"):
        chiltepin_agent(["compute"])
    with pytest.raises(TypeError, match="must list executor names"):
        chiltepin_agent(agent_workflow_include=[1])


SCRIPT_AGENT = """
import pickle, sys
from chiltepin.agents import agent_action, chiltepin_agent
from chiltepin.agents import behaviour
from chiltepin.agents.spec import AgentWorkflowSpec

@chiltepin_agent()
class Scripted:
    def __init__(self, base):
        self.base = base

    @agent_action
    def add(self, x):
        return self.base + x

spec = AgentWorkflowSpec(config={"idle": {"provider": "localhost"}}, agent_name="Scripted")
first, second = (Scripted.with_workflow(spec, (n,)) for n in (40, 50))
with open(sys.argv[1], "wb") as out:
    pickle.dump([first, second], out)
assert list(behaviour._BY_VALUE.values()) == [behaviour._class_by_value(Scripted)]
"""

LOAD_AGENT = """
import pickle, sys
with open(sys.argv[1], "rb") as source:
    first, second = pickle.load(source)
assert type(first) is type(second), "one class per process"
assert type(first).__module__ == "__main__" and type(first).__name__ == "Scripted"
print(first.build_behaviour().add(2), second.build_behaviour().add(2))
print(sorted(first.__chiltepin_agent__.actions), first.workflow_spec.agent_name)
"""


def test_an_agent_class_defined_in_a_script_travels_by_value(tmp_path):
    """A worker cannot import the launching script: the class goes by value, made once per
    class where it is launched and loaded once per process where it runs (plain pickle
    here; Parsl's dill takes the same path)."""
    data = tmp_path / "agents.pickle"
    subprocess.run([sys.executable, "-c", SCRIPT_AGENT, str(data)], check=True)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AGENT, str(data)], check=True, capture_output=True, text=True
    )
    assert done.stdout.split("\n")[:2] == ["42 52", "['add'] Scripted"], done.stdout


async def test_an_agent_stopped_before_its_workflow_starts_never_starts_it(tmp_path, monkeypatch):
    """Its start waits a little (WORKFLOW_START_DELAY, long here): shut down first, the
    agent drops it and stops cleanly, with no workflow to clean up."""
    from chiltepin.agents import behaviour

    monkeypatch.setattr(behaviour, "WORKFLOW_START_DELAY", 600.0)
    run_dir = tmp_path / "agent-workflow"
    async with await ChiltepinManager.from_exchange_factory(LocalExchangeFactory()) as manager:
        handle = await manager.launch(
            S.Probe,
            agent_workflow_config={"idle": {"provider": "localhost", "init_blocks": 0}},
            agent_workflow_include=["idle"],
            agent_workflow_run_dir=run_dir,
        )
        info = await handle.agent_workflow_info()
        assert info["state"] == "starting", info
        await handle.shutdown()
        assert await manager.agent_failure(handle.agent_id, timeout=30) is None
        assert manager.running() == set()
    assert not run_dir.exists()


# --- launch checks ---------------------------------------------------------------------------


@pytest.fixture
async def local_manager():
    async with await ChiltepinManager.from_exchange_factory(
        LocalExchangeFactory(), executors={"threads": ThreadPoolExecutor(1)}
    ) as manager:
        yield manager


class Plain:
    @agent_action
    async def go(self) -> None: ...


class Native(Agent):
    @action
    async def go(self) -> None: ...


async def test_launch_refuses_undecorated_classes(local_manager):
    with pytest.raises(TypeError, match="'Plain' is not a chiltepin agent: decorate the class"):
        await local_manager.launch(Plain)
    with pytest.raises(TypeError, match="'Native' is a native Academy agent.*academy.manager"):
        await local_manager.launch(Native)
    with pytest.raises(TypeError, match=r"launch the class, not an instance"):
        await local_manager.launch(G.Computer())
    with pytest.raises(TypeError, match=r"TypedAgent\(values.*cannot take args=\(\).*missing"):
        await local_manager.launch(G.TypedAgent, agent_workflow_config={})
    with pytest.raises(TypeError, match="unexpected keyword argument 'units'"):
        await local_manager.launch(G.Computer, kwargs={"units": "C"})
    assert local_manager.running() == set()


async def test_launch_checks_infrastructure_first(local_manager):
    with pytest.raises(ConfigError, match="no manager executor named 'nowhere'.*threads"):
        await local_manager.launch(G.Computer, executor="nowhere")
    with pytest.raises(ConfigError, match="cannot reach a LocalExchangeFactory"):
        await local_manager.launch(G.Computer, executor="threads")
    with pytest.raises(ConfigError, match="either agent_workflow_config or site"):
        await local_manager.launch(G.Computer, agent_workflow_config={}, site="somewhere")
    with pytest.raises(ConfigError, match="'compute' is not defined"):
        await local_manager.launch(G.WeatherModel, args=(1.0,))  # decorator include, no config
    async with local_manager.launch_batch() as batch:
        with pytest.raises(TypeError, match="not a chiltepin agent"):
            await batch.queue(Plain)
    assert local_manager.running() == set()


# --- the agent's workflow spec ------------------------------------------------------------------


def test_launch_values_override_decorator_defaults():
    def spec(**launch):
        return AgentWorkflowSpec.for_launch(
            "Model", default_include=("default-compute",), default_run_dir="./runs", **launch
        )

    assert spec().include == ("default-compute",) and spec().run_dir == "./runs"
    special = spec(include=["special-compute"], run_dir="/tmp/runs", config={"a": {}})
    assert special.include == ("special-compute",) and special.run_dir == "/tmp/runs"
    assert spec(include="one").include == ("one",)


def test_spec_builds_the_workflow_with_a_unique_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {"compute": {"provider": "localhost"}}
    spec = AgentWorkflowSpec.for_launch(
        "Model", default_include=("compute",), default_run_dir=None, config=config
    )
    config["compute"]["provider"] = "slurm"  # the caller's later change does not leak in
    first, second = spec.create_workflow(), spec.create_workflow()
    assert first.executor_names == ["compute"]
    assert first.resources["compute"].provider == "localhost"
    assert first.run_dir != second.run_dir
    assert first.run_dir.startswith(str(tmp_path / "runinfo" / "agents" / "Model"))


def test_spec_check_skips_paths_that_may_exist_only_where_the_agent_runs(tmp_path):
    remote = AgentWorkflowSpec(config=str(tmp_path / "not-here.yaml"))
    remote.check()  # no error: the agent will read it
    with pytest.raises(ConfigError, match="file not found"):
        remote.create_workflow()
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute:\n  provider: localhost\n  bogus: 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        AgentWorkflowSpec(config=str(bad)).check()


def test_site_spec_builds_a_site_workflow():
    spec = AgentWorkflowSpec.for_launch(
        "Model", default_include=None, default_run_dir=None, site="local"
    )
    spec.check()
    assert spec.create_workflow().site == "local"


# --- imports stay light -------------------------------------------------------------------------


def test_imports_stay_lazy():
    code = (
        "import sys, chiltepin\n"
        "heavy = ('parsl', 'academy', 'globus_sdk', 'globus_compute_sdk')\n"
        "assert not [m for m in heavy if m in sys.modules], sys.modules.keys()\n"
        "import chiltepin.agents\n"
        "from chiltepin.agents import chiltepin_agent, AgentSystem, ChiltepinManager\n"
        "assert 'parsl' not in sys.modules\n"
        "assert chiltepin.AgentSystem is AgentSystem\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
