"""One value says where a workflow's resources come from; it is resolved once.

``WorkflowSource`` (config or site, include, run dir) owns the "config or site" rule and
resolves into the resources plus each executor's origin; ``Workflow``, ``ContainerPlan``,
``AgentSystem`` and the agents take it, and none of them reads a site profile again. The
agent's workflow spec travels as an explicit argument of the agent, not in the user's
keyword arguments. No Parsl workflow starts here.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import guide_agents as G
import pytest

from chiltepin import AgentSystem, Workflow, WorkflowSource
from chiltepin.agents.spec import AgentWorkflowSpec
from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import ConfigError
from chiltepin.sites.registry import SiteRegistry

CONTAINER_SITE = (
    "scheduler: localhost\n"
    "exchange: {kind: redis, port: 6390}\n"
    "container:\n  runtime: podman\n  image: x:1\n  binds: [/nonexistent/scratch]\n"
    "executors: {c: {}, host: {container: false}}\n"
)


@pytest.fixture
def site_loads(monkeypatch):
    """Counts how often a site profile is read (the real loader runs)."""
    calls: list[str] = []
    real = SiteRegistry.load

    def load(self, name):
        calls.append(name)
        return real(self, name)

    monkeypatch.setattr(SiteRegistry, "load", load)
    return calls


@pytest.fixture
def container_site(tmp_path, monkeypatch):
    (tmp_path / "s.yaml").write_text(CONTAINER_SITE)
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(tmp_path))
    return tmp_path / "s.yaml"


def test_config_or_site_not_both_and_plain_values():
    with pytest.raises(ConfigError, match="give either a config or a site, not both"):
        WorkflowSource(config={"x": {}}, site="local")
    with pytest.raises(ConfigError, match="site must be a site profile name"):
        WorkflowSource(site=3)  # type: ignore[arg-type]
    mapping = {"compute": {"provider": "localhost"}}
    source = WorkflowSource(config=mapping, include="compute", run_dir=Path("/tmp/r"))
    mapping["compute"]["provider"] = "slurm"  # the caller's later change does not leak in
    assert source.config == {"compute": {"provider": "localhost"}}
    assert (source.include, source.run_dir) == (("compute",), "/tmp/r")
    assert pickle.loads(pickle.dumps(source)) == source
    assert WorkflowSource.of(source) is source
    assert WorkflowSource.of(source, include=["local"]).include == ("local",)


def test_a_site_resolves_once_into_resources_origins_and_exchange(container_site, site_loads):
    resolved = WorkflowSource(site="s", include=["c", "local"]).resolve()
    assert site_loads == ["s"]
    assert list(resolved.resources) == ["c", "local"]
    assert resolved.exchange == ExchangeSettings(kind="redis", port=6390)
    where = resolved.origins["c"]
    assert (where.site, where.executor, where.source, where.line) == (
        "s",
        "c",
        str(container_site),
        3,
    )
    assert resolved.origins["local"].source is None  # the built-in resource
    assert pickle.loads(pickle.dumps(resolved)).resources == resolved.resources


def test_workflow_and_its_containers_read_the_site_once(container_site, site_loads, tmp_path):
    workflow = Workflow(site="s", include=["c"], run_dir=tmp_path / "run")
    # The container check names the profile's file and line from the carried origin.
    with pytest.raises(ConfigError, match=r"s\.yaml:3: site 's' executor 'c'.*bind source"):
        workflow.start()
    assert site_loads == ["s"] and workflow.dfk is None
    again = Workflow(workflow.resolved, run_dir=tmp_path / "other")
    assert again.resources == workflow.resources and site_loads == ["s"]
    with pytest.raises(TypeError, match="resolved already"):
        Workflow(workflow.resolved, include=["c"])


def test_agent_system_reads_its_site_once(container_site, site_loads):
    system = AgentSystem(site="s", executor_names=["host"])
    assert system.exchange == ExchangeSettings(kind="redis", port=6390)
    assert system.site == "s" and system.workflow is None and site_loads == ["s"]
    from_source = AgentSystem(WorkflowSource(site="s"), ["host"])
    assert from_source.site == "s" and site_loads == ["s", "s"]
    with pytest.raises(ConfigError, match="give AgentSystem either a workflow or a site"):
        AgentSystem(WorkflowSource(), site="s")


# --- the agent's workflow spec: an explicit argument ------------------------------------------


def test_the_spec_is_an_explicit_argument_of_the_agent_not_a_keyword():
    spec = AgentWorkflowSpec.for_launch(
        "TypedAgent", defaults=G.TypedAgent.__chiltepin_agent__.workflow, include=["local"]
    )
    agent = G.TypedAgent.with_workflow(spec, ([1.0, 3.0],), {})
    assert agent.workflow_spec is spec and agent.behaviour is None  # __init__ runs at start
    travelled = pickle.loads(pickle.dumps(agent))  # what a worker receives
    assert travelled.workflow_spec == spec
    assert travelled.build_behaviour().values == [1.0, 3.0]
    # Academy's own path (the class and the user's arguments): the decorator's defaults.
    plain = G.WeatherModel(21.0)
    assert plain.behaviour.temperature == 21.0
    assert plain.workflow_spec.include == ("compute",) and plain.workflow_spec.config is None
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        G.TypedAgent([1.0], __chiltepin_agent_workflow__=spec)


def test_the_decorator_and_launch_take_a_workflow_source(tmp_path):
    from chiltepin.agents import agent_action, chiltepin_agent

    default = WorkflowSource(config={"gpu": {"provider": "localhost"}}, include=["gpu"])

    @chiltepin_agent(agent_workflow=default, agent_workflow_run_dir=str(tmp_path))
    class Trainer:
        @agent_action
        async def ping_me(self) -> str:
            return "pong"

    definition = Trainer.__chiltepin_agent__
    assert definition.workflow.config == default.config and definition.run_dir == str(tmp_path)
    spec = Trainer.default_workflow()
    assert (spec.include, spec.run_dir, spec.agent_name) == (("gpu",), str(tmp_path), "Trainer")
    site_spec = AgentWorkflowSpec.for_launch("Trainer", defaults=default, site="local")
    assert site_spec.site == "local" and site_spec.config is None  # launch's site wins
    with pytest.raises(TypeError, match="agent_workflow must be a WorkflowSource"):
        chiltepin_agent(agent_workflow={"gpu": {}})


# --- no import cycle in the agent layer ---------------------------------------------------------


def _agent_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chiltepin.agents."):
            names.add(node.module.split(".")[2])
    return names


def test_the_agent_modules_import_each_other_without_a_cycle():
    import chiltepin.agents

    folder = Path(chiltepin.agents.__file__).parent
    graph = {p.stem: _agent_imports(p) for p in folder.glob("*.py") if p.stem != "__init__"}
    assert graph["spec"] & {"behaviour", "decorators", "manager"} == set()
    assert "decorators" not in graph["behaviour"]
    assert graph["_definition"] == set() and graph["_academy_compat"] == set()

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in graph.get(node, ()):
            if nxt == start:
                return (*seen, nxt)
            if nxt not in seen:
                found = cycle_from(start, nxt, (*seen, nxt))
                if found:
                    return found
        return None

    cycles = [c for m in graph if (c := cycle_from(m, m, (m,)))]
    assert cycles == []
