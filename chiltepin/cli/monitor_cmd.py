"""``chiltepin monitor [RUN_DIR]``: Parsl's visualization of a monitored workflow."""

from __future__ import annotations

import argparse

from chiltepin.cli.args import port_number


def register(sub: argparse._SubParsersAction) -> None:
    monitor = sub.add_parser(
        "monitor",
        help="serve Parsl's monitoring pages of a run (monitoring: true) on loopback",
        description="Serve Parsl's visualization of RUN_DIR/monitoring.db on 127.0.0.1 "
        "(it has no authentication, so it never listens elsewhere: from your desktop, "
        "ssh -L PORT:127.0.0.1:PORT LOGIN-NODE). Runs until Ctrl-C or SIGTERM.",
    )
    monitor.add_argument(
        "run_dir",
        nargs="?",
        metavar="RUN_DIR",
        help="a workflow's run directory (default: ., else the newest runinfo/*)",
    )
    monitor.add_argument(
        "--port",
        type=port_number,
        default=0,
        help="the port on 127.0.0.1 (default: 0, any free one)",
    )
    monitor.set_defaults(handler=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    import signal

    from chiltepin.cli.output import info
    from chiltepin.errors import Interrupted
    from chiltepin.monitoring import Viewer, find_database, free_port, viewer_available

    database = find_database(args.run_dir)
    viewer_available()
    viewer = Viewer(database, free_port(args.port))

    def terminated(signum: int, frame: object) -> None:
        raise Interrupted(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        url = viewer.start()
        # The URL last: whoever reads it (a script, a test) may stop the viewer at once.
        info(f"chiltepin: monitoring pages of {database} (Ctrl-C stops them)")
        print(url, flush=True)
        status = viewer.wait()
    finally:
        viewer.stop()
        signal.signal(signal.SIGTERM, previous)
    if status != 0:
        from chiltepin.errors import ServiceError

        raise ServiceError(f"the monitoring viewer stopped with status {status}")
    return 0
