"""``chiltepin agent serve`` SIGKILLed on the real Slurm cluster: the service's own
workflow (interchange, a compute job and its workers) and its embedded exchange do not
outlive it."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import yaml
from helpers import faults
from helpers import processes as P
from helpers.cli import CLI
from helpers.cli import run as chiltepin


def test_sigkilled_service_leaves_no_workflow(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = tmp_path / "counter.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "agent": "helpers.agent_services:Counter",
                "name": "counter-kill",
                "agent_workflow_config": {"compute": faults.slurm_resource()},
                "agent_workflow_include": ["compute"],
                "agent_workflow_run_dir": str(tmp_path / "run"),
            }
        )
    )
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen(
        [CLI, "agent", "serve", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        state = tmp_path / "state" / "chiltepin" / "agents" / "counter-kill.json"
        assert P.wait_for(
            lambda: state.exists() and json.loads(state.read_text())["status"] == "running",
            timeout=120,
        ), (tmp_path / "serve.log").read_text()
        square = chiltepin("agent", "call", "counter-kill", "square", "--args", "[7]")
        assert square.returncode == 0, square.stderr
        assert json.loads(square.stdout)["square"] == 49  # a compute job runs now
        assert faults.jobs()
        start = time.monotonic()
        serve.send_signal(signal.SIGKILL)
        serve.wait(timeout=30)
    finally:
        if serve.poll() is None:
            serve.kill()
        log.close()
    left = P.wait_until_gone(P.processes_under, tmp_path, timeout=60)
    processes = time.monotonic() - start
    queue = faults.wait_no_jobs(60)
    exchanges = P.wait_until_gone(P.exchange_servers, serve.pid)
    print(
        f"\nserve SIGKILLed: its workflow's processes gone after {processes:.1f} s, "
        f"its jobs after +{queue} s"
    )
    assert not left, left
    assert queue is not None, faults.jobs()
    assert not exchanges, exchanges
