"""Workflow lifecycle on real Parsl executors: cleanup always, nothing left behind."""

from __future__ import annotations

import pytest
from helpers import tasks as ts

from chiltepin import Workflow
from chiltepin.errors import ConfigError


def test_cleanup_after_exception_leaves_nothing(tmp_path, no_leftovers):
    wf = Workflow({"solo": {"init_blocks": 1}}, include=["solo"], run_dir=tmp_path / "r")
    with pytest.raises(RuntimeError, match="user error"):
        with wf:
            assert ts.add(1, 1).result(timeout=60) == 2
            raise RuntimeError("user error")
    assert wf.dfk is None


def test_cleanup_is_idempotent_and_start_twice_is_refused(tmp_path, no_leftovers):
    wf = Workflow(include=["local"], run_dir=tmp_path / "r")
    dfk = wf.start()
    with pytest.raises(RuntimeError, match="already started"):
        wf.start()
    assert wf.dfk is dfk
    assert ts.add(2, 2).result(timeout=60) == 4
    wf.cleanup()
    wf.cleanup()
    assert wf.dfk is None
    wf.start()  # a cleaned-up workflow starts again
    assert ts.add(3, 3).result(timeout=60) == 6
    wf.cleanup()


def test_second_workflow_in_same_process_is_refused(tmp_path, no_leftovers):
    with Workflow(include=["local"], run_dir=tmp_path / "a"):
        other = Workflow(include=["local"], run_dir=tmp_path / "b")
        with pytest.raises(ConfigError, match="already running"):
            other.start()


def test_remote_resource_without_globus_login_is_a_clear_error(tmp_path, monkeypatch):
    # Up to the Globus boundary: no tokens and no client credentials on this machine.
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(tmp_path / "gc"))
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_SECRET", raising=False)
    wf = Workflow(
        {"remote": {"endpoint": "2f0a8ac8-2a4e-4a4b-9a8a-0d1c6a0d5f4e", "partition": "x"}},
        include=["remote"],
        run_dir=tmp_path / "r",
    )
    with pytest.raises(ConfigError, match="executor 'remote'.*needs a Globus login"):
        wf.start()
    assert wf.dfk is None


def test_remote_endpoint_by_unknown_local_name(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(tmp_path / "gc"))
    wf = Workflow({"remote": {"endpoint": "my-endpoint"}}, include=["remote"], run_dir=tmp_path)
    with pytest.raises(ConfigError, match="endpoint 'my-endpoint' is neither a UUID"):
        wf.start()


def test_run_dirs_are_unique_and_log_options_apply(tmp_path):
    a, b = Workflow(), Workflow()
    assert a.run_dir != b.run_dir
    log = tmp_path / "wf.log"
    with Workflow(include=["local"], run_dir=tmp_path / "r", log_file=log, log_level="DEBUG"):
        assert ts.add(1, 2).result(timeout=60) == 3
    assert "DataFlowKernel" in log.read_text()
    with pytest.raises(ConfigError, match="unknown log level 'LOUD'"):
        Workflow(log_level="LOUD")


def test_initial_blocks_start_at_once_and_blocks_that_never_start_fail_the_tasks(tmp_path):
    """The initial blocks are launched as soon as the executor has started (not on the
    scaling strategy's next pass), exactly as many as asked for; when all of them fail
    to start, the executor's tasks fail with what happened instead of waiting."""
    import pytest

    from chiltepin.tasks import python_task

    @python_task
    def never_runs():
        return None

    resources = {
        "broken": {
            "provider": "localhost",
            "init_blocks": 2,
            "max_blocks": 2,
            "environment": ["echo 'no pool here' >&2", "exit 3"],
        }
    }
    with Workflow(resources, run_dir=tmp_path / "run", include=["broken"]) as dfk:
        executor = dfk.executors["broken"]
        assert sorted(executor.blocks_to_job_id) == ["0", "1"]  # before any strategy pass
        assert executor.provider.init_blocks == 0  # the strategy does not launch them again
        with pytest.raises(
            Exception, match=r"executor 'broken': none of its 2 block\(s\) started"
        ) as caught:
            never_runs(executor="broken").result(timeout=120)
        assert "no pool here; exit code 3" in str(caught.value)  # what the job said
        assert sorted(executor.blocks_to_job_id) == ["0", "1"]


def test_a_delayed_background_start_begins_when_a_task_needs_the_workflow():
    """An agent's workflow start waits a little (its first calls are answered first),
    unless something needs the workflow: a task submitted meanwhile starts it at once."""
    import threading

    from chiltepin.workflow import loaded_dfk, start_in_background

    began = threading.Event()

    def start():
        began.set()
        raise RuntimeError("started, and failed on purpose")

    future = start_in_background(start, after=600)
    assert not began.wait(0.3)  # still waiting
    import pytest

    with pytest.raises(RuntimeError, match="failed on purpose"):
        loaded_dfk()  # what a task submission does: the start begins now
    assert began.is_set() and future.done()


def test_a_delayed_background_start_dropped_before_it_begins_never_runs():
    """What an agent shut down at once does with its workflow's start."""
    import threading

    from chiltepin.workflow import cancel_background_start, start_in_background

    began = threading.Event()
    future = start_in_background(began.set, after=600)
    assert cancel_background_start(future) and future.cancelled()
    assert not began.wait(0.3)
    started = start_in_background(began.set)  # no delay: begun (and done) at once
    assert began.wait(30)
    assert not cancel_background_start(started) and started.result(timeout=30) is None
