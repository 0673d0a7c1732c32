"""Sensor geometry: mAP@0.5 of one model on splits of several sensor sizes in each geometry mode, with the
cost of a window at the input size each mode runs at.

    python -m bench.geometry --model events-default --split 346x260=data/g346/test \
        --split 640x480=data/g640/test --split 1280x720=data/g1280/test [--limit N] [--json out.json]

Splits are built with ``streamdet dataset build --size WxH`` (same presets and seed, so the same scenes
seen by sensors of other sizes). For each split and mode (``scale``, ``crop``, ``native``) it runs
``streamdet.evaluate.evaluate_split`` (boxes scored in the split's own pixels) and times the ANN forward
on one input of that mode's size (one torch thread, median of ``--repeats``), with its multiply-
accumulates (``streamdet.model.count_macs``). At the model's own sensor size the three modes are the
same mapping (the identity).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

MODES = ("scale", "crop", "native")


def forward_ms(bundle, input_size: tuple[int, int], repeats: int) -> float:
    """Median wall time of one ANN forward on a zero-padded input of ``input_size`` ``(W, H)``, ms."""
    from streamdet.model import pad_input

    width, height = input_size
    x = pad_input(torch.rand(1, bundle.config.in_channels, height, width))
    times = []
    with torch.no_grad():
        bundle.model(x)
        for _ in range(repeats):
            started = time.perf_counter()
            bundle.model(x)
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from streamdet.binning import sensor_mapping
    from streamdet.contract import Geometry
    from streamdet.dataset import DatasetSplit
    from streamdet.evaluate import evaluate_split
    from streamdet.model import count_macs, load_detector, padded_length

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--split", action="append", required=True, metavar="NAME=DIR", help="split to score")
    parser.add_argument("--limit", type=int, default=None, help="images per split")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per input size (5)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bundle = load_detector(args.model)
    rows = []
    for item in args.split:
        name, _, folder = item.partition("=")
        sensor = DatasetSplit(folder).sensor_size
        for mode in MODES:
            geometry = Geometry(mode)
            mapping = sensor_mapping(sensor, bundle.spec, geometry)
            metrics = evaluate_split(
                bundle.detect, folder, bundle.spec, geometry, limit=args.limit, progress=False
            )
            width, height = mapping.input_size
            row = {
                "split": name,
                "sensor": list(sensor),
                "mode": mode,
                "mapping": mapping.describe(),
                "input": [width, height],
                "images": metrics["images"],
                "map50": round(metrics["map50"], 4),
                "map": round(metrics["map"], 4),
                "ap50_per_class": {k: round(v, 4) for k, v in metrics["ap50_per_class"].items()},
                "gmac_per_window": round(
                    count_macs(bundle.model, padded_length(height), padded_length(width)) / 1e9, 3
                ),
                "ann_ms_per_window": round(forward_ms(bundle, (width, height), args.repeats), 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")
    print()
    print("| split | mode | input | mAP@0.5 | mAP@[.5:.95] | GMAC / window | ANN ms / window |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['split']} | {row['mode']} | {row['input'][0]}x{row['input'][1]} | {row['map50']:.3f} | "
            f"{row['map']:.3f} | {row['gmac_per_window']:.2f} | {row['ann_ms_per_window']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
