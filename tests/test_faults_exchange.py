"""``chiltepin agent serve`` when its exchange goes away, for real: a loopback
``redis-server`` or Academy's HTTP exchange stopped and started again on the same port
under a running service.

- A Redis that keeps its data (append-only file) is ridden out by retrying: the same
  agent, with its state, answers again; nothing restarts.
- An exchange that comes back empty (Redis without persistence, the HTTP exchange's
  in-memory store) has lost the agent's mailbox: the service notices, stops the agent's
  workflow and registers the agent again under its name, once.
- An exchange that stays away: after ``reconnect`` seconds of retries the service exits
  with status 1 and one error line (its unit restarts it), leaving nothing behind.
In every case the service's log holds no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import processes as P
from helpers.cli import CLI
from helpers.cli import run as chiltepin

COMPUTE = {"compute": {"provider": "localhost", "max_workers_per_node": 1, "init_blocks": 1}}
NAME = "counter-restart"

pytestmark = pytest.mark.redis


class Service:
    """One ``chiltepin agent serve`` of a Counter on ``exchange``, in its own session."""

    def __init__(self, tmp_path: Path, exchange: dict, reconnect: float = 60) -> None:
        self.tmp_path = tmp_path
        self.state_file = tmp_path / "state" / "chiltepin" / "agents" / f"{NAME}.json"
        self.log_path = tmp_path / "serve.log"
        config = tmp_path / "counter.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "agent": "helpers.agent_services:Counter",
                    "name": NAME,
                    "agent_workflow_config": COMPUTE,
                    "agent_workflow_run_dir": str(tmp_path / "run"),
                    "exchange": exchange,
                    "reconnect": reconnect,
                }
            )
        )
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [CLI, "agent", "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self, other_than: str | None = None, timeout: float = 120) -> dict:
        """The state once the service runs (an agent other than ``other_than``)."""
        state = P.wait_for(
            lambda: (
                (s := self.state())
                and s["status"] == "running"
                and s["agent_id"] != other_than
                and s
            ),
            timeout=timeout,
            interval=0.2,
        )
        assert state, self.text()
        return state

    def call(self, by: int) -> int:
        out = chiltepin("agent", "call", NAME, "increment", "--args", f"[{by}]", timeout=120)
        assert out.returncode == 0, (out.stderr, self.text())
        return int(out.stdout)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def assert_nothing_left(self) -> None:
        assert P.wait_until_gone(P.processes_under, self.tmp_path, timeout=60) == []
        assert self.state() is None
        assert "Traceback" not in self.text(), self.text()


@pytest.fixture
def redis(redis_binary, tmp_path, monkeypatch):
    """A factory of restartable loopback Redis servers (stopped at the end)."""
    import redis_server

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    made = []

    def make(persist: bool):
        state = tmp_path / "redis"
        state.mkdir()
        server = redis_server.RedisServer(redis_binary, state, persist=persist)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.stop()


def test_a_service_rides_out_a_restart_of_a_redis_that_keeps_its_data(redis, tmp_path):
    server = redis(persist=True)
    service = Service(tmp_path, {"kind": "redis", "host": "127.0.0.1", "port": server.port})
    try:
        before = service.running()
        assert service.call(3) == 3
        server.stop()
        time.sleep(3)  # calls meanwhile fail; the agent's own client keeps retrying
        server.start()
        start = time.monotonic()
        assert service.call(1) == 4  # the same agent, its state kept
        answered = time.monotonic() - start
        after = service.state()
        assert after["agent_id"] == before["agent_id"] and after["pid"] == before["pid"]
        assert service.proc.poll() is None
        assert "lost its exchange" not in service.text()
        print(f"\nRedis (persistent) down 3 s: the same agent answered {answered:.1f} s after")
    finally:
        service.stop()
    assert service.proc.returncode == 0, service.text()
    service.assert_nothing_left()


def test_a_service_registers_again_on_a_redis_that_came_back_empty(redis, tmp_path):
    server = redis(persist=False)
    service = Service(tmp_path, {"kind": "redis", "host": "127.0.0.1", "port": server.port})
    try:
        before = service.running()
        assert service.call(3) == 3
        server.stop()
        server.start()  # empty: the agent's mailbox is gone
        start = time.monotonic()
        after = service.running(other_than=before["agent_id"], timeout=180)
        again = time.monotonic() - start
        assert after["pid"] == before["pid"]
        assert service.call(1) == 1  # a new agent, under the same name
        text = service.text()
        assert text.count("lost its exchange") == 1, text
        assert "lost the agent's mailbox" in text, text
        print(f"\nRedis restarted empty: the agent registered again after {again:.1f} s")
    finally:
        service.stop()
    assert service.proc.returncode == 0, service.text()
    service.assert_nothing_left()


def test_a_service_exits_with_one_line_when_its_redis_stays_away(redis, tmp_path):
    server = redis(persist=True)
    exchange = {"kind": "redis", "host": "127.0.0.1", "port": server.port}
    service = Service(tmp_path, exchange, reconnect=5)
    try:
        service.running()
        assert service.call(2) == 2
        server.stop()
        start = time.monotonic()
        status = service.proc.wait(timeout=120)
        exited = time.monotonic() - start
    finally:
        service.stop()
    text = service.text()
    assert status == 1, text
    errors = [line for line in text.splitlines() if line.startswith("chiltepin: error: ")]
    assert len(errors) == 1, text
    assert f"agent service '{NAME}'" in errors[0] and "retrying for 5 s" in errors[0], errors
    assert f"redis://127.0.0.1:{server.port}" in errors[0], errors
    print(f"\nRedis gone for good (reconnect: 5): the service exited after {exited:.1f} s")
    service.assert_nothing_left()


def test_a_service_registers_again_after_an_http_exchange_restart(tmp_path, monkeypatch):
    import socket

    from chiltepin.agents import EmbeddedExchange

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exchange = EmbeddedExchange(port=port)
    exchange.start()
    service = Service(tmp_path, {"kind": "http", "url": exchange.url})
    try:
        before = service.running()
        assert service.call(5) == 5
        exchange.stop()
        exchange = EmbeddedExchange(port=port)
        exchange.start()  # Academy's HTTP exchange keeps mailboxes in memory: all gone
        start = time.monotonic()
        after = service.running(other_than=before["agent_id"], timeout=180)
        again = time.monotonic() - start
        assert after["pid"] == before["pid"]
        assert service.call(1) == 1
        assert service.text().count("lost its exchange") == 1, service.text()
        print(f"\nHTTP exchange restarted: the agent registered again after {again:.1f} s")
    finally:
        service.stop()
        exchange.stop()
    assert service.proc.returncode == 0, service.text()
    service.assert_nothing_left()


def test_sigterm_stops_a_service_promptly_while_its_redis_is_away(redis, tmp_path):
    server = redis(persist=True)
    service = Service(tmp_path, {"kind": "redis", "host": "127.0.0.1", "port": server.port})
    try:
        service.running()
        assert service.call(2) == 2
        server.stop()
        time.sleep(2)  # the agent's client is retrying (for up to 60 s)
        start = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        status = service.proc.wait(timeout=120)
        stopped = time.monotonic() - start
    finally:
        service.stop()
    text = service.text()
    assert status == 0, text
    assert "received SIGTERM" in text and "could not close the agent's mailbox" in text, text
    print(f"\nSIGTERM with Redis away: the service stopped in {stopped:.1f} s")
    service.assert_nothing_left()
