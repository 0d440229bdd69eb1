"""Process entry point of the embedded exchange: Academy's HTTP exchange app.

``python -m chiltepin.agents._exchange_server --host H --port P --port-file F --parent-pid N
[--token-file T --certfile C --keyfile K]``

Binds ``H:P`` (``P`` = 0 picks a free port), writes the bound port to ``F`` once it is
listening, and serves until SIGTERM/SIGINT or until its parent process is gone (so a
killed manager never leaves an exchange behind). With ``T`` every request must carry
``Authorization: Bearer <the token in T>`` (401 otherwise); with ``C``/``K`` it serves
TLS. The token is read from its file, never taken from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import shutil
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

#: Prefix of the private temporary directory an exchange without its own directory uses.
TEMP_PREFIX = "chiltepin-exchange-"

logger = logging.getLogger("chiltepin.agents.exchange_server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--token-file", default=None)
    parser.add_argument("--certfile", default=None)
    parser.add_argument("--keyfile", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    ssl_context = None
    if args.certfile is not None:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_cert_chain(args.certfile, keyfile=args.keyfile)
    token = None
    if args.token_file is not None:
        from chiltepin.agents.exchange.secure import read_secret

        token = read_secret(args.token_file, key="token_file")
    asyncio.run(
        _serve(args.host, args.port, Path(args.port_file), args.parent_pid, token, ssl_context)
    )
    return 0


def _token_check(token: str) -> Any:
    """aiohttp middleware: 401 unless the request carries ``Bearer <token>``."""
    from aiohttp import web

    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: Any, handler: Any) -> Any:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.Response(status=401, text="unauthorized")
        return await handler(request)

    return check


async def _serve(
    host: str,
    port: int,
    port_file: Path,
    parent_pid: int | None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    from academy.exchange.cloud.app import create_app
    from academy.exchange.cloud.config import ExchangeServingConfig
    from aiohttp import web

    config = ExchangeServingConfig(host=host, port=port)
    app = create_app(config)
    if token is not None:
        # Academy's server knows Globus auth only; a bearer-token check goes first in the
        # app's middleware chain (aiohttp's list is open until the app starts).
        app.middlewares.insert(0, _token_check(token))
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound = runner.addresses[0][1]
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)  # atomic: the parent never reads a partial number
        logger.info("exchange listening on %s:%s", host, bound)

        orphaned = False
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                if parent_pid is not None and os.getppid() != parent_pid:
                    logger.warning("parent %s is gone; stopping the exchange", parent_pid)
                    orphaned = True
                    break
    finally:
        await runner.cleanup()
    # Nobody else will remove a private temporary directory of a parent that died (a
    # service's own directory stays: its next run reuses it, and may already be in it).
    if orphaned and port_file.parent.name.startswith(TEMP_PREFIX):
        shutil.rmtree(port_file.parent, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
