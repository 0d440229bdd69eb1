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
import time
from datetime import datetime, timezone
from typing import Any

from chiltepin.agents.exchange import get_kind
from chiltepin.agents.exchange.base import mask_url, quiet_academy_logs
from chiltepin.agents.serve.config import AgentService
from chiltepin.agents.serve.state import (
    RECONNECTING,
    RUNNING,
    STARTING,
    ServiceState,
    ensure_state_dir,
    exchange_dir,
    lock_path,
    process_created,
    read_state,
    remove_state,
    write_state,
)
from chiltepin.errors import ConfigError, ExchangeError

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
    quiet_academy_logs()
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
        url = None
        server = _exchange_server(service)
        access = None
        if server is not None:
            url = await server.astart()
            access = server.client_settings()
            logger.info("embedded exchange at %s (lives as long as this service)", url)
        factory = await _factory(service, url, access, reconnect=service.config.reconnect)
        probe = await _factory(service, url, access)
        patience = 0.0  # the first time, fail fast: a wrong address should not wait minutes
        quick = 0  # exchanges lost in a row, each soon after the agent started
        while True:
            agent = service.agent_cls.with_workflow(
                service.workflow_spec, tuple(service.config.args), dict(service.config.kwargs)
            )
            agent.build_behaviour()  # the user's __init__ first: nothing registered if it fails
            registration = await stop.unless_stopped(
                _reach(service, probe, previous, patience=patience)
            )
            if registration is None:
                break
            state = _state(service, agent, registration, url)
            if access is not None:
                state.exchange_access = access.model_dump(mode="json", exclude_defaults=True)
            started = time.monotonic()
            lost = await _run(service, agent, factory, probe, registration, state, stop)
            if lost is None or stop.requested:
                break
            stop.runtime = None
            quick = quick + 1 if time.monotonic() - started < QUICK_LOSS_SECONDS else 1
            _give_up_or_reconnect(service, lost, quick)
            close_all()  # the next agent instance opens its stores afresh
            state.status = RECONNECTING
            write_state(state)
            previous = state  # its mailbox is taken over if the exchange still has it
            patience = service.config.reconnect
    finally:
        if watch is not None:
            watch.cancel()
        stop.uninstall()
        remove_state(service.name, pid=os.getpid())
        close_all()
        if server is not None:
            await server.astop()
        lock.close()


async def _reach(
    service: AgentService, probe: Any, previous: ServiceState | None, *, patience: float
) -> Any:
    """The agent's registration, retrying an unreachable exchange for ``patience`` seconds
    (waits doubling to RETRY_CAP); then an ExchangeError."""
    from chiltepin.agents.exchange.kinds import RETRY_CAP, RETRY_FIRST

    deadline = time.monotonic() + patience
    wait = RETRY_FIRST
    while True:
        try:
            return await _registration(service, probe, previous)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                waited = f" after retrying for {patience:g} s" if patience else ""
                raise ExchangeError(
                    f"agent service '{service.name}': cannot reach its exchange "
                    f"{get_kind(service.exchange.kind).label(service.exchange)}{waited}: "
                    f"{mask_url(str(exc))} "
                    "(hint: is the exchange running and reachable? its unit restarts the service)"
                ) from None
        await asyncio.sleep(min(wait, left))
        wait = min(wait * 2, RETRY_CAP)


#: An exchange lost this soon after the agent started counts towards MAX_QUICK_LOSSES.
QUICK_LOSS_SECONDS = 60.0
MAX_QUICK_LOSSES = 3


def _give_up_or_reconnect(service: AgentService, lost: str, quick: int) -> None:
    """After the agent lost its exchange: an ExchangeError if the service may not register
    again (its exchange died with it, ``reconnect: 0``, or it was lost MAX_QUICK_LOSSES
    times in a row soon after starting), else one warning line."""
    if get_kind(service.exchange.kind).owned or not service.config.reconnect:
        why = ""
    elif quick >= MAX_QUICK_LOSSES:
        why = f" ({quick} times in a row, each within {QUICK_LOSS_SECONDS:g} s of starting)"
    else:
        why = None
    if why is not None:
        raise ExchangeError(
            f"agent service '{service.name}' lost its exchange{why}: {lost} "
            "(hint: its unit restarts the service)"
        )
    logger.warning(
        "agent service '%s' lost its exchange: %s; registering the agent again", service.name, lost
    )


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


async def _factory(
    service: AgentService, url: str | None, access: Any = None, *, reconnect: float = 0
) -> Any:
    """A factory for the service's exchange: through ``access`` (a running embedded
    exchange's client settings) if given, else its exchange settings; its clients retry a
    lost connection for ``reconnect`` seconds."""
    from chiltepin.agents.exchange import build_factory

    if access is not None:
        return await asyncio.to_thread(build_factory, access)
    return await asyncio.to_thread(build_factory, service.exchange, url, reconnect=reconnect)


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
    probe: Any,
    registration: Any,
    state: ServiceState,
    stop: _StopRequest,
) -> str | None:
    """Run the agent until it stops; what was wrong if it lost its exchange, else None."""
    from academy.runtime import Runtime, RuntimeConfig

    from chiltepin.agents._academy_compat import close_agent_client, listener_error

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
        await _close_mailbox(probe, registration)
        return None
    stop.runtime = runtime
    lost: str | None = None
    error: BaseException | None = None
    try:
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
            lost = await _until_stopped(runtime, probe, registration)
            error = listener_error(runtime)
            if error is not None and lost is None:
                lost = _describe(error)
            if lost is not None and not stop.requested:
                # Keep the mailbox: the exchange is gone or lost it; the next run takes over.
                runtime.signal_shutdown(expected=False, terminate=False)
            logger.info("agent service '%s' stopping", service.name)
    except Exception as exc:
        if exc is not error:
            raise
        # The Runtime re-raises its listener's error after stopping the agent, before it
        # closes its exchange client.
        await close_agent_client(runtime, timeout=CLOSE_SECONDS)
    if stop.requested:
        await _close_mailbox(probe, registration)
    logger.info("agent service '%s' stopped", service.name)
    return lost


async def _until_stopped(runtime: Any, probe: Any, registration: Any) -> str | None:
    """Wait for the agent's shutdown, or for :func:`_watch_mailbox` to find its mailbox
    lost (returned)."""
    watch = asyncio.ensure_future(_watch_mailbox(probe, registration.agent_id, runtime))
    shutdown = asyncio.ensure_future(runtime.wait_shutdown())
    await asyncio.wait({watch, shutdown}, return_when=asyncio.FIRST_COMPLETED)
    lost = watch.result() if watch.done() else None
    for task in (watch, shutdown):
        task.cancel()
    await asyncio.gather(watch, shutdown, return_exceptions=True)
    return lost


#: How often a service checks that its exchange still has its agent's mailbox.
MAILBOX_CHECK_SECONDS = 10.0
#: The longest a client of a lost exchange may take to close.
CLOSE_SECONDS = 2.0


async def _watch_mailbox(probe: Any, agent_id: Any, runtime: Any) -> str | None:
    """Return what is wrong once the exchange no longer has the agent's mailbox (a Redis
    restarted without its data: Academy's listener then waits on a new, empty queue and
    never notices). A mailbox closed by someone else stops the agent. ``probe``: a factory
    with few retries; while the exchange cannot be reached this keeps trying (the agent's
    own client retries, and reports it if it gives up)."""
    from academy.exchange.mailbox_status import MailboxStatus

    client = None
    try:
        while True:
            await asyncio.sleep(MAILBOX_CHECK_SECONDS)
            try:
                if client is None:
                    client = await probe.create_user_client(start_listener=False)
                status = await client.status(agent_id)
            except Exception as exc:  # noqa: BLE001 - unreachable for now: check again later
                logger.debug("mailbox check failed: %s", _describe(exc))
                continue
            if status == MailboxStatus.MISSING:
                return "the exchange lost the agent's mailbox (restarted without its data?)"
            if status == MailboxStatus.TERMINATED:
                logger.info("the agent's mailbox was closed on the exchange: stopping")
                runtime.signal_shutdown(expected=True)
                return None
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), CLOSE_SECONDS)


def _describe(exc: BaseException) -> str:
    text = mask_url(str(exc).splitlines()[0]) if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _close_mailbox(probe: Any, registration: Any) -> None:
    """Close the agent's mailbox (the agent is gone), giving up with one warning if the
    exchange does not answer in MAILBOX_CHECK_SECONDS: a stop must not wait on it."""

    async def close() -> None:
        async with await probe.create_user_client(start_listener=False) as client:
            await client.terminate(registration.agent_id)

    try:
        await asyncio.wait_for(close(), MAILBOX_CHECK_SECONDS)
    except Exception as exc:  # noqa: BLE001 - unreachable, or slow: the stop goes on
        logger.warning("could not close the agent's mailbox on its exchange: %s", _describe(exc))


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
        self._waiting: asyncio.Future[Any] | None = None
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
            # The service closes the mailbox itself, within a bounded time (_close_mailbox):
            # the Runtime's own client would retry an unreachable exchange for minutes.
            self.runtime.signal_shutdown(expected=True, terminate=False)
        if self._waiting is not None:
            self._waiting.cancel()

    async def unless_stopped(self, coro: Any) -> Any:
        """Await ``coro`` unless a stop is requested first (or meanwhile): then None."""
        if self.requested:
            coro.close()
            return None
        self._waiting = asyncio.ensure_future(coro)
        try:
            return await self._waiting
        except asyncio.CancelledError:
            if self.requested and self._waiting.cancelled():
                return None
            raise
        finally:
            self._waiting = None


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
