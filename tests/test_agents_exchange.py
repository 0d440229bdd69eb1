"""Exchange settings -> Academy factories, and the embedded exchange's lifecycle.

The hosted exchange needs a Globus login: only the factory it stands for is checked here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from academy.agent import Agent, action
from academy.exchange import LocalExchangeFactory
from academy.exchange.cloud.client import DEFAULT_EXCHANGE_URL, HttpExchangeFactory
from academy.exchange.redis import RedisExchangeFactory
from helpers import processes as P

from chiltepin import AgentSystem, Workflow
from chiltepin.agents.exchange import (
    HOSTED_URL,
    EmbeddedExchange,
    EmbeddedExchangeError,
    build_factory,
    exchange_settings,
    get_kind,
    open_exchange,
)
from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import ConfigError


class Echo(Agent):
    @action
    async def echo(self, value: str) -> str:
        return value


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- settings and factories ----------------------------------------------------------------


def test_settings_from_none_mapping_settings_or_factory():
    assert exchange_settings(None) == ExchangeSettings(kind="embedded")
    assert exchange_settings({"kind": "redis", "port": 6380}).port == 6380
    settings = ExchangeSettings(kind="http", url="http://exchange.example:8700")
    assert exchange_settings(settings) is settings
    factory = LocalExchangeFactory()
    assert exchange_settings(factory) is factory


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="prot.*unknown key"):
        exchange_settings({"kind": "redis", "prot": 1})
    with pytest.raises(ConfigError, match="'url' is not used by exchange kind 'redis'"):
        exchange_settings({"kind": "redis", "url": "http://x"})
    with pytest.raises(ConfigError, match="needs a url"):
        exchange_settings({"kind": "http"})
    with pytest.raises(TypeError, match="exchange must be ExchangeSettings"):
        exchange_settings("redis")


def test_factory_for_each_kind():
    made = build_factory(ExchangeSettings(kind="http", url="http://127.0.0.1:8700"))
    assert isinstance(made, HttpExchangeFactory)
    assert made._info.url == "http://127.0.0.1:8700"

    made = build_factory(ExchangeSettings(kind="redis", host="10.0.0.5", insecure=True))
    assert isinstance(made, RedisExchangeFactory)
    assert (made.redis_info.hostname, made.redis_info.port) == ("10.0.0.5", 6379)
    assert made.redis_info.kwargs == {"socket_timeout": None}  # Academy's receive blocks

    made = build_factory(ExchangeSettings(), "http://127.0.0.1:8123")  # a running embedded one
    assert isinstance(made, HttpExchangeFactory) and made._info.url == "http://127.0.0.1:8123"

    # Not created here: creating it starts a Globus login. Academy's own default URL
    # (it carries the exchange API version, "/v1").
    assert HOSTED_URL == DEFAULT_EXCHANGE_URL
    hosted = get_kind("hosted")
    assert hosted.factory_class() is HttpExchangeFactory
    assert hosted.factory_arguments(ExchangeSettings(kind="hosted"), None) == (
        (HOSTED_URL,),
        {"auth_method": "globus"},
    )
    own = ExchangeSettings(kind="hosted", url="https://exchange.example/v1")
    assert hosted.factory_arguments(own, None)[0] == ("https://exchange.example/v1",)

    with pytest.raises(ValueError, match="not running"):
        build_factory(ExchangeSettings())


# --- the embedded exchange ---------------------------------------------------------------------


async def test_embedded_exchange_serves_academy_clients_then_stops():
    async with EmbeddedExchange() as server:
        assert server.running and server.url == f"http://127.0.0.1:{server.port}"
        assert len(P.exchange_servers()) == 1
        async with await server.factory().create_user_client() as client:
            registration = await client.register_agent(Echo)
            assert await client.discover(Echo) == (registration.agent_id,)
        pid, port = server.pid, server.port
    assert not server.running and server.url is None
    assert P.exchange_servers() == []
    assert not _port_open(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # again: no error


def test_embedded_exchange_on_a_given_port_and_a_taken_one():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with EmbeddedExchange(port=port) as server:
        assert server.port == port and _port_open(port)
        with pytest.raises(EmbeddedExchangeError, match="already running"):
            server.start()
        clash = EmbeddedExchange(port=port, startup_timeout=20)
        with pytest.raises(EmbeddedExchangeError, match="exited with status"):
            clash.start()
        assert not clash.running
    assert P.exchange_servers() == []


def test_embedded_exchange_stops_when_its_parent_dies(tmp_path):
    script = textwrap.dedent(
        """
        import sys, time
        from chiltepin.agents.exchange import EmbeddedExchange
        server = EmbeddedExchange()
        server.start()
        print(server.pid, server.port, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid, port = (int(v) for v in parent.stdout.readline().split())
        assert _port_open(port)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the exchange outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


async def test_open_exchange():
    factory, close = await open_exchange(None)
    try:
        assert isinstance(factory, HttpExchangeFactory) and len(P.exchange_servers()) == 1
    finally:
        await close()
    assert P.exchange_servers() == []
    given = LocalExchangeFactory()
    assert await open_exchange(given) == (given, None)
    factory, close = await open_exchange({"kind": "http", "url": "http://localhost:1"})
    assert isinstance(factory, HttpExchangeFactory) and close is None


# --- AgentSystem set-up errors (nothing starts) ---------------------------------------------------


async def test_agent_system_needs_one_workflow_source():
    with pytest.raises(ConfigError, match="needs the workflow its agents run on"):
        AgentSystem()
    with pytest.raises(ConfigError, match="either a workflow or a site"):
        AgentSystem(Workflow(), site="local")
    with pytest.raises(ConfigError, match="unknown key"):
        AgentSystem(Workflow(), exchange={"kind": "embedded", "prot": 1})


async def test_agent_system_refuses_an_unstarted_workflow():
    system = AgentSystem(Workflow(), ["local"])
    with pytest.raises(ConfigError, match=r"not started.*workflow.start\(\)"):
        await system.manager()
    assert P.exchange_servers() == []


def test_agent_system_takes_the_site_exchange():
    system = AgentSystem(site="local", executor_names=["service"])
    assert system.exchange == ExchangeSettings(kind="embedded")
    assert system.workflow is None  # made, started and cleaned up per manager
    override = AgentSystem(site="local", exchange={"kind": "redis"})
    assert override.exchange.kind == "redis"
