"""``chiltepin config``: validate executor configurations and print their schema."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("config", help="validate executor configurations")
    group.set_defaults(group_parser=group)
    cmds = group.add_subparsers(metavar="SUBCOMMAND")

    validate = cmds.add_parser("validate", help="check a config file; print its executors")
    validate.add_argument("file", help="YAML executor configuration")
    validate.add_argument("--include", nargs="+", metavar="NAME", help="executors to select")
    validate.add_argument(
        "--json", action="store_true", help="print JSON (keys listed in the README)"
    )
    validate.set_defaults(handler=_validate)

    schema = cmds.add_parser("schema", help="print the JSON Schema of executor configs")
    schema.set_defaults(handler=_schema)


def _validate(args: argparse.Namespace) -> int:
    from chiltepin.config import load_resources

    resources = load_resources(args.file, include=args.include)
    if args.json:
        from chiltepin.cli.output import print_json

        print_json(
            {
                "file": args.file,
                "valid": True,
                "executors": {
                    name: res.model_dump(mode="json", exclude_none=True)
                    for name, res in resources.items()
                },
            }
        )
        return 0
    print(f"{args.file}: valid, {len(resources)} executors")
    print(dump_resources(resources))
    return 0


def dump_resources(resources: dict) -> str:
    """Resolved resources as YAML, leaving out unset values."""
    import yaml

    data = {name: res.model_dump(exclude_none=True) for name, res in resources.items()}
    return yaml.safe_dump(data, sort_keys=False).rstrip()


def _schema(args: argparse.Namespace) -> int:
    from chiltepin.config import resource_json_schema

    print(json.dumps(resource_json_schema(), indent=2))
    return 0
