"""Another user on the login node (helpers.users) gets nothing of yours: not your
agents through the exchange, not a task from your interchange, not a byte of your run
directories, logs, tokens or state files. Each check is paired with a control that
shows the same probe does get through where access is open, so none can pass vacuously.

The exchange is bound beyond loopback (``helpers.infra.login_address``: this host's
address, or ``CHILTEPIN_TEST_ADDRESS``, e.g. the multi-host cluster's bridge).
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from academy.agent import Agent, action
from academy.manager import Manager
from helpers import tasks as ts
from helpers.infra import login_address
from helpers.users import python_as_other, readable_by_other

from chiltepin import Workflow
from chiltepin.agents.exchange import EmbeddedExchange
from chiltepin.agents.serve.state import ServiceState, ensure_state_dir, write_state


class Ping(Agent):
    @action
    async def hello(self) -> str:
        return "pong"


# What the other user tries against an exchange: list agents, call one, shut it down.
EXCHANGE_PROBE = """
url, agent_uid, token_file = sys.argv[1:4]
from academy.exchange.cloud.client import HttpExchangeFactory
from academy.identifier import AgentId
from academy.handle import Handle
import uuid
result = {}
try:
    open(token_file).read()
    result["token"] = "read"
except OSError as exc:
    result["token"] = f"denied ({exc.errno})"

async def main():
    factory = HttpExchangeFactory(url, ssl_verify=False)  # no pinning: it has nothing to pin
    try:
        client = await factory.create_user_client(start_listener=True)
    except Exception as exc:
        result["client"] = f"refused ({type(exc).__name__})"
        return
    result["client"] = "made"
    async with client:
        found = await client.discover(Agent, allow_subclasses=True)
        result["listed"] = [str(a.uid) for a in found]
        handle = Handle(AgentId(uid=uuid.UUID(agent_uid)), exchange=client)
        result["called"] = await asyncio.wait_for(handle.action("hello"), 30)
        await handle.shutdown()
        result["shutdown"] = "sent"

from academy.agent import Agent
asyncio.run(main())
print(json.dumps(result))
"""


async def _probe_exchange(server: EmbeddedExchange, token_file: Path) -> dict:
    async with await Manager.from_exchange_factory(
        server.factory(), executors=ThreadPoolExecutor(2)
    ) as manager:
        handle = await manager.launch(Ping)
        assert await handle.hello() == "pong"
        out = await asyncio.to_thread(
            python_as_other, EXCHANGE_PROBE, server.url, str(handle.agent_id.uid), str(token_file)
        )
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        try:
            result["still_answers"] = await asyncio.wait_for(handle.hello(), 15) == "pong"
        except Exception:  # noqa: BLE001 - stopped by the probe: that is the control's point
            result["still_answers"] = False
        return result


async def test_another_user_cannot_list_call_or_stop_your_agents(other_user, shared_dir):
    state = shared_dir / "state" / "chiltepin" / "agents"
    async with EmbeddedExchange(host=login_address(), directory=state / "x.exchange") as server:
        assert server.secure
        refused = await _probe_exchange(server, server.token_file)
    assert refused == {
        "token": "denied (13)",
        "client": "refused (UnauthorizedError)",
        "still_answers": True,
    }

    # control: the same probe against an exchange without authentication gets everything
    open_file = shared_dir / "no-token"
    open_file.write_text("nothing\n")
    open_file.chmod(0o644)
    async with EmbeddedExchange(host=login_address(), insecure=True) as server:
        opened = await _probe_exchange(server, open_file)
    assert opened["token"] == "read" and opened["client"] == "made"
    assert opened["called"] == "pong" and opened["shutdown"] == "sent"
    assert len(opened["listed"]) == 1 and opened["still_answers"] is False


# What the other user tries against an interchange: connect to its worker port as a
# plain ZeroMQ client (no CurveZMQ keys), ask for work, and wait for anything at all.
INTERCHANGE_PROBE = """
import zmq.utils.monitor
port = int(sys.argv[1])
until_handshake = sys.argv[2] == "until-handshake"  # the control: that is all it shows
context = zmq.Context()
sock = context.socket(zmq.DEALER)
monitor = sock.get_monitor_socket()
sock.setsockopt(zmq.LINGER, 0)
sock.connect(f"tcp://127.0.0.1:{port}")
registration = json.dumps({"type": "registration", "uid": "intruder", "worker_count": 4,
                           "block_id": "0", "python_v": "3", "packages": {}}).encode()
events, received = [], []
deadline = time.monotonic() + 8
sent = False
while time.monotonic() < deadline:
    while monitor.poll(50):
        event = zmq.utils.monitor.recv_monitor_message(monitor)
        events.append(zmq.Event(event["event"]).name)
    if not sent and "HANDSHAKE_SUCCEEDED" in events:
        sock.send_multipart([registration])
        sock.send_multipart([b"READY", json.dumps({"type": "heartbeat"}).encode()])
        sent = True
        if until_handshake:
            break
    if sock.poll(100):
        received.append(len(b"".join(sock.recv_multipart())))
sock.close()
monitor.close()
context.term()
print(json.dumps({"events": sorted(set(events)), "received": received}))
"""


def _probe_interchange(encrypted: bool, run_dir: Path) -> dict:
    config = {"solo": {"init_blocks": 1, "encrypted": encrypted}}
    wf = Workflow(config, include=["solo"], run_dir=run_dir)
    with wf:
        port = wf.dfk.executors["solo"].worker_port
        assert ts.add(1, 2).result(timeout=120) == 3
        futures = [ts.add(i, i) for i in range(20)]  # work the intruder could be handed
        out = python_as_other(
            INTERCHANGE_PROBE, str(port), "full" if encrypted else "until-handshake"
        )
        assert [f.result(timeout=120) for f in futures] == [2 * i for i in range(20)]
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_another_user_gets_nothing_from_your_interchange(other_user, shared_dir, no_leftovers):
    encrypted = _probe_interchange(True, shared_dir / "encrypted")
    assert "HANDSHAKE_SUCCEEDED" not in encrypted["events"] and encrypted["received"] == []
    assert "CONNECTED" in encrypted["events"]  # it did reach the port
    # control: without encryption the same client completes the handshake
    plain = _probe_interchange(False, shared_dir / "plain")
    assert "HANDSHAKE_SUCCEEDED" in plain["events"]


def test_another_user_cannot_read_your_run_dirs_logs_tokens_or_state(
    other_user, shared_dir, monkeypatch, no_leftovers
):
    public = shared_dir / "public.txt"  # control: the probe reads what is open
    public.write_text("open\n")
    public.chmod(0o644)
    assert readable_by_other(public) and readable_by_other(shared_dir)

    run_dir = shared_dir / "runinfo" / "run1"
    with Workflow({"solo": {"init_blocks": 1}}, include=["solo"], run_dir=run_dir):
        assert ts.add(2, 3).result(timeout=120) == 5
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"parsl.log", "interchange.log"} <= names, names
    for path in [run_dir, *[p for p in files if p.name.endswith((".log", ".sh"))]]:
        assert not readable_by_other(path), path
    assert (run_dir.stat().st_mode & 0o777) == 0o700
    for name in ("parsl.log", "interchange.log"):
        (path,) = [p for p in files if p.name == name]
        assert (path.stat().st_mode & 0o077) == 0, (path, oct(path.stat().st_mode))

    # agent service state and an embedded exchange's token and certificate
    monkeypatch.setenv("XDG_STATE_HOME", str(shared_dir / "state"))
    directory = ensure_state_dir()
    state = write_state(_state())
    with EmbeddedExchange(host=login_address(), directory=directory / "x.exchange") as server:
        for path in (directory, state, server.token_file, server.token_file.parent):
            assert not readable_by_other(path), path
        for path in (directory, server.token_file.parent):  # control: opened up, ...
            path.chmod(0o755)
        server.token_file.chmod(0o644)
        assert readable_by_other(server.token_file)  # ... the same probe reads it
        server.token_file.chmod(0o600)


def _state() -> ServiceState:
    return ServiceState(
        name="x",
        agent_id="00000000-0000-0000-0000-000000000001",
        agent="m:C",
        agent_class="m.C",
        actions=[],
        exchange={"kind": "embedded"},
        exchange_url=None,
        registration={},
        pid=os.getpid(),
        pid_created=0.0,
        host="h",
        config="/x.yaml",
        python_path=[],
    )


def test_another_user_cannot_read_your_endpoint_directories(other_user, shared_dir, monkeypatch):
    from chiltepin.endpoint.writer import configure

    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(shared_dir / "gc"))
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_SECRET", raising=False)
    (shared_dir / "gc").mkdir(mode=0o755)  # as a shared home would let others enter it
    endpoint = configure("tc-private", "testcluster").path
    files = [p for p in endpoint.rglob("*") if p.is_file()]
    assert files
    for path in [endpoint, *files]:
        assert not readable_by_other(path), path
    endpoint.chmod(0o755)  # control: once the directory is opened, a 0644 file would show
    files[0].chmod(0o644)
    assert readable_by_other(files[0])
