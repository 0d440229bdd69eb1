"""Task decorators and Workflow on real Parsl executors (localhost provider)."""

from __future__ import annotations

import pytest
from helpers import tasks as ts

from chiltepin import Workflow
from chiltepin.errors import ConfigError
from chiltepin.tasks import TaskFunction, merge_geometry

CONFIG = {
    "alpha": {
        "init_blocks": 1,
        "max_workers_per_node": 2,
        "environment": ["export CHILTEPIN_TEST_RESOURCE=alpha"],
    },
    "beta": {
        "init_blocks": 1,
        "max_workers_per_node": 1,
        "environment": ["export CHILTEPIN_TEST_RESOURCE=beta"],
    },
}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    wf = Workflow(CONFIG, include=["alpha", "beta"], run_dir=tmp_path_factory.mktemp("run"))
    with wf:
        yield wf
    assert wf.dfk is None


def test_python_task_returns_result(workflow):
    assert ts.add(2, 3).result(timeout=60) == 5


def test_executor_is_chosen_per_call(workflow):
    assert ts.where(executor="alpha").result(timeout=60) == "alpha"
    assert ts.where(executor="beta").result(timeout=60) == "beta"
    assert ts.where(executor=["beta"]).result(timeout=60) == "beta"


def test_unknown_executor_is_a_clear_error(workflow):
    with pytest.raises(ConfigError, match="asks for executor 'gamma'.*available: alpha, beta"):
        ts.add(1, 1, executor="gamma")


def test_bash_task_writes_stdout(workflow, tmp_path):
    out = tmp_path / "echo.out"
    assert ts.echo("chiltepin", stdout=str(out)).result(timeout=60) == 0
    assert out.read_text().strip() == "chiltepin"


def test_bash_task_failure_is_an_exception(workflow):
    from parsl.app.errors import BashExitFailure

    with pytest.raises(BashExitFailure):
        ts.exit_with(3).result(timeout=60)


def test_python_task_failure_propagates(workflow):
    with pytest.raises(ValueError, match="boom 42"):
        ts.fail("boom 42").result(timeout=60)


def test_join_task_waits_for_inner_tasks(workflow):
    assert ts.sum_of_adds(4).result(timeout=60) == 2 * (0 + 1 + 2 + 3)


def test_method_tasks_read_self(workflow, tmp_path):
    scaler = ts.Scaler(7)
    assert scaler.scale(6).result(timeout=60) == 42
    out = tmp_path / "say.out"
    assert scaler.say(stdout=str(out)).result(timeout=60) == 0
    assert out.read_text().strip() == "factor=7"


def test_function_receives_only_declared_keywords(workflow):
    # walltime and parsl_resource_specification are Parsl's; the function declares neither
    assert ts.declares_nothing(5, walltime=30).result(timeout=60) == 5
    assert ts.takes_all(1, walltime=30, extra=2).result(timeout=60) == ["extra", "walltime"]


def test_geometry_on_a_non_mpi_resource_is_rejected(workflow):
    from parsl.executors.errors import InvalidResourceSpecification

    geometry = {"num_nodes": 1, "num_ranks": 2, "ranks_per_node": 2}
    with pytest.raises(InvalidResourceSpecification):
        ts.sees_spec(chiltepin_task_geometry=geometry, executor="alpha").result(timeout=60)


def test_app_is_built_once_per_workflow_and_executor(workflow):
    fn: TaskFunction = ts.add
    assert fn.app("alpha") is fn.app("alpha")
    assert fn.app("alpha") is not fn.app("beta")


def test_merge_geometry_geometry_keys_win():
    merged = merge_geometry({"num_nodes": 2, "num_ranks": 8}, {"num_ranks": 4, "x": 1})
    assert merged == {"num_nodes": 2, "num_ranks": 8, "x": 1}
    with pytest.raises(TypeError, match="must be a dict, got list"):
        merge_geometry([("num_nodes", 2)], None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown task geometry key 'nodes'"):
        merge_geometry({"nodes": 2}, None)


def test_task_functions_pickle_without_their_apps(workflow):
    import pickle

    ts.add.app("alpha")
    clone = pickle.loads(pickle.dumps(ts.Scaler(2)))
    assert clone.factor == 2
