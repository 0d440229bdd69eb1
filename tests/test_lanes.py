"""tests/run.sh's lanes: which processes a lane's leftover checks count as its own."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import processes as P


@pytest.fixture
def sleepers():
    """Four processes: marked for the local, services and cluster lanes, and unmarked (as
    a process in a container is)."""
    base = {k: v for k, v in os.environ.items() if k != "CHILTEPIN_TEST_LANE"}
    code = ["-c", "import time; time.sleep(120)"]
    procs = {
        lane: subprocess.Popen(
            [sys.executable, *code], env={**base, **({"CHILTEPIN_TEST_LANE": lane} if lane else {})}
        )
        for lane in ("local", "services", "cluster", None)
    }
    yield {lane: proc.pid for lane, proc in procs.items()}
    for proc in procs.values():
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("lane", "counted"),
    [
        ("local", {"local"}),
        ("services", {"services"}),
        ("cluster", {"cluster", None}),  # only the cluster lane starts containers
        (None, {"local", "services", "cluster", None}),  # the suite as one pytest: everything
    ],
)
def test_a_lane_counts_its_own_processes(sleepers, monkeypatch, lane, counted):
    monkeypatch.setattr(P, "LANE", lane)
    assert {marked for marked, pid in sleepers.items() if P.ours(pid)} == counted
    assert P.environ_value(sleepers["local"], "CHILTEPIN_TEST_LANE") == "local"
    assert P.environ_value(sleepers[None], "CHILTEPIN_TEST_LANE") is None
    assert P.environ_value(2**22 + 12345, "CHILTEPIN_TEST_LANE") is None  # no such pid


def test_the_services_lane_names_existing_modules():
    import conftest

    modules = {path.stem for path in Path(__file__).parent.glob("test_*.py")}
    assert conftest.SERVICE_MODULES <= modules, conftest.SERVICE_MODULES - modules


def test_shared_infrastructure_is_stopped_by_the_last_lane_to_leave():
    from helpers.infra import shared_by_lanes

    name = f"lanes-test-{uuid.uuid4().hex[:8]}"
    events: list[str] = []

    def start() -> int:
        events.append("start")
        return len(events)

    try:
        with shared_by_lanes(name, start, lambda: events.append("stop")) as first:
            with shared_by_lanes(name, start, lambda: events.append("stop")) as second:
                assert (first, second) == (1, 2)
            assert events == ["start", "start"], "the other lane still uses it"
        assert events == ["start", "start", "stop"]
    finally:
        for suffix in ("lock", "users"):
            Path(f"/var/tmp/chiltepin-{name}.{suffix}").unlink(missing_ok=True)
