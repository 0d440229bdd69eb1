"""A throwaway redis-server on loopback for the Redis exchange tests (stdlib + redis-py).

Installs Debian's ``redis-server`` when it is missing and this process may (root with
apt-get); ``serve(state_dir)`` yields the port of a fresh server and stops it after;
:class:`RedisServer` can be stopped and started again on its port.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def binary() -> str | None:
    """``redis-server``, installed from Debian's packages if missing and we may."""
    from packages import ensure

    return ensure("redis-server", "redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on loopback with its files in ``state``, that can be stopped and
    started again on the same port; ``persist``: keep its data across restarts (an
    append-only file synced on every write), as a production Redis does."""

    def __init__(self, server: str, state: Path, *, persist: bool = False) -> None:
        self.server, self.state, self.persist = server, state, persist
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        import redis

        log_path = self.state / "redis.log"
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else []
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
                + (persistence or ["--appendonly", "no"])
                + ["--dir", str(self.state)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"redis-server did not start: {log_path.read_text()}"
                    ) from None
                time.sleep(0.05)
        client.close()
        return self.port

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def serve(server: str, state: Path) -> Iterator[int]:
    """Run ``server`` on a free loopback port with its files in ``state``; yield the port."""
    redis_server = RedisServer(server, state)
    try:
        yield redis_server.start()
    finally:
        redis_server.stop()
