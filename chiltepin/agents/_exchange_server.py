"""Process entry point of the embedded exchange: Academy's HTTP exchange app, no auth.

``python -m chiltepin.agents._exchange_server --host H --port P --port-file F --parent-pid N``

Binds ``H:P`` (``P`` = 0 picks a free port), writes the bound port to ``F`` once it is
listening, and serves until SIGTERM/SIGINT or until its parent process is gone (so a
killed manager never leaves an exchange behind).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

logger = logging.getLogger("chiltepin.agents.exchange_server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    asyncio.run(_serve(args.host, args.port, Path(args.port_file), args.parent_pid))
    return 0


async def _serve(host: str, port: int, port_file: Path, parent_pid: int | None) -> None:
    from academy.exchange.cloud.app import create_app
    from academy.exchange.cloud.config import ExchangeServingConfig
    from aiohttp import web

    config = ExchangeServingConfig(host=host, port=port)
    runner = web.AppRunner(create_app(config), shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)  # atomic: the parent never reads a partial number
        logger.info("exchange listening on %s:%s", host, bound)

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
                    break
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
