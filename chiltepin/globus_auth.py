"""Globus login: one login for Globus Compute, Globus Transfer and Academy's exchange.

Tokens for Compute and Transfer live in Globus Compute's own token store (under
``$GLOBUS_COMPUTE_USER_DIR``, default ``~/.globus_compute``), so
``globus-compute-endpoint`` and chiltepin share one login; Academy keeps its own store.
With ``GLOBUS_COMPUTE_CLIENT_ID`` and ``GLOBUS_COMPUTE_CLIENT_SECRET`` set, the client
credentials are used instead and nothing is ever prompted for.

Nothing here prompts unless :func:`login` is called on a terminal: code that would need
a login elsewhere raises a one-line error saying how to log in.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from chiltepin.errors import ConfigError, EndpointError

if TYPE_CHECKING:
    from globus_sdk import GlobusApp

CLIENT_ID_ENV = "GLOBUS_COMPUTE_CLIENT_ID"
CLIENT_SECRET_ENV = "GLOBUS_COMPUTE_CLIENT_SECRET"
LOGIN_HINT = (
    f"run `chiltepin login` once in a terminal, or set {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}"
)


def client_credentials() -> tuple[str, str] | None:
    """The Globus client ID and secret from the environment, if both are set."""
    client_id, secret = os.environ.get(CLIENT_ID_ENV), os.environ.get(CLIENT_SECRET_ENV)
    if client_id and secret:
        return client_id, secret
    if client_id or secret:
        raise EndpointError(f"set both {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}, or neither")
    return None


def compute_app(*, transfer: bool = False) -> GlobusApp:
    """Globus Compute's app with the scopes its services need (and Transfer's, if asked)."""
    from globus_compute_sdk.sdk.auth.auth_client import ComputeAuthClient
    from globus_compute_sdk.sdk.auth.globus_app import get_globus_app
    from globus_sdk import ComputeClientV3, TransferClient

    client_credentials()  # one clear line for half-set credentials
    app = get_globus_app()
    scopes: dict[str, Any] = {
        ComputeClientV3.scopes.resource_server: ComputeClientV3.default_scope_requirements,
        ComputeAuthClient.scopes.resource_server: ComputeAuthClient.default_scope_requirements,
    }
    if transfer:
        scopes[TransferClient.scopes.resource_server] = TransferClient.default_scope_requirements
    app.add_scope_requirements(scopes)
    return app


def academy_app() -> GlobusApp:
    """Academy's app for its hosted exchange (the Compute client credentials, if set)."""
    from academy.exchange.cloud import login as academy_login
    from academy.exchange.cloud.scopes import AcademyExchangeScopes

    creds = client_credentials()
    if creds and not academy_login.is_client_login():
        app: GlobusApp = academy_login.get_client_app(*creds)
    else:
        app = academy_login.get_globus_app()
    app.add_scope_requirements(
        {AcademyExchangeScopes.resource_server: [AcademyExchangeScopes.academy_exchange]}
    )
    return app


def _apps(*, academy: bool) -> list[GlobusApp]:
    return [compute_app(transfer=True), *([academy_app()] if academy else [])]


def login_required(*, transfer: bool = False, academy: bool = False) -> bool:
    """True when a login is needed for Globus Compute (and Transfer / Academy, if asked).

    Checked locally: client credentials in the environment never need one; otherwise
    the stored tokens must cover every scope asked for.
    """
    if client_credentials():
        return False
    try:
        if academy and academy_app().login_required():
            return True
        return compute_app(transfer=transfer).login_required()
    except EndpointError:
        raise
    except Exception as exc:
        from chiltepin.endpoint.errors import one_line

        raise EndpointError(f"cannot read the Globus login: {one_line(exc)}") from None


def ensure_logged_in(purpose: str) -> None:
    """Raise a clear error instead of an interactive login prompt nobody can answer."""
    if sys.stdin.isatty() or not login_required():
        return
    raise ConfigError(
        f"{purpose} needs a Globus login, and this session cannot prompt for one",
        hint=LOGIN_HINT,
    )


def login(*, force: bool = False) -> dict[str, Any]:
    """Log in to Globus Compute, Globus Transfer and Academy's exchange where needed.

    Returns ``{"compute": globus_compute_sdk.Client, "transfer": globus_sdk.TransferClient}``
    built on that login. A login flow (a URL to visit, a code to paste) runs only on a
    terminal; without one this raises EndpointError.
    """
    from chiltepin.endpoint.errors import one_line

    apps = _apps(academy=True)
    needed = force or (client_credentials() is None and login_required(transfer=True, academy=True))
    if needed:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise EndpointError(
                "login is interactive (it prints a URL and asks for a code): run it on a "
                f"terminal, or use client credentials ({CLIENT_ID_ENV}, {CLIENT_SECRET_ENV})"
            )
        try:
            for app in apps:
                app.login(force=force)
        except (KeyboardInterrupt, EOFError):
            raise EndpointError("login cancelled") from None
        except Exception as exc:
            raise EndpointError(f"Globus login failed: {one_line(exc)}") from None
    return clients(apps[0])


def clients(app: GlobusApp | None = None) -> dict[str, Any]:
    """A Globus Compute client and a Transfer client on ``app`` (no network at creation)."""
    from globus_compute_sdk import Client
    from globus_sdk import TransferClient

    app = app or compute_app(transfer=True)
    return {
        "compute": Client(app=app, do_version_check=False),
        "transfer": TransferClient(app=app, **bounded()),
    }


def bounded() -> dict[str, Any]:
    """globus-sdk client options that give up on an unreachable service in seconds, not
    minutes: a 30 s HTTP timeout and two retries."""
    from globus_sdk.transport import RequestsTransport, RetryConfig

    return {
        "transport": RequestsTransport(http_timeout=30),
        "retry_config": RetryConfig(max_retries=2),
    }


def logout() -> None:
    """Revoke and remove the stored Globus Compute, Transfer and Academy tokens."""
    from chiltepin.endpoint.errors import one_line

    if client_credentials():
        return  # client credentials are not stored; nothing to revoke
    for app in _apps(academy=True):
        try:
            app.logout()
        except Exception as exc:
            raise EndpointError(
                f"Globus logout failed: {one_line(exc)} (tokens may not be revoked)"
            ) from None
