"""experiments/anchor_coverage.py: how well anchor settings cover labelled boxes, wide boxes apart."""

from __future__ import annotations

import json

import pytest
import torch

from experiments import anchor_coverage


def test_wide_boxes_are_reported_apart(tmp_path) -> None:
    boxes = torch.tensor([[0.0, 0.0, 40.0, 10.0], [0.0, 0.0, 20.0, 30.0], [0.0, 0.0, 10.0, 5.0]])
    assert anchor_coverage.split_wide_classes(boxes, ["boat", "boat", "buoy"], 0.5) == [
        "boat (h/w < 0.5)",
        "boat",
        "buoy",
    ]
    split = tmp_path / "split"
    split.mkdir()
    coco = {
        "categories": [{"id": 1, "name": "boat"}],
        "annotations": [
            {"category_id": 1, "bbox": [100, 100, 60, 12]},  # wide
            {"category_id": 1, "bbox": [40, 40, 24, 24]},
        ],
    }
    (split / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "coverage.json"
    args = ["--data", str(split), "--anchors", "12:0.5,1,2,3", "--split-wide", "0.5", "--json", str(out)]
    assert anchor_coverage.main(args) == 0
    report = json.loads(out.read_text())
    assert report["objects"] == {"boat": 1, "boat (h/w < 0.5)": 1}
    classes = report["settings"][0]["classes"]
    # a square 24 px box sits on an anchor grid of that size; the 60 x 12 one is poorly covered
    assert classes["boat"]["mean_best_iou"] > classes["boat (h/w < 0.5)"]["mean_best_iou"]
    with pytest.raises(SystemExit, match="no annotations.json"):
        anchor_coverage.main(["--data", str(tmp_path / "nothing"), "--anchors", "12:1"])
