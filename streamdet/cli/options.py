"""Option types and option groups that several ``streamdet`` commands share.

Not a command module: ``streamdet.cli.COMMAND_MODULES`` does not name it. Heavy modules (torch) are
imported inside the functions that need them, so that importing this module stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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


def resolve_split(text: str, option: str = "--data") -> str:
    """The split folder of a ``--data`` path: the path itself when it is a built split (it holds
    ``annotations.json``), else the one split a dataset root holds (``data/mix`` -> ``data/mix/train``).

    Raises:
        UserFacingError: the path does not exist, holds no split, or holds several (naming them).
    """
    from streamdet.errors import UserFacingError

    path = Path(text)
    if (path / "annotations.json").is_file():
        return text
    if not path.is_dir():
        raise UserFacingError(f"{option} {text}: no such folder")
    splits = sorted(child.name for child in path.iterdir() if (child / "annotations.json").is_file())
    if not splits:
        raise UserFacingError(
            f"{option} {text}: not a built split (no annotations.json) nor a dataset root holding one"
        )
    if len(splits) > 1:
        raise UserFacingError(
            f"{option} {text}: a dataset root with several splits ({', '.join(splits)}); name one, "
            f"e.g. {path / splits[0]}"
        )
    return str(path / splits[0])


def dataset_root(text: str, split: str = "train") -> str:
    """The dataset root of a ``streamdet train --data`` path: the path itself, or the parent of a
    ``split`` folder given instead (``data/mix/train`` -> ``data/mix``, whose ``val/`` then selects the
    epoch as it would for ``data/mix``)."""
    path = Path(text)
    if path.name == split and (path / "annotations.json").is_file():
        return str(path.parent)
    return text


def parse_steps(text: str) -> tuple[int, ...]:
    """``--steps``: ``"4,8,16"`` -> ``(4, 8, 16)`` (sorted, without repeats), positive integers only."""
    try:
        steps = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return steps


def parse_percentiles(text: str) -> tuple[float, float]:
    """``--percentiles``: ``"0.01,99.99"`` -> ``(0.01, 99.99)``."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 0.01,99.99), got {text!r}") from None
    return low, high


def add_conversion_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose a ``ConversionConfig`` and a ``BiasCalibrationConfig`` (``streamdet convert``
    and ``streamdet eval --snn``)."""
    group = parser.add_argument_group("ANN-to-SNN conversion")
    group.add_argument(
        "--normalisation",
        choices=("auto", "quant", "percentile"),
        default="auto",
        help="Quant-ReLU clips where the ANN has them and percentiles elsewhere (auto), clips only, or "
        "percentiles everywhere",
    )
    group.add_argument("--granularity", choices=("channel", "layer"), default="channel")
    group.add_argument(
        "--percentiles", type=parse_percentiles, default=(0.01, 99.99), help="LOW,HIGH in %% (0.01,99.99)"
    )
    group.add_argument(
        "--initial-membrane", type=float, default=0.5, help="v[0] / threshold; 0.5 = residual fix, 0 = off"
    )
    group.add_argument("--reset", choices=("subtract", "zero"), default="subtract")
    group.add_argument(
        "--spike-unactivated",
        choices=("on", "off"),
        default="off",
        help="IF neurons on adds / convolutions without an activation that feed another layer (on: paper "
        "001's NormAdd + IF, needs calibration data), or pass them on as currents (off, the default)",
    )
    group.add_argument("--calibration-windows", type=int, default=32, help="input windows calibrated on (32)")
    group.add_argument(
        "--bias-calibration-steps",
        type=int,
        default=0,
        metavar="T",
        help="after conversion, add per-channel currents that match each IF population's mean rate at T "
        "steps to the ANN's (Li et al. 2021; streamdet.bias_calibration); 0 = off (default)",
    )
    group.add_argument(
        "--bias-calibration-windows",
        type=int,
        default=64,
        help="input windows, spread evenly over the calibration split, for bias calibration (64)",
    )


def conversion_config_from_args(args: argparse.Namespace):
    """The ``streamdet.convert.ConversionConfig`` of :func:`add_conversion_arguments`' options (and
    ``--burst`` where the command has it)."""
    from streamdet.convert import ConversionConfig

    return ConversionConfig(
        normalisation=args.normalisation,
        granularity=args.granularity,
        percentiles=tuple(args.percentiles),
        spike_unactivated=args.spike_unactivated == "on",
        initial_membrane=args.initial_membrane,
        reset=args.reset,
        calibration_windows=args.calibration_windows,
        burst=getattr(args, "burst", "off") == "on",
    )


def bias_calibration_config_from_args(args: argparse.Namespace):
    """The ``streamdet.fidelity.BiasCalibrationConfig`` of ``--bias-calibration-steps`` and
    ``--bias-calibration-windows``."""
    from streamdet.fidelity import BiasCalibrationConfig

    return BiasCalibrationConfig(steps=args.bias_calibration_steps, windows=args.bias_calibration_windows)


def add_snn_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the SNN measurement added to ``streamdet eval`` (with ``--snn``): conversion,
    simulation and scoring."""
    from streamdet.fidelity import DEFAULT_STEPS, SKIP_TRANSIENT

    add_conversion_arguments(parser)
    group = parser.add_argument_group("SNN simulation and scoring")
    group.add_argument(
        "--steps",
        type=parse_steps,
        default=DEFAULT_STEPS,
        help="time steps T per window to score, comma-separated (default 4,8,16,32,64,128,256)",
    )
    group.add_argument(
        "--skip-transient",
        choices=SKIP_TRANSIENT,
        default="both",
        help="average the outputs over all steps (off), over the steps after the transient (on), or "
        "report both (main figures without skipping, 'transient_skipped' beside them)",
    )
    group.add_argument(
        "--skip-fraction", type=float, default=0.25, help="transient = first floor(F * T) steps (0.25)"
    )
    group.add_argument(
        "--calibration-data",
        default=None,
        metavar="SPLIT_DIR",
        help="split whose input windows calibrate percentiles (default: the evaluated split; only inputs "
        "are used, no labels)",
    )
    group.add_argument("--snn-limit", type=int, default=None, help="score the SNN on the first N images only")
    group.add_argument("--chunk", type=int, default=8, help="steps per native-engine call (8)")
    group.add_argument(
        "--snn-report",
        default=None,
        metavar="DIR",
        help="also write report.json and PNG plots: ablations, layer correlations, spike rates, energy",
    )


def fidelity_config_from_args(args: argparse.Namespace):
    """The ``streamdet.fidelity.FidelityConfig`` of ``streamdet eval --snn`` (:func:`add_snn_arguments`;
    ``--snn-limit``, else ``--limit``, limits the images)."""
    from streamdet.fidelity import FidelityConfig, SimulationConfig

    calibration_data = args.calibration_data
    if calibration_data is not None:
        calibration_data = resolve_split(calibration_data, "--calibration-data")
    simulation = SimulationConfig(steps=tuple(args.steps), skip_fraction=args.skip_fraction, chunk=args.chunk)
    return FidelityConfig(
        conversion=conversion_config_from_args(args),
        bias_calibration=bias_calibration_config_from_args(args),
        simulation=simulation,
        skip_transient=args.skip_transient,
        calibration_data=calibration_data,
        limit=args.snn_limit if args.snn_limit is not None else args.limit,
        report_dir=None if args.snn_report is None else Path(args.snn_report),
    )


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` -> a sensor region in pixels; argparse type of ``--roi``."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 4 or not all(part.isdigit() for part in parts) or int(parts[2]) < 1 or int(parts[3]) < 1:
        raise argparse.ArgumentTypeError(
            f"expected x,y,width,height in sensor pixels such as 0,0,640,480, got {text!r}"
        )
    x, y, width, height = (int(part) for part in parts)
    return x, y, width, height


def parse_classes(text: str) -> tuple[str, ...]:
    """``"car,pedestrian"`` -> class names; argparse type of ``--classes``."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected class names such as car,pedestrian, got {text!r}")
    return names


def add_geometry_options(parser: argparse.ArgumentParser) -> None:
    """``--geometry`` and ``--roi``: how a stream's sensor reaches the network
    (``streamdet.contract.Geometry``); the same options on ``detect``, ``eval``, ``view``, ``demo`` and
    in launch files."""
    from streamdet.contract import GEOMETRY_MODES

    group = parser.add_argument_group("sensor geometry")
    group.add_argument(
        "--geometry",
        choices=GEOMETRY_MODES,
        default=None,
        help="scale (default): shrink the sensor (or --roi) to the network input keeping its aspect ratio, "
        "counts pooled; crop: the region at the sensor's own pixels (default: the input-sized centre); "
        "native: run the network at the region's own size (cost grows with its pixels); auto (the default "
        "with --model auto): native where that costs no more than the trained size, else scale. Boxes are "
        "always in the sensor's own pixels",
    )
    group.add_argument("--roi", type=parse_roi, default=None, help="sensor region x,y,width,height (pixels)")


def geometry_from_args(args: argparse.Namespace):
    """The ``Geometry`` of ``--geometry`` / ``--roi`` (``scale`` of the whole sensor by default)."""
    from streamdet.contract import Geometry

    mode = getattr(args, "geometry", None) or ("auto" if getattr(args, "model", None) == "auto" else "scale")
    return Geometry(mode, getattr(args, "roi", None))


def add_box_filter_options(parser: argparse.ArgumentParser) -> None:
    """``--min-score``, ``--max-boxes``, ``--classes``: what subscribers are sent (``BoxFilter``)."""
    from streamdet.contract import PUBLISH_MAX_BOXES, PUBLISH_MIN_SCORE

    group = parser.add_argument_group("what subscribers get")
    group.add_argument(
        "--min-score",
        type=float,
        default=PUBLISH_MIN_SCORE,
        help=f"publish boxes scoring at least this (default {PUBLISH_MIN_SCORE}: the best F1 on the "
        "validation splits, docs/streaming.md); 0 publishes every decoded box",
    )
    group.add_argument(
        "--max-boxes",
        type=positive_int,
        default=PUBLISH_MAX_BOXES,
        help=f"rows per message at most ({PUBLISH_MAX_BOXES})",
    )
    group.add_argument(
        "--classes", type=parse_classes, default=None, help="publish only these classes, e.g. car,pedestrian"
    )


def box_filter_from_args(args: argparse.Namespace):
    """The ``BoxFilter`` of ``--min-score`` / ``--max-boxes`` / ``--classes``."""
    from streamdet.contract import BoxFilter

    return BoxFilter(min_score=args.min_score, max_boxes=args.max_boxes, classes=args.classes)
