"""The ``minirnn`` parser and entry point: one subcommand per module.

May use: :mod:`minirnn` and its own modules.
"""

import argparse
import contextlib
import os
import sys

from .. import __version__
from . import demo, export, predict, shapes, summary, trace, verify
from .common import FAILED, KERAS_HINT, PLOT_HINT, UNAVAILABLE, USAGE, CommandError

# The shell's status for a command ended by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130

__all__ = ["build_parser", "main"]

# In the order of ``minirnn --help``.
COMMANDS = (demo, shapes, trace, verify, summary, predict, export)


def build_parser():
    """The argparse parser of ``minirnn`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="minirnn",
        description="Study tools for minirnn: Keras 3's LSTM, GRU, SimpleRNN and "
                    "Bidirectional in readable NumPy and fast Numba kernels.",
        epilog="Keras comparisons need: " + KERAS_HINT + "; pictures need: " + PLOT_HINT)
    parser.add_argument("--version", action="version", version=f"minirnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv=None):
    """Run the ``minirnn`` command; returns the exit status (0: success)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else UNAVAILABLE
    if args.command is None:
        parser.print_help()
        return UNAVAILABLE
    try:
        return args.run(args)
    except CommandError as error:
        sys.stdout.flush()
        print(f"minirnn {args.command}: error: {error}", file=sys.stderr)
        return error.status
    except BrokenPipeError:  # the reader went away (e.g. `minirnn shapes | head`)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except KeyboardInterrupt:
        print(f"\nminirnn {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except MemoryError:  # a size the estimates did not foresee
        print(f"minirnn {args.command}: error: out of memory; choose smaller sizes",
              file=sys.stderr)
        return USAGE
    except Exception as error:  # a bug: one line, the traceback on request
        if os.environ.get("MINIRNN_TRACEBACK"):
            raise
        print(f"minirnn {args.command}: internal error: {type(error).__name__}: {error}\n"
              "  (set MINIRNN_TRACEBACK=1 to see where; please report it)", file=sys.stderr)
        return FAILED
