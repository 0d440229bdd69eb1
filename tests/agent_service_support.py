"""Agents and infrastructure for the agent-service tests (``chiltepin agent ...``).

The classes live in an importable module: ``chiltepin agent serve`` imports them by name
and the agents' Parsl workers unpickle them by reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from chiltepin.agents import agent_action, agent_loop, chiltepin_agent
from chiltepin.tasks import python_task


@chiltepin_agent()
class Counter:
    """A counter kept by a long-lived agent."""

    def __init__(self, start: int = 0, label: str = "counter"):
        self.count = start
        self.label = label
        self.ticks = 0

    @agent_action
    async def increment(self, by: int = 1) -> int:
        self.count += by
        return self.count

    @agent_action
    def describe(self) -> dict:
        """A sync action: runs in a thread."""
        return {
            "label": self.label,
            "count": self.count,
            "greeting": os.environ.get("COUNTER_GREETING"),
        }

    @agent_action
    async def ticks_now(self) -> int:
        return self.ticks

    @agent_action
    async def pid(self) -> int:
        return os.getpid()

    @agent_action
    async def fail(self, message: str) -> None:
        raise ValueError(message)

    @agent_action
    @python_task
    def square(self, x: int) -> dict:
        """A task action: runs on a worker of the agent's own workflow."""
        import os

        return {"square": x * x, "pid": os.getpid()}

    @agent_loop
    async def tick(self, shutdown):
        while not shutdown.is_set():
            await asyncio.sleep(0.1)
            self.ticks += 1


class NotAnAgent:
    """Undecorated: cannot be served."""

    async def run(self) -> None: ...


# --- processes ------------------------------------------------------------------------------


def serve_processes(config: str | Path) -> list:
    """Live ``chiltepin agent serve CONFIG`` processes."""
    return _processes(lambda cmd: "agent serve" in cmd and str(config) in cmd)


def exchange_servers_of(pid: int) -> list:
    """Embedded exchange servers that process ``pid`` started."""
    return _processes(
        lambda cmd: "chiltepin.agents._exchange_server" in cmd and f"--parent-pid {pid}" in cmd
    )


def _processes(match) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if match(" ".join(proc.info["cmdline"] or [])):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_for(check, timeout: float = 60.0, interval: float = 0.1):
    """Poll ``check()`` until it returns something true; return it (None on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- redis ------------------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    """``redis-server``, installed from Debian's packages if missing and we may."""
    server = shutil.which("redis-server")
    if server is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "redis-server"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        server = shutil.which("redis-server")
    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server(server: str, state: Path):
    """A throwaway redis-server on loopback; yields its port."""
    import redis

    port = free_port()
    with open(state / "redis.log", "wb") as log:
        proc = subprocess.Popen(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(state),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start: {(state / 'redis.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
