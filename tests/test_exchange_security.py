"""Exchanges are secure by default: beyond loopback the embedded exchange requires its
bearer token and serves TLS with a certificate its clients pin; other kinds reachable
beyond loopback without credentials are refused unless ``insecure: true`` (one warning);
secrets never appear in argv, logs or errors."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import stat
from pathlib import Path

import aiohttp
import pytest
from academy.agent import Agent, action
from helpers import processes as P
from helpers.infra import login_address

from chiltepin.agents.exchange import EmbeddedExchange, build_factory, exchange_settings
from chiltepin.agents.exchange.secure import TOKEN_BYTES
from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import ConfigError


class Ping(Agent):
    @action
    async def ping(self) -> str:
        return "pong"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _status(url: str, **kwargs) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/mailbox/heartbeat", **kwargs) as response:
            return response.status


async def test_beyond_loopback_the_embedded_exchange_requires_its_token_over_pinned_tls():
    async with EmbeddedExchange(host=login_address()) as server:
        assert server.secure and server.url.startswith(f"https://{login_address()}:")
        token_file, cert = server.token_file, server.cert_file
        token = token_file.read_text().strip()
        assert len(token) * 6 >= TOKEN_BYTES * 8 >= 128  # url-safe base64: 6 bits a character
        assert _mode(token_file) == 0o600 and _mode(token_file.parent) == 0o700
        assert _mode(cert.parent / "exchange.key") == 0o600

        # the token is handed over in files and factories, never on a command line or in a log
        (proc,) = P.exchange_servers()
        assert token not in " ".join(proc.cmdline())
        assert token not in (token_file.parent / "exchange.log").read_text()

        # without the token, with a wrong one, or without pinning its certificate: refused
        assert await _status(server.url, ssl=False) == 401
        wrong = {"Authorization": "Bearer " + "x" * len(token)}
        assert await _status(server.url, ssl=False, headers=wrong) == 401
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _status(server.url, headers={"Authorization": f"Bearer {token}"})

        # its own clients (also after travelling to a worker by pickle) get through
        factory = pickle.loads(pickle.dumps(server.factory()))
        async with await factory.create_user_client(start_listener=False) as client:
            registration = await client.register_agent(Ping)
            assert await client.discover(Ping) == (registration.agent_id,)
    assert not token_file.exists() and not token_file.parent.exists()
    assert P.exchange_servers() == []


async def test_on_loopback_the_embedded_exchange_takes_no_credentials():
    async with EmbeddedExchange() as server:
        assert not server.secure and server.url.startswith("http://127.0.0.1:")
        assert server.token_file is None
        assert server.client_settings() == ExchangeSettings(kind="http", url=server.url)


async def test_an_insecure_embedded_exchange_says_so_once(caplog):
    caplog.set_level(logging.WARNING)
    async with EmbeddedExchange(host=login_address(), insecure=True) as server:
        assert server.url.startswith("http://") and server.token_file is None
        server.factory()
        server.factory()
        assert await _status(server.url) != 401  # served without credentials
    warnings = [r for r in caplog.records if "no authentication" in r.getMessage()]
    assert len(warnings) == 1 and server_label_in(warnings[0].getMessage())


def server_label_in(message: str) -> bool:
    return f"http://{login_address()}:" in message and "insecure: true" in message


@pytest.mark.parametrize(
    ("settings", "key", "words"),
    [
        ({"kind": "http", "url": "http://exchange.example:8700"}, "token_file", "no auth"),
        ({"kind": "http", "url": "https://exchange.example:8700"}, "token_file", "no auth"),
        ({"kind": "redis", "host": "10.0.0.5"}, "password_file", "no authentication"),
        ({"kind": "embedded", "host": "0.0.0.0"}, None, None),  # it secures itself
    ],
)
def test_an_exchange_beyond_loopback_without_credentials_is_refused(settings, key, words):
    settings = exchange_settings(settings)
    if key is None:
        build_factory(settings, "https://somewhere:1")
        return
    with pytest.raises(ConfigError) as caught:
        build_factory(settings)
    message = str(caught.value)
    assert "\n" not in message and f"key '{key}'" in message and words in message
    assert "insecure: true" in message


def test_credentials_over_plain_connections_are_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n")
    secret.chmod(0o600)
    http = exchange_settings(
        {"kind": "http", "url": "http://exchange.example:1", "token_file": str(secret)}
    )
    with pytest.raises(ConfigError, match="unencrypted.*use https://"):
        build_factory(http)
    redis = exchange_settings({"kind": "redis", "host": "h", "password_file": str(secret)})
    with pytest.raises(ConfigError, match="unencrypted.*tls: true"):
        build_factory(redis)


def test_insecure_true_accepts_an_unauthenticated_exchange_with_one_warning(caplog):
    caplog.set_level(logging.WARNING)
    settings = exchange_settings({"kind": "redis", "host": "10.9.8.7", "insecure": True})
    build_factory(settings)
    build_factory(settings)
    warnings = [r for r in caplog.records if "no authentication" in r.getMessage()]
    assert [w.getMessage().split()[1] for w in warnings] == ["redis://10.9.8.7:6379"]


def test_secrets_come_from_private_files_and_never_show_in_messages(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("tok-1234567890-secret\n")
    secret.chmod(0o644)
    url = "https://exchange.example:8700"
    settings = exchange_settings({"kind": "http", "url": url, "token_file": str(secret)})
    with pytest.raises(ConfigError) as caught:
        build_factory(settings)
    assert "other users" in str(caught.value) and "chmod 600" in str(caught.value)
    assert "tok-1234567890-secret" not in str(caught.value)

    secret.chmod(0o600)
    made = build_factory(settings)
    assert made._info.additional_headers["Authorization"] == "Bearer tok-1234567890-secret"
    missing = exchange_settings({"kind": "http", "url": url, "token_file": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match="token_file .* does not exist"):
        build_factory(missing)

    # a token in a URL is masked wherever the URL is shown
    leaky = exchange_settings({"kind": "http", "url": "http://tok-in-url@exchange.example:1"})
    with pytest.raises(ConfigError) as caught:
        build_factory(leaky)
    assert "tok-in-url" not in str(caught.value) and "http://***@exchange.example:1" in str(
        caught.value
    )


def test_redis_password_and_tls_reach_the_client(tmp_path):
    password = tmp_path / "redis.password"
    password.write_text("pw-abc\n")
    password.chmod(0o600)
    ca = tmp_path / "ca.pem"
    ca.write_text("unused here\n")
    settings = exchange_settings(
        {
            "kind": "redis",
            "host": "redis.example",
            "password_file": str(password),
            "tls": True,
            "ca_file": str(ca),
        }
    )
    made = build_factory(settings)
    assert made.redis_info.kwargs == {
        "socket_timeout": None,
        "password": "pw-abc",
        "ssl": True,
        "ssl_ca_certs": str(ca),
    }
    with pytest.raises(ConfigError, match="ca_file needs tls: true"):
        exchange_settings({"kind": "redis", "host": "h", "ca_file": str(ca)})
    with pytest.raises(ConfigError, match="ca_file needs an https:// url"):
        exchange_settings({"kind": "http", "url": "http://h:1", "ca_file": str(ca)})


def test_an_http_exchange_with_token_file_and_ca_file_reaches_a_secured_server():
    async def run(settings: ExchangeSettings) -> None:
        factory = build_factory(settings)
        async with await factory.create_user_client(start_listener=False) as client:
            await client.register_agent(Ping)

    with EmbeddedExchange(host=login_address()) as server:
        url = server.url
        settings = {"kind": "http", "url": url, "token_file": str(server.token_file)}
        with pytest.raises(Exception, match="certificate verify failed"):
            asyncio.run(run(exchange_settings(settings)))  # the system CAs do not know it
        asyncio.run(run(exchange_settings({**settings, "ca_file": str(server.cert_file)})))
    assert os.environ.get("CHILTEPIN_EXCHANGE_TOKEN") is None  # nothing went through the env


def test_the_cli_refuses_an_exchange_url_beyond_loopback_without_a_token():
    from helpers.cli import one_line_error, run

    with EmbeddedExchange(host=login_address()) as server:
        line = one_line_error(run("agent", "list", "--exchange", server.url), 2)
    assert "is reachable beyond this host's loopback and has no authentication" in line
    assert "key 'token_file'" in line
