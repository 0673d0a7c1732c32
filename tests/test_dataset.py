"""`streamdet dataset build` as a subprocess, the files it writes, seeds, determinism, Ctrl-C, loading."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from streamdet import CLASS_NAMES
from streamdet.cli.options import parse_size
from streamdet.dataset import SPLITS, BuildConfig, DatasetSplit, build_split, sequence_jobs, sequence_seeds
from streamdet.errors import UserFacingError
from streamdet.formats import read_events, read_spike_dat, read_spike_sidecar

CLI = [sys.executable, "-m", "streamdet"]


def _build(out: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [*CLI, "dataset", "build", "--out", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mixed_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mixed val split: 2 sequences x 0.6 s at 128x96, built by the CLI with 2 workers."""
    out = tmp_path_factory.mktemp("data")
    result = _build(
        out,
        "--preset",
        "maritime,traffic",
        "--sequences",
        "2",
        "--seconds",
        "0.6",
        "--split",
        "val",
        "--seed",
        "5",
        "--size",
        "128x96",
        "--workers",
        "2",
        "--preview",
    )
    assert result.returncode == 0, result.stderr
    assert "annotations.json: 2 sequences, 12 images" in result.stdout
    return out / "val"


def test_layout_and_coco_records(mixed_split: Path) -> None:
    coco = json.loads((mixed_split / "annotations.json").read_text())
    info = coco["info"]
    assert info["presets"] == ["maritime", "traffic"] and info["split"] == "val" and info["seed"] == 5
    assert info["window_us"] == 50_000 and info["sensor"] == [128, 96] and info["spike_rate_hz"] == 1000.0
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4]
    assert [c["name"] for c in coco["categories"]] == list(CLASS_NAMES)
    assert [s["name"] for s in info["sequences"]] == ["maritime-0000", "traffic-0001"]
    sensors = [sequence["dvs"] for sequence in info["sequences"]]
    assert sensors[0] != sensors[1] and info["randomise_sensor"] is True
    assert info["built_with"]["opencv"] == cv2.__version__ and info["built_with"]["numpy"] == np.__version__
    assert all(0.15 <= sensor["pos_threshold"] <= 0.35 for sensor in sensors)
    assert [sensor["seed"] for sensor in sensors] == [s["sensor_seed"] for s in info["sequences"]]
    for image in coco["images"]:
        assert set(image) >= {"id", "file_name", "sequence", "t_us", "width", "height", "preset"}
        assert image["preset"] == image["sequence"].split("-")[0] and (image["width"], image["height"]) == (
            128,
            96,
        )
    times = [image["t_us"] for image in coco["images"] if image["sequence"] == "traffic-0001"]
    assert times == list(range(50_000, 600_001, 100_000))
    image_ids = {image["id"] for image in coco["images"]}
    classes_by_preset = {"maritime": {1, 2}, "traffic": {3, 4}}
    presets = {image["id"]: image["preset"] for image in coco["images"]}
    assert coco["annotations"], "no boxes at all"
    for annotation in coco["annotations"]:
        assert annotation["image_id"] in image_ids
        assert annotation["category_id"] in classes_by_preset[presets[annotation["image_id"]]]
        x, y, w, h = annotation["bbox"]
        assert w > 0 and h > 0 and 0 <= x and x + w <= 128 and 0 <= y and y + h <= 96
        assert annotation["iscrowd"] == annotation["ignore"] in (0, 1)
        assert annotation["area"] == w * h
    for sequence in ("maritime-0000", "traffic-0001"):
        folder = mixed_split / sequence
        assert (folder / "preview.mp4").stat().st_size > 1000
        recording = read_events(folder / "events.h5")
        assert recording.sensor_size == (128, 96) and len(recording.events) > 1000
        assert np.all(np.diff(recording.events["t"]) >= 0) and recording.events["t"].max() <= 600_000
        layout = read_spike_sidecar(folder / "spikes.dat")
        assert layout.sensor_size == (128, 96) and layout.frame_us == 1000.0 and layout.t0_us == 1000
        assert read_spike_dat(folder / "spikes.dat").shape == (600, 96, 128)


def test_pycocotools_reads_it_and_perfect_detections_score_one(mixed_split: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground_truth = COCO(str(mixed_split / "annotations.json"))
    detections = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in ground_truth.dataset["annotations"]
        if not a["ignore"]
    ]
    evaluation = COCOeval(ground_truth, ground_truth.loadRes(detections), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[1] == pytest.approx(1.0)


def test_a_model_window_other_than_the_built_one_reads_the_window_ending_at_the_label(
    mixed_split: Path,
) -> None:
    """The sequences are continuous, so a model with a 120 ms window reads (t - 120 ms, t] of the same
    recording, a superset of the built 50 ms window, with the same boxes; the first label's window is
    cut at the start of the recording."""
    from streamdet.samples import DetectionSamples

    built, longer = DatasetSplit(mixed_split), DatasetSplit(mixed_split, window_us=120_000)
    assert built.window_us == built.built_window_us == 50_000 and longer.built_window_us == 50_000
    image = built.images[3]
    short_events, long_events = built.events(image), longer.events(image)
    assert long_events["t"].min() > image["t_us"] - 120_000 and long_events["t"].max() <= image["t_us"]
    assert len(long_events) > len(short_events)
    assert np.isin(short_events["t"], long_events["t"]).all()
    assert longer.spike_frames(image).shape[0] == 120
    first = built.images[0]
    assert longer.events(first)["t"].min() >= 0 and first["t_us"] < 120_000
    samples = DetectionSamples([mixed_split], "events", 4.0, window_us=120_000)
    assert samples.window_us == 120_000
    counts_long, counts_short = samples.raw(3), DetectionSamples([mixed_split], "events", 4.0).raw(3)
    assert (counts_long >= counts_short).all() and counts_long.sum() > counts_short.sum()
    assert torch.equal(
        samples.target(3)["boxes"], DetectionSamples([mixed_split], "events", 4.0).target(3)["boxes"]
    )
    with pytest.raises(UserFacingError, match="window_us must be positive"):
        DatasetSplit(mixed_split, window_us=0)


def test_split_loader_windows(mixed_split: Path) -> None:
    split = DatasetSplit(mixed_split)
    image = split.images[3]
    events = split.events(image)
    assert len(events) and events["t"].min() > image["t_us"] - 50_000 and events["t"].max() <= image["t_us"]
    frames = split.spike_frames(image)
    assert frames.shape == (50, 96, 128)
    dat = read_spike_dat(mixed_split / image["sequence"] / "spikes.dat")
    last = image["t_us"] // 1000 - 1
    np.testing.assert_array_equal(frames, dat[last - 49 : last + 1])
    assert split.input(image, "events", 4.0).shape == (2, 96, 128)
    intensity = split.input(image, "intensity")
    assert intensity.shape == (1, 96, 128) and 0.05 < intensity.mean() < 0.95
    targets = split.targets(image)
    assert targets["boxes"].shape == (len(targets["labels"]), 4) and targets["ignore"].dtype == bool


def test_seeds_differ_across_splits_and_sequences() -> None:
    seeds = [sequence_seeds(0, split, index) for split in SPLITS for index in range(50)]
    flat = [value for pair in seeds for value in pair]
    assert len(set(flat)) == len(flat)
    assert sequence_seeds(0, "train", 3) == sequence_seeds(0, "train", 3) != sequence_seeds(1, "train", 3)
    jobs = sequence_jobs(BuildConfig(presets=("maritime", "traffic"), sequences=3, split="test", seed=9))
    assert [job.preset for job in jobs] == ["maritime", "traffic", "maritime"]


def test_workers_do_not_change_the_output(tmp_path: Path, mixed_split: Path) -> None:
    config = BuildConfig(
        presets=("maritime", "traffic"), sequences=2, seconds=0.6, split="val", seed=5, sensor_size=(128, 96)
    )
    path = build_split(config, tmp_path, workers=1)
    mine, theirs = json.loads(path.read_text()), json.loads((mixed_split / "annotations.json").read_text())
    assert mine["images"] == theirs["images"] and mine["annotations"] == theirs["annotations"]
    for sequence in ("maritime-0000", "traffic-0001"):
        np.testing.assert_array_equal(
            read_events(tmp_path / "val" / sequence / "events.h5").events,
            read_events(mixed_split / sequence / "events.h5").events,
        )
        assert (tmp_path / "val" / sequence / "spikes.dat").read_bytes() == (
            mixed_split / sequence / "spikes.dat"
        ).read_bytes()


def test_user_errors_are_one_line(tmp_path: Path, mixed_split: Path) -> None:
    result = _build(tmp_path, "--preset", "desert")
    assert result.returncode == 2 and "desert" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(UserFacingError, match="exists and is not empty"):
        build_split(BuildConfig(split="val", seconds=0.1), mixed_split.parent)
    with pytest.raises(argparse.ArgumentTypeError, match="expected WxH"):
        parse_size("12x")
    assert parse_size("400x250") == (400, 250)
    with pytest.raises(UserFacingError, match="shorter than one input window"):
        BuildConfig(seconds=0.01)


def test_ctrl_c_stops_workers_cleanly(tmp_path: Path) -> None:
    command = [
        *CLI,
        "dataset",
        "build",
        "--out",
        str(tmp_path),
        "--sequences",
        "4",
        "--seconds",
        "30",
        "--workers",
        "2",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("train/*/events.h5")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not (tmp_path / "train" / "annotations.json").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
