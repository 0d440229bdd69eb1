"""``chiltepin login`` / ``chiltepin logout``: one Globus login for Compute, Transfer and
Academy's exchange (``chiltepin endpoint login``/``logout`` do the same)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    login = sub.add_parser(
        "login",
        help="log in to Globus (Compute, Transfer, Academy exchange; interactive)",
        description="Runs Globus's login flow on this terminal where a login is needed. "
        "Services use GLOBUS_COMPUTE_CLIENT_ID and GLOBUS_COMPUTE_CLIENT_SECRET instead.",
    )
    login.add_argument("--force", action="store_true", help="log in again even if logged in")
    login.set_defaults(handler=_login)

    logout = sub.add_parser("logout", help="log out of Globus and revoke the stored tokens")
    logout.add_argument("--force", action="store_true", help="even with endpoints running")
    logout.set_defaults(handler=_logout)


def _login(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import login

    print(login(force=args.force))
    return 0


def _logout(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import logout

    print(logout(force=args.force))
    return 0
