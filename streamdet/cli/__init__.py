"""The ``streamdet`` command line.

Each module in this package defines ``register(subparsers)``, which adds its sub-commands to the
parser; every sub-command sets ``func`` to a function taking the parsed arguments and returning an
exit code. Errors that a user can fix (a bad file, a bad option) are raised as ``UserFacingError``
(or one of its subclasses) and printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from streamdet.errors import UserFacingError


def build_parser() -> argparse.ArgumentParser:
    """Parser with the sub-commands of every module of ``streamdet.cli``."""
    parser = argparse.ArgumentParser(
        prog="streamdet",
        description="Spiking object detection on event-camera and spike-camera streams over ZeroMQ.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
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
