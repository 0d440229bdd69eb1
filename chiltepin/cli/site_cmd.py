"""``chiltepin site``: list, show, validate and detect site profiles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("site", help="site profiles (clusters)")
    group.set_defaults(group_parser=group)
    cmds = group.add_subparsers(metavar="SUBCOMMAND")

    listing = cmds.add_parser("list", help="list known sites")
    _json_option(listing)
    listing.set_defaults(handler=_list)

    show = cmds.add_parser("show", help="show a site's profile")
    show.add_argument("name").completer = site_names  # type: ignore[attr-defined]
    show.add_argument(
        "--resolved",
        action="store_true",
        help="show each executor as it will be used, with where each value came from",
    )
    _json_option(show)
    show.set_defaults(handler=_show)

    validate = cmds.add_parser("validate", help="validate one site or file (default: all)")
    validate.add_argument(
        "target", nargs="?", help="site name or profile file"
    ).completer = site_names  # type: ignore[attr-defined]
    validate.set_defaults(handler=_validate)

    check = cmds.add_parser(
        "check", help="check a site's executors against the live scheduler (preflight)"
    )
    check.add_argument("name").completer = site_names  # type: ignore[attr-defined]
    check.add_argument(
        "--executor",
        action="append",
        metavar="E",
        help="check only this executor (repeatable; default: every executor)",
    )
    _json_option(check)
    check.set_defaults(handler=_check)

    cmds.add_parser("detect", help="which site profile matches this host").set_defaults(
        handler=_detect
    )

    schema = cmds.add_parser("schema", help="print the JSON Schema of site profiles")
    schema.set_defaults(handler=_schema)


def site_names(**_: object) -> list[str]:
    """Shell completion (argcomplete) of a site name."""
    from chiltepin.sites import SiteRegistry

    return SiteRegistry().names()


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON (keys listed in the README)"
    )


def _list(args: argparse.Namespace) -> int:
    from chiltepin.sites import SiteRegistry

    registry = SiteRegistry()
    sites = [registry.load(name) for name in registry.names()]
    if args.json:
        from chiltepin.cli.output import print_json

        print_json(
            [
                {
                    "name": site.name,
                    "description": site.profile.description,
                    "scheduler": site.profile.scheduler,
                    "executors": site.executor_names,
                    "files": site.files,
                }
                for site in sites
            ]
        )
        return 0
    for site in sites:
        print(f"{site.name:14s} {site.profile.description}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import yaml

    from chiltepin.sites import load_site

    site = load_site(args.name)
    if args.json:
        return _show_json(site, args.resolved)
    print(f"# site {site.name} from: {', '.join(site.files)}")
    if not args.resolved:
        data = site.profile.model_dump(exclude_none=True, exclude_defaults=True)
        print(yaml.safe_dump(data, sort_keys=False).rstrip())
        return 0
    print(f"exchange: {site.exchange.model_dump(exclude_none=True)}")
    for name in site.executor_names:
        resource, where = site.resolve(name)
        print(f"{name}:")
        for key, value in resource.model_dump().items():
            if value is None or value == []:
                continue
            label, source, line = where[key]
            origin = f"{label} ({source}:{line})" if source else label
            print(f"  {key}: {json.dumps(value)}  # {origin}")
    return 0


def _show_json(site, resolved: bool) -> int:  # noqa: ANN001 (a chiltepin.sites.Site)
    from chiltepin.cli.output import print_json

    out: dict = {"name": site.name, "files": site.files}
    if not resolved:
        out["profile"] = site.profile.model_dump(
            mode="json", exclude_none=True, exclude_defaults=True
        )
        print_json(out)
        return 0
    out["exchange"] = site.exchange.model_dump(mode="json", exclude_none=True)
    executors: dict = {}
    for name in site.executor_names:
        resource, where = site.resolve(name)
        values = {}
        for key, value in resource.model_dump(mode="json").items():
            if value is None or value == []:
                continue
            label, source, line = where[key]
            values[key] = {"value": value, "from": label, "file": source, "line": line}
        executors[name] = values
    out["executors"] = executors
    print_json(out)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from chiltepin.sites import SiteRegistry

    registry = SiteRegistry()
    target = args.target
    if target and (target.endswith((".yaml", ".yml")) or Path(target).is_file()):
        site = registry.load_file(target)
        print(f"{target}: valid site '{site.name}' ({len(site.executor_names)} executors)")
        return 0
    for name in [target] if target else registry.names():
        site = registry.load(name)
        print(f"{name}: valid ({', '.join(site.executor_names)})")
    return 0


def _check(args: argparse.Namespace) -> int:
    import sys

    from chiltepin.config.resources import LOCAL_NAME
    from chiltepin.config.source import WorkflowSource
    from chiltepin.preflight import check

    resolved = WorkflowSource(site=args.name, include=args.executor).resolve()
    names = args.executor or [n for n in resolved.resources if n != LOCAL_NAME]
    found = check(resolved, names)
    failed = any(found.values())
    if args.json:
        from chiltepin.cli.output import print_json

        print_json(
            {
                "site": args.name,
                "ok": not failed,
                "executors": {
                    name: {
                        "scheduler": getattr(resolved.resources[name], "provider", None),
                        "ok": not errors,
                        "problems": [
                            {
                                "key": e.key,
                                "message": e.reason,
                                "file": e.source,
                                "line": e.line,
                                "hint": e.hint,
                            }
                            for e in errors
                        ],
                    }
                    for name, errors in found.items()
                },
            }
        )
        return 2 if failed else 0
    for name, errors in found.items():
        for error in errors:
            print(f"chiltepin: error: {error}", file=sys.stderr)
        if not errors:
            print(f"{name}: ok")
    return 2 if failed else 0


def _detect(args: argparse.Namespace) -> int:
    import socket

    from chiltepin.sites import SiteRegistry

    name = SiteRegistry().detect()
    if name is None:
        print(f"no site profile matches host '{socket.gethostname()}'; use --site local")
        return 1
    print(name)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from chiltepin.sites.schema import profile_json_schema

    print(json.dumps(profile_json_schema(), indent=2))
    return 0
