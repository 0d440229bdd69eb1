"""``chiltepin endpoint``: Globus Compute endpoints generated from site profiles."""

from __future__ import annotations

import argparse
import json
import sys

CONFIG_DIR_HELP = "endpoints directory (default $GLOBUS_COMPUTE_USER_DIR or ~/.globus_compute)"


def _config_dir_option(parser: argparse.ArgumentParser, default: object) -> None:
    # --config is chiltepin 0.1.x's spelling, --config-dir globus-compute-endpoint's.
    parser.add_argument(
        "-c",
        "--config-dir",
        "--config",
        dest="config_dir",
        metavar="DIR",
        default=default,
        help=CONFIG_DIR_HELP,
    )


class _Group(argparse._SubParsersAction):
    """Subcommands that also take ``-c DIR`` after the subcommand name."""

    def add_parser(self, name: str, **kwargs):  # type: ignore[override]
        parser = super().add_parser(name, **kwargs)
        _config_dir_option(parser, argparse.SUPPRESS)
        return parser


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "endpoint",
        help="Globus Compute endpoints made from site profiles",
        description="Endpoints live in DIR given by -c, else $GLOBUS_COMPUTE_USER_DIR "
        "(default ~/.globus_compute).",
    )
    _config_dir_option(group, None)
    group.set_defaults(group_parser=group)
    cmds = group.add_subparsers(metavar="SUBCOMMAND", action=_Group)

    conf = cmds.add_parser(
        "configure",
        help="write an endpoint directory from a site profile (validated before success)",
    )
    conf.add_argument("name")
    conf.add_argument(
        "--site", help="site profile (default: the one matching this host, else 'local')"
    )
    conf.add_argument(
        "--executor", help="serve only this executor of the profile (default: all of them)"
    )
    users = conf.add_mutually_exclusive_group()
    users.add_argument(
        "--multi-user",
        dest="multi_user",
        action="store_true",
        default=None,
        help="one privileged endpoint mapping Globus identities to local users",
    )
    users.add_argument("--single-user", dest="multi_user", action="store_false")
    conf.add_argument("--contact-email", help="administrators' address (multi-user)")
    conf.add_argument("--display-name", help="name shown by Globus ({site} {executor} {name})")
    conf.add_argument("--identity-mapping", metavar="FILE", help="identity mapping (multi-user)")
    conf.add_argument(
        "--dry-run", action="store_true", help="validate and report changes; write nothing"
    )
    conf.add_argument(
        "--force", action="store_true", help="replace files of a directory chiltepin did not make"
    )
    conf.add_argument("--json", action="store_true", help="print the result as JSON")
    conf.set_defaults(handler=_configure)

    render = cmds.add_parser(
        "render", help="show the engine configuration a user's options produce"
    )
    render.add_argument("name")
    render.add_argument(
        "-o", "--options", metavar="OPTIONS.json", help="user options as a JSON object ('-': stdin)"
    )
    render.set_defaults(handler=_render)

    validate = cmds.add_parser(
        "validate", help="check an endpoint with globus-compute-endpoint's loader and renderer"
    )
    validate.add_argument("name")
    validate.set_defaults(handler=_validate)

    lst = cmds.add_parser("list", help="list configured endpoints")
    lst.add_argument("--json", action="store_true", help="print JSON (keys listed in the README)")
    lst.set_defaults(handler=_list)

    start = cmds.add_parser("start", help="start an endpoint (registers with Globus)")
    start.add_argument("name")
    start.add_argument(
        "--foreground", action="store_true", help="do not detach (for service managers)"
    )
    start.add_argument("--endpoint-uuid", help="register under this UUID")
    start.add_argument(
        "--credentials",
        metavar="FILE",
        help="file of GLOBUS_COMPUTE_CLIENT_ID=... and GLOBUS_COMPUTE_CLIENT_SECRET=... lines",
    )
    start.set_defaults(handler=_start)

    stop = cmds.add_parser("stop", help="stop a running endpoint")
    stop.add_argument("name")
    stop.set_defaults(handler=_stop)

    delete = cmds.add_parser("delete", help="delete an endpoint (and its Globus registration)")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.add_argument(
        "--force", action="store_true", help="delete locally even if Globus cannot be reached"
    )
    delete.set_defaults(handler=_delete)

    login = cmds.add_parser("login", help="log in to Globus (interactive)")
    login.add_argument("--force", action="store_true")
    login.set_defaults(handler=_login)

    logout = cmds.add_parser("logout", help="log out of Globus and revoke stored tokens")
    logout.add_argument("--force", action="store_true", help="even with endpoints running")
    logout.set_defaults(handler=_logout)
    for parser in cmds.choices.values():
        parser.set_defaults(handler=_in_config_dir(parser.get_default("handler")))


def _in_config_dir(handler):
    """Run ``handler`` with ``-c DIR`` as the endpoints directory (like
    ``globus-compute-endpoint -c DIR``: GLOBUS_COMPUTE_USER_DIR for this command)."""

    def run(args: argparse.Namespace) -> int:
        if args.config_dir is None:
            return handler(args)
        from chiltepin.endpoint.manage import using_dir

        with using_dir(args.config_dir):
            return handler(args)

    return run


def _configure(args: argparse.Namespace) -> int:
    from chiltepin.endpoint import default_site
    from chiltepin.endpoint.writer import configure

    result = configure(
        args.name,
        args.site or default_site(),
        args.executor,
        multi_user=args.multi_user,
        contact_email=args.contact_email,
        display_name=args.display_name,
        identity_mapping=args.identity_mapping,
        dry_run=args.dry_run,
        force=args.force,
    )
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    engines = ", ".join(f"{k}: {v}" for k, v in result.engines.items() if k != "(default)")
    if not result.changed:
        state = "unchanged"
    elif result.dry_run:
        state = "would be created" if result.created else "would change"
    else:
        state = "created" if result.created else "updated"
    print(f"endpoint {result.name}: {state} ({result.path}); valid per globus-compute-endpoint")
    print(f"  site {result.site}; {engines}")
    if result.files and result.changed:
        print(f"  files: {', '.join(result.files)}")
    import os

    from chiltepin.endpoint.manage import manifest_of

    manifest = manifest_of(result.path)
    if os.geteuid() == 0 and not manifest.get("multi_user", True):
        print("  note: as root, globus-compute-endpoint starts endpoints multi-user only")
        print("        (reconfigure with --multi-user --contact-email ADDRESS to start it as root)")
    return 0


def _read_options(source: str | None) -> dict:
    from chiltepin.config.loader import parse_json, read_text_file, read_text_stream
    from chiltepin.errors import ConfigError

    if source is None:
        return {}
    what = "user options file"
    if source == "-":
        source = "<stdin>"
        data = parse_json(read_text_stream(sys.stdin.buffer, source, what), source, what)
    else:
        data = parse_json(read_text_file(source, what), source, what)
    if not isinstance(data, dict):
        raise ConfigError("user options must be a JSON object", source=source)
    return data


def _render(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import endpoint_dir
    from chiltepin.endpoint.validate import render_dir

    options = _read_options(args.options)
    print(render_dir(endpoint_dir(args.name), options).rstrip())
    return 0


def _validate(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import endpoint_dir, manifest_of
    from chiltepin.endpoint.validate import validate_dir

    path = endpoint_dir(args.name)
    engines = validate_dir(path, manifest_of(path).get("executors", []))
    shown = ", ".join(f"{k}: {v}" for k, v in engines.items() if k) or engines[""]
    print(f"endpoint {path.name}: valid per globus-compute-endpoint ({shown})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import list_endpoints

    infos = list_endpoints()
    if args.json:
        rows = [
            {
                "name": i.name,
                "path": str(i.path),
                "status": i.status,
                "endpoint_id": i.endpoint_id,
                "site": i.site,
                "executors": i.executors,
            }
            for i in infos
        ]
        print(json.dumps(rows))
        return 0
    if not infos:
        print("no endpoints configured (chiltepin endpoint configure NAME --site SITE)")
        return 0
    for i in infos:
        made = f"site {i.site}: {', '.join(i.executors)}" if i.site else "not made by chiltepin"
        print(f"{i.name:24s} {i.status:12s} {i.endpoint_id or '-':36s} {made}")
    return 0


def _start(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chiltepin.endpoint.manage import link_login, start

    if args.config_dir is not None:
        link_login(Path(args.config_dir))  # `chiltepin login` stored the tokens by default

    out = start(
        args.name,
        foreground=args.foreground,
        endpoint_uuid=args.endpoint_uuid,
        credentials=args.credentials,
    )
    if out:
        print(out)
    return 0


def _stop(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import stop

    stop(args.name)
    print(f"endpoint {args.name}: stopped")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.errors import EndpointError
    from chiltepin.endpoint.manage import delete, endpoint_dir

    path = endpoint_dir(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise EndpointError(f"deleting endpoint '{args.name}' needs --yes (no terminal)")
        answer = input(f"delete endpoint {args.name} ({path})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    delete(args.name, force=args.force)
    print(f"endpoint {args.name}: deleted")
    return 0


def _login(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import login

    print(login(force=args.force))
    return 0


def _logout(args: argparse.Namespace) -> int:
    from chiltepin.endpoint.manage import logout

    out = logout(force=args.force)
    print(out or "logged out")
    return 0
