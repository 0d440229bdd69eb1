"""Globus Compute endpoints generated from site profiles, and the Globus login.

An endpoint directory (under ``config_dir``, else ``$GLOBUS_COMPUTE_USER_DIR``, else
``~/.globus_compute``) is written from a site profile and checked with
globus-compute-endpoint's own config loader and template renderer before it is reported
as configured. The functions here are chiltepin 0.1.x's ``chiltepin.endpoint`` API:

- :func:`login`, :func:`login_required`, :func:`logout`: one Globus login for Compute,
  Transfer and Academy's exchange (a login flow only ever runs on a terminal);
- :func:`configure` writes the endpoint (from ``site``, else the site profile matching
  this host, else the ``local`` profile); :func:`render` shows the engine configuration
  a user's options produce;
- :func:`show`, :func:`exists`, :func:`is_running`, :func:`start`, :func:`stop`,
  :func:`delete` manage endpoints through ``globus-compute-endpoint``.

Failures raise :class:`~chiltepin.errors.EndpointError` (a ``RuntimeError``) with one
line. Everything up to registering with Globus's web services runs offline. Importing
this package imports neither Parsl nor globus-compute-endpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chiltepin.endpoint.writer import ConfigureResult

__all__ = [
    "ConfigureResult",
    "configure",
    "delete",
    "exists",
    "is_running",
    "login",
    "login_required",
    "logout",
    "render",
    "show",
    "start",
    "stop",
]

#: How long :func:`start` waits for a started endpoint to report Running by default.
START_TIMEOUT = 120.0

PathLike = str | Path


def __getattr__(name: str) -> Any:
    if name == "ConfigureResult":
        from chiltepin.endpoint.writer import ConfigureResult

        return ConfigureResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def login() -> dict[str, Any]:
    """Log in to Globus Compute, Transfer and Academy's exchange where needed.

    Returns ``{"compute": globus_compute_sdk.Client, "transfer": globus_sdk.TransferClient}``.
    The login flow runs only on a terminal; without one (and without client credentials
    or a stored login) this raises EndpointError.
    """
    from chiltepin.globus_auth import login as globus_login

    return globus_login()


def login_required() -> bool:
    """True when Compute, Transfer or Academy's exchange would need a login (checked
    locally; client credentials in the environment never need one)."""
    from chiltepin.globus_auth import login_required as required

    return required(transfer=True, academy=True)


def logout() -> None:
    """Revoke and remove the stored Globus tokens (Compute, Transfer, Academy)."""
    from chiltepin.globus_auth import logout as globus_logout

    globus_logout()


def configure(
    name: str,
    config_dir: PathLike | None = None,
    timeout: float | None = None,
    *,
    site: str | None = None,
    executor: str | None = None,
    multi_user: bool | None = None,
    contact_email: str | None = None,
    display_name: str | None = None,
    identity_mapping: PathLike | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> ConfigureResult:
    """Write (and validate) endpoint ``name`` from a site profile.

    ``site`` defaults to the profile matching this host (``chiltepin site detect``), else
    ``local`` (tasks run on the endpoint's host). ``timeout`` is accepted for 0.1.x
    compatibility; configuring runs offline and does not wait on anything.
    """
    from chiltepin.endpoint.manage import using_dir
    from chiltepin.endpoint.writer import configure as write

    del timeout
    with using_dir(config_dir):
        return write(
            name,
            site or default_site(),
            executor,
            multi_user=multi_user,
            contact_email=contact_email,
            display_name=display_name,
            identity_mapping=identity_mapping,
            dry_run=dry_run,
            force=force,
        )


def default_site() -> str:
    """The site profile for an endpoint configured without one: this host's, else local."""
    from chiltepin.sites.registry import SiteRegistry

    return SiteRegistry().detect() or "local"


def render(
    name: str, options: dict[str, Any] | None = None, config_dir: PathLike | None = None
) -> str:
    """The engine configuration endpoint ``name`` makes of a user's ``options``."""
    from chiltepin.endpoint.manage import endpoint_dir, using_dir
    from chiltepin.endpoint.validate import render_dir

    with using_dir(config_dir):
        return render_dir(endpoint_dir(name), options or {})


def show(config_dir: PathLike | None = None) -> dict[str, dict[str, str | None]]:
    """Configured endpoints by name: ``status`` (Initialized, Running, Stopped, ...),
    ``id`` (the registered UUID or None), ``site`` (None if chiltepin did not make it)
    and ``path``."""
    from chiltepin.endpoint.manage import list_endpoints, using_dir

    with using_dir(config_dir):
        infos = list_endpoints()
    return {
        i.name: {"status": i.status, "id": i.endpoint_id, "site": i.site, "path": str(i.path)}
        for i in infos
    }


def exists(name: str, config_dir: PathLike | None = None) -> bool:
    """True if endpoint ``name`` is configured."""
    return name in show(config_dir)


def is_running(name: str, config_dir: PathLike | None = None) -> bool:
    """True if endpoint ``name`` is configured and running."""
    return show(config_dir).get(name, {}).get("status") == "Running"


def start(name: str, config_dir: PathLike | None = None, timeout: float | None = None) -> None:
    """Validate and start endpoint ``name`` (detached), then wait until it runs.

    Needs a Globus login (or client credentials) and Globus's web services, where it
    registers; either missing is one EndpointError line. Waits at most ``timeout``
    seconds (default :data:`START_TIMEOUT`) in all.
    """
    from chiltepin.endpoint.errors import EndpointError
    from chiltepin.endpoint.manage import link_login, using_dir
    from chiltepin.endpoint.manage import start as start_endpoint

    limit = START_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + limit
    with using_dir(config_dir):
        if config_dir is not None:
            link_login(Path(config_dir))
        start_endpoint(name, timeout=limit)
        while not is_running(name):
            if time.monotonic() > deadline:
                raise EndpointError(f"endpoint '{name}' did not report Running within {limit:g} s")
            time.sleep(1)


def stop(name: str, config_dir: PathLike | None = None, timeout: float | None = None) -> None:
    """Stop endpoint ``name`` (nothing to do if it is not running)."""
    from chiltepin.endpoint.manage import stop as stop_endpoint
    from chiltepin.endpoint.manage import using_dir

    with using_dir(config_dir):
        stop_endpoint(name, timeout=timeout)


def delete(name: str, config_dir: PathLike | None = None, timeout: float | None = None) -> None:
    """Delete endpoint ``name`` locally and, if it was registered, from Globus."""
    from chiltepin.endpoint.manage import delete as delete_endpoint
    from chiltepin.endpoint.manage import using_dir

    with using_dir(config_dir):
        delete_endpoint(name, timeout=timeout)
