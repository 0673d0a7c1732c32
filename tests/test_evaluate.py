"""COCO evaluation: perfect and empty detections, crowd regions, --limit, the eval CLI and its errors.

``write_tiny_split`` builds a real split on disk (annotations.json, events.h5 through
``streamdet.formats.write_events``, spikes.dat + spikes.json) that ``test_train`` also uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamdet import CLASS_NAMES
from streamdet.cli import main
from streamdet.contract import InputSpec
from streamdet.evaluate import coco_from_dict, coco_metrics, evaluate_split
from streamdet.events import EVENT_DTYPE
from streamdet.formats import SpikeDatLayout, write_events, write_spike_dat, write_spike_sidecar

TINY_SENSOR = (64, 64)
WINDOW_US = 50_000
SPIKE_RATE_HZ = 1000.0


def _object_boxes(rng: np.random.Generator) -> list[tuple[list[float], int]]:
    """One or two non-overlapping objects: class 0 a wide box, class 1 a tall box (pixels)."""
    objects = []
    for label, (w, h) in ((0, (22, 12)), (1, (10, 20))):
        if objects and rng.random() < 0.3:
            continue
        for _ in range(50):
            x = int(rng.integers(0, TINY_SENSOR[0] - w))
            y = int(rng.integers(0, TINY_SENSOR[1] - h))
            box = [x, y, x + w, y + h]
            if all(
                box[2] <= o[0] - 2 or box[0] >= o[2] + 2 or box[3] <= o[1] - 2 or box[1] >= o[3] + 2
                for o, _ in objects
            ):
                objects.append((box, label))
                break
    return objects


def write_tiny_split(
    root: Path, split: str = "train", images: int = 12, seed: int = 0, annotate: bool = True, upscale: int = 1
) -> Path:
    """A split with one sequence of ``images`` windows on a 64x64 sensor: per window the outline of each
    object emits 3 ON events per pixel (left half) or OFF events (right half), plus 1% noise events; the
    spike camera fires at rate 0.8 inside objects and 0.1 outside. With ``upscale`` k the same scene on a
    64k x 64k sensor: each event repeated at the k x k sensor pixels of its pixel (so count pooling by 1/k
    gives back the 64x64 input exactly), spike frames and boxes scaled by k. Returns the split directory."""
    rng = np.random.default_rng(seed)
    split_dir = root / split
    sequence = "toy-0000"
    (split_dir / sequence).mkdir(parents=True)
    width, height = TINY_SENSOR
    event_chunks, frames, coco_images, annotations = [], [], [], []
    frames_per_window = int(WINDOW_US * SPIKE_RATE_HZ / 1e6)
    for k in range(images):
        t_end = WINDOW_US * (k + 1)
        objects = _object_boxes(rng)
        mask = np.zeros((height, width), dtype=bool)
        pixels = []
        for (x1, y1, x2, y2), label in objects:
            mask[y1:y2, x1:x2] = True
            for y in range(y1, y2):
                for x in range(x1, x2):
                    if x in (x1, x2 - 1) or y in (y1, y2 - 1):
                        pixels.append((x, y, x < (x1 + x2) / 2))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                    "ignore": 0,
                    "track_id": label,
                }
            )
        noise = rng.random((height, width)) < 0.01
        noise_y, noise_x = np.nonzero(noise)
        records = [(x, y, p) for x, y, p in pixels for _ in range(3)]
        records += [(int(x), int(y), bool(rng.random() < 0.5)) for x, y in zip(noise_x, noise_y, strict=True)]
        events = np.zeros(len(records), dtype=EVENT_DTYPE)
        events["x"] = [r[0] for r in records]
        events["y"] = [r[1] for r in records]
        events["p"] = [r[2] for r in records]
        events["t"] = np.sort(rng.integers(t_end - WINDOW_US + 1, t_end + 1, size=len(records)))
        event_chunks.append(events)
        probability = np.where(mask, 0.8, 0.1)
        frames.append(rng.random((frames_per_window, height, width)) < probability)
        coco_images.append(
            {
                "id": k + 1,
                "file_name": sequence,
                "sequence": sequence,
                "t_us": t_end,
                "width": width,
                "height": height,
                "preset": "toy",
            }
        )
    events, spikes, sensor = np.concatenate(event_chunks), np.concatenate(frames), TINY_SENSOR
    if upscale != 1:
        events = np.repeat(events, upscale * upscale)
        offsets = np.arange(upscale * upscale)
        events["x"] = events["x"] * upscale + np.tile(offsets % upscale, len(events) // offsets.size)
        events["y"] = events["y"] * upscale + np.tile(offsets // upscale, len(events) // offsets.size)
        spikes = spikes.repeat(upscale, axis=1).repeat(upscale, axis=2)
        sensor = (width * upscale, height * upscale)
        for image in coco_images:
            image["width"], image["height"] = sensor
        for annotation in annotations:
            annotation["bbox"] = [v * upscale for v in annotation["bbox"]]
            annotation["area"] *= upscale * upscale
    write_events(split_dir / sequence / "events.h5", events, sensor)
    write_spike_dat(split_dir / sequence / "spikes.dat", spikes)
    write_spike_sidecar(
        split_dir / sequence / "spikes.dat",
        SpikeDatLayout(sensor_size=sensor, frame_us=1e6 / SPIKE_RATE_HZ, t0_us=int(1e6 / SPIKE_RATE_HZ)),
    )
    coco = {
        "info": {
            "preset": "toy",
            "seed": seed,
            "split": split,
            "window_us": WINDOW_US,
            "sensor": list(sensor),
            "spike_rate_hz": SPIKE_RATE_HZ,
        },
        "images": coco_images,
        "annotations": annotations if annotate else [],
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(CLASS_NAMES)],
    }
    (split_dir / "annotations.json").write_text(json.dumps(coco))
    return split_dir


def _truth_rows(coco: dict, image_id: int, score: float = 0.9) -> torch.Tensor:
    rows = [
        [
            a["bbox"][0],
            a["bbox"][1],
            a["bbox"][0] + a["bbox"][2],
            a["bbox"][1] + a["bbox"][3],
            score,
            a["category_id"] - 1,
        ]
        for a in coco["annotations"]
        if a["image_id"] == image_id and not a["iscrowd"]
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_split(tmp_path_factory.mktemp("tiny"), "test", images=6, seed=3)


def test_perfect_detections_score_one_and_none_score_zero(tiny_split: Path) -> None:
    coco = json.loads((tiny_split / "annotations.json").read_text())
    ids = [image["id"] for image in coco["images"]]
    gt = coco_from_dict(coco)
    perfect = coco_metrics(gt, {i: _truth_rows(coco, i) for i in ids})
    assert perfect["map50"] == pytest.approx(1.0)
    assert perfect["map"] == pytest.approx(1.0)
    assert perfect["ap50_per_class"] == pytest.approx({"boat": 1.0, "buoy": 1.0})
    nothing = coco_metrics(gt, {i: torch.zeros(0, 6) for i in ids})
    assert nothing["map50"] == 0.0 and nothing["ap50_per_class"] == {"boat": 0.0, "buoy": 0.0}


def test_wrong_class_and_shifted_boxes_lose_precision(tiny_split: Path) -> None:
    coco = json.loads((tiny_split / "annotations.json").read_text())
    ids = [image["id"] for image in coco["images"]]
    gt = coco_from_dict(coco)
    swapped = {i: _truth_rows(coco, i) for i in ids}
    for rows in swapped.values():
        rows[:, 5] = 1 - rows[:, 5]
    assert coco_metrics(gt, swapped)["map50"] == 0.0
    shifted = {i: _truth_rows(coco, i) for i in ids}
    for rows in shifted.values():
        rows[:, [0, 2]] += 0.4 * (rows[:, 2:3] - rows[:, 0:1])  # IoU 0.43 < 0.5
    assert coco_metrics(gt, shifted)["map50"] == 0.0


def test_detection_on_a_crowd_region_is_not_a_false_positive(tiny_split: Path) -> None:
    coco = json.loads((tiny_split / "annotations.json").read_text())
    first = coco["images"][0]["id"]
    crowd = {
        "id": 999,
        "image_id": first,
        "category_id": 1,
        "bbox": [0, 0, 6, 6],
        "area": 36,
        "iscrowd": 1,
        "ignore": 1,
    }
    with_crowd = {**coco, "annotations": coco["annotations"] + [crowd]}
    detections = {image["id"]: _truth_rows(coco, image["id"]) for image in coco["images"]}
    detections[first] = torch.cat([torch.tensor([[0.0, 0.0, 6.0, 6.0, 0.99, 0.0]]), detections[first]])
    assert coco_metrics(coco_from_dict(with_crowd), detections)["map50"] == pytest.approx(1.0)
    assert coco_metrics(coco_from_dict(coco), detections)["map50"] < 1.0


def test_evaluate_split_feeds_the_window_input_and_honours_limit(tiny_split: Path) -> None:
    coco = json.loads((tiny_split / "annotations.json").read_text())
    seen: list[torch.Tensor] = []
    order = iter(coco["images"][:4])

    def oracle(inputs: torch.Tensor) -> list[torch.Tensor]:
        seen.append(inputs)
        return [_truth_rows(coco, next(order)["id"]) for _ in inputs]

    spec = InputSpec("events", (64, 64), WINDOW_US, 3.0)
    result = evaluate_split(oracle, tiny_split, spec, limit=4, batch_size=3, progress=False)
    assert result["images"] == 4 and result["map50"] == pytest.approx(1.0)
    inputs = torch.cat(seen)
    assert inputs.shape == (4, 2, 64, 64)
    # outline pixels carry 3 events of one polarity: 3 / event_scale 3 = 1; inputs never exceed 1
    assert float(inputs.max()) == 1.0 and float(inputs.min()) == 0.0


def test_eval_cli_rejects_a_missing_model_or_a_non_checkpoint(
    tiny_split: Path, tmp_path: Path, capsys
) -> None:
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamdet",
            "eval",
            "--model",
            str(tmp_path / "none.pt"),
            "--data",
            str(tiny_split),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint\n")
    assert main(["eval", "--model", str(bogus), "--data", str(tiny_split)]) == 2
    assert "not a streamdet checkpoint" in capsys.readouterr().err
