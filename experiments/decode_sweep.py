"""How the decoding after the network (score threshold, candidates kept before NMS, NMS IoU, box
voting) changes mAP, for one model over validation splits, clean and under the sensor changes of
`experiments/robustness.py`.

The network runs once per split and perturbation; every candidate above the lowest score threshold
(the most of them asked for) is kept, and each decoding setting is then applied to those candidates
(`streamdet.model.select_detections`, the code `streamdet eval`, `detect` and the SNN decode with) and
scored with pycocotools (`streamdet.evaluate.coco_metrics`). Each setting gets the selection score
of `experiments/selection_score.py`: the mean of its clean mAP@0.5 (mean over `--data`) and its perturbed
mAP@0.5 (mean over `--perturb` on `--perturb-data`).

    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.decode_sweep --model events-default \\
        --data data/val9/val data/val-v1/val data/val-v2/val \\
        --perturb-data data/val9/val --perturb scale:0.5 noise:2 hot:0.002 \\
        --score-thresh 0.05 0.02 0.01 --topk 1000 3000 --nms 0.4 0.5 0.6 --vote none 0.5 0.6 0.7 \\
        --json out/decode/events-default-val.json

Prints one line per setting, best last; `--json OUT` writes the rows (per split and perturbation) and
the scores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from experiments.robustness import make_perturbation, parse_perturbation

Candidates = tuple[Tensor, Tensor, Tensor]


def parse_vote(text: str) -> float | None:
    """``none`` -> ``None`` (no voting), else the voting IoU."""
    return None if text == "none" else float(text)


def collect_candidates(bundle, split: str, score_thresh: float, topk: int, perturb, limit) -> tuple:
    """Run the network once over ``split``: ``(candidates by image id, the split's annotations dict)``,
    each image's candidates above ``score_thresh``, at most ``topk`` (``detection_candidates``)."""
    from streamdet.evaluate import evaluate_split
    from streamdet.model import detection_candidates, pad_input, select_detections

    ordered: list[Candidates] = []

    def predict(inputs: Tensor) -> list[Tensor]:
        bundle.check_inputs(inputs)
        with torch.no_grad():
            cls_logits, box_deltas = bundle.model(pad_input(inputs.float()))
        rows = []
        for logits, deltas in zip(cls_logits, box_deltas, strict=True):
            found = detection_candidates(
                logits, deltas, bundle.anchors, score_thresh, topk, bundle.spec.sensor_size
            )
            ordered.append(found)
            rows.append(
                select_detections(
                    *found, nms_thresh=bundle.decoding.nms_thresh, max_dets=bundle.decoding.max_dets
                )
            )
        return rows

    result = evaluate_split(
        predict,
        split,
        bundle.spec,
        limit=limit,
        progress=False,
        perturb=perturb,
        keep_detections=True,
    )
    annotations = json.loads((Path(split) / "annotations.json").read_text())
    return dict(zip(result["detections"], ordered, strict=True)), annotations


def score_setting(candidates: dict[int, Candidates], annotations: dict, setting: dict) -> dict:
    """pycocotools metrics of one decoding ``setting`` (``score_thresh``, ``topk``, ``nms_thresh``,
    ``vote_iou``) applied to collected candidates."""
    from streamdet.evaluate import coco_from_dict, coco_metrics
    from streamdet.model import select_detections

    detections = {}
    for image_id, (boxes, scores, labels) in candidates.items():
        keep = torch.nonzero(scores > setting["score_thresh"]).squeeze(1)
        keep = keep[scores[keep].argsort(descending=True)[: setting["topk"]]]
        detections[image_id] = select_detections(
            boxes[keep], scores[keep], labels[keep], setting["nms_thresh"], vote_iou=setting["vote_iou"]
        )
    return coco_metrics(coco_from_dict(annotations, list(detections)), detections)


def setting_scores(settings: list[dict], rows: list[dict]) -> list[dict]:
    """One record per decoding setting: its clean mAP@0.5 per split, the clean means (mAP@0.5 and
    mAP@[.5:.95]), the perturbed mean and the selection score (the mean of the two mAP@0.5 means; the
    clean mean alone when nothing was perturbed), sorted by score."""
    records = []
    for setting in settings:
        mine = [row for row in rows if all(row[key] == value for key, value in setting.items())]
        clean = [row for row in mine if row["perturbation"] == "none"]
        perturbed = [row["map50"] for row in mine if row["perturbation"] != "none"]
        clean_mean = sum(row["map50"] for row in clean) / len(clean)
        perturbed_mean = sum(perturbed) / len(perturbed) if perturbed else clean_mean
        records.append(
            {
                **setting,
                "clean": {row["data"]: row["map50"] for row in clean},
                "clean_map": round(sum(row["map"] for row in clean) / len(clean), 4),
                "clean_mean": round(clean_mean, 4),
                "perturbed_mean": round(perturbed_mean, 4),
                "score": round((clean_mean + perturbed_mean) / 2, 4),
            }
        )
    return sorted(records, key=lambda record: record["score"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="shipped name or checkpoint path")
    parser.add_argument("--data", nargs="+", required=True, help="clean splits")
    parser.add_argument("--perturb-data", nargs="*", default=[], help="splits scored under --perturb")
    parser.add_argument("--perturb", nargs="*", type=parse_perturbation, default=[], help="KIND:LEVEL,...")
    parser.add_argument("--score-thresh", nargs="+", type=float, default=[0.05])
    parser.add_argument("--topk", nargs="+", type=int, default=[1000])
    parser.add_argument("--nms", nargs="+", type=float, default=[0.5])
    parser.add_argument("--vote", nargs="+", type=parse_vote, default=[None], help="IoU or 'none'")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.perturb and not args.perturb_data:
        parser.error("--perturb needs --perturb-data")

    from tqdm import tqdm

    from streamdet.model import load_detector

    bundle = load_detector(args.model)
    perturbed = [(kind, level) for kind, levels in args.perturb for level in levels]
    cases = [(split, "none", 0.0) for split in args.data]
    cases += [(split, kind, level) for split in args.perturb_data for kind, level in perturbed]
    settings = [
        {"score_thresh": s, "topk": k, "nms_thresh": n, "vote_iou": v}
        for s, k, n, v in itertools.product(args.score_thresh, args.topk, args.nms, args.vote)
    ]
    rows = []
    started = time.perf_counter()
    for split, kind, level in tqdm(cases, desc="network", unit="split"):
        perturb = None
        if kind != "none":
            perturb = make_perturbation(kind, level, bundle.spec.window_us, bundle.spec.modality)
        candidates, annotations = collect_candidates(
            bundle, split, min(args.score_thresh), max(args.topk), perturb, args.limit
        )
        for setting in tqdm(settings, desc=f"{Path(split).parent.name} {kind}", unit="setting", leave=False):
            metrics = score_setting(candidates, annotations, setting)
            rows.append(
                {
                    **setting,
                    "data": split,
                    "perturbation": kind,
                    "level": level,
                    "images": len(candidates),
                    "map50": round(metrics["map50"], 4),
                    "map": round(metrics["map"], 4),
                    "ap50_per_class": {k: round(v, 4) for k, v in metrics["ap50_per_class"].items()},
                }
            )

    scores = setting_scores(settings, rows)
    for record in scores:
        vote = "none" if record["vote_iou"] is None else f"{record['vote_iou']:g}"
        clean = " ".join(f"{value:.3f}" for value in record["clean"].values())
        print(
            f"score>{record['score_thresh']:<5g} topk {record['topk']:<5d} nms {record['nms_thresh']:<4g} "
            f"vote {vote:<5s} clean {clean} (mean {record['clean_mean']:.4f}, mAP {record['clean_map']:.4f}) "
            f"perturbed {record['perturbed_mean']:.4f} score {record['score']:.4f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "command": " ".join(sys.argv),
                    "wall_s": round(time.perf_counter() - started, 1),
                    "rows": rows,
                    "scores": scores,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
