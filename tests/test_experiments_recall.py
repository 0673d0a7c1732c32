"""experiments/recall_by_size.py: which labelled objects a detector misses, by size, shape, events and
sequence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import label_shapes, plot_recall, recall_by_size

pytestmark = pytest.mark.usefixtures("single_thread")


def rows_of(*specs: tuple[str, str, float, bool]) -> list[dict]:
    return [
        {
            "class": name,
            "sequence": sequence,
            "aspect_hw": aspect,
            "best_iou": 0.6 if found else 0.1,
            "found": found,
        }
        for name, sequence, aspect, found in specs
    ]


def test_bucket_and_group_tables_count_recall_per_class() -> None:
    rows = rows_of(
        ("boat", "s0", 0.3, False),
        ("boat", "s0", 0.3, True),
        ("boat", "s1", 1.5, True),
        ("buoy", "s1", 2.5, True),
    )
    table = recall_by_size.bucket_table(rows, "aspect_hw", [0, 0.5, 2, 1e9])
    assert table == [
        {"class": "boat", "from": 0, "to": 0.5, "objects": 2, "recall": 0.5, "mean_best_iou": 0.35},
        {"class": "boat", "from": 0.5, "to": 2, "objects": 1, "recall": 1.0, "mean_best_iou": 0.6},
        {"class": "buoy", "from": 2, "to": 1e9, "objects": 1, "recall": 1.0, "mean_best_iou": 0.6},
    ]
    by_sequence = recall_by_size.group_table(rows, "sequence")
    assert [(e["class"], e["sequence"], e["objects"], e["recall"]) for e in by_sequence] == [
        ("boat", "s0", 2, 0.5),
        ("boat", "s1", 1, 1.0),
        ("buoy", "s1", 1, 1.0),
    ]


def test_recall_report_on_a_built_split(
    tiny_root: Path, overfit_checkpoint: Path, tmp_path
) -> None:
    out = tmp_path / "recall.json"
    split = tiny_root / "train"
    argv = ["--model", str(overfit_checkpoint), "--data", str(split), "--json", str(out)]
    assert recall_by_size.main(argv) == 0
    report = json.loads(out.read_text())
    labelled = [
        a for a in json.loads((split / "annotations.json").read_text())["annotations"] if not a.get("ignore")
    ]
    assert report["objects"] == len(labelled)
    for key in ("min_side_px", "aspect_hw", "events_in_box", "sequence"):
        assert sum(entry["objects"] for entry in report[key]) == len(labelled), key
    assert {entry["sequence"] for entry in report["sequence"]} == {"toy-0000"}
    # the tiny model fits its own training split, so it finds nearly every object there
    found = sum(entry["recall"] * entry["objects"] for entry in report["sequence"])
    assert found >= 0.8 * len(labelled)


def test_label_shapes_counts_wide_boxes_and_their_size(tmp_path) -> None:
    coco = {
        "categories": [{"id": 1, "name": "boat"}, {"id": 2, "name": "buoy"}],
        "annotations": [
            {"category_id": 1, "bbox": [0, 0, 40, 10], "contrast": 0.2},  # wide
            {"category_id": 1, "bbox": [0, 0, 30, 12], "contrast": 0.4},  # wide
            {"category_id": 1, "bbox": [0, 0, 20, 30], "contrast": 0.6},
            {"category_id": 1, "bbox": [0, 0, 50, 5], "ignore": 1},  # not counted
            {"category_id": 2, "bbox": [0, 0, 8, 16]},  # no contrast label
        ],
    }
    boat, buoy = label_shapes.split_shapes(coco, 0.5)
    assert boat == {
        "class": "boat",
        "objects": 3,
        "wide_share": 0.667,
        "wide_min_side_p50": 11.0,
        "wide_contrast_p50": 0.3,
        "rest_min_side_p50": 20.0,
        "rest_contrast_p50": 0.6,
    }
    assert (
        buoy["wide_share"] == 0.0 and buoy["wide_min_side_p50"] is None and buoy["rest_contrast_p50"] is None
    )
    split = tmp_path / "split"
    split.mkdir()
    with pytest.raises(SystemExit, match="no annotations.json"):
        label_shapes.main(["--data", str(split)])
    (split / "annotations.json").write_text("{not json")
    with pytest.raises(SystemExit, match="not valid JSON"):
        label_shapes.main(["--data", str(split)])
    (split / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "shapes.json"
    assert label_shapes.main(["--data", str(split), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["splits"][str(split)][0] == boat


def test_plot_recall_orders_buckets_drops_small_ones_and_writes_a_png(tmp_path) -> None:
    report = {
        "model": "events-default",
        "data": "data/fresh-maritime/test",
        "aspect_hw": [
            {"class": "boat", "from": 1, "to": 1.4, "objects": 20, "recall": 0.9, "mean_best_iou": 0.8},
            {"class": "boat", "from": 0.25, "to": 0.35, "objects": 30, "recall": 0.5, "mean_best_iou": 0.6},
            {"class": "boat", "from": 3, "to": 1e9, "objects": 2, "recall": 0.0, "mean_best_iou": 0.1},
        ],
    }
    assert plot_recall.recall_series(report, "aspect_hw", "boat", min_objects=10) == (
        ["0.25-0.35", "1-1.4"],
        [0.5, 0.9],
        [30, 20],
    )
    assert plot_recall.recall_series(report, "aspect_hw", "boat")[0][-1] == ">= 3"
    assert plot_recall.series_name(report) == "events-default: fresh-maritime"
    path = tmp_path / "recall.json"
    path.write_text(json.dumps(report))
    out = tmp_path / "plot.png"
    assert plot_recall.main([str(path), "--key", "aspect_hw", "--counts", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no 'motion_px' table"):
        plot_recall.main([str(path), "--key", "motion_px", "--out", str(out)])
    with pytest.raises(SystemExit, match="car in none of the files"):
        plot_recall.main([str(path), "--classes", "car", "--out", str(out)])
    with pytest.raises(SystemExit, match="cannot read"):
        plot_recall.main([str(tmp_path / "missing.json"), "--out", str(out)])
