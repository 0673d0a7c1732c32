"""Where a detector's misses come from: AP@IoU and recall at IoU 0.1 / 0.3 / 0.5, and how much mAP@0.5
changes when labelled objects that left almost no events in their window are ignored.

A low AP@0.5 with a high recall at IoU 0.1 means the objects are found but the boxes are off; a large
gain from ignoring event-less objects means the labels ask for objects the sensor did not see. The
labels' own statistics per class (box height and width, and ``motion_px``: how far the object moved on
the sensor over the 50 ms before its label, object and camera motion) come beside them.

    .venv/bin/python -m experiments.localization --model events-default --data data/v3-maritime/test
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys

import numpy as np
import torch

IOUS = (0.1, 0.3, 0.5)
DENSITIES = (0.25, 0.5)
"""Event-less threshold: events in the box over the window per pixel of the box's perimeter."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--data", required=True, help="a built split")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from pycocotools.cocoeval import COCOeval
    from tqdm import tqdm

    from streamdet.binning import events_to_counts
    from streamdet.dataset import DatasetSplit
    from streamdet.evaluate import coco_from_dict, coco_metrics, detections_to_coco
    from streamdet.model import load_detector

    bundle = load_detector(args.model)
    split = DatasetSplit(args.data, window_us=bundle.spec.window_us)
    detections, density = {}, {}
    for image in tqdm(split.images, desc="detect", unit="img"):
        counts = events_to_counts(split.events(image), split.sensor_size)
        model_input = split.input(
            image, bundle.spec.modality, bundle.spec.event_scale, bundle.spec.history_windows
        )
        detections[image["id"]] = bundle.detect(torch.from_numpy(model_input)[None])[0]
        per_pixel = counts.sum(0)
        for annotation in split._by_image[image["id"]]:
            x, y, w, h = (int(round(v)) for v in annotation["bbox"])
            inside = per_pixel[max(y, 0) : y + h, max(x, 0) : x + w].sum()
            density[annotation["id"]] = float(inside) / max(2 * (w + h), 1)

    coco_gt = coco_from_dict(split.coco)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(detections_to_coco(detections)), "bbox")
        evaluator.params.iouThrs = np.array(IOUS)
        evaluator.evaluate()
        evaluator.accumulate()
    names = {c["id"]: c["name"] for c in split.coco["categories"]}
    present = sorted({a["category_id"] for a in split.coco["annotations"] if not a.get("iscrowd", 0)})
    by_iou = {}
    for t, iou in enumerate(IOUS):
        row = {}
        for k, category in enumerate(evaluator.params.catIds):
            if category not in present:
                continue
            precision = evaluator.eval["precision"][t, :, k, 0, -1]
            row[names[category]] = {
                "ap": round(float(np.mean(precision[precision > -1])), 3),
                "recall": round(float(evaluator.eval["recall"][t, k, 0, -1]), 3),
            }
        by_iou[str(iou)] = row
    labelled = [density[a["id"]] for a in split.coco["annotations"] if not a.get("iscrowd", 0)]
    ignoring = {}
    for threshold in DENSITIES:
        dataset = copy.deepcopy(split.coco)
        changed = 0
        for annotation in dataset["annotations"]:
            if not annotation.get("iscrowd", 0) and density[annotation["id"]] < threshold:
                annotation["iscrowd"] = annotation["ignore"] = 1
                changed += 1
        metrics = coco_metrics(coco_from_dict(dataset), detections)
        ignoring[str(threshold)] = {"ignored": changed, "map50": round(metrics["map50"], 3)}
    result = {
        "model": args.model,
        "data": args.data,
        "labelled_objects": len(labelled),
        "events_per_perimeter_pixel_p10_p50": [round(float(v), 2) for v in np.percentile(labelled, [10, 50])],
        "by_iou": by_iou,
        "ignoring_eventless": ignoring,
        "labels_p10_p50_p90": label_statistics(split.coco, names),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)
    return 0


def label_statistics(coco: dict, names: dict[int, str]) -> dict[str, dict[str, list[float]]]:
    """Per class, the 10th / 50th / 90th percentiles of the labelled (not ignored) boxes' height and
    width (pixels) and ``motion_px`` (sensor pixels moved over the motion window before the label)."""
    statistics = {}
    for category, name in names.items():
        rows = [a for a in coco["annotations"] if a["category_id"] == category and not a.get("iscrowd", 0)]
        if not rows:
            continue
        columns = {
            "height_px": [a["bbox"][3] for a in rows],
            "width_px": [a["bbox"][2] for a in rows],
            "motion_px": [a["motion_px"] for a in rows if "motion_px" in a],
        }
        statistics[name] = {
            key: [round(float(v), 1) for v in np.percentile(values, [10, 50, 90])]
            for key, values in columns.items()
            if values
        }
    return statistics


if __name__ == "__main__":
    sys.exit(main())
