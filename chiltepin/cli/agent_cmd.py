"""``chiltepin agent``: run agents as long-lived services and drive them from a shell.

Exit status: 0 on success; 1 when an action raised or a service failed; 2 on bad input
(service file, unknown service or action, malformed JSON), with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chiltepin.cli.args import output_dir, positive_seconds

TARGET_HELP = "service name, agent UUID, or a unique prefix of a service's agent UUID"


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("agent", help="agents as long-lived services")
    group.set_defaults(group_parser=group)
    cmds = group.add_subparsers(metavar="SUBCOMMAND")

    serve = cmds.add_parser(
        "serve", help="run one agent in this process until SIGTERM/SIGINT or shutdown"
    )
    serve.add_argument("config", help="agent service file (YAML)")
    serve.add_argument("--log-level", default="INFO", help="log level (default: INFO)")
    serve.set_defaults(handler=_serve)

    unit = cmds.add_parser("unit", help="write a systemd user unit that keeps a service up")
    unit.add_argument("config", help="agent service file (YAML)")
    unit.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        type=output_dir,
        help="write the unit into DIR (default: print it)",
    )
    unit.set_defaults(handler=_unit)

    launch = cmds.add_parser("launch", help="start a service in the background; print its ID")
    launch.add_argument("config", help="agent service file (YAML)")
    launch.add_argument(
        "--timeout",
        type=positive_seconds,
        default=300.0,
        help="seconds to wait for the agent (300)",
    )
    launch.set_defaults(handler=_launch)

    listing = cmds.add_parser("list", help="services on this machine, and agents on an exchange")
    _exchange_options(listing)
    listing.add_argument(
        "--class",
        dest="agent_class",
        metavar="NAME",
        help="with --exchange/--site: agents of this class, 'package.module.Class' "
        "(default: every chiltepin agent)",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)

    call = cmds.add_parser("call", help="call an action; print its result as JSON")
    call.add_argument("target", metavar="NAME|ID", help=TARGET_HELP)
    call.add_argument("action")
    call.add_argument("--args", default="[]", metavar="JSON", help="positional args, a JSON list")
    call.add_argument("--kwargs", default="{}", metavar="JSON", help="keyword args, a JSON object")
    call.add_argument(
        "--timeout",
        type=positive_seconds,
        default=None,
        help="seconds to wait for it (default 3600, or $CHILTEPIN_ACTION_TIMEOUT)",
    )
    _exchange_options(call)
    call.set_defaults(handler=_call)

    shutdown = cmds.add_parser("shutdown", help="stop an agent and wait for its service to exit")
    shutdown.add_argument("target", metavar="NAME|ID", help=TARGET_HELP)
    shutdown.add_argument(
        "--timeout", type=positive_seconds, default=120.0, help="seconds to wait for it (120)"
    )
    _exchange_options(shutdown)
    shutdown.set_defaults(handler=_shutdown)

    schema = cmds.add_parser("schema", help="print the JSON Schema of agent service files")
    schema.set_defaults(handler=_schema)


def _exchange_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--exchange", metavar="URL", help="exchange: http://HOST:PORT or redis://HOST:PORT"
    )
    where.add_argument("--site", metavar="NAME", help="the exchange of this site profile")


def _exchange(args: argparse.Namespace) -> Any:
    from chiltepin.agents.exchange import parse_exchange_url
    from chiltepin.agents.serve.control import site_exchange

    if args.exchange is not None:
        return parse_exchange_url(args.exchange, option="--exchange")
    if args.site is not None:
        return site_exchange(args.site)
    return None


def _quiet_client() -> None:
    """Commands that talk to an exchange report its failures themselves, in one line;
    Academy's own logging of them (tracebacks, retries) would only repeat them."""
    import logging

    logging.getLogger("academy").setLevel(logging.CRITICAL + 1)
    # aiohttp's "Unclosed client session" after a failed connection, and the like
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)


# --- handlers ------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import logging

    from chiltepin.agents.serve import load_service
    from chiltepin.agents.serve.runner import needs_supervisor, serve, supervise

    level = args.log_level.upper()
    if not isinstance(logging.getLevelName(level), int):
        from chiltepin.errors import ConfigError

        raise ConfigError(
            f"unknown log level {args.log_level!r}",
            key="--log-level",
            hint="DEBUG, INFO, WARNING or ERROR",
        )
    service = load_service(args.config)  # bad input is reported before anything starts
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    if level != "DEBUG":  # Academy logs every ping at INFO
        logging.getLogger("academy").setLevel(logging.WARNING)
    # Parsl writes its own log in the agent's run directory.
    logging.getLogger("parsl").propagate = False
    if needs_supervisor():
        from chiltepin.agents.serve.unit import chiltepin_command

        command = ["agent", "serve", str(service.path), "--log-level", args.log_level]
        return supervise([*chiltepin_command(), *command])
    return serve(service)


def _unit(args: argparse.Namespace) -> int:
    from chiltepin.agents.serve import load_service
    from chiltepin.agents.serve.unit import render_unit, unit_name, write_unit
    from chiltepin.cli.output import info

    service = load_service(args.config)
    if not args.output:
        sys.stdout.write(render_unit(service))
        return 0
    path = write_unit(service, args.output)
    print(path)
    info(
        f"next: systemctl --user daemon-reload && systemctl --user enable --now "
        f"{unit_name(service.name)}"
    )
    return 0


def _launch(args: argparse.Namespace) -> int:
    _quiet_client()
    from chiltepin.agents.serve.control import launch_service
    from chiltepin.agents.serve.state import log_path
    from chiltepin.cli.output import info

    state = launch_service(args.config, timeout=args.timeout)
    print(state.agent_id)
    info(
        f"agent service '{state.name}': {state.agent_class} on {state.exchange_label}, "
        f"pid {state.pid}, log {log_path(state.name)}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    _quiet_client()
    import asyncio

    from chiltepin.agents.serve.control import (
        ANY_CHILTEPIN_AGENT,
        discover_agents,
        exchange_label,
        service_rows,
    )

    exchange = _exchange(args)
    if args.agent_class and exchange is None:
        from chiltepin.errors import ConfigError

        raise ConfigError(
            "--class needs the exchange to search", hint="add --exchange URL or --site NAME"
        )
    rows = service_rows()
    discovered = None
    if exchange is not None:
        discovered = asyncio.run(discover_agents(exchange, args.agent_class or ANY_CHILTEPIN_AGENT))
    if args.json:
        out: dict[str, Any] = {"services": rows}
        if discovered is not None:
            out["discovered"] = discovered
        print(json.dumps(out, indent=2))
        return 0
    if rows:
        columns = ("name", "status", "agent_id", "agent_class", "exchange", "pid")
        _table(
            ["NAME", "STATUS", "AGENT ID", "CLASS", "EXCHANGE", "PID"],
            [["-" if r[c] is None else r[c] for c in columns] for r in rows],
        )
        for row in rows:
            if "error" in row:
                print(f"chiltepin: warning: {row['error']}", file=sys.stderr)
    elif discovered is None:
        print("no agent services on this machine")
    if discovered is not None:
        label = exchange_label(exchange)
        print(f"\nagents on {label} ({args.agent_class or 'every chiltepin agent'}):")
        if not discovered:
            print("  none")
        for row in discovered:
            service = f"  service '{row['service']}'" if row["service"] else ""
            print(f"  {row['agent_id']}  {row['status']}{service}")
    return 0


def _table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _call(args: argparse.Namespace) -> int:
    _quiet_client()
    import asyncio

    from chiltepin.agents.serve.control import call_action, resolve

    positional = _json_arg(args.args, "--args", list, "a JSON list, e.g. '[1, \"two\"]'")
    keywords = _json_arg(args.kwargs, "--kwargs", dict, "a JSON object, e.g. '{\"by\": 2}'")
    target = resolve(args.target, _exchange(args))
    result = asyncio.run(
        call_action(target, args.action, positional, keywords, timeout=args.timeout)
    )
    print(json.dumps(result, default=_jsonable, ensure_ascii=False))
    return 0


def _shutdown(args: argparse.Namespace) -> int:
    _quiet_client()
    import asyncio

    from chiltepin.agents.serve.control import remove_broken_state, resolve, shutdown_agent

    exchange = _exchange(args)
    message = remove_broken_state(args.target)
    if message is None:
        target = resolve(args.target, exchange)
        message = asyncio.run(shutdown_agent(target, timeout=args.timeout))
    print(message)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from chiltepin.agents.serve.config import service_json_schema

    print(json.dumps(service_json_schema(), indent=2))
    return 0


def _json_arg(text: str, option: str, kind: type, example: str) -> Any:
    from chiltepin.errors import ConfigError

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{option} is not valid JSON: {exc}", hint=example) from None
    except RecursionError:
        raise ConfigError(f"{option} is nested too deeply", hint=example) from None
    if not isinstance(value, kind):
        raise ConfigError(
            f"{option} must be {example.split(',')[0]}, got {type(value).__name__}",
            hint=example,
        )
    return value


def _jsonable(value: Any) -> Any:
    """Results JSON cannot hold as they are: models, sets, paths, other objects."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
