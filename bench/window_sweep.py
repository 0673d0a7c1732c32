"""mAP of events models over input windows of other durations than the one they were trained on.

Every labelled time stamp ``t`` of a split is scored on the window ``(t - window, t]`` of the same
recording (``streamdet.dataset.DatasetSplit`` with ``window_us``), for each model and each
``WINDOW_MS:EVENT_SCALE`` pair, with ``streamdet.evaluate.evaluate_split`` (COCO mAP@0.5 and
mAP@[.5:.95] with pycocotools). ``native`` in ``--windows`` stands for the model's own window and event
scale. It answers whether a model sees more of slow objects in a longer window without re-training,
and how much a fine-tuned longer-window model gains.

    OMP_NUM_THREADS=1 .venv/bin/python bench/window_sweep.py --models events-default \\
        --windows native,100:4,150:6 --data data/v3-maritime/test data/v3-traffic/test \\
        --json out/window_sweep.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def parse_windows(text: str) -> list[tuple[int, float] | None]:
    """``native,100:4,150:6`` -> ``[None, (100000, 4.0), (150000, 6.0)]`` (window us, event scale)."""
    windows: list[tuple[int, float] | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "native":
            windows.append(None)
            continue
        try:
            window_ms, scale = part.split(":")
            windows.append((int(round(float(window_ms) * 1000)), float(scale)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"window {part!r}: expected native or WINDOW_MS:EVENT_SCALE, e.g. 100:4"
            ) from None
    return windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["events-default"])
    parser.add_argument("--windows", type=parse_windows, default=parse_windows("native,100:4,150:6"))
    parser.add_argument("--data", nargs="+", required=True, help="built splits, e.g. data/v3-maritime/test")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from streamdet.evaluate import evaluate_split
    from streamdet.model import load_detector

    rows = []
    for model in args.models:
        bundle = load_detector(model)
        if bundle.modality != "events":
            raise SystemExit(f"error: {model} takes {bundle.modality} input; this bench sweeps event windows")
        for window in args.windows:
            window_us, scale = window if window is not None else (bundle.window_us, bundle.event_scale)
            for split in args.data:
                started = time.perf_counter()
                with torch.no_grad():
                    metrics = evaluate_split(
                        bundle.detect, split, "events", window_us, scale, limit=args.limit, progress=False
                    )
                row = {
                    "model": model,
                    "trained_window_ms": bundle.window_us / 1000,
                    "window_ms": window_us / 1000,
                    "event_scale": scale,
                    "data": split,
                    "images": metrics["images"],
                    "map50": round(metrics["map50"], 4),
                    "map": round(metrics["map"], 4),
                    "ap50_per_class": {k: round(v, 4) for k, v in metrics["ap50_per_class"].items()},
                    "wall_s": round(time.perf_counter() - started, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
