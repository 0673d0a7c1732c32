"""mAP of events models over input windows of other durations than the one they were trained on.

Every labelled time stamp ``t`` of a split is scored on the window ``(t - window, t]`` of the same
recording (``streamdet.dataset.DatasetSplit`` with ``window_us``), for each model and each
``WINDOW_MS:EVENT_SCALE`` pair, with ``streamdet.evaluate.evaluate_split`` (COCO mAP@0.5 and
mAP@[.5:.95] with pycocotools). ``native`` in ``--windows`` stands for the model's own window and event
scale. It answers whether a model sees more of slow objects in a longer window without re-training,
and how much a fine-tuned longer-window model gains.

    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.window_sweep --models events-default \\
        --windows native,100:4,150:6 --data data/v3-maritime/test data/v3-traffic/test \\
        --json out/window_sweep.json
    # one bar chart of earlier runs (this experiment's --json or streamdet eval --json reports; no evaluation)
    .venv/bin/python -m experiments.window_sweep --from-json out/eval/giou2-events-*.json \
        out/window/stage5.json out/window/w100.json --plot docs/window_sweep.png
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
    parser.add_argument("--data", nargs="+", help="built splits, e.g. data/v3-maritime/test")
    parser.add_argument("--from-json", nargs="+", default=None, help="rows of earlier runs instead of --data")
    parser.add_argument("--plot", default=None, metavar="PNG", help="bar chart of mAP@0.5 by split")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.from_json:
        rows = [row for path in args.from_json for row in rows_of_report(Path(path))]
    elif args.data:
        rows = sweep(args.models, args.windows, args.data, args.limit)
    else:
        parser.error("give --data (evaluate) or --from-json (earlier rows)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1) + "\n")
    if args.plot:
        plot_rows(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0


def rows_of_report(path: Path) -> list[dict]:
    """Rows of this experiment's ``--json``, or the rows of a ``streamdet eval --json`` report (one row per
    split: the report's own for one split, each of its ``splits`` for several; scored on the model's own
    window)."""
    report = json.loads(path.read_text())
    if "rows" in report:
        return report["rows"]
    from streamdet.model import load_detector

    bundle = load_detector(report["model"])
    window_ms = bundle.spec.window_us / 1000
    keys = ("images", "map50", "map", "ap50_per_class")
    return [
        {
            "model": report["model"],
            "trained_window_ms": window_ms,
            "window_ms": window_ms,
            "event_scale": bundle.spec.event_scale,
            "data": split["data"],
            **{key: split[key] for key in keys},
        }
        for split in report.get("splits", [report])
    ]


def score_split(predict, bundle, split: str, window_us: int, event_scale: float, limit: int | None) -> dict:
    """``images``, ``map50``, ``map``, ``ap50_per_class`` (rounded) and ``wall_s`` of ``predict`` on a
    split, read as ``bundle``'s input spec with its window and event scale replaced by ``window_us`` and
    ``event_scale``."""
    from dataclasses import replace

    from streamdet.evaluate import evaluate_split

    started = time.perf_counter()
    with torch.no_grad():
        metrics = evaluate_split(
            predict,
            split,
            replace(bundle.spec, window_us=window_us, event_scale=event_scale),
            limit=limit,
            progress=False,
        )
    return {
        "images": metrics["images"],
        "map50": round(metrics["map50"], 4),
        "map": round(metrics["map"], 4),
        "ap50_per_class": {k: round(v, 4) for k, v in metrics["ap50_per_class"].items()},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def sweep(models: list[str], windows: list[tuple[int, float] | None], splits: list[str], limit: int | None):
    """One row per (model, window, split): mAP@0.5, mAP@[.5:.95] and AP@0.5 per class."""
    from streamdet.model import load_detector

    rows = []
    for model in models:
        bundle = load_detector(model)
        if bundle.spec.modality != "events":
            raise SystemExit(
                f"error: {model} takes {bundle.spec.modality} input; only event windows are swept"
            )
        for window in windows:
            window_us, scale = (
                window if window is not None else (bundle.spec.window_us, bundle.spec.event_scale)
            )
            for split in splits:
                row = {
                    "model": model,
                    "trained_window_ms": bundle.spec.window_us / 1000,
                    "window_ms": window_us / 1000,
                    "event_scale": scale,
                    "data": split,
                    **score_split(bundle.detect, bundle, split, window_us, scale, limit),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def plot_rows(rows: list[dict], path: str) -> None:
    """Grouped bars: one group per split, one bar per (model, window, event scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(dict.fromkeys(row["data"] for row in rows))
    settings = list(
        dict.fromkeys(
            (row["model"], row["trained_window_ms"], row["window_ms"], row["event_scale"]) for row in rows
        )
    )
    value = {
        (row["data"], (row["model"], row["trained_window_ms"], row["window_ms"], row["event_scale"])): row[
            "map50"
        ]
        for row in rows
    }
    width = 0.8 / len(settings)
    figure, axes = plt.subplots(figsize=(max(8.0, 1.6 * len(splits)), 4.5))
    for k, setting in enumerate(settings):
        model, trained, window, scale = setting
        heights = [value.get((split, setting), float("nan")) for split in splits]
        positions = [i + (k - (len(settings) - 1) / 2) * width for i in range(len(splits))]
        name = Path(model).parent.name or model
        label = f"{name} (trained {trained:g} ms) read at {window:g} ms, scale {scale:g}"
        axes.bar(positions, heights, width=width, label=label)
    axes.axhline(0.8, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(range(len(splits)))
    axes.set_xticklabels([Path(split).parent.name for split in splits])
    axes.set_ylabel("mAP@0.5")
    axes.set_ylim(0, 1)
    axes.set_title("events models by input window (dashed: the 0.80 target)")
    axes.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
