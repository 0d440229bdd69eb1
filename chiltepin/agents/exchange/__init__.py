"""Exchanges: where agents send each other messages.

One class per kind (:mod:`chiltepin.agents.exchange.kinds`) behind :class:`ExchangeKind`,
picked from :data:`KINDS` by the ``kind:`` of an ``exchange:`` block (as Parsl picks
providers, and :mod:`chiltepin.containers` runtimes). A kind says which settings it takes
and checks them, builds its Academy factory, labels itself, reads its ``--exchange`` URL
form, and says whether long-lived agent services can use it; ``embedded`` also runs its
server (:class:`EmbeddedExchange`). Adding a kind is one class and one
:func:`register_kind`.

``embedded`` (the default) runs Academy's HTTP exchange in a child process for the life of
a manager context: agents on Parsl workers (other processes, other nodes) reach it over
HTTP, which the in-process ``LocalExchangeFactory`` cannot offer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from chiltepin.agents.exchange.base import ExchangeKind, check_url, mask_url
from chiltepin.agents.exchange.kinds import BUILTIN_KINDS, HOSTED_URL, REDIS_DEFAULT_PORT
from chiltepin.agents.exchange.server import EmbeddedExchange, EmbeddedExchangeError
from chiltepin.config.schema import ExchangeSettings, _KeyProblem
from chiltepin.errors import ConfigError, did_you_mean

ExchangeLike = Any  # ExchangeSettings, a mapping of its fields, or an ExchangeFactory
Closer = Callable[[], Awaitable[None]]

#: Every exchange kind, by its ``kind:`` name.
KINDS: dict[str, ExchangeKind] = {}


def register_kind(cls: type[ExchangeKind]) -> type[ExchangeKind]:
    """Make ``cls`` an exchange kind (usable as a class decorator)."""
    KINDS[cls.name] = cls()
    return cls


for _cls in BUILTIN_KINDS:
    register_kind(_cls)


def get_kind(name: str) -> ExchangeKind:
    """The kind called ``name``; ConfigError (with a 'did you mean') if unknown."""
    kind = KINDS.get(name)
    if kind is None:
        raise ConfigError(
            f"unknown exchange kind {name!r}",
            key="kind",
            hint=did_you_mean(name, KINDS) or f"kinds: {', '.join(KINDS)}",
        )
    return kind


def exchange_settings(value: ExchangeLike | None) -> Any:
    """``ExchangeSettings`` from settings, a mapping or None (embedded); factories pass through."""
    if value is None:
        return ExchangeSettings()
    if isinstance(value, ExchangeSettings):
        return value
    if isinstance(value, Mapping):
        from chiltepin.config.loader import Origin, validate_model

        return validate_model(
            ExchangeSettings, value, origin=Origin("<exchange settings>"), entry="exchange"
        )
    from academy.exchange import ExchangeFactory

    if isinstance(value, ExchangeFactory):
        return value
    raise TypeError(
        "exchange must be ExchangeSettings, a mapping of exchange settings "
        f"(e.g. {{'kind': 'redis', 'port': 6379}}) or an Academy ExchangeFactory, "
        f"got {type(value).__name__}"
    )


def parse_exchange_url(value: str, *, option: str = "--exchange") -> ExchangeSettings:
    """Settings for an exchange URL (``http(s)://host[:port]``, ``redis://host[:port]``, or
    another scheme a kind takes); one-line ConfigError naming ``option`` otherwise."""
    kinds = {scheme: kind for kind in KINDS.values() for scheme in kind.schemes}
    shown = f"{option} {mask_url(value)!r}"
    hint = "use http://HOST:PORT (an HTTP exchange) or redis://HOST:PORT"
    hint += "".join(f" or {s}://..." for s in kinds if s not in ("http", "https", "redis"))
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    kind = kinds.get(parts.scheme) if parts is not None else None
    if kind is None:
        raise ConfigError(f"{shown} is not an exchange URL", key=option, hint=hint)
    try:
        check_url(
            value, kind.schemes, key=option, example=f"{parts.scheme}://HOST:PORT", what=option
        )
    except _KeyProblem as exc:
        raise ConfigError(exc.message, key=option, hint=exc.hint) from None
    try:
        return ExchangeSettings.model_validate(kind.from_url(value, parts))
    except ValueError as exc:
        problem = exc if isinstance(exc, _KeyProblem) else _problem_of(exc)
        if problem is None:
            raise ConfigError(f"{shown} is not an exchange URL", key=option, hint=hint) from None
        raise ConfigError(
            f"{shown}: {mask_url(problem.message)}", key=option, hint=problem.hint or hint
        ) from None


def _problem_of(exc: ValueError) -> Any:
    """The key problem inside a pydantic ValidationError, if that is what it holds."""
    for error in getattr(exc, "errors", lambda: [])():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _KeyProblem):
            return cause
    return None


def exchange_label(settings: ExchangeSettings, url: str | None = None) -> str:
    """Where ``settings`` points (``url``: a running embedded exchange's), for messages."""
    return get_kind(settings.kind).label(settings, url)


def build_factory(
    settings: ExchangeSettings, url: str | None = None, *, reconnect: float = 0
) -> Any:
    """The Academy ``ExchangeFactory`` for ``settings`` (``url``: where a running embedded
    exchange listens; ``reconnect``: seconds its clients keep retrying a lost connection,
    for long-lived agents; 0: the library's own few retries). The one place factories are
    made; the hosted one logs in with Globus, so build it only when it is needed."""
    kind = get_kind(settings.kind)
    kind.check_access(settings)
    args, kwargs = kind.factory_arguments(settings, url)
    if reconnect > 0:
        kwargs.update(kind.reconnect_arguments(reconnect))
    return kind.factory_class()(*args, **kwargs)


class ServerCloser:
    """``await close()`` stops the exchange server this process runs (``.server``)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    async def __call__(self) -> None:
        await self.server.astop()


async def open_exchange(value: ExchangeLike | None) -> tuple[Any, Closer | None]:
    """Return ``(factory, close)`` for ``value``; ``close`` (a :class:`ServerCloser`)
    stops a server the kind runs."""
    settings = exchange_settings(value)
    if not isinstance(settings, ExchangeSettings):
        return settings, None
    server = get_kind(settings.kind).server(settings)
    if server is None:
        return await asyncio.to_thread(build_factory, settings), None
    await server.astart()
    try:
        factory = build_factory(server.client_settings())
    except BaseException:
        await server.astop()
        raise
    return factory, ServerCloser(server)


__all__ = [
    "HOSTED_URL",
    "KINDS",
    "REDIS_DEFAULT_PORT",
    "EmbeddedExchange",
    "EmbeddedExchangeError",
    "ExchangeKind",
    "build_factory",
    "exchange_label",
    "exchange_settings",
    "get_kind",
    "mask_url",
    "open_exchange",
    "parse_exchange_url",
    "register_kind",
]
