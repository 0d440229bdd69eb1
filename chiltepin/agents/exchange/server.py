"""The embedded exchange's server: Academy's HTTP exchange in a child process
(``chiltepin.agents._exchange_server``), started and stopped by its owner."""

from __future__ import annotations

import asyncio
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

from chiltepin.agents.exchange.secure import is_loopback, new_token, self_signed, warn_insecure
from chiltepin.errors import ExchangeError

logger = logging.getLogger(__name__)


class EmbeddedExchangeError(ExchangeError):
    """The embedded exchange server did not start."""


class EmbeddedExchange:
    """Academy's HTTP exchange in a child process.

    Bound to loopback it takes no credentials. Bound to any other address it requires a
    bearer token (random, 256 bits, in a 0600 file) and serves TLS with a certificate it
    makes for this host, which its clients pin; ``insecure=True`` turns both off (one
    warning). The token, key and certificate live in ``directory`` (0700; default a new
    private temporary directory), removed on stop.

    Use ``with EmbeddedExchange() as server:`` (or ``async with``) or start()/stop().
    ``server.url`` is where it listens; ``server.client_settings()`` what clients need
    (an ``http`` exchange with its token and certificate); ``server.factory()`` an
    ``HttpExchangeFactory``. The server also stops by itself if this process dies.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        insecure: bool = False,
        directory: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        log_level: str = "WARNING",
    ) -> None:
        self.host = host
        self.port = port
        self.insecure = insecure
        self.directory = Path(directory) if directory is not None else None
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.url: str | None = None
        self.token_file: Path | None = None
        self.cert_file: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def secure(self) -> bool:
        """True if this server requires a token and serves TLS (it listens beyond
        loopback and is not ``insecure``)."""
        return not is_loopback(self.host) and not self.insecure

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client_settings(self) -> Any:
        """The running server as its clients see it: an ``http`` exchange at :attr:`url`
        with its token file and certificate (``ExchangeSettings``)."""
        from chiltepin.config.schema import ExchangeSettings

        if self.url is None:
            raise EmbeddedExchangeError("the embedded exchange is not running")
        fields: dict[str, Any] = {"kind": "http", "url": self.url}
        if self.token_file is not None:
            fields["token_file"] = str(self.token_file)
        if self.cert_file is not None:
            fields["ca_file"] = str(self.cert_file)
        if self.insecure:
            fields["insecure"] = True
        return ExchangeSettings(**fields)

    def factory(self) -> Any:
        from chiltepin.agents.exchange import build_factory

        return build_factory(self.client_settings())

    def start(self) -> str:
        """Start the server; return its URL once it accepts connections."""
        if self._proc is not None:
            raise EmbeddedExchangeError("the embedded exchange is already running")
        self._dir = self._private_dir()
        port_file = self._dir / "port"
        # A service's directory outlives a killed predecessor: its port file would be
        # read as this server's before this one has bound.
        port_file.unlink(missing_ok=True)
        log_path = self._dir / "exchange.log"
        credentials: list[str] = []
        if self.secure:
            self.token_file = new_token(self._dir / "token")
            self.cert_file, key_file = self_signed(self._dir, self.host)
            credentials = [
                f"--token-file={self.token_file}",
                f"--certfile={self.cert_file}",
                f"--keyfile={key_file}",
            ]
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
            *credentials,
        ]
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as log:
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
        scheme = "https" if self.secure else "http"
        self.url = f"{scheme}://{_advertised(self.host)}:{bound}"
        if self.insecure and not is_loopback(self.host):
            warn_insecure(self.url)
        logger.info("embedded exchange (pid %s) at %s", self._proc.pid, self.url)
        return self.url

    def _private_dir(self) -> Path:
        if self.directory is None:
            from chiltepin.agents._exchange_server import TEMP_PREFIX

            return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))  # 0700
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        return self.directory

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
        self.token_file = self.cert_file = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def astart(self) -> str:
        return await asyncio.to_thread(self.start)

    async def died(self, every: float = 0.5) -> str | None:
        """Return why once the server exits by itself (killed, crashed); None once it
        is stopped by :meth:`stop`."""
        proc = self._proc
        while proc is not None and proc is self._proc:
            status = proc.poll()
            if status is not None:
                how = f"signal {-status}" if status < 0 else f"status {status}"
                return f"its embedded exchange (pid {proc.pid}, {self.url}) died ({how})"
            await asyncio.sleep(every)
        return None

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
        if resolved and not all(is_loopback(a) for a in resolved):
            return name
        host = _non_loopback_address() or name
    return f"[{host}]" if ":" in host else host


def _non_loopback_address() -> str | None:
    """This host's first IPv4 address that is not loopback (in the interfaces' order)."""
    from chiltepin.config.network import interface_addresses

    return next((a for a in interface_addresses().values() if not is_loopback(a)), None)


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
