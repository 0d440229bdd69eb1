"""Driving agent services from a shell: launch, list, call, shut down.

A target is a service name (its state file says where its agent and exchange are), the
agent's UUID (found in the state files, or on the exchange named by ``exchange``), or a
unique prefix of a local service's agent UUID.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from chiltepin.agents.exchange import build_factory, exchange_label, get_kind, mask_url
from chiltepin.agents.exchange.base import quiet_academy_logs
from chiltepin.agents.serve.config import SERVICE_NAME_RE, add_python_path, load_service
from chiltepin.agents.serve.state import (
    RUNNING,
    BrokenState,
    ServiceState,
    all_states,
    ensure_state_dir,
    find_state,
    load_state,
    lock_held,
    lock_path,
    log_path,
    read_state,
    remove_state,
    scan_states,
    state_path,
)
from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import (
    ActionFailed,
    ActionTimeout,
    ConfigError,
    ServiceError,
    did_you_mean,
)

logger = logging.getLogger(__name__)

#: Class name that every chiltepin agent's registration lists (discovery by class).
ANY_CHILTEPIN_AGENT = "chiltepin.agents.behaviour.ChiltepinAgent"
CLIENT_NAME = "chiltepin-cli"


# --- exchanges ------------------------------------------------------------------------------


def site_exchange(site: str) -> ExchangeSettings:
    """The exchange of site profile ``site``, if a shell command can reach it."""
    from chiltepin.agents._site import load_site

    settings = load_site(site).exchange
    refusal = get_kind(settings.kind).site_refusal(site)
    if refusal is not None:
        message, hint = refusal
        raise ConfigError(message, key="--site", hint=hint)
    return settings


@dataclasses.dataclass
class Target:
    """An agent to talk to, and the exchange it is on."""

    agent_id: Any  # academy AgentId
    exchange: ExchangeSettings
    url: str | None = None  # an embedded exchange's URL
    state: ServiceState | None = None
    access: ExchangeSettings | None = None  # how clients reach an embedded exchange

    @property
    def label(self) -> str:
        if self.state is not None:
            return f"agent service '{self.state.name}' (agent {self.agent_id.uid})"
        return f"agent {self.agent_id.uid}"

    @classmethod
    def of_state(cls, state: ServiceState) -> Target:
        from academy.identifier import AgentId

        return cls(
            agent_id=AgentId(uid=uuid.UUID(state.agent_id), name=state.name),
            exchange=state.exchange_settings(),
            url=state.exchange_url,
            state=state,
            access=(
                ExchangeSettings.model_validate(state.exchange_access)
                if state.exchange_access is not None
                else None
            ),
        )

    def create_factory(self) -> Any:
        if self.access is not None:
            return build_factory(self.access)
        return build_factory(self.exchange, self.url)


def resolve(target: str, exchange: ExchangeSettings | None = None) -> Target:
    """The agent ``target`` names (a service name, agent UUID, or UUID prefix)."""
    from academy.identifier import AgentId

    if SERVICE_NAME_RE.match(target):
        state = find_state(target)  # a broken state file of that name is an error
        if state is not None:
            return Target.of_state(state)
    states = all_states()
    uid = _uuid(target)
    if uid is not None:
        for state in states:
            if state.agent_id == str(uid):
                return Target.of_state(state)
        if exchange is not None:
            return Target(agent_id=AgentId(uid=uid), exchange=exchange)
        raise ConfigError(
            f"no agent service here runs agent {uid}",
            hint="name the exchange it is on: --exchange URL or --site NAME",
        )
    prefix = target.lower()
    if len(prefix) >= 4 and all(c in "0123456789abcdef-" for c in prefix):
        matches = [s for s in states if s.agent_id.startswith(prefix)]
        if len(matches) == 1:
            return Target.of_state(matches[0])
        if len(matches) > 1:
            raise ConfigError(
                f"agent ID prefix '{target}' matches {len(matches)} services",
                hint="give more of the ID, or the service name",
            )
    names = [s.name for s in states]
    hint = did_you_mean(target, names)
    if hint is None:
        hint = (
            f"services: {', '.join(names)}"
            if names
            else "none is running: start one with chiltepin agent launch FILE"
        )
    raise ConfigError(f"no agent service named '{target}'", hint=hint)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@contextlib.asynccontextmanager
async def connected(target: Target, *, timeout: float = 30.0) -> AsyncIterator[Any]:
    """A user client on the target's exchange (also the handles' context)."""
    quiet_academy_logs()
    label = exchange_label(target.exchange, target.url)
    try:
        factory = await asyncio.to_thread(target.create_factory)
        client = await asyncio.wait_for(factory.create_user_client(name=CLIENT_NAME), timeout)
    except ConfigError:
        raise  # e.g. an unauthenticated exchange refused: the user's input (exit status 2)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is reported as one
        raise ServiceError(
            f"cannot reach the exchange {label}: {type(exc).__name__}: {mask_url(str(exc))}"
        ) from None
    from academy.exchange.client import exchange_context

    token = exchange_context.set(client)
    try:
        yield client
    finally:
        exchange_context.reset(token)
        # Closing removes this client's mailbox; an exchange that has just gone (an
        # embedded one, with its service) must not turn a done job into an error.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 10)


def check_process(target: Target) -> None:
    """ServiceError if the target's service process on this host has exited."""
    state = target.state
    if state is not None and state.process_alive() is False:
        raise ServiceError(
            f"{target.label} is not running (its process {state.pid} has exited); "
            f"clean up with: chiltepin agent shutdown {state.name}"
        )


async def _check_reachable(client: Any, target: Target) -> None:
    from academy.exchange.mailbox_status import MailboxStatus

    state = target.state
    status = await client.status(target.agent_id)
    if status == MailboxStatus.MISSING:
        raise ServiceError(
            f"{target.label} is not on the exchange {exchange_label(target.exchange, target.url)}"
        )
    if status == MailboxStatus.TERMINATED:
        raise ServiceError(f"{target.label} has shut down")
    if status == MailboxStatus.INACTIVE and state is None:
        raise ServiceError(f"{target.label} is not running (it has stopped sending heartbeats)")


# --- call -------------------------------------------------------------------------------------


def unknown_action(target: Target, action: str, names: list[str] | None) -> ConfigError:
    hint = None
    if names:
        hint = did_you_mean(action, names) or f"actions: {', '.join(names)}"
    return ConfigError(f"{target.label} has no action '{action}'", hint=hint)


async def call_action(
    target: Target,
    action: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    timeout: float | None = None,
) -> Any:
    """The action's result; ActionFailed with the action's own error if it raised."""
    from academy.exception import MailboxTerminatedError
    from academy.handle import Handle

    if target.state is not None:
        if action not in target.state.actions:
            raise unknown_action(target, action, target.state.actions)
        add_python_path(target.state.python_path)  # for results of the service's own types
    from chiltepin.agents.handle import default_action_timeout

    check_process(target)
    if timeout is None:
        timeout = default_action_timeout()
    async with connected(target) as client:
        await _check_reachable(client, target)
        handle = Handle(target.agent_id)
        try:
            return await asyncio.wait_for(handle.action(action, *args, **kwargs), timeout)
        except asyncio.TimeoutError:
            raise ActionTimeout(
                f"{target.label}: action '{action}' did not finish within {timeout:g} s "
                "(hint: --timeout SECONDS)"
            ) from None
        except MailboxTerminatedError:
            raise ServiceError(f"{target.label} has shut down") from None
        except AttributeError as exc:
            if "does not have an action named" not in str(exc):
                raise ActionFailed(_action_error(action, exc)) from None
            names = await _remote_actions(handle)
            raise unknown_action(target, action, names) from None
        except Exception as exc:  # noqa: BLE001 - the action's own error
            raise ActionFailed(_action_error(action, exc)) from None


def _action_error(action: str, exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    text = message[0] if message else ""
    return f"action '{action}' raised {type(exc).__name__}" + (f": {text}" if text else "")


async def _remote_actions(handle: Any) -> list[str] | None:
    try:
        described = await asyncio.wait_for(handle.agent_describe(), 30)
        return sorted(described.actions)
    except Exception:  # noqa: BLE001 - suggestions are best effort
        return None


# --- shutdown ---------------------------------------------------------------------------------


def remove_broken_state(name: str) -> str | None:
    """If service ``name`` has a broken state file, remove it (unless a serve of that name
    still runs here) and say so; None if its state file is not broken."""
    if not SERVICE_NAME_RE.match(name):
        return None
    broken = load_state(state_path(name))
    if not isinstance(broken, BrokenState):
        return None
    if lock_held(name):
        raise ConfigError(
            f"{broken.message}; a serve process of that name still runs here "
            f"(it holds {lock_path(name)})",
            hint=f"stop that process (fuser {lock_path(name)} names it), then run: "
            f"chiltepin agent shutdown {name}",
        )
    try:
        if broken.path.is_dir():
            broken.path.rmdir()
        else:
            broken.path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(
            f"{broken.message}; cannot remove it: {exc.strerror or exc}",
            hint=f"remove {broken.path} yourself",
        ) from None
    return (
        f"agent service '{name}' was not running and its state file was corrupt "
        f"({broken.reason}); removed it"
    )


async def shutdown_agent(target: Target, *, timeout: float = 120.0) -> str:
    """Ask the agent to shut down; wait until its service process has exited."""
    from academy.exception import MailboxTerminatedError
    from academy.exchange.mailbox_status import MailboxStatus
    from academy.handle import Handle

    state = target.state
    if state is not None and state.process_alive() is False:
        await _retire_stale(target)
        remove_state(state.name, pid=state.pid)
        return (
            f"agent service '{state.name}' was not running (process {state.pid} had exited); "
            "removed its state"
        )
    deadline = time.monotonic() + timeout
    async with connected(target) as client:
        status = await client.status(target.agent_id)
        if state is None and status in (MailboxStatus.MISSING, MailboxStatus.TERMINATED):
            raise ServiceError(f"{target.label} is not running ({status.value.lower()})")
        handle = Handle(target.agent_id)
        try:
            await handle.shutdown()
        except MailboxTerminatedError:
            if state is None:
                raise ServiceError(f"{target.label} has already shut down") from None
        await _acknowledged(handle)
        if state is None:
            while await client.status(target.agent_id) != MailboxStatus.TERMINATED:
                if time.monotonic() > deadline:
                    raise ServiceError(f"{target.label} did not shut down within {timeout:g} s")
                await asyncio.sleep(0.2)
            return f"stopped {target.label}"
    await _wait_stopped(state, deadline, timeout)
    return f"stopped {target.label}"


async def _acknowledged(handle: Any, timeout: float = 10.0) -> None:
    """Wait for the agent to acknowledge a shutdown request before this client's
    mailbox goes away (else the agent logs a failed reply)."""
    pending = [f for f in getattr(handle, "_pending_response_futures", {}).values()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


async def _wait_stopped(state: ServiceState, deadline: float, timeout: float) -> None:
    path_exists = lambda: read_state(state.name) is not None  # noqa: E731
    while True:
        alive = state.process_alive()
        if alive is False:
            # A service removes its state file as it exits; a crash may leave it.
            if path_exists():
                await asyncio.sleep(0.2)
                remove_state(state.name, pid=state.pid)
            return
        if alive is None and not path_exists():  # on another host: its file is the sign
            return
        if time.monotonic() > deadline:
            where = f"pid {state.pid}" if alive else f"pid {state.pid} on {state.host}"
            raise ServiceError(
                f"agent service '{state.name}' did not stop within {timeout:g} s ({where})"
            )
        await asyncio.sleep(0.2)


async def _retire_stale(target: Target) -> None:
    """Close the mailbox a killed service left open (an exchange it ran died with it)."""
    if get_kind(target.exchange.kind).owned:
        return
    with contextlib.suppress(Exception):
        async with connected(target, timeout=10) as client:
            await asyncio.wait_for(client.terminate(target.agent_id), 10)


# --- launch -----------------------------------------------------------------------------------


def launch_service(path: str | Path, *, timeout: float = 300.0) -> ServiceState:
    """Start ``chiltepin agent serve PATH`` in the background; return its state once the
    agent answers a ping."""
    from chiltepin.agents.serve.unit import chiltepin_command

    service = load_service(path)  # bad input fails here, before anything starts
    previous = read_state(service.name)
    if previous is not None and previous.process_alive() is not False:
        where = "" if previous.on_this_host else f" on host {previous.host}"
        raise ConfigError(
            f"agent service '{service.name}' is already running{where} "
            f"(pid {previous.pid}, agent {previous.agent_id})",
            hint=f"stop it first: chiltepin agent shutdown {service.name}",
        )
    ensure_state_dir()
    log = log_path(service.name)
    command = [*chiltepin_command(), "agent", "serve", str(service.path)]
    with open(log, "ab") as out:
        os.chmod(log, 0o600)
        offset = out.tell()
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            command,
            cwd=service.directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by the terminal's Ctrl-C or hangup
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    try:
        state = _wait_running(service.name, proc, log, offset, deadline, timeout)
        asyncio.run(_ping(Target.of_state(state), max(5.0, deadline - time.monotonic())))
    except BaseException:
        from chiltepin.watchdog import stop_child

        stop_child(proc, grace=60)
        raise
    return state


def _wait_running(
    name: str, proc: subprocess.Popen, log: Path, offset: int, deadline: float, timeout: float
) -> ServiceState:
    while True:
        code = proc.poll()
        if code is not None:
            last = _last_lines(log, offset)
            if code == 2 and last.startswith("chiltepin: error: "):
                raise ConfigError(last.removeprefix("chiltepin: error: "))
            raise ServiceError(
                f"agent service '{name}' exited with status {code} while starting: {last} "
                f"(log: {log})"
            )
        state = read_state(name)
        if state is not None and state.pid == proc.pid and state.status == RUNNING:
            return state
        if time.monotonic() > deadline:
            raise ServiceError(
                f"agent service '{name}' did not start within {timeout:g} s (log: {log})"
            )
        time.sleep(0.1)


async def _ping(target: Target, timeout: float) -> None:
    from academy.handle import Handle

    async with connected(target) as client:
        await _check_reachable(client, target)
        try:
            await Handle(target.agent_id).ping(timeout=timeout)
        except asyncio.TimeoutError:
            raise ServiceError(
                f"{target.label} did not answer a ping within {timeout:g} s"
            ) from None


def _last_lines(log: Path, offset: int, count: int = 1) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:]) if lines else "(no output)"


# --- list -------------------------------------------------------------------------------------


def service_rows() -> list[dict[str, Any]]:
    """One row per state file (a broken one: status ``corrupt`` and its ``error``)."""
    rows: list[dict[str, Any]] = []
    for state in scan_states():
        if isinstance(state, BrokenState):
            rows.append(
                {
                    "name": state.name,
                    "status": "corrupt",
                    "agent_id": None,
                    "agent_class": None,
                    "exchange": None,
                    "pid": None,
                    "host": None,
                    "config": None,
                    "error": f"{state.message} (hint: {state.hint})",
                }
            )
            continue
        alive = state.process_alive()
        if alive is None:
            status = f"{state.status} on {state.host}"
        elif alive:
            status = state.status
        else:
            status = "stale"
        rows.append(
            {
                "name": state.name,
                "status": status,
                "agent_id": state.agent_id,
                "agent_class": state.agent_class,
                "exchange": state.exchange_label,
                "pid": state.pid,
                "host": state.host,
                "config": state.config,
            }
        )
    return rows


async def discover_agents(
    exchange: ExchangeSettings, agent_class: str = ANY_CHILTEPIN_AGENT
) -> list[dict[str, Any]]:
    """Agents of ``agent_class`` (or a subclass) on ``exchange``, with mailbox status."""
    target = Target(agent_id=None, exchange=exchange)
    services = {s.agent_id: s.name for s in all_states()}
    async with connected(target) as client:
        ids = await client.discover(agent_class, allow_subclasses=True)
        rows = []
        for agent_id in ids:
            status = await client.status(agent_id)
            rows.append(
                {
                    "agent_id": str(agent_id.uid),
                    "status": status.value.lower(),
                    "service": services.get(str(agent_id.uid)),
                }
            )
    return rows
