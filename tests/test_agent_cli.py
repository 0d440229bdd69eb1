"""``chiltepin agent serve/unit/launch/list/call/shutdown``, for real.

Served agents run in their own ``chiltepin agent serve`` process with their own Parsl
workflow, on an HTTP exchange (Academy's, on loopback), a Redis exchange (a loopback
``redis-server``) or the embedded exchange the service starts itself. They are driven
from other processes: the CLI, and this test process through the discovery API. After
each service stops, no serve process, worker, interchange or exchange may be left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from helpers import agent_services as S
from helpers import processes as P
from helpers.cli import CLI, one_line_error, run
from helpers.infra import REPO, TESTS
from helpers.processes import processes_under, wait_until_gone

from chiltepin.cli.main import main

COMPUTE = {"compute": {"provider": "localhost", "max_workers_per_node": 1, "init_blocks": 1}}


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    """A private XDG_STATE_HOME for this test and the processes it starts."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home / "chiltepin" / "agents"


@pytest.fixture
def services(tmp_path):
    """Kill whatever serve process a failed test left (their sessions: workers too)."""
    yield
    for proc in P.serve_processes(tmp_path):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
    wait_until_gone(P.serve_processes, tmp_path, timeout=60)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``chiltepin agent ARGS``."""
    return run("agent", *args, timeout=timeout)


def ok(*args: str, timeout: float = 300) -> str:
    out = cli(*args, timeout=timeout)
    assert out.returncode == 0, f"chiltepin agent {' '.join(args)}: {out.stderr}"
    return out.stdout


def write_service(path: Path, **fields) -> Path:
    import yaml

    data = {"agent": "helpers.agent_services:Counter", **fields}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_state_file(state_home: Path, name: str) -> dict | None:
    path = state_home / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def assert_all_gone(tmp_path: Path, serve_pid: int) -> None:
    """No serve process, embedded exchange, interchange or worker of this test is left."""
    assert wait_until_gone(P.serve_processes, tmp_path) == []
    assert wait_until_gone(P.exchange_servers, serve_pid) == []
    assert wait_until_gone(processes_under, tmp_path) == []


async def discovered(factory, cls=S.Counter) -> set[str]:
    from chiltepin.agents import ChiltepinManager

    async with await ChiltepinManager.from_exchange_factory(factory) as manager:
        return {str(agent_id.uid) for agent_id in await manager.discover(cls)}


async def call_through_discovery(factory, by: int) -> tuple[str, int]:
    """Another program's view: find the agent by class, get a handle, call it."""
    from chiltepin.agents import ChiltepinManager

    async with await ChiltepinManager.from_exchange_factory(factory) as manager:
        handle = await manager.find_agent(S.Counter)
        same = manager.get_handle(handle.agent_id)
        return str(handle.agent_id.uid), await same.increment(by)


# --- exchanges --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_exchange():
    """Academy's HTTP exchange on loopback, outliving every service of the module."""
    from chiltepin.agents import EmbeddedExchange

    with EmbeddedExchange() as server:
        yield server.url


# --- live services ------------------------------------------------------------------------------


def test_launch_call_discover_and_shutdown_on_an_http_exchange(
    tmp_path, state_home, services, http_exchange
):
    from academy.exchange.cloud.client import HttpExchangeFactory

    config = write_service(
        tmp_path / "counter.yaml",
        name="counter-http",
        args=[5],
        kwargs={"label": "http"},
        agent_workflow_config=COMPUTE,
        agent_workflow_include=["compute"],
        agent_workflow_run_dir="run",
        exchange={"kind": "http", "url": http_exchange},
        python_path=[str(TESTS)],
        environment={"COUNTER_GREETING": "hello"},
    )
    agent_id = ok("launch", str(config)).strip()
    uuid.UUID(agent_id)
    state = read_state_file(state_home, "counter-http")
    assert state["agent_id"] == agent_id and state["status"] == "running"
    assert state["agent_class"] == "helpers.agent_services.Counter"
    assert stat.S_IMODE(state_home.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_home / "counter-http.json").stat().st_mode) == 0o600
    serve_pid = state["pid"]
    assert [p.pid for p in P.serve_processes(config)] == [serve_pid]

    # from other processes: the CLI ...
    listing = json.loads(ok("list", "--json", "--exchange", http_exchange))
    assert [(s["name"], s["status"]) for s in listing["services"]] == [("counter-http", "running")]
    assert {"agent_id": agent_id, "status": "active", "service": "counter-http"} in listing[
        "discovered"
    ]
    assert "counter-http  running" in ok("list")
    assert ok("call", "counter-http", "increment", "--args", "[2]") == "7\n"
    described = json.loads(ok("call", agent_id[:8], "describe"))
    assert described == {"label": "http", "count": 7, "greeting": "hello"}
    square = json.loads(ok("call", agent_id, "square", "--kwargs", '{"x": 6}'))
    assert square["square"] == 36 and square["pid"] != serve_pid  # on the agent's worker
    failed = one_line_error(cli("call", "counter-http", "fail", "--args", '["boom"]'), 1)
    assert failed == "chiltepin: error: action 'fail' raised ValueError: boom"
    typo = one_line_error(cli("call", "counter-http", "incremnt"), 2)
    assert "no action 'incremnt'" in typo and "did you mean 'increment'?" in typo

    # ... and this process, through the discovery API
    factory = HttpExchangeFactory(http_exchange)
    assert asyncio.run(call_through_discovery(factory, 1)) == (agent_id, 8)
    assert json.loads(ok("call", "counter-http", "describe"))["count"] == 8

    again = one_line_error(cli("launch", str(config)), 2)
    assert "'counter-http' is already running" in again

    assert "stopped agent service 'counter-http'" in ok("shutdown", "counter-http")
    assert read_state_file(state_home, "counter-http") is None
    assert_all_gone(tmp_path, serve_pid)
    assert asyncio.run(discovered(factory)) == set()  # its mailbox is closed
    gone = one_line_error(cli("call", "counter-http", "describe"), 2)
    assert "no agent service named 'counter-http'" in gone


@pytest.mark.redis
def test_a_service_with_an_embedded_exchange_beyond_loopback_is_driven_with_its_token(
    tmp_path, state_home, services
):
    from helpers.infra import login_address

    config = write_service(
        tmp_path / "counter.yaml",
        name="counter-tls",
        agent_workflow_config=COMPUTE,
        agent_workflow_run_dir="run",
        exchange={"kind": "embedded", "host": login_address()},
    )
    agent_id = ok("launch", str(config)).strip()
    state = read_state_file(state_home, "counter-tls")
    url = state["exchange_url"]
    assert url.startswith(f"https://{login_address()}:")
    token = Path(state["exchange_access"]["token_file"])
    assert token.parent == state_home / "counter-tls.exchange"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text().strip() not in json.dumps(state)  # a path, not the token

    # the CLI reads the token and certificate beside the state file
    assert ok("call", "counter-tls", "increment", "--args", "[2]") == "2\n"
    assert ok("call", agent_id[:8], "increment") == "3\n"
    # the bare URL is not enough
    refused = one_line_error(cli("list", "--exchange", url), 2)
    assert "no authentication" in refused and "token_file" in refused

    assert "stopped agent service 'counter-tls'" in ok("shutdown", "counter-tls")
    assert_all_gone(tmp_path, state["pid"])
    assert not token.parent.exists()


def test_serve_in_the_foreground_on_redis_until_sigterm(tmp_path, state_home, services, redis_port):
    from chiltepin.agents.exchange import build_factory
    from chiltepin.config.schema import ExchangeSettings

    exchange = {"kind": "redis", "host": "127.0.0.1", "port": redis_port}
    factory = build_factory(ExchangeSettings.model_validate(exchange))
    config = write_service(
        tmp_path / "counter.yaml",
        name="counter-redis",
        agent_workflow_config=COMPUTE,
        agent_workflow_run_dir="run",
        exchange=exchange,
    )
    # A run of this service that was killed left its state file and an open mailbox:
    # the next serve takes that agent ID over.
    left_behind = asyncio.run(leave_stale_state(factory, state_home, "counter-redis", exchange))
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen(
        [CLI, "agent", "serve", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        state = P.wait_for(
            lambda: (
                (s := read_state_file(state_home, "counter-redis"))
                and s["pid"] == serve.pid
                and s["status"] == "running"
                and s
            ),
            timeout=120,
        )
        assert state, (tmp_path / "serve.log").read_text()
        assert state["agent_id"] == left_behind

        assert ok("call", "counter-redis", "increment", "--args", "[3]") == "3\n"
        assert asyncio.run(call_through_discovery(factory, 2)) == (left_behind, 5)
        redis_url = f"redis://127.0.0.1:{redis_port}"
        listing = json.loads(
            ok(
                "list",
                "--json",
                "--exchange",
                redis_url,
                "--class",
                "helpers.agent_services.Counter",
            )
        )
        assert [d["agent_id"] for d in listing["discovered"]] == [left_behind]

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=120) == 0
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "taking over agent" in text and "received SIGTERM" in text, text
    assert read_state_file(state_home, "counter-redis") is None
    assert_all_gone(tmp_path, serve.pid)
    assert asyncio.run(discovered(factory)) == set()

    # shutdown of a service whose process is gone: its state goes, its mailbox is closed
    stale = asyncio.run(leave_stale_state(factory, state_home, "counter-redis", exchange))
    assert asyncio.run(discovered(factory)) == {stale}
    assert "was not running" in ok("shutdown", "counter-redis")
    assert read_state_file(state_home, "counter-redis") is None
    assert asyncio.run(discovered(factory)) == set()


async def leave_stale_state(factory, state_home: Path, name: str, exchange: dict) -> str:
    """What ``serve`` leaves when it is SIGKILLed: a registered agent and a state file
    naming a process that is gone."""
    from chiltepin.agents.serve.state import ServiceState, write_state

    async with await factory.create_user_client() as client:
        registration = await client.register_agent(S.Counter, name=name)
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_state(
        ServiceState(
            name=name,
            agent_id=str(registration.agent_id.uid),
            agent="helpers.agent_services:Counter",
            agent_class="helpers.agent_services.Counter",
            actions=["increment"],
            exchange=exchange,
            exchange_url=None,
            registration=registration.model_dump(mode="json"),
            pid=gone.pid,
            pid_created=time.time() - 60,
            host=socket.gethostname(),
            config="/nowhere/counter.yaml",
            python_path=[],
            status="running",
        )
    )
    return str(registration.agent_id.uid)


def test_ctrl_c_on_a_terminal_stops_a_service_with_its_embedded_exchange(
    tmp_path, state_home, services
):
    """On the local site (embedded exchange by default): Ctrl-C reaches the whole
    foreground process group, which must still end in a clean stop."""
    import pty

    config = write_service(
        tmp_path / "counter.yaml",
        name="counter-local",
        site="local",
        agent_workflow_include=["compute"],
        agent_workflow_run_dir="run",
    )
    terminal, child_side = pty.openpty()
    serve = subprocess.Popen(
        [CLI, "agent", "serve", str(config)],
        stdin=child_side,
        stdout=child_side,
        stderr=child_side,
        start_new_session=True,  # its own process group: the "foreground job" here
    )
    os.close(child_side)
    output = bytearray()
    try:
        state = P.wait_for(
            lambda: (
                _drain(terminal, output)
                or (
                    (s := read_state_file(state_home, "counter-local"))
                    and s["status"] == "running"
                    and s
                )
            ),
            timeout=120,
        )
        assert state, output.decode(errors="replace")
        service_pid = state["pid"]  # the supervised service process
        assert service_pid != serve.pid
        assert state["exchange_url"].startswith("http://127.0.0.1:")
        assert len(P.exchange_servers(service_pid)) == 1
        assert "(embedded)" in ok("list")
        assert json.loads(ok("call", "counter-local", "square", "--args", "[9]"))["square"] == 81
        assert int(ok("call", "counter-local", "ticks_now")) > 0  # its loop runs

        os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C
        deadline = time.monotonic() + 120
        while serve.poll() is None and time.monotonic() < deadline:
            _drain(terminal, output)
            time.sleep(0.1)
        assert serve.returncode == 0, output.decode(errors="replace")
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        os.close(terminal)
    assert "agent service 'counter-local' stopped" in output.decode(errors="replace")
    assert read_state_file(state_home, "counter-local") is None
    assert_all_gone(tmp_path, service_pid)


def _drain(fd: int, into: bytearray) -> None:
    import select

    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


# --- the systemd unit ---------------------------------------------------------------------------


def test_systemd_unit(tmp_path, state_home, monkeypatch):
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(tmp_path / "my sites"))
    config = write_service(
        tmp_path / "counter.yaml",
        name="counter",
        description="Counts 100% of the time",
        agent_workflow_config=COMPUTE,
    )
    out = subprocess.run(
        [CLI, "agent", "unit", str(config), "-o", str(tmp_path / "units")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    unit = tmp_path / "units" / "chiltepin-agent-counter.service"
    assert out.stdout.strip() == str(unit)
    text = unit.read_text()
    lines = text.splitlines()
    assert f"ExecStart={CLI} agent serve {config}" in lines
    assert f"WorkingDirectory={tmp_path}" in lines
    assert "Restart=on-failure" in lines and "KillMode=mixed" in lines
    assert "Type=simple" in lines and "WantedBy=default.target" in lines
    assert f"Environment=PATH={Path(CLI).parent}:/usr/local/bin:/usr/bin:/bin" in lines
    assert f'Environment="CHILTEPIN_SITE_PATH={tmp_path}/my sites"' in lines
    assert f"Environment=XDG_STATE_HOME={state_home.parent.parent}" in lines
    assert "Description=Counts 100%% of the time (counter)" in lines
    assert [line for line in lines if line.startswith("[")] == ["[Unit]", "[Service]", "[Install]"]
    assert ok("unit", str(config)) == text  # without -o: printed

    import shutil

    if shutil.which("systemd-analyze"):
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr


def test_the_example_service_file_is_valid():
    example = REPO / "examples" / "agents" / "service.yaml"
    text = ok("unit", str(example))
    assert f"agent serve {example}" in text


# --- bad input: one line, exit 2 -------------------------------------------------------------


BAD_SERVICES = [
    ("name: x\nagnet: a:B\n", r"counter.yaml:2: key 'agnet': unknown key .*did you mean 'agent'"),
    ("agent: a:B\n", r"counter.yaml: key 'name': required key is missing"),
    ("name: x y\nagent: a:B\n", r"counter.yaml:1: key 'name': invalid service name 'x y'"),
    ("name: x\nagent: helpers.agent_services.Counter\n", r"key 'agent': agent must be 'package"),
    (
        "name: x\nagent: no_such_module:Thing\n",
        r"counter.yaml:2: key 'agent': cannot import module 'no_such_module'",
    ),
    (
        "name: x\nagent: helpers.agent_services:Countr\n",
        r"has no 'Countr' .*did you mean 'Counter'",
    ),
    (
        "name: x\nagent: helpers.agent_services:NotAnAgent\n",
        r"key 'agent': .*'NotAnAgent' is not a chiltepin agent: decorate the class",
    ),
    (
        "name: x\nagent: helpers.agent_services:Counter\nargs: [1, 2, 3]\n",
        r"counter.yaml:3: key 'args': Counter.* cannot take args=\(1, 2, 3\)",
    ),
    (
        "name: x\nagent: helpers.agent_services:Counter\nsite: local\n"
        "agent_workflow_config: {compute: {}}\n",
        r"key 'agent_workflow_config': give either site or agent_workflow_config",
    ),
    (
        "name: x\nagent: helpers.agent_services:Counter\nexchange:\n  kind: redis\n  prot: 1\n",
        r"counter.yaml:5: key 'exchange.prot': unknown key .*did you mean 'port'",
    ),
    (
        "name: x\nagent: helpers.agent_services:Counter\nexchange: {kind: hosted}\n",
        r"key 'exchange': a served agent cannot use the hosted exchange",
    ),
    (
        "name: x\nagent: helpers.agent_services:Counter\nagent_workflow_config:\n"
        "  compute:\n    provider: localhost\n    bogus: 1\n",
        r"counter.yaml:6: key 'agent_workflow_config.compute.bogus': unknown key",
    ),
    (
        "name: x\nagent: helpers.agent_services:Counter\nagent_workflow_include: [gpu]\n",
        r"counter.yaml:3: key 'agent_workflow_include': included executor 'gpu'",
    ),
    ("name: x\nagent: [unclosed\n", r"counter.yaml:3: YAML syntax error"),
    *(
        (f"name: x\nagent: helpers.agent_services:Counter\nreconnect: {value}\n", message)
        for value, message in (
            ("-1", r"counter.yaml:3: key 'reconnect': must be >= 0.0, got -1"),
            ("100000", r"counter.yaml:3: key 'reconnect': must be <= 86400"),
            (".nan", r"counter.yaml:3: key 'reconnect': "),
            ("soon", r"counter.yaml:3: key 'reconnect': expected float, got a string"),
            ("true", r"counter.yaml:3: key 'reconnect': "),
        )
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_SERVICES)
def test_bad_service_files(tmp_path, state_home, capsys, text, message):
    import re

    config = tmp_path / "counter.yaml"
    config.write_text(text)
    for command in ("launch", "unit", "serve"):
        assert main(["agent", command, str(config)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(message, err[0]), err
    assert not state_home.exists() or not any(state_home.iterdir())  # nothing started


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["call", "nothing", "ping"], "no agent service named 'nothing' (hint: none is running"),
        (["shutdown", "nothing"], "no agent service named 'nothing'"),
        (["call", "x", "a", "--args", "[1,"], "--args is not valid JSON"),
        (["call", "x", "a", "--args", '{"a": 1}'], "--args must be a JSON list, got dict"),
        (["call", "x", "a", "--kwargs", "[1]"], "--kwargs must be a JSON object, got list"),
        (["call", str(uuid.UUID(int=7)), "a"], "no agent service here runs agent"),
        (["list", "--class", "a.B"], "--class needs the exchange to search"),
        (["list", "--exchange", "ftp://host:1"], "is not an exchange URL"),
        (["list", "--site", "local"], "site 'local' uses an embedded exchange"),
        (["unit", "/no/such/file.yaml"], "/no/such/file.yaml: file not found"),
    ],
)
def test_bad_arguments(state_home, capsys, argv, message):
    assert main(["agent", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_bad_input_from_the_shell_exits_2(tmp_path, state_home):
    config = write_service(tmp_path / "counter.yaml", name="x", agnet="typo")
    line = one_line_error(cli("launch", str(config)), 2)
    assert f"{config}:3: key 'agnet': unknown key" in line
    line = one_line_error(cli("call", "nothing", "increment", "--args", "nope"), 2)
    assert "--args is not valid JSON" in line
