"""The ``kmquant`` command. It holds no algorithm: it parses, calls the library, and turns the
library's exceptions into one line on stderr and an exit code.

One module per group of subcommands (:mod:`.compress`: compress, demo; :mod:`.explore`: sweep,
compare, scatter); this module owns the parser, the shared options and the error edge.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__, errors
from ._common import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    Parser,
    epilog,
    exit_code_for,
    one_line,
    single_threaded_blas,
)

__all__ = ["main", "run", "build_parser", "EXIT_CODES", "exit_code_for"]


def build_parser() -> argparse.ArgumentParser:
    from . import compress, explore, serve

    parser = Parser(
        prog="kmquant",
        description="Compress images by k-means colour quantization into real indexed PNGs.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kmquant {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    compress.register(commands)
    explore.register(commands)
    serve.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    try:
        single_threaded_blas()
        return args.handler(args)
    except errors.KmquantError as exc:
        print(f"kmquant: {one_line(str(exc))}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("kmquant: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader left (| head): not an error of ours, and nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing at exit does not fail again
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if os.environ.get("KMQUANT_DEBUG"):
            raise
        print(f"kmquant: internal error: {type(exc).__name__}: {exc} "
              "(set KMQUANT_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
