"""What folding look-alike classes by the scene a user names would change on real footage: on a street
(`traffic`) every box called "boat" becomes "car" and every "buoy" a "pedestrian"; at sea (`maritime`)
the reverse. Asked because the shipped events models, on real streets seen by a fixed camera, call
moving cars "boat" and walkers "buoy" (docs/real-scenes.md, MEVA); a user knows the scene their camera
looks at, so a decoding option could use it.

The network runs once per split; its decoded boxes (`bundle.detect`, what `streamdet eval` scores)
are scored as they are and folded: classes renamed, then class-wise NMS at the default decoding's IoU
(`streamdet.contract.Decoding().nms_thresh`) so a "boat" and a "car" on one object keep one box.

    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.scene_fold --model events-default \\
        --data traffic:data/real/ngsim-us101/test maritime:data/real/robotx-buoys/test \\
        --json out/fold/events-default-real.json

Prints one line per split (mAP@0.5 as it is and folded); `--json OUT` writes them with AP@0.5 per class.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torch import Tensor

SCENES = ("traffic", "maritime")
LOOK_ALIKES: dict[str, dict[str, str]] = {
    "traffic": {"boat": "car", "buoy": "pedestrian"},
    "maritime": {"car": "boat", "pedestrian": "buoy"},
}
"""Per scene, class -> the class of that scene it is folded into."""


def fold_detections(rows: Tensor, fold: dict[int, int], nms_iou: float) -> Tensor:
    """``rows`` (``[D, 6]``: x1, y1, x2, y2, score, class) with each class index of ``fold`` renamed to
    its target, then class-wise NMS at ``nms_iou``; sorted by decreasing score."""
    from torchvision.ops import batched_nms

    rows = rows.clone()
    for source, target in fold.items():
        rows[rows[:, 5] == source, 5] = float(target)
    keep = batched_nms(rows[:, :4], rows[:, 4], rows[:, 5].long(), nms_iou)
    return rows[keep]


def score_split(bundle, split: Path, fold: dict[int, int], nms_iou: float) -> tuple[dict, dict]:
    """``streamdet eval``'s metrics of ``bundle`` (a ``load_detector`` bundle) on ``split``, as decoded
    and folded (:func:`fold_detections`): one pass over the split, its boxes scored twice."""
    from streamdet.dataset import DatasetSplit
    from streamdet.evaluate import coco_from_dict, coco_metrics, evaluate_split

    plain = evaluate_split(bundle.detect, split, bundle.spec, keep_detections=True)
    detections = plain.pop("detections")
    folded = {image: fold_detections(rows, fold, nms_iou) for image, rows in detections.items()}
    truth = coco_from_dict(DatasetSplit(split, cache_events=False).coco, list(detections))
    return plain, coco_metrics(truth, folded)


def parse_scene_split(text: str) -> tuple[str, Path]:
    """``traffic:data/real/meva/test`` -> ``("traffic", Path(...))``; argparse type of ``--data``."""
    scene, _, split = text.partition(":")
    if scene not in SCENES or not split:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected SCENE:SPLIT with SCENE one of {', '.join(SCENES)}"
        )
    return scene, Path(split)


def main(argv: list[str] | None = None) -> int:
    from streamdet import CLASS_NAMES
    from streamdet.contract import Decoding
    from streamdet.model import load_detector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a shipped model name or a checkpoint path")
    parser.add_argument("--data", nargs="+", type=parse_scene_split, required=True, help="SCENE:SPLIT ...")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    bundle = load_detector(args.model, device="cpu")
    index = {name: k for k, name in enumerate(CLASS_NAMES)}
    nms_iou = Decoding().nms_thresh
    rows = []
    for scene, split in args.data:
        fold = {index[a]: index[b] for a, b in LOOK_ALIKES[scene].items()}
        plain, folded = score_split(bundle, split, fold, nms_iou)
        rows.append(
            {
                "model": str(args.model),
                "data": str(split),
                "scene": scene,
                "map50": plain["map50"],
                "map50_folded": folded["map50"],
                "ap50_per_class": plain["ap50_per_class"],
                "ap50_per_class_folded": folded["ap50_per_class"],
            }
        )
        print(f"{args.model} {split} ({scene}): mAP@0.5 {plain['map50']:.3f}, folded {folded['map50']:.3f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
