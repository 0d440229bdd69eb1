"""tests/run.sh's two lanes: which processes a lane's leftover checks count as its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import processes as P


@pytest.fixture
def sleepers():
    """Three processes: marked for the local lane, for the cluster lane, and unmarked (as
    a process in a container is)."""
    base = {k: v for k, v in os.environ.items() if k != "CHILTEPIN_TEST_LANE"}
    code = ["-c", "import time; time.sleep(120)"]
    procs = {
        lane: subprocess.Popen(
            [sys.executable, *code], env={**base, **({"CHILTEPIN_TEST_LANE": lane} if lane else {})}
        )
        for lane in ("local", "cluster", None)
    }
    yield {lane: proc.pid for lane, proc in procs.items()}
    for proc in procs.values():
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("lane", "counted"),
    [
        ("local", {"local"}),
        ("cluster", {"cluster", None}),  # only the cluster lane starts containers
        (None, {"local", "cluster", None}),  # the suite as one pytest: everything
    ],
)
def test_a_lane_counts_its_own_processes(sleepers, monkeypatch, lane, counted):
    monkeypatch.setattr(P, "LANE", lane)
    assert {marked for marked, pid in sleepers.items() if P.ours(pid)} == counted
    assert P.environ_value(sleepers["local"], "CHILTEPIN_TEST_LANE") == "local"
    assert P.environ_value(sleepers[None], "CHILTEPIN_TEST_LANE") is None
    assert P.environ_value(2**22 + 12345, "CHILTEPIN_TEST_LANE") is None  # no such pid
