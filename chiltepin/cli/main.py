# PYTHON_ARGCOMPLETE_OK
"""Entry point of the ``chiltepin`` command.

Each command group lives in its own module with a ``register(subparsers)`` function;
handlers import the heavy libraries they need only when they run, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from chiltepin._version import __version__
from chiltepin.cli.args import OneLineParser

#: The exit statuses of every command (also in the README's "Command line" section).
EXIT_STATUS = """exit status:
  0    success
  1    failed while running (a task, action, service, pull or Globus call failed)
  2    bad input or usage: arguments, resource configs, site profiles, service files
       (one line on stderr naming the file, entry and key)
  130  interrupted (Ctrl-C, SIGINT); a running workflow was cleaned up first
  143  stopped by SIGTERM; a running workflow was cleaned up first

-v/-q go before the command: chiltepin -q image pull. Shell completion: pip install
'chiltepin[completion]', then eval "$(register-python-argcomplete chiltepin)"."""

#: Command group modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "chiltepin.cli.config_cmd",
    "chiltepin.cli.site_cmd",
    "chiltepin.cli.image_cmd",
    "chiltepin.cli.endpoint_cmd",
    "chiltepin.cli.agent_cmd",
    "chiltepin.cli.status_cmd",
    "chiltepin.cli.monitor_cmd",
    "chiltepin.cli.login_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="chiltepin",
        description="Scientific workflows and long-running agents on HPC clusters, in containers.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chiltepin {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="count",
        default=0,
        help="show chiltepin's log messages on stderr (-vv: debug)",
    )
    loudness.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        help="no informational lines on stderr (errors and warnings still print)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions: never a normal run
        return _complete(parser)
    args = parser.parse_args(argv)
    from chiltepin.cli.output import set_verbosity

    set_verbosity(args.verbosity)
    if args.verbosity > 0:
        _log_context()
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
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:  # chiltepin.errors.Interrupted carries 130 or 143
        print("chiltepin: interrupted", file=sys.stderr)
        code = getattr(exc, "code", None)
        return code if isinstance(code, int) else 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Configuration warnings are one ``chiltepin: warning: ...`` line; others as usual."""
    import warnings

    from chiltepin.errors import ConfigWarning

    if issubclass(category, ConfigWarning):
        print(f"chiltepin: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _log_context() -> None:
    """Under -v: what runs (for bug reports); under -vv also where profiles are found."""
    import logging
    import platform

    import chiltepin

    log = logging.getLogger("chiltepin.cli")
    log.info(
        "chiltepin %s, python %s, package %s",
        __version__,
        platform.python_version(),
        os.path.dirname(chiltepin.__file__),
    )
    if log.isEnabledFor(logging.DEBUG):
        from chiltepin.sites.paths import layer_dirs

        log.debug("site profile directories: %s", ", ".join(map(str, layer_dirs())))


def _complete(parser: argparse.ArgumentParser) -> int:
    """Print the shell's completions (argcomplete, the optional ``completion`` extra)."""
    try:
        import argcomplete
    except ImportError:
        return 1  # nothing to offer; the shell shows no completions
    argcomplete.autocomplete(parser)  # exits when it has answered
    return 1


if __name__ == "__main__":
    sys.exit(main())
