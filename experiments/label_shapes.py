"""The shapes of the labelled objects of built splits: how many are wide, how small and how faint.

Per split and class (objects not ignored): the number of objects, the share whose box is wider than
twice its height (height / width < ``--wide``, 0.5: a boat seen side-on), and the median shorter side
(pixels) and median ``contrast`` label of those wide objects and of the rest. Used to compare a test
split's objects with the training data's (docs/model-card.md, "Which boats the models miss"):

    .venv/bin/python -m experiments.label_shapes --data data/v3m/train data/fresh-maritime/test \
        --json out/labels/shapes.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def median_or_none(values: list[float]) -> float | None:
    """The median of the values that are not None, rounded to 3 places; None when there are none."""
    present = [v for v in values if v is not None]
    return round(float(np.median(present)), 3) if present else None


def split_shapes(coco: dict, wide: float) -> list[dict]:
    """Per class of a COCO file: objects, wide share, and median shorter side and contrast of both groups."""
    names = {category["id"]: category["name"] for category in coco["categories"]}
    table = []
    for category_id, name in sorted(names.items(), key=lambda item: item[1]):
        objects = [
            a
            for a in coco["annotations"]
            if a["category_id"] == category_id and not a.get("ignore") and a["bbox"][2] > 0
        ]
        if not objects:
            continue
        is_wide = [a["bbox"][3] / a["bbox"][2] < wide for a in objects]
        groups = {
            "wide": [a for a, w in zip(objects, is_wide, strict=True) if w],
            "rest": [a for a, w in zip(objects, is_wide, strict=True) if not w],
        }
        row = {"class": name, "objects": len(objects), "wide_share": round(float(np.mean(is_wide)), 3)}
        for group, members in groups.items():
            row[f"{group}_min_side_p50"] = median_or_none([min(a["bbox"][2:4]) for a in members])
            row[f"{group}_contrast_p50"] = median_or_none([a.get("contrast") for a in members])
        table.append(row)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", required=True, metavar="SPLIT", help="built split directories")
    parser.add_argument("--wide", type=float, default=0.5, help="height / width under which a box is wide")
    parser.add_argument("--json", default=None, metavar="OUT")
    args = parser.parse_args(argv)
    report = {"wide": args.wide, "splits": {}}
    for split in map(Path, args.data):
        path = split / "annotations.json"
        if not path.is_file():
            raise SystemExit(f"{split}: no annotations.json (build the split first)")
        try:
            coco = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}: not valid JSON ({error})") from None
        report["splits"][str(split)] = split_shapes(coco, args.wide)
        for row in report["splits"][str(split)]:
            print(f"{str(split):<28} " + json.dumps(row))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
