"""The ``streamdet`` command line.

Each module in this package defines ``register(subparsers)``, which adds its sub-commands to the
parser; every sub-command sets ``func`` to a function taking the parsed arguments and returning an
exit code. ``COMMAND_MODULES`` says which module holds which command, so that running one command
imports only its module (several import torch, which takes seconds); ``streamdet --help`` imports all.
``options`` holds option types and groups that several command modules share.
Errors that a user can fix (a bad file, a bad option) are raised as ``UserFacingError`` (or one of its
subclasses) and printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from streamdet.bus import keep_swallowed_interrupt
from streamdet.errors import UserFacingError

COMMAND_MODULES: dict[str, str] = {
    "average": "models",
    "broker": "bus",
    "convert": "convert",
    "curve-keys": "bus",
    "dataset": "dataset",
    "demo": "run",
    "detect": "run",
    "drive": "drive",
    "eval": "models",
    "info": "files",
    "launch": "run",
    "record": "files",
    "relevel": "models",
    "replay": "files",
    "subscribe": "bus",
    "train": "models",
    "view": "run",
}
"""Sub-command -> module of this package that registers it."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Parser with the sub-commands of ``command``'s module, or of every module when it is unknown or None."""
    parser = argparse.ArgumentParser(
        prog="streamdet",
        description="Spiking object detection on event-camera and spike-camera streams over ZeroMQ.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command in COMMAND_MODULES:
        module_names = [COMMAND_MODULES[command]]
    else:
        module_names = sorted(set(COMMAND_MODULES.values()))
    for module_name in module_names:
        importlib.import_module(f"{__name__}.{module_name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    # Ctrl-C (SIGINT) ends every command cleanly, also when a non-interactive shell started it in the
    # background with SIGINT ignored (the launcher and the tests stop processes with SIGINT), and also
    # when it lands in a pyzmq frame's finalizer (see streamdet.bus).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.unraisablehook = keep_swallowed_interrupt
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserFacingError as error:
        print(f"streamdet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"streamdet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
