"""``streamdet dataset build``: synthetic maritime/traffic sequences with events, spikes and COCO boxes."""

from __future__ import annotations

import argparse
import sys

from streamdet.cli.options import parse_size
from streamdet.errors import UserFacingError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dataset build`` to the ``streamdet`` parser."""
    dataset = subparsers.add_parser("dataset", help="build synthetic datasets (events, spikes, COCO boxes)")
    actions = dataset.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="render scenes and write events, spike streams and annotations.json for one split",
        description="Render procedural scenes, emulate a DVS and a spike camera, and write one split "
        "(DIR/SPLIT/annotations.json and one folder per sequence).",
    )
    build.add_argument(
        "--preset",
        default="maritime",
        help="maritime, traffic, or a comma-separated mix (sequences alternate); default maritime",
    )
    build.add_argument("--sequences", type=int, default=4, help="number of sequences (default 4)")
    build.add_argument(
        "--seconds", type=float, default=10.0, help="length of each sequence in seconds (default 10)"
    )
    build.add_argument("--split", default="train", help="train, val or test (default train)")
    build.add_argument("--seed", type=int, default=0, help="root seed of the split (default 0)")
    build.add_argument("--out", required=True, help="dataset root directory; the split goes in OUT/SPLIT")
    build.add_argument(
        "--size",
        type=parse_size,
        default=(346, 260),
        help="sensor size WxH (default 346x260, DAVIS346; 400x250 Vidar, 304x240 Gen1)",
    )
    build.add_argument("--label-every-ms", type=float, default=100.0, help="label spacing, ms (default 100)")
    build.add_argument(
        "--window-us", type=int, default=50_000, help="input window, microseconds (default 50000)"
    )
    build.add_argument(
        "--spike-rate-hz",
        type=float,
        default=1000.0,
        help="spike-camera frame rate written to spikes.dat (default 1000)",
    )
    build.add_argument(
        "--render-fps",
        type=float,
        default=250.0,
        help="scene frames per second fed to the emulators (default 250)",
    )
    build.add_argument(
        "--fixed-sensor",
        action="store_true",
        help="use the default DVS parameters for every sequence instead of drawing them per sequence",
    )
    build.add_argument("--preview", action="store_true", help="also write preview.mp4 per sequence")
    build.add_argument("--workers", type=int, default=2, help="parallel processes over sequences (default 2)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing OUT/SPLIT")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Build one split; prints the path of annotations.json and a one-line summary."""
    from tqdm import tqdm

    from streamdet.dataset import BuildConfig, build_split

    presets = tuple(name.strip() for name in args.preset.split(",") if name.strip())
    if args.workers < 1:
        raise UserFacingError(f"--workers must be at least 1, got {args.workers}")
    config = BuildConfig(
        presets=presets,
        sequences=args.sequences,
        seconds=args.seconds,
        split=args.split,
        seed=args.seed,
        sensor_size=args.size,
        window_us=args.window_us,
        label_every_ms=args.label_every_ms,
        spike_rate_hz=args.spike_rate_hz,
        render_fps=args.render_fps,
        preview=args.preview,
        randomise_sensor=not args.fixed_sensor,
    )
    totals = {"events": 0, "images": 0, "boxes": 0}
    with tqdm(total=config.sequences, unit="seq", desc=f"{config.split} sequences", file=sys.stderr) as bar:

        def progress(result: dict) -> None:
            totals["events"] += result["events"]
            totals["images"] += len(result["images"])
            totals["boxes"] += len(result["annotations"])
            bar.update(1)

        path = build_split(
            config, args.out, workers=args.workers, overwrite=args.overwrite, progress=progress
        )
    print(
        f"{path}: {config.sequences} sequences, {totals['images']} images, {totals['boxes']} boxes, "
        f"{totals['events']} events"
    )
    return 0
