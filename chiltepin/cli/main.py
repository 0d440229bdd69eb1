"""Entry point of the ``chiltepin`` command.

Each command group lives in its own module with a ``register(subparsers)`` function;
handlers import the heavy libraries they need only when they run, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from chiltepin._version import __version__
from chiltepin.cli.args import OneLineParser

#: Command group modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "chiltepin.cli.config_cmd",
    "chiltepin.cli.site_cmd",
    "chiltepin.cli.image_cmd",
    "chiltepin.cli.endpoint_cmd",
    "chiltepin.cli.agent_cmd",
    "chiltepin.cli.login_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="chiltepin",
        description="Scientific workflows and long-running agents on HPC clusters, in containers.",
    )
    parser.add_argument("--version", action="version", version=f"chiltepin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # A command group given without its subcommand: show that group's help.
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return 2
    import warnings

    from chiltepin.errors import ChiltepinError

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(handler(args) or 0)
    except ChiltepinError as exc:
        # The one place errors become exit statuses (see chiltepin.errors).
        print(f"chiltepin: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, like other command-line tools.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("chiltepin: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Configuration warnings are one ``chiltepin: warning: ...`` line; others as usual."""
    import warnings

    from chiltepin.errors import ConfigWarning

    if issubclass(category, ConfigWarning):
        print(f"chiltepin: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


if __name__ == "__main__":
    sys.exit(main())
