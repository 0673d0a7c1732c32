"""Does the stride-8 anchor grid cost accuracy? mAP@0.5 of a model whose detections on the input and on
copies of it shifted by a few pixels are pooled.

A model with P3 as its finest level centres its anchors every 8 pixels, so a small object (a buoy 6 px
wide) usually sits between centres and no anchor overlaps it well. Shifting the input by 4 px moves
the grid to the half-way points; pooling the detections of the original and the shifted inputs
(the candidates of each view shifted back and clipped, then the model's NMS and box voting, at
most its ``max_dets`` per image, as ``streamdet eval`` decodes one view) scores the
model as if it had a stride-4 grid, at four times the cost. If the pooled score is clearly higher,
a stride-4 level (``streamdet train --finest-stride 4``) is worth training. Part of any gain is the
plain ensembling of four views, so this is an upper-bound style check, not a substitute for the level.

    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.shifted_inputs --model events-default \\
        --data data/val9/val data/val-v1/val data/val-v2/val --shifts 0,0 4,0 0,4 4,4 \\
        --json out/shifted/events-default-val.json

Each split is scored without shifts (``0,0`` alone) and with all of ``--shifts`` pooled, through
``streamdet.evaluate.evaluate_split`` (pycocotools), like ``streamdet eval``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor


def parse_shift(text: str) -> tuple[int, int]:
    """``"4,0"`` -> ``(4, 0)`` (pixels right, pixels down; 0 to 31 each)."""
    try:
        dx, dy = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DX,DY like 4,0, got {text!r}") from None
    if not (0 <= dx < 32 and 0 <= dy < 32):
        raise argparse.ArgumentTypeError(f"shifts must be 0..31 pixels, got {text!r}")
    return dx, dy


def pooled_predict(bundle, shifts: list[tuple[int, int]]):
    """A ``streamdet.evaluate.Predict`` that runs ``bundle`` on the input shifted by each of ``shifts``
    (zero padding, inside the model's padded frame: the sensor is padded up to multiples of 32 and the
    shift must fit in that margin or the far edge is cut), shifts the boxes back and pools them."""
    from torchvision.ops import clip_boxes_to_image

    from streamdet.model import decode_detections, pad_input, select_detections

    width, height = bundle.spec.sensor_size

    @torch.no_grad()
    def predict(inputs: Tensor) -> list[Tensor]:
        bundle.check_inputs(inputs)
        padded = pad_input(inputs.float())
        per_shift = []
        for dx, dy in shifts:
            shifted = torch.roll(padded, shifts=(dy, dx), dims=(2, 3))
            shifted[..., :dy, :] = 0
            shifted[..., :, :dx] = 0
            cls_logits, box_deltas = bundle.model(shifted)
            rows = decode_detections(  # every candidate, unsuppressed: NMS runs once, on the pool
                cls_logits,
                box_deltas,
                bundle.anchors,
                score_thresh=bundle.decoding.score_thresh,
                nms_thresh=1.0,
                topk=1000,
                max_dets=1000,
                vote_iou=None,
            )
            for image_rows in rows:
                image_rows[:, [0, 2]] -= dx
                image_rows[:, [1, 3]] -= dy
                image_rows[:, :4] = clip_boxes_to_image(image_rows[:, :4], (height, width))
            per_shift.append(rows)
        pooled = []
        for image_rows in zip(*per_shift, strict=True):
            rows = torch.cat(image_rows)
            pooled.append(
                select_detections(
                    rows[:, :4],
                    rows[:, 4],
                    rows[:, 5].long(),
                    bundle.decoding.nms_thresh,
                    bundle.decoding.max_dets,
                    bundle.decoding.vote_iou,
                )
            )
        return pooled

    return predict


def score(model: str, splits: list[str], shifts: list[tuple[int, int]], limit: int | None) -> list[dict]:
    """One row per split and setting (no shift; ``shifts`` pooled)."""
    from streamdet.evaluate import evaluate_split
    from streamdet.model import load_detector

    bundle = load_detector(model)
    rows = []
    for split in splits:
        for setting in ([(0, 0)], shifts):
            start = time.perf_counter()
            metrics = evaluate_split(
                pooled_predict(bundle, setting),
                split,
                bundle.spec,
                limit=limit,
            )
            rows.append(
                {
                    "model": model,
                    "data": split,
                    "shifts": [list(s) for s in setting],
                    "images": metrics["images"],
                    "map50": metrics["map50"],
                    "ap50_per_class": metrics["ap50_per_class"],
                    "seconds": time.perf_counter() - start,
                }
            )
            per_class = ", ".join(f"{k} {v:.3f}" for k, v in metrics["ap50_per_class"].items())
            print(f"{split}  shifts {setting}: mAP@0.5 {metrics['map50']:.3f} ({per_class})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--data", nargs="+", required=True, help="built splits, e.g. data/val9/val")
    parser.add_argument(
        "--shifts", nargs="+", type=parse_shift, default=[(0, 0), (4, 0), (0, 4), (4, 4)], metavar="DX,DY"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        rows = score(args.model, args.data, args.shifts, args.limit)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
