"""Workflow lifecycle on real Parsl executors: cleanup always, nothing left behind."""

from __future__ import annotations

import pytest
import task_support as ts

from chiltepin import Workflow
from chiltepin.errors import ConfigError


def test_cleanup_after_exception_leaves_nothing(tmp_path, no_leftovers):
    wf = Workflow({"solo": {"init_blocks": 1}}, include=["solo"], run_dir=tmp_path / "r")
    with pytest.raises(RuntimeError, match="user error"):
        with wf:
            assert ts.add(1, 1).result(timeout=60) == 2
            raise RuntimeError("user error")
    assert wf.dfk is None


def test_cleanup_is_idempotent_and_start_restarts(tmp_path, no_leftovers):
    wf = Workflow(include=["local"], run_dir=tmp_path / "r")
    dfk = wf.start()
    assert wf.start() is dfk
    assert ts.add(2, 2).result(timeout=60) == 4
    wf.cleanup()
    wf.cleanup()


def test_second_workflow_in_same_process_is_refused(tmp_path, no_leftovers):
    with Workflow(include=["local"], run_dir=tmp_path / "a"):
        other = Workflow(include=["local"], run_dir=tmp_path / "b")
        with pytest.raises(ConfigError, match="already running"):
            other.start()
