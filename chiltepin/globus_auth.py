"""Globus login state, checked before anything would prompt for a login."""

from __future__ import annotations

import sys

from chiltepin.errors import ConfigError


def login_required() -> bool:
    """True when Globus Compute has neither stored tokens nor client credentials."""
    from globus_compute_sdk.sdk.auth.globus_app import get_globus_app

    return get_globus_app().login_required()


def ensure_logged_in(purpose: str) -> None:
    """Raise a clear error instead of an interactive login prompt nobody can answer."""
    if sys.stdin.isatty() or not login_required():
        return
    raise ConfigError(
        f"{purpose} needs a Globus login, and this session cannot prompt for one",
        hint="run `globus-compute-endpoint login` once in a terminal, or set "
        "GLOBUS_COMPUTE_CLIENT_ID and GLOBUS_COMPUTE_CLIENT_SECRET",
    )
