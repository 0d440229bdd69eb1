"""Parsl's monitoring for a workflow: its database in the run directory, and its viewer.

``monitoring: true`` on any executor makes the workflow's Parsl config carry a
``MonitoringHub`` that records tasks, blocks and resource use into
``RUN_DIR/monitoring.db`` (SQLite). ``chiltepin monitor RUN_DIR`` serves Parsl's own
visualization of it (``parsl-visualize``) on loopback only: it has no authentication.
Both need Parsl's monitoring and visualization extras (``chiltepin[monitoring]``).
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

from chiltepin.errors import ConfigError

#: The database's name in a run directory (Parsl's own default name).
MONITORING_DB = "monitoring.db"
INSTALL_HINT = "pip install 'chiltepin[monitoring]'"
#: The first bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """An SQLAlchemy URL for the SQLite file ``path``, whatever characters it holds (a
    ``?`` or ``#`` in a plain ``sqlite:///PATH`` URL would cut the path short)."""
    absolute = os.path.abspath(os.fspath(path))
    return f"sqlite:///file:{urllib.parse.quote(absolute)}?uri=true"


def monitoring_hub(run_dir: str) -> Any:
    """Parsl's MonitoringHub recording into ``run_dir/monitoring.db`` (a ConfigError if
    Parsl's monitoring extra is not installed)."""
    try:
        import sqlalchemy  # noqa: F401 - the hub's database process needs it
        from parsl.monitoring import MonitoringHub
    except ImportError:
        raise ConfigError(
            "monitoring: true needs Parsl's monitoring database, which is not installed",
            key="monitoring",
            hint=INSTALL_HINT,
        ) from None
    return MonitoringHub(
        workflow_name=Path(run_dir).name,
        logging_endpoint=sqlite_url(Path(run_dir) / MONITORING_DB),
    )


def find_database(run_dir: str | None) -> Path:
    """The monitoring database of ``run_dir`` (a run directory or the database file), or
    with None: ``./monitoring.db``, else the newest ``runinfo/*/monitoring.db``. A
    ConfigError names what is wrong."""
    if run_dir is None:
        here = Path(MONITORING_DB)
        runs = sorted(Path("runinfo").glob(f"*/{MONITORING_DB}"), key=_mtime)
        if here.is_file() or not runs:
            return check_database(here, "RUN_DIR", given=".")
        return check_database(runs[-1], "RUN_DIR", given=str(runs[-1].parent))
    path = Path(run_dir)
    if path.is_dir():
        path = path / MONITORING_DB
    elif not path.exists():
        raise ConfigError(
            f"run directory {shown_path(run_dir)} does not exist",
            key="RUN_DIR",
            hint="give the run directory of a workflow run with monitoring: true",
        )
    return check_database(path, "RUN_DIR", given=run_dir)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path for an error message: bounded, and printable whatever bytes it holds."""
    from chiltepin.errors import shown

    return shown(os.fsdecode(path))  # repr escapes undecodable bytes (\udcff), once


def check_database(path: Path, key: str, *, given: str) -> Path:
    """``path`` if it is a readable Parsl monitoring database (SQLite with a ``workflow``
    table), else a ConfigError."""
    import sqlite3

    where = shown_path(given)
    hint = "run the workflow with monitoring: true on one of its executors"
    if not path.exists():
        raise ConfigError(f"{where} has no {MONITORING_DB}", key=key, hint=hint)
    from chiltepin._files import NotRegularFile, open_regular, read_at_most

    try:
        fd = open_regular(path)  # a FIFO is refused, never waited on
        try:
            magic = read_at_most(fd, len(SQLITE_MAGIC))
        finally:
            os.close(fd)
    except (IsADirectoryError, NotRegularFile):
        magic = b""
    except OSError as exc:
        raise ConfigError(
            f"cannot read {shown_path(path)}: {exc.strerror}", key=key, hint=hint
        ) from None
    if magic != SQLITE_MAGIC:
        raise ConfigError(
            f"{shown_path(path)} is not a Parsl monitoring database (not SQLite)",
            key=key,
            hint=hint,
        )
    try:
        uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise ConfigError(
            f"{shown_path(path)} is not a readable SQLite database: {exc}", key=key, hint=hint
        ) from None
    if "workflow" not in tables:
        raise ConfigError(
            f"{shown_path(path)} is not a Parsl monitoring database (no workflow table)",
            key=key,
            hint=hint,
        )
    return path


def viewer_available() -> None:
    """A ConfigError unless Parsl's visualization (Flask, pandas, plotly) is installed."""
    import importlib.util

    for module in ("flask", "flask_sqlalchemy", "pandas", "plotly", "networkx", "sqlalchemy"):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"chiltepin monitor needs Parsl's visualization, which is not installed "
                f"(no module {module!r})",
                hint=INSTALL_HINT,
            )


#: The only address the viewer listens on: Parsl's visualization has no authentication.
LOOPBACK = "127.0.0.1"
#: How long the viewer may take to start listening.
START_SECONDS = 60.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """The viewer goes when ``chiltepin monitor`` goes, even on SIGKILL."""
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


class Viewer:
    """Parsl's visualization (its ``parsl-visualize`` program) of one database, on
    ``LOOPBACK``:``port``, as a child process that dies with this one."""

    def __init__(self, database: Path, port: int) -> None:
        self.database = database
        self.port = port
        self.proc: Any = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def start(self) -> str:
        """Start it and wait until it answers; its URL (a ChiltepinError if it fails)."""
        import socket
        import subprocess
        import sys
        import tempfile
        import time

        from chiltepin.errors import ServiceError

        command = [
            sys.executable,
            "-m",
            "parsl.monitoring.visualization.app",
            sqlite_url(self.database),
            "--listen",
            LOOPBACK,
            "--port",
            str(self.port),
        ]
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads run yet here
        )
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"the monitoring viewer stopped at start (status {self.proc.returncode}): "
                    f"{self._last_line()}"
                )
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1):
                    return self.url
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServiceError(
                        f"the monitoring viewer did not listen within {START_SECONDS:g} s"
                    ) from None
                time.sleep(0.1)

    def wait(self) -> int:
        return self.proc.wait()

    def stop(self) -> None:
        from chiltepin.watchdog import stop_child

        if self.proc is not None:
            stop_child(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _last_line(self) -> str:
        self._log.seek(0)
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line]
        return lines[-1][:300] if lines else "no output"


def free_port(port: int) -> int:
    """``port`` if it can be listened on at LOOPBACK (0: any free one), else a ConfigError."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}",
                key="--port",
                hint="choose another port, or --port 0 for any free one",
            ) from None
        return sock.getsockname()[1]
