"""The embedded exchange's server: Academy's HTTP exchange in a child process
(``chiltepin.agents._exchange_server``), started and stopped by its owner."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chiltepin.errors import ExchangeError

logger = logging.getLogger(__name__)


class EmbeddedExchangeError(ExchangeError):
    """The embedded exchange server did not start."""


class EmbeddedExchange:
    """Academy's HTTP exchange in a child process (no authentication).

    Use ``with EmbeddedExchange() as server:`` (or ``async with``) or start()/stop().
    ``server.url`` is what clients use; ``server.factory()`` an ``HttpExchangeFactory``.
    The server also stops by itself if this process dies.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        startup_timeout: float = 60.0,
        log_level: str = "WARNING",
    ) -> None:
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def factory(self) -> Any:
        from chiltepin.agents.exchange import build_factory
        from chiltepin.config.schema import ExchangeSettings

        if self.url is None:
            raise EmbeddedExchangeError("the embedded exchange is not running")
        return build_factory(ExchangeSettings(kind="embedded"), self.url)

    def start(self) -> str:
        """Start the server; return its URL once it accepts connections."""
        if self._proc is not None:
            raise EmbeddedExchangeError("the embedded exchange is already running")
        if not _is_loopback(self.host):
            logger.warning(
                "the embedded exchange on %s has no authentication: anyone who can reach "
                "that address can talk to your agents",
                self.host,
            )
        self._dir = Path(tempfile.mkdtemp(prefix="chiltepin-exchange-"))
        port_file = self._dir / "port"
        log_path = self._dir / "exchange.log"
        command = [
            sys.executable,
            "-m",
            "chiltepin.agents._exchange_server",
            f"--host={self.host}",
            "--port",
            str(self.port),
            "--port-file",
            str(port_file),
            "--parent-pid",
            str(os.getpid()),
            "--log-level",
            self.log_level,
        ]
        with open(log_path, "wb") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                close_fds=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        try:
            while not port_file.exists():
                if self._proc.poll() is not None:
                    raise EmbeddedExchangeError(
                        f"the embedded exchange exited with status {self._proc.returncode} "
                        f"before listening on {self.host}:{self.port}: {_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise EmbeddedExchangeError(
                        f"the embedded exchange did not start within {self.startup_timeout:.0f}"
                        f" s: {_tail(log_path)}"
                    )
                time.sleep(0.02)
            bound = int(port_file.read_text())
        except BaseException:
            self.stop()
            raise
        self.port = bound
        self.url = f"http://{_advertised(self.host)}:{bound}"
        logger.info("embedded exchange (pid %s) at %s", self._proc.pid, self.url)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL). Safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("embedded exchange pid %s ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
        self.url = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def astart(self) -> str:
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> EmbeddedExchange:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedExchange:
        await self.astart()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.astop()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _advertised(host: str) -> str:
    # A wildcard bind is reached through this host's name, unless that name resolves to
    # loopback (agents on other hosts would then call themselves): then an address of
    # this host that is not loopback.
    if host in ("0.0.0.0", "::", ""):
        name = socket.getfqdn()
        try:
            resolved = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            resolved = set()
        if resolved and not all(_is_loopback(a) for a in resolved):
            return name
        host = _non_loopback_address() or name
    return f"[{host}]" if ":" in host else host


def _non_loopback_address() -> str | None:
    """This host's first IPv4 address that is not loopback (in the interfaces' order)."""
    from chiltepin.config.network import interface_addresses

    return next((a for a in interface_addresses().values() if not _is_loopback(a)), None)


def _child_env() -> dict[str, str]:
    # The child imports chiltepin from wherever this process found it.
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
