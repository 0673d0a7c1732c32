"""mAP of a detector when its input is enlarged before the network (test-time scales).

The events model's smallest anchors sit on the stride-8 level, and at sea it misses small buoys
(docs/history/model-card-history.md, "What the events model misses at sea"). Enlarging the input by
``s`` shows the same network every object ``s`` times larger, on a finer grid; this experiment asks how
much that alone recovers, without re-training. For each model, scale set and split it scores the images with
``streamdet.evaluate.evaluate_split``: the input ``[B, C, H, W]`` is resized by each scale of the set
(``torch.nn.functional.interpolate``), padded, run, decoded with the anchors of the enlarged size, the
boxes divided by the scale; the detections of all scales of a set are merged by class-wise NMS
(``torchvision.ops.batched_nms``, the model's NMS threshold) and the best ``max_dets`` kept.

    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.scale_sweep --models events-default \\
        --scales 1 2 1+2 --data data/val9/val --json out/scale/val9.json

``1+2`` is one set: the native and the doubled input, merged. The cost of a set is the sum of its
scales squared (``1+2``: 5 times the native network).
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F


def parse_scale_set(text: str) -> tuple[float, ...]:
    """``1+2`` -> ``(1.0, 2.0)``; every scale positive."""
    try:
        scales = tuple(float(part) for part in text.split("+"))
    except ValueError:
        message = f"scale set {text!r}: expected numbers joined by +, e.g. 1+2"
        raise argparse.ArgumentTypeError(message) from None
    if not scales or any(scale <= 0 for scale in scales):
        raise argparse.ArgumentTypeError(f"scale set {text!r}: scales must be positive")
    return scales


def detect_at_scales(
    bundle, inputs: torch.Tensor, scales: tuple[float, ...], mode: str
) -> list[torch.Tensor]:
    """Detections per image (rows ``x1, y1, x2, y2, score, class`` in input pixels) of ``bundle``'s
    network run on ``inputs`` resized by each of ``scales``, merged by class-wise NMS."""
    from torchvision.ops import batched_nms

    from streamdet.model import decode_detections, make_anchors, pad_input

    bundle.check_inputs(inputs)
    height, width = inputs.shape[-2:]
    per_scale = []
    for scale in scales:
        resized = inputs.float()
        if scale != 1.0:
            size = (int(round(height * scale)), int(round(width * scale)))
            resized = F.interpolate(resized, size=size, mode=mode)
        padded = pad_input(resized)
        anchors = make_anchors(bundle.config, (padded.shape[-1], padded.shape[-2]))
        cls_logits, box_deltas = bundle.model(padded)
        detections = decode_detections(
            cls_logits,
            box_deltas,
            anchors,
            score_thresh=bundle.decoding.score_thresh,
            nms_thresh=bundle.decoding.nms_thresh,
            max_dets=bundle.decoding.max_dets,
            image_size=(resized.shape[-1], resized.shape[-2]),
            vote_iou=bundle.decoding.vote_iou,
        )
        stretch = torch.tensor([resized.shape[-1] / width, resized.shape[-2] / height] * 2)
        for rows in detections:
            rows[:, :4] /= stretch
        per_scale.append(detections)
    if len(scales) == 1:
        return per_scale[0]
    merged = []
    for image_rows in zip(*per_scale, strict=True):
        rows = torch.cat(image_rows)
        keep = batched_nms(rows[:, :4], rows[:, 4], rows[:, 5].long(), bundle.decoding.nms_thresh)[
            : bundle.decoding.max_dets
        ]
        merged.append(rows[keep])
    return merged


def sweep(models, scale_sets, splits, limit, mode):
    """One row per (model, scale set, split): mAP@0.5, mAP@[.5:.95], AP@0.5 per class, wall time."""
    from experiments.window_sweep import score_split
    from streamdet.model import load_detector

    rows = []
    for model in models:
        bundle = load_detector(model)
        for scales in scale_sets:
            predict = partial(detect_at_scales, bundle, scales=scales, mode=mode)
            for split in splits:
                row = {
                    "model": model,
                    "scales": list(scales),
                    "resize": mode,
                    "cost_vs_native": round(sum(scale * scale for scale in scales), 3),
                    "data": split,
                    **score_split(
                        predict, bundle, split, bundle.spec.window_us, bundle.spec.event_scale, limit
                    ),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["events-default"])
    parser.add_argument("--scales", nargs="+", type=parse_scale_set, default=[(1.0,), (2.0,), (1.0, 2.0)])
    parser.add_argument("--data", nargs="+", required=True, help="built splits, e.g. data/val9/val")
    parser.add_argument("--resize", choices=("nearest", "bilinear"), default="nearest")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = sweep(args.models, args.scales, args.data, args.limit, args.resize)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        report = {"threads": args.threads, "resize": args.resize, "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
