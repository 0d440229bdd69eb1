"""Agent state that survives a restart (``chiltepin.agents.agent_state``), for real: a
served agent stores values, its ``chiltepin agent serve`` process is SIGKILLed, and the
service served again recalls them."""

from __future__ import annotations

import os
import signal
import stat
import subprocess

import pytest
import yaml
from helpers import processes as P
from helpers.cli import CLI
from helpers.cli import run as run_cli
from helpers.infra import TESTS

from chiltepin.errors import ConfigError

COMPUTE = {"compute": {"provider": "localhost", "max_workers_per_node": 1, "init_blocks": 0}}


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home / "chiltepin" / "agents"


def ok(*args: str) -> str:
    out = run_cli("agent", *args, timeout=300)
    assert out.returncode == 0, f"chiltepin agent {' '.join(args)}: {out.stderr}"
    return out.stdout


def serve(config, log):
    return subprocess.Popen(
        [CLI, "agent", "serve", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_running(state_home, name, proc, log_path):
    import json

    def running():
        path = state_home / f"{name}.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return data["pid"] == proc.pid and data["status"] == "running" and data

    assert P.wait_for(running, timeout=120), log_path.read_text()


def test_state_survives_a_killed_service(tmp_path, state_home, no_leftovers):
    config = tmp_path / "remembers.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "remembers",
                "agent": "helpers.agent_services:Remembers",
                "agent_workflow_config": COMPUTE,
                "agent_workflow_include": ["compute"],  # no worker: nothing outlives a kill
                "agent_workflow_run_dir": "run",
                "python_path": [str(TESTS)],
            }
        )
    )
    log_path = tmp_path / "serve.log"
    procs = []
    try:
        with open(log_path, "wb") as log:
            first = serve(config, log)
            procs.append(first)
            wait_running(state_home, "remembers", first, log_path)
            assert ok("call", "remembers", "remember", "--args", '["a", 7]') == "1\n"
            assert ok("call", "remembers", "remember", "--args", '["b", 9]') == "2\n"
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
            store = state_home / "remembers.d"
            assert stat.S_IMODE(store.stat().st_mode) == 0o700
            assert any(p.name.startswith("memory") for p in store.iterdir())

            second = serve(config, log)
            procs.append(second)
            wait_running(state_home, "remembers", second, log_path)
            assert ok("call", "remembers", "recall", "--args", '["a"]') == "7\n"
            assert ok("call", "remembers", "recall", "--args", '["b"]') == "9\n"
            ok("shutdown", "remembers")
            assert second.wait(timeout=120) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert P.wait_until_gone(P.serve_processes, tmp_path) == []


def test_state_outside_a_service_needs_a_directory(monkeypatch, tmp_path):
    from chiltepin.agents import agent_state
    from chiltepin.agents.state import STATE_DIR_ENV, close_all

    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    with pytest.raises(ConfigError, match="not run by 'chiltepin agent serve'"):
        agent_state()
    store = agent_state("s", directory=tmp_path / "d")
    store["k"] = 1
    close_all()
    assert agent_state("s", directory=tmp_path / "d")["k"] == 1
    close_all()
