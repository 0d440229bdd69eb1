"""What every exchange kind says about itself (:class:`ExchangeKind`), and the value rules
its settings share: ports, host names, URLs, and masking credentials in messages.

Nothing here imports Academy; a kind imports it only to build a factory. A setting a kind
cannot use raises the schema's key problem, which the loader turns into a ConfigError
naming the key.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar
from urllib.parse import SplitResult, urlsplit

from chiltepin.config.schema import _KeyProblem

#: A host name or IP address (brackets of an IPv6 URL removed): no spaces or shell characters.
HOST_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
HOST_HINT = "use letters, digits, '.', '-', '_' and ':' only (no spaces or shell characters)"
_HOSTPORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[^:]*)?$")
_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")


class ExchangeKind:
    """One kind of exchange (``kind:`` of an ``exchange:`` block). Subclass it, set the
    class attributes, override what differs, and register it with
    :func:`chiltepin.agents.exchange.register_kind`: settings, ``--exchange`` URLs,
    labels, factories and services then know it."""

    #: The ``kind:`` value.
    name: ClassVar[str]
    #: Settings keys this kind takes besides ``kind`` (of ``url``, ``host``, ``port``).
    keys: ClassVar[frozenset[str]] = frozenset()
    #: ``--exchange`` URL schemes that stand for this kind.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: True if the exchange lives only as long as the program or service that runs it
    #: (its mailboxes die with it).
    owned: ClassVar[bool] = False

    def check(self, settings: Any) -> None:
        """Raise :class:`_KeyProblem` for a setting this kind cannot use."""

    def from_url(self, url: str, parts: SplitResult) -> dict[str, Any]:
        """Settings (a mapping) for an ``--exchange`` URL of one of :attr:`schemes`."""
        raise NotImplementedError(f"exchange kind '{self.name}' has no URL form")

    def factory_class(self) -> type:
        """Academy's ``ExchangeFactory`` class for this kind (imported here, lazily)."""
        raise NotImplementedError

    def factory_arguments(
        self, settings: Any, url: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments of :meth:`factory_class` (``url``: where a running server listens)."""
        raise NotImplementedError

    def reconnect_arguments(self, seconds: float) -> dict[str, Any]:
        """Extra factory arguments that make its clients retry a lost connection for about
        ``seconds`` (an exchange restarting) before they fail; {} if it has none."""
        return {}

    def registration_class(self) -> type:
        """Academy's ``AgentRegistration`` model for agents on this kind of exchange."""
        from academy.exchange.cloud.client import HttpAgentRegistration

        return HttpAgentRegistration

    def label(self, settings: Any, url: str | None = None) -> str:
        """Where the exchange is, for messages (credentials masked)."""
        return mask_url(url or settings.url or self.name)

    def listing(self, settings: Any, url: str | None = None) -> str:
        """The label in ``chiltepin agent list``."""
        return self.label(settings, url)

    def check_access(self, settings: Any) -> None:
        """Before a factory is built: ConfigError if the exchange is reachable beyond
        loopback without authentication (unless ``insecure: true``, then one warning)."""

    def server(self, settings: Any, directory: Any = None) -> Any:
        """A local server this kind runs for its owner (``start()``/``stop()``, ``url``,
        ``client_settings()``), keeping its credentials in ``directory`` (a private
        temporary one if None), or None when the exchange runs elsewhere."""
        return None

    def service_refusal(self) -> tuple[str, str] | None:
        """(message, hint) if a long-lived agent service cannot use this kind."""
        return None

    def site_refusal(self, site: str) -> tuple[str, str] | None:
        """(message, hint) if a shell command cannot reach a site's exchange of this kind."""
        return None


# --- value rules -------------------------------------------------------------------------------


def mask_url(text: str) -> str:
    """``text`` with the password (or a lone user name, which may be a token) of every
    ``scheme://user:password@`` replaced by ``***``."""

    def hide(match: re.Match[str]) -> str:
        user, sep, _ = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}:***@" if sep else f"{match['scheme']}***@"

    return _USERINFO_RE.sub(hide, text)


def check_port(port: Any, *, free: bool = False, key: str = "port") -> None:
    """``port`` is a TCP port (``free``: 0, any free port, is allowed too)."""
    if port is None:
        return
    low = 0 if free else 1
    if not low <= port <= 65535:
        raise _KeyProblem(
            key,
            f"port must be between {low} and 65535, got {port}",
            "0 picks any free port" if free else "a TCP port, e.g. 6379",
        )


def check_host(host: str, *, key: str = "host") -> None:
    if not HOST_RE.match(host):
        raise _KeyProblem(key, f"{host!r} is not a host name or IP address", HOST_HINT)


def check_url(
    url: str, schemes: tuple[str, ...], *, key: str = "url", example: str, what: str = "url"
) -> None:
    """``url`` is ``scheme://host[:port][/path]`` of one of ``schemes``, with no whitespace
    or control characters, a valid host and a port in range (``what``: how messages name
    the value)."""
    shown = f"{what} {mask_url(url)!r}"
    hint = f"e.g. {example}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise _KeyProblem(key, f"{shown} contains whitespace or control characters", hint)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise _KeyProblem(key, f"{shown} is not a URL: {exc}", hint) from None
    if parts.scheme not in schemes or url[: len(parts.scheme) + 3].lower() != f"{parts.scheme}://":
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise _KeyProblem(key, f"{shown} must start with {wanted}", hint)
    if not hostname:
        raise _KeyProblem(key, f"{shown} has no host", hint)
    hostport = parts.netloc.rpartition("@")[2]
    if not HOST_RE.match(hostname) or not _HOSTPORT_RE.match(hostport):
        bad = hostname if not HOST_RE.match(hostname) else hostport
        raise _KeyProblem(key, f"{shown} has an invalid host {bad!r}", HOST_HINT)
    try:
        port = parts.port
    except ValueError:
        raw = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        if not raw.isdigit():
            raise _KeyProblem(key, f"{shown} has an invalid port {raw!r}", hint) from None
        port = int(raw)
    if port is not None and not 1 <= port <= 65535:
        raise _KeyProblem(key, f"{shown}: port must be between 1 and 65535, got {port}", hint)


# --- Academy's exchange-client logs ------------------------------------------------------


class _QuietAcademyLogs(logging.Filter):
    """Academy's HTTP client logs a traceback for every failed request attempt, including
    those cancelled by a normal close (e.g. a heartbeat in flight, not an error) and each
    retry while an exchange restarts; its background tasks log one when they end with an
    error (the service reports that error itself). Cancellations are dropped, the others
    become one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        import asyncio

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError):
            return False
        if exc is not None:
            text = str(exc) or type(exc).__name__
            record.msg = "exchange client: %s: %s"
            record.args = (type(exc).__name__, mask_url(text.splitlines()[0]))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTER = _QuietAcademyLogs()
#: The loggers :class:`_QuietAcademyLogs` applies to.
_QUIET_LOGGERS = ("academy.exchange.cloud.client", "academy.logging.helpers")


def quiet_academy_logs() -> None:
    """Apply :class:`_QuietAcademyLogs` (idempotent)."""
    for name in _QUIET_LOGGERS:
        academy = logging.getLogger(name)
        if _FILTER not in academy.filters:
            academy.addFilter(_FILTER)
