"""Exchange settings -> Academy exchange factory, and the embedded HTTP exchange.

``embedded`` (the default) runs Academy's HTTP exchange in a child process for the life of
a manager context: agents on Parsl workers (other processes, other nodes) reach it over
HTTP, which the in-process ``LocalExchangeFactory`` cannot offer.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import ExchangeError

logger = logging.getLogger(__name__)

#: Academy's public exchange (its own default URL, which carries the API version).
HOSTED_URL = "https://exchange.academy-agents.org/v1"
REDIS_DEFAULT_PORT = 6379

ExchangeLike = Any  # ExchangeSettings, a mapping of its fields, or an ExchangeFactory
Closer = Callable[[], Awaitable[None]]


def exchange_settings(value: ExchangeLike | None) -> Any:
    """``ExchangeSettings`` from settings, a mapping or None (embedded); factories pass through."""
    if value is None:
        return ExchangeSettings()
    if isinstance(value, ExchangeSettings):
        return value
    if isinstance(value, Mapping):
        from chiltepin.config.loader import Origin, validate_model

        return validate_model(
            ExchangeSettings, value, origin=Origin("<exchange settings>"), entry="exchange"
        )
    from academy.exchange import ExchangeFactory

    if isinstance(value, ExchangeFactory):
        return value
    raise TypeError(
        "exchange must be ExchangeSettings, a mapping of exchange settings "
        f"(e.g. {{'kind': 'redis', 'port': 6379}}) or an Academy ExchangeFactory, "
        f"got {type(value).__name__}"
    )


@dataclasses.dataclass(frozen=True)
class FactoryPlan:
    """The Academy factory an exchange setting stands for, before it is built.

    Building the hosted one logs in with Globus, so it is only built when a manager starts.
    """

    factory: str  # "HttpExchangeFactory" | "RedisExchangeFactory"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def create(self) -> Any:
        if self.factory == "RedisExchangeFactory":
            from academy.exchange.redis import RedisExchangeFactory

            return RedisExchangeFactory(*self.args, **self.kwargs)
        from academy.exchange.cloud.client import HttpExchangeFactory

        return HttpExchangeFactory(*self.args, **self.kwargs)


def factory_plan(settings: ExchangeSettings, *, embedded_url: str | None = None) -> FactoryPlan:
    """The factory for ``settings`` (``embedded`` needs the running server's URL)."""
    if settings.kind == "embedded":
        if embedded_url is None:
            raise ValueError("the embedded exchange is not running yet")
        return FactoryPlan("HttpExchangeFactory", (embedded_url,), {})
    if settings.kind == "http":
        return FactoryPlan("HttpExchangeFactory", (settings.url,), {})
    if settings.kind == "redis":
        # redis-py's socket timeout would break Academy's blocking receive on an idle mailbox.
        port = settings.port or REDIS_DEFAULT_PORT
        return FactoryPlan("RedisExchangeFactory", (settings.host, port), {"socket_timeout": None})
    return FactoryPlan(
        "HttpExchangeFactory", (settings.url or HOSTED_URL,), {"auth_method": "globus"}
    )


async def open_exchange(value: ExchangeLike | None) -> tuple[Any, Closer | None]:
    """Return ``(factory, close)`` for ``value``; ``close`` stops an embedded server."""
    settings = exchange_settings(value)
    if not isinstance(settings, ExchangeSettings):
        return settings, None
    if settings.kind != "embedded":
        plan = factory_plan(settings)
        return await asyncio.to_thread(plan.create), None
    server = EmbeddedExchange(host=settings.host, port=settings.port or 0)
    await server.astart()
    try:
        factory = factory_plan(settings, embedded_url=server.url).create()
    except BaseException:
        await server.astop()
        raise
    return factory, server.astop


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
        from academy.exchange.cloud.client import HttpExchangeFactory

        if self.url is None:
            raise EmbeddedExchangeError("the embedded exchange is not running")
        return HttpExchangeFactory(self.url)

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
            "--host",
            self.host,
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
    # A wildcard bind is reached through this host's name.
    if host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host else host


def _child_env() -> dict[str, str]:
    # The child imports chiltepin from wherever this process found it.
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
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
