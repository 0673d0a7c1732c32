"""Which ground-truth boxes a detector misses: recall by box size, events in the box and motion.

For every labelled object (not ignored) of a built split, the ANN's best detection of the same class:
its IoU, and whether one with IoU >= 0.5 scores at least ``--score``. Recall and mean best IoU are then
reported per class in buckets of the box's shorter side (pixels), of its height / width ratio, of the
events inside the box in the model's window and of the label's ``motion_px``, and per class and sequence.

    .venv/bin/python -m experiments.recall_by_size --model events-default --data data/v3-maritime/test \
        --json out/recall/events-v3-maritime.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

BUCKETS = {
    "min_side_px": [0, 6, 8, 10, 12, 16, 24, 32, 64, 1e9],
    "aspect_hw": [0, 0.25, 0.35, 0.5, 0.7, 1, 1.4, 2, 3, 1e9],
    "events_in_box": [0, 10, 30, 100, 300, 1000, 1e9],
    "motion_px": [0, 1, 2, 4, 8, 16, 1e9],
}


def object_rows(bundle, samples, score: float) -> list[dict]:
    """One row per labelled object: class, size, events in the box, motion, best IoU, found or not."""
    by_image: dict[int, list[dict]] = {}
    for annotation in samples.splits[0].coco["annotations"]:
        if not annotation.get("ignore"):
            by_image.setdefault(int(annotation["image_id"]), []).append(annotation)
    rows = []
    for start in range(0, len(samples), 8):
        indices = range(start, min(start + 8, len(samples)))
        detections = bundle.detect(torch.stack([samples[i][0] for i in indices]))
        for i, found in zip(indices, detections, strict=True):
            raw = samples.raw(i)  # the model's own window is channels 0-1, any earlier windows follow
            for annotation in by_image.get(int(samples.image(i)["id"]), []):
                x, y, w, h = annotation["bbox"]
                same_class = found[found[:, 5] == annotation["category_id"] - 1]
                best_iou, hit = 0.0, False
                if len(same_class):
                    iou = box_iou(torch.tensor([[x, y, x + w, y + h]]), same_class[:, :4])[0]
                    best_iou = float(iou.max())
                    hit = bool(((iou >= 0.5) & (same_class[:, 4] >= score)).any())
                window = raw[:2, int(max(0, y)) : int(y + h) + 1, int(max(0, x)) : int(x + w) + 1]
                rows.append(
                    {
                        "class": bundle.class_names[annotation["category_id"] - 1],
                        "sequence": samples.image(i).get("sequence"),
                        "min_side_px": min(w, h),
                        "aspect_hw": h / w if w > 0 else None,
                        "events_in_box": float(window.sum()),
                        "motion_px": annotation.get("motion_px"),
                        "best_iou": best_iou,
                        "found": hit,
                    }
                )
    return rows


def recall_summary(rows: list[dict]) -> dict:
    """Objects, recall and mean best IoU of a non-empty group of object rows."""
    return {
        "objects": len(rows),
        "recall": round(float(np.mean([r["found"] for r in rows])), 3),
        "mean_best_iou": round(float(np.mean([r["best_iou"] for r in rows])), 3),
    }


def bucket_table(rows: list[dict], key: str, edges: list[float]) -> list[dict]:
    """Per class and bucket ``[lo, hi)`` of ``key``: objects, recall, mean best IoU."""
    table = []
    for name in sorted({r["class"] for r in rows}):
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            inside = [r for r in rows if r["class"] == name and r[key] is not None and lo <= r[key] < hi]
            if inside:
                table.append({"class": name, "from": lo, "to": hi, **recall_summary(inside)})
    return table


def group_table(rows: list[dict], key: str) -> list[dict]:
    """Per class and value of ``key`` (e.g. the sequence): objects, recall, mean best IoU."""
    table = []
    for name in sorted({r["class"] for r in rows}):
        for value in sorted({r[key] for r in rows if r["class"] == name and r[key] is not None}):
            inside = [r for r in rows if r["class"] == name and r[key] == value]
            table.append({"class": name, key: value, **recall_summary(inside)})
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--data", required=True, help="a built split (e.g. data/v3-maritime/test)")
    parser.add_argument("--score", type=float, default=0.3, help="score a detection needs to count (0.3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from streamdet.model import load_detector
    from streamdet.samples import DetectionSamples

    bundle = load_detector(args.model)
    samples = DetectionSamples.for_model([args.data], bundle.spec)
    with torch.no_grad():
        rows = object_rows(bundle, samples, args.score)
    result = {"model": args.model, "data": args.data, "score": args.score, "objects": len(rows)}
    for key, edges in BUCKETS.items():
        result[key] = bucket_table(rows, key, edges)
        for entry in result[key]:
            print(key, json.dumps(entry))
    result["sequence"] = group_table(rows, "sequence")
    for entry in result["sequence"]:
        print("sequence", json.dumps(entry))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
