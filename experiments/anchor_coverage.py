"""How well a set of anchors covers the labelled boxes of built splits.

For every labelled object (not ignored) of the splits: the best IoU of any anchor with its box, and the
number of anchors at IoU >= 0.5 (the foreground anchors of training, ``streamdet.model.MatchConfig``).
An object whose best anchor stays below 0.5 is trained only through its single best anchor (the
low-quality match). Reported per class, for each anchor setting ``MIN:R,R,...`` (smallest side in
pixels, height / width ratios):

    .venv/bin/python -m experiments.anchor_coverage --data data/v3/train data/v3m/train data/v1x/train \
        data/v2x/train --anchors 10:0.5,1,2 12:0.5,1,2,3 --json out/anchors/train.json

``--split-wide 0.5`` reports the boxes wider than twice their height apart (``boat (h/w < 0.5)``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torchvision.ops import box_iou


def parse_anchor_setting(text: str) -> tuple[float, tuple[float, ...]]:
    """``"12:0.5,1,2,3"`` -> ``(12.0, (0.5, 1.0, 2.0, 3.0))``."""
    try:
        size, ratios = text.split(":")
        return float(size), tuple(float(r) for r in ratios.split(","))
    except ValueError:
        raise SystemExit(f"--anchors: expected MIN:R,R,... like 12:0.5,1,2,3, got {text!r}") from None


def labelled_boxes(split: Path) -> tuple[torch.Tensor, list[str]]:
    """Boxes ``[N, 4]`` (x1, y1, x2, y2) and class names of a split's labelled, not ignored objects."""
    coco = json.loads((split / "annotations.json").read_text())
    names = {category["id"]: category["name"] for category in coco["categories"]}
    boxes, classes = [], []
    for annotation in coco["annotations"]:
        if annotation.get("ignore") or annotation.get("iscrowd"):
            continue
        x, y, w, h = annotation["bbox"]
        boxes.append([x, y, x + w, y + h])
        classes.append(names[annotation["category_id"]])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), classes


def split_wide_classes(boxes: torch.Tensor, classes: list[str], ratio: float) -> list[str]:
    """The class names with ``" (h/w < R)"`` added to those of boxes whose height / width is under
    ``ratio`` (e.g. boats seen side-on), so that they are reported apart."""
    heights, widths = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    wide = (heights < ratio * widths).tolist()
    return [
        f"{name} (h/w < {ratio:g})" if is_wide else name for name, is_wide in zip(classes, wide, strict=True)
    ]


def coverage(
    boxes: torch.Tensor, anchors: torch.Tensor, chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best anchor IoU ``[N]`` and number of anchors with IoU >= 0.5 ``[N]`` of every box."""
    best, positives = [], []
    for start in range(0, len(boxes), chunk):
        iou = box_iou(boxes[start : start + chunk], anchors)
        best.append(iou.max(dim=1).values)
        positives.append((iou >= 0.5).sum(dim=1))
    return torch.cat(best), torch.cat(positives)


def main(argv: list[str] | None = None) -> int:
    from streamdet.model import config_for, make_anchors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, metavar="SPLIT", help="built split directories")
    parser.add_argument("--anchors", nargs="+", required=True, metavar="MIN:R,R,...", help="anchor settings")
    parser.add_argument(
        "--finest-stride", type=int, choices=(4, 8), default=8, help="8: P3..P5; 4: a P2 level too"
    )
    parser.add_argument("--every", type=int, default=1, metavar="N", help="every Nth object only (faster)")
    parser.add_argument(
        "--split-wide", type=float, default=None, metavar="R", help="report boxes of height / width < R apart"
    )
    parser.add_argument("--json", default=None, metavar="OUT")
    args = parser.parse_args(argv)

    boxes, classes = [], []
    for split in map(Path, args.data):
        if not (split / "annotations.json").is_file():
            raise SystemExit(f"{split}: no annotations.json (build the split first)")
        split_boxes, split_classes = labelled_boxes(split)
        boxes.append(split_boxes)
        classes += split_classes
    all_boxes = torch.cat(boxes)[:: args.every]
    classes = classes[:: args.every]
    if args.split_wide is not None:
        classes = split_wide_classes(all_boxes, classes, args.split_wide)
    names = sorted(set(classes))
    masks = {name: torch.tensor([c == name for c in classes]) for name in names}
    base = config_for("events", finest_stride=args.finest_stride)
    report = {
        "data": args.data,
        "every": args.every,
        "finest_stride": args.finest_stride,
        "objects": {name: int(masks[name].sum()) for name in names},
        "settings": [],
    }
    print(f"{len(all_boxes)} objects: " + ", ".join(f"{n} {report['objects'][n]}" for n in names))
    print(f"{'anchors':<22} {'per location':>12}  " + "  ".join(f"{n + ' >=0.5 / n':>22}" for n in names))
    for text in args.anchors:
        size, ratios = parse_anchor_setting(text)
        config = replace(base, anchor_min_size=size, anchor_aspect_ratios=ratios)
        best, positives = coverage(all_boxes, make_anchors(config))
        per_class = {
            name: {
                "best_iou_at_least_0.5": float((best[mask] >= 0.5).float().mean()),
                "mean_best_iou": float(best[mask].mean()),
                "mean_positive_anchors": float(positives[mask].float().mean()),
            }
            for name, mask in masks.items()
        }
        mean = sum(v["best_iou_at_least_0.5"] for v in per_class.values()) / len(per_class)
        report["settings"].append(
            {
                "anchors": text,
                "per_location": config.anchors_per_location,
                "class_mean": mean,
                "classes": per_class,
            }
        )
        cells = "  ".join(
            f"{per_class[n]['best_iou_at_least_0.5']:>14.3f} / {per_class[n]['mean_positive_anchors']:>4.1f}"
            for n in names
        )
        print(f"{text:<22} {config.anchors_per_location:>12}  {cells}   class mean {mean:.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
