"""``chiltepin agent serve``: one agent, no manager, in this process, until told to stop.

The agent is registered on the exchange under the service name and run by Academy's
``Runtime`` (the persistent-agent path: no manager owns it). It starts its own Workflow
when it starts and cleans it up when it stops, which happens on SIGTERM/SIGINT or on a
shutdown request through the exchange (``chiltepin agent shutdown``). On every stop the
process controls, the agent's mailbox is closed and the state file removed; after a
crash (SIGKILL, OOM) the state file stays behind and the next ``serve`` of the same name
takes the agent ID over, so handles held by others keep working.

With an ``embedded`` exchange the service starts Academy's HTTP exchange itself: it lives
only as long as the service, and its URL is in the state file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from datetime import datetime, timezone
from typing import Any

from chiltepin.agents.exchange import get_kind
from chiltepin.agents.serve.config import AgentService
from chiltepin.agents.serve.state import (
    RUNNING,
    STARTING,
    ServiceState,
    ensure_state_dir,
    exchange_dir,
    lock_path,
    process_created,
    quiet_cancelled_requests,
    read_state,
    remove_state,
    write_state,
)
from chiltepin.errors import ConfigError

logger = logging.getLogger("chiltepin.agents.serve")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Set in the service process that a terminal-attached ``serve`` supervises.
SUPERVISED_ENV = "CHILTEPIN_SERVE_SUPERVISOR"


def serve(service: AgentService) -> int:
    """Run the service until it is stopped; 0 after a clean stop."""
    asyncio.run(run_service(service))
    return 0


def needs_supervisor() -> bool:
    """On a terminal, Ctrl-C reaches the whole foreground process group: the agent's
    workers, interchange and embedded exchange too, which then die before the agent can
    stop them (and the stop hangs). There, ``serve`` runs the service in a session of its
    own and turns Ctrl-C into a clean stop."""
    if os.environ.get(SUPERVISED_ENV):
        return False
    try:
        return os.isatty(0) or os.isatty(2)
    except OSError:
        return False


def supervise(argv: list[str]) -> int:
    """Run ``argv`` (this ``serve`` command) in a new session; forward SIGINT, SIGTERM
    and SIGHUP to it as SIGTERM; return its exit status."""
    import subprocess

    env = {**os.environ, SUPERVISED_ENV: str(os.getpid())}
    child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    for sig in (*STOP_SIGNALS, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue


async def run_service(service: AgentService) -> None:
    """Register the agent, run it, and always clean up after it."""
    quiet_cancelled_requests()
    lock = _lock(service)  # held for this process's life: one serve per name
    try:
        previous = _check_not_running(service)
    except BaseException:
        lock.close()
        raise
    service.apply_environment()
    from chiltepin.agents.state import STATE_DIR_ENV, close_all

    # The agent's named state (chiltepin.agents.agent_state) lives beside the state file.
    os.environ[STATE_DIR_ENV] = str(ensure_state_dir() / f"{service.name}.d")
    stop = _StopRequest()
    stop.install()
    watch = _watch_supervisor(stop)
    server = None
    try:
        agent = service.agent_cls.with_workflow(
            service.workflow_spec, tuple(service.config.args), dict(service.config.kwargs)
        )
        agent.build_behaviour()  # the user's __init__ first: nothing is registered if it fails
        url = None
        server = _exchange_server(service)
        access = None
        if server is not None:
            url = await server.astart()
            access = server.client_settings()
            logger.info("embedded exchange at %s (lives as long as this service)", url)
        factory = await _factory(service, url, access)
        try:
            registration = await _registration(service, factory, previous)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            from chiltepin.agents.exchange.base import mask_url
            from chiltepin.errors import ExchangeError

            raise ExchangeError(
                f"agent service '{service.name}': cannot reach its exchange: "
                f"{mask_url(str(exc))} (hint: is the exchange running and reachable? "
                "its unit restarts the service)"
            ) from None
        state = _state(service, agent, registration, url)
        if access is not None:
            state.exchange_access = access.model_dump(mode="json", exclude_defaults=True)
        await _run(service, agent, factory, registration, state, stop)
    finally:
        if watch is not None:
            watch.cancel()
        stop.uninstall()
        remove_state(service.name, pid=os.getpid())
        close_all()
        if server is not None:
            await server.astop()
        lock.close()


def _lock(service: AgentService) -> Any:
    """An exclusive lock on ``<name>.lock`` beside the state file, or a ConfigError if
    another serve of this name holds it (closes the race of two starting at once)."""
    import fcntl

    ensure_state_dir()
    path = lock_path(service.name)
    handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"agent service '{service.name}' is already running",
            hint=f"stop it with: chiltepin agent shutdown {service.name}",
        ) from None
    except OSError as exc:  # a file system without locks: the pid check remains
        logger.debug("no lock for %s: %s", service.name, exc)
    return handle


def _check_not_running(service: AgentService) -> ServiceState | None:
    """The stale state of a crashed run of this service (or None); error if it runs."""
    previous = read_state(service.name)
    if previous is None or previous.pid == os.getpid():
        return None
    alive = previous.process_alive()
    if alive is None:
        raise ConfigError(
            f"agent service '{service.name}' is already running on host {previous.host} "
            f"(pid {previous.pid})",
            hint=f"stop it with: chiltepin agent shutdown {service.name}",
        )
    if alive:
        raise ConfigError(
            f"agent service '{service.name}' is already running (pid {previous.pid}, "
            f"agent {previous.agent_id})",
            hint=f"stop it with: chiltepin agent shutdown {service.name}",
        )
    return previous


async def _factory(service: AgentService, url: str | None, access: Any = None) -> Any:
    """The service's factory: through ``access`` (a running embedded exchange's client
    settings) if given, else its exchange settings."""
    from chiltepin.agents.exchange import build_factory

    if access is not None:
        return await asyncio.to_thread(build_factory, access)
    return await asyncio.to_thread(build_factory, service.exchange, url)


async def _registration(service: AgentService, factory: Any, previous: ServiceState | None) -> Any:
    """Take over the agent ID of a crashed run of this service when its mailbox is still
    open; otherwise register a new agent under the service name."""
    from academy.exchange.mailbox_status import MailboxStatus

    async with await factory.create_user_client(
        name=f"chiltepin-serve-{service.name}", start_listener=False
    ) as client:
        left = _left_registration(service, previous)
        if left is not None:
            status = await client.status(left.agent_id)
            if status in (MailboxStatus.ACTIVE, MailboxStatus.INACTIVE):
                if previous is not None and previous.agent_class == service.agent_class_name:
                    logger.info(
                        "taking over agent %s of a run that did not stop cleanly",
                        left.agent_id.uid,
                    )
                    return left
                await client.terminate(left.agent_id)  # another class now: retire it
        registration = await client.register_agent(service.agent_cls, name=service.name)
        logger.info("registered agent %s as '%s'", registration.agent_id.uid, service.name)
        return registration


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the exchange could not be reached (refused, reset, DNS): OS
    errors (aiohttp's connection errors are), and redis-py's ConnectionError."""
    if isinstance(exc, OSError):
        return True
    return type(exc).__name__ == "ConnectionError" and type(exc).__module__.startswith("redis")


def _left_registration(service: AgentService, previous: ServiceState | None) -> Any:
    """The registration a crashed run left on this service's exchange, if any."""
    kind = get_kind(service.exchange.kind)
    if previous is None or kind.owned:
        return None  # an exchange the previous run ran died with it, and its mailboxes
    if previous.exchange != service.exchange.model_dump(mode="json", exclude_unset=True):
        return None
    try:
        return kind.registration_class().model_validate(previous.registration)
    except ValueError:
        return None


def _state(service: AgentService, agent: Any, registration: Any, url: str | None) -> ServiceState:
    from chiltepin.agents._academy_compat import action_names

    exchange_url = url if url is not None else service.exchange.url
    return ServiceState(
        name=service.name,
        agent_id=str(registration.agent_id.uid),
        agent=service.config.agent,
        agent_class=service.agent_class_name,
        actions=action_names(agent),
        exchange=service.exchange.model_dump(mode="json", exclude_unset=True),
        exchange_url=exchange_url,
        registration=registration.model_dump(mode="json"),
        pid=os.getpid(),
        pid_created=process_created(os.getpid()),
        host=socket.gethostname(),
        config=str(service.path),
        python_path=service.python_path,
        status=STARTING,
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


async def _run(
    service: AgentService,
    agent: Any,
    factory: Any,
    registration: Any,
    state: ServiceState,
    stop: _StopRequest,
) -> None:
    from academy.runtime import Runtime, RuntimeConfig

    # Close the mailbox on every stop we control (clean or not): the agent is gone.
    runtime = Runtime(
        agent,
        exchange_factory=factory,
        registration=registration,
        config=RuntimeConfig(terminate_on_success=True, terminate_on_error=True),
    )
    write_state(state)
    if stop.requested:
        logger.info("stop requested before the agent started")
        await _close_mailbox(factory, registration)
        return
    stop.runtime = runtime
    async with runtime:  # startup: the agent's own workflow starts here
        state.status = RUNNING
        write_state(state)
        logger.info(
            "agent service '%s' running: agent %s (%s), pid %s",
            service.name,
            state.agent_id,
            state.agent_class,
            state.pid,
        )
        await runtime.wait_shutdown()
        logger.info("agent service '%s' stopping", service.name)
    logger.info("agent service '%s' stopped", service.name)


async def _close_mailbox(factory: Any, registration: Any) -> None:
    async with await factory.create_user_client(start_listener=False) as client:
        await client.terminate(registration.agent_id)


def _watch_supervisor(stop: _StopRequest) -> asyncio.Task[None] | None:
    """Stop (as on SIGTERM) if the supervising ``serve`` process goes away."""
    supervisor = os.environ.get(SUPERVISED_ENV)
    if not supervisor or not supervisor.isdigit():
        return None

    async def watch() -> None:
        while os.getppid() == int(supervisor):
            await asyncio.sleep(1.0)
        logger.warning("the supervising serve process %s is gone", supervisor)
        stop.request(signal.SIGTERM)

    return asyncio.ensure_future(watch())


class _StopRequest:
    """SIGTERM/SIGINT: ask the runtime to shut the agent down (once started)."""

    def __init__(self) -> None:
        self.requested = False
        self.runtime: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        with contextlib.suppress(Exception):  # the terminal's hangup does not concern us
            self._loop.add_signal_handler(signal.SIGHUP, lambda: None)

    def uninstall(self) -> None:
        if self._loop is None:
            return
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("received %s: shutting the agent down", signal.Signals(sig).name)
        self.request(sig)

    def request(self, sig: signal.Signals) -> None:
        self.requested = True
        if self.runtime is not None:
            self.runtime.signal_shutdown(expected=True)


def _exchange_server(service: Any) -> Any:
    """The embedded exchange's server (None for other kinds); a bad ``exchange.interface``
    names the file that set it (this service file, or its site's profile)."""
    try:
        return get_kind(service.exchange.kind).server(service.exchange, exchange_dir(service.name))
    except ConfigError as exc:
        if exc.source is not None:
            raise
        if service.config.exchange is not None:
            where = {"source": str(service.path)}
        else:
            where = {"entry": service.config.site, "entry_kind": "site"}
        raise ConfigError(exc.reason, key=exc.key, hint=exc.hint, **where) from None
