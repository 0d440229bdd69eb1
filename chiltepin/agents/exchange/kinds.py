"""The exchange kinds: one class each, registered in :mod:`chiltepin.agents.exchange`.

- ``embedded``: Academy's HTTP exchange run by the toolkit for the life of its owner (an
  AgentSystem's manager, or an agent service), bound to ``host`` on ``port`` (0: any free);
- ``http``: a self-hosted Academy HTTP exchange at ``url``;
- ``redis``: a Redis server at ``host``:``port``;
- ``hosted``: Academy's public exchange (Globus login), or another at ``url``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

from chiltepin.agents.exchange.base import (
    ExchangeKind,
    check_host,
    check_port,
    check_url,
    mask_url,
)
from chiltepin.agents.exchange.secure import (
    bearer_headers,
    context_for,
    is_loopback,
    read_secret,
    refuse_unauthenticated,
    warn_insecure,
)
from chiltepin.config.schema import _KeyProblem

#: Academy's public exchange (its own default URL, which carries the API version).
HOSTED_URL = "https://exchange.academy-agents.org/v1"
REDIS_DEFAULT_PORT = 6379
HTTP_EXAMPLE = "http://host:8700"


#: The first wait before a lost connection is retried; waits then double, up to
#: RETRY_CAP seconds each.
RETRY_FIRST = 0.25
RETRY_CAP = 8.0


def retry_plan(seconds: float, cap: float = RETRY_CAP) -> int:
    """How many retries, waiting RETRY_FIRST and doubling up to ``cap``, add up to at
    least ``seconds``."""
    retries, wait, total = 0, RETRY_FIRST, 0.0
    while total < seconds:
        total += wait
        wait = min(wait * 2, cap)
        retries += 1
    return retries


class _AcademyHttp(ExchangeKind):
    """Kinds whose clients are Academy's ``HttpExchangeFactory``."""

    def factory_class(self) -> type:
        from academy.exchange.cloud.client import HttpExchangeFactory

        return HttpExchangeFactory

    def reconnect_arguments(self, seconds: float) -> dict[str, Any]:
        # Academy doubles its wait without a cap.
        retries = retry_plan(seconds, cap=float("inf"))
        return {"retries": retries, "initial_retry_backoff": RETRY_FIRST}


class EmbeddedKind(_AcademyHttp):
    """Beyond loopback its server makes a bearer token and a self-signed certificate
    (unless ``insecure: true``); clients get both from :meth:`EmbeddedExchange.client_settings`."""

    name = "embedded"
    keys = frozenset({"host", "port", "insecure", "interface"})
    owned = True

    def check(self, settings: Any) -> None:
        check_host(settings.host)
        check_port(settings.port, free=True)
        if settings.interface is not None and "host" in settings.model_fields_set:
            raise _KeyProblem(
                "interface",
                "give 'host' or 'interface', not both",
                "an interface stands for its address on the host that runs the exchange",
            )

    def bind_address(self, settings: Any) -> str:
        """Where the server listens and what it advertises: ``host``, or the address of
        ``interface`` on this host (which agents on other hosts reach)."""
        if settings.interface is None:
            return settings.host
        from chiltepin.config.network import interface_address
        from chiltepin.errors import ConfigError

        return interface_address(
            settings.interface,
            lambda message, key, hint: ConfigError(message, key=f"exchange.{key}", hint=hint),
        )

    def factory_arguments(
        self, settings: Any, url: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if url is None:
            raise ValueError("the embedded exchange is not running yet")
        return (url,), {}

    def listing(self, settings: Any, url: str | None = None) -> str:
        label = self.label(settings, url)
        return f"{label} (embedded)" if url else label

    def server(self, settings: Any, directory: Any = None) -> Any:
        from chiltepin.agents.exchange.server import EmbeddedExchange

        return EmbeddedExchange(
            host=self.bind_address(settings),
            port=settings.port or 0,
            insecure=settings.insecure,
            directory=directory,
        )

    def site_refusal(self, site: str) -> tuple[str, str] | None:
        return (
            f"site '{site}' uses an embedded exchange, which lives only inside the program "
            "or service that started it",
            "name the service instead (chiltepin agent list), or --exchange URL",
        )


class HttpKind(_AcademyHttp):
    """``token_file``: the bearer token clients send; ``ca_file``: the certificate (PEM)
    an ``https`` exchange is trusted by (the system's CAs otherwise)."""

    name = "http"
    keys = frozenset({"url", "token_file", "ca_file", "insecure"})
    schemes = ("http", "https")

    def check(self, settings: Any) -> None:
        if not settings.url:
            raise _KeyProblem("url", "exchange kind 'http' needs a url", f"e.g. {HTTP_EXAMPLE}")
        check_url(settings.url, self.schemes, example=HTTP_EXAMPLE)
        if settings.ca_file is not None and not settings.url.startswith("https://"):
            raise _KeyProblem("ca_file", "ca_file needs an https:// url", "use https://HOST:PORT")

    def from_url(self, url: str, parts: SplitResult) -> dict[str, Any]:
        return {"kind": self.name, "url": url.rstrip("/")}

    def check_access(self, settings: Any) -> None:
        parts = urlsplit(settings.url)
        if is_loopback(parts.hostname):
            return
        label = mask_url(settings.url)
        if settings.insecure:
            warn_insecure(label)
        elif settings.token_file is None and parts.password is None:
            refuse_unauthenticated(
                f"http exchange {label}", "token_file", "give token_file: PATH (a 0600 file)"
            )
        elif parts.scheme != "https":
            refuse_unauthenticated(
                f"http exchange {label} (its token would cross the network unencrypted)",
                "url",
                "use https:// (and ca_file: for a self-signed certificate)",
            )

    def factory_arguments(
        self, settings: Any, url: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        headers = bearer_headers(settings.token_file)
        if headers:
            kwargs["additional_headers"] = headers
        if settings.ca_file is not None:
            kwargs["ssl_verify"] = context_for(settings.ca_file)
        return (settings.url,), kwargs


class HostedKind(_AcademyHttp):
    name = "hosted"
    keys = frozenset({"url"})

    def check(self, settings: Any) -> None:
        if settings.url is not None:
            check_url(settings.url, ("https", "http"), example=HOSTED_URL)

    def factory_arguments(
        self, settings: Any, url: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (settings.url or HOSTED_URL,), {"auth_method": "globus"}

    def service_refusal(self) -> tuple[str, str] | None:
        return (
            "a served agent cannot use the hosted exchange: its Globus tokens expire after "
            "48 hours and a service cannot log in interactively",
            "run an http exchange (python -m academy.exchange.cloud) or redis, and name it "
            "here: exchange: {kind: redis, host: ..., port: ...}",
        )

    def site_refusal(self, site: str) -> tuple[str, str] | None:
        return (
            f"site '{site}' uses the hosted exchange, which needs a Globus login",
            "use an http or redis exchange",
        )


class RedisKind(ExchangeKind):
    """``password_file``: the Redis password (AUTH); ``tls: true``: connect with TLS,
    trusting ``ca_file`` (PEM) or the system's CAs."""

    name = "redis"
    keys = frozenset({"host", "port", "password_file", "tls", "ca_file", "insecure"})
    schemes = ("redis",)

    def check(self, settings: Any) -> None:
        check_host(settings.host)
        check_port(settings.port)
        if settings.ca_file is not None and not settings.tls:
            raise _KeyProblem("ca_file", "ca_file needs tls: true", "add tls: true")

    def check_access(self, settings: Any) -> None:
        if is_loopback(settings.host):
            return
        label = self.label(settings)
        if settings.insecure:
            warn_insecure(label)
        elif settings.password_file is None:
            refuse_unauthenticated(
                f"redis exchange {label}", "password_file", "give password_file: PATH"
            )
        elif not settings.tls:
            refuse_unauthenticated(
                f"redis exchange {label} (its password would cross the network unencrypted)",
                "tls",
                "add tls: true (and ca_file: for a self-signed certificate)",
            )

    def from_url(self, url: str, parts: SplitResult) -> dict[str, Any]:
        if parts.username or parts.password:
            raise _KeyProblem(
                "url",
                "a Redis exchange URL takes no user name or password",
                "use redis://HOST:PORT",
            )
        settings: dict[str, Any] = {"kind": self.name, "host": parts.hostname}
        if parts.port is not None:
            settings["port"] = parts.port
        return settings

    def factory_class(self) -> type:
        from academy.exchange.redis import RedisExchangeFactory

        return RedisExchangeFactory

    def factory_arguments(
        self, settings: Any, url: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # redis-py's socket timeout would break Academy's blocking receive on an idle mailbox.
        port = settings.port or REDIS_DEFAULT_PORT
        kwargs: dict[str, Any] = {"socket_timeout": None}
        if settings.password_file is not None:
            kwargs["password"] = read_secret(settings.password_file, key="password_file")
        if settings.tls:
            kwargs["ssl"] = True
            if settings.ca_file is not None:
                kwargs["ssl_ca_certs"] = settings.ca_file
        return (settings.host, port), kwargs

    def reconnect_arguments(self, seconds: float) -> dict[str, Any]:
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        # redis-py's first wait is base * 2 (it counts failures from 1).
        backoff = ExponentialBackoff(cap=RETRY_CAP, base=RETRY_FIRST / 2)
        return {"retry": Retry(backoff, retry_plan(seconds))}

    def registration_class(self) -> type:
        from academy.exchange.redis import RedisAgentRegistration

        return RedisAgentRegistration

    def label(self, settings: Any, url: str | None = None) -> str:
        scheme = "rediss" if settings.tls else "redis"
        return f"{scheme}://{settings.host}:{settings.port or REDIS_DEFAULT_PORT}"


BUILTIN_KINDS: tuple[type[ExchangeKind], ...] = (EmbeddedKind, HttpKind, RedisKind, HostedKind)
