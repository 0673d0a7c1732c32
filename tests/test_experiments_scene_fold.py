"""experiments/scene_fold.py: the fold renames look-alike classes and keeps one box per object."""

from __future__ import annotations

import argparse

import pytest
import torch

from experiments.scene_fold import LOOK_ALIKES, fold_detections, parse_scene_split
from streamdet import CLASS_NAMES


def test_fold_renames_and_merges_look_alikes_on_one_object() -> None:
    index = {name: k for k, name in enumerate(CLASS_NAMES)}
    fold = {index[a]: index[b] for a, b in LOOK_ALIKES["traffic"].items()}
    rows = torch.tensor(
        [
            [10.0, 10.0, 50.0, 30.0, 0.7, index["boat"]],  # a car called boat ...
            [11.0, 10.0, 51.0, 31.0, 0.4, index["car"]],  # ... and called car, lower
            [100.0, 50.0, 110.0, 80.0, 0.6, index["buoy"]],  # a walker called buoy
            [200.0, 50.0, 210.0, 80.0, 0.5, index["pedestrian"]],  # another walker
        ]
    )
    folded = fold_detections(rows, fold, nms_iou=0.4)
    assert folded[:, 4].tolist() == pytest.approx([0.7, 0.6, 0.5])
    assert [CLASS_NAMES[int(c)] for c in folded[:, 5]] == ["car", "pedestrian", "pedestrian"]
    assert folded[0, :4].tolist() == rows[0, :4].tolist()
    assert rows[0, 5] == index["boat"]  # the input is not changed


def test_scene_split_argument_names_a_known_scene() -> None:
    assert parse_scene_split("maritime:data/x/test")[0] == "maritime"
    with pytest.raises(argparse.ArgumentTypeError, match="SCENE one of traffic, maritime"):
        parse_scene_split("harbour:data/x/test")
