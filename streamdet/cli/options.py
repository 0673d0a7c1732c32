"""Option types and option groups that several ``streamdet`` commands share.

Not a command module: ``streamdet.cli.COMMAND_MODULES`` does not name it. Heavy modules (torch) are
imported inside the functions that need them, so that importing this module stays cheap.
"""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)`` pixels, both positive; argparse type of every size option (``--size``,
    ``--sensor-size``, ``--crop``)."""
    width, separator, height = text.strip().lower().partition("x")
    if not separator or not width.isdigit() or not height.isdigit() or int(width) <= 0 or int(height) <= 0:
        raise argparse.ArgumentTypeError(f"expected WxH such as 346x260, got {text!r}")
    return int(width), int(height)


def positive_int(text: str) -> int:
    """An integer of at least 1; argparse type."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
