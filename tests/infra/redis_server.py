"""A throwaway redis-server on loopback for the Redis exchange tests (stdlib + redis-py).

Installs Debian's ``redis-server`` when it is missing and this process may (root with
apt-get); ``serve(state_dir)`` yields the port of a fresh server and stops it after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def binary() -> str | None:
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
def serve(server: str, state: Path) -> Iterator[int]:
    """Run ``server`` on a free loopback port with its files in ``state``; yield the port."""
    import redis

    port = free_port()
    log_path = state / "redis.log"
    with open(log_path, "wb") as log:
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
                        f"redis-server did not start: {log_path.read_text()}"
                    ) from None
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
