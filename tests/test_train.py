"""Training: augmentations, a tiny model overfitting a tiny dataset, checkpoints, the train/eval CLIs
and their errors (no annotations, modality mismatch, resume of another modality)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_evaluate import WINDOW_US, write_tiny_split

from streamdet.cli import main
from streamdet.errors import UserFacingError
from streamdet.evaluate import evaluate_split
from streamdet.model import (
    build_model,
    config_for,
    load_detector,
    model_from_checkpoint,
    pad_input,
    read_checkpoint,
    size_preset,
)
from streamdet.samples import DetectionSamples
from streamdet.train import (
    AugmentConfig,
    TrainConfig,
    add_hot_pixels,
    distillation_loss,
    horizontal_flip,
    make_augment,
    random_crop,
    relevel_checkpoint,
    smooth_random_field,
    thin_events,
    train_detector,
    with_history_windows,
    with_stage_widths,
)
from streamdet.weight_surgery import carry_over_input_channels

NO_AUGMENT = AugmentConfig(
    flip=0.0, crop_size=None, count_scale=(1.0, 1.0), noise_rate=0.0, polarity_swap=0.0
)
"""The fixed transform of ``overfit_checkpoint`` (tests/conftest.py)."""


def _target(boxes: list[list[float]], labels: list[int], ignore: list[list[float]] | None = None) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
        "ignore_boxes": torch.tensor(ignore or [], dtype=torch.float32).reshape(-1, 4),
        "image_id": torch.tensor(1),
    }


def test_flip_mirrors_pixels_and_boxes_and_twice_is_identity() -> None:
    raw = torch.zeros(2, 10, 20)
    raw[1, 2:4, 0:5] = 3.0
    target = _target([[0, 2, 5, 4]], [1], [[18, 0, 20, 1]])
    flipped, moved = horizontal_flip(raw, target)
    assert torch.equal(flipped[1, 2:4, 15:20], raw[1, 2:4, 0:5])
    assert moved["boxes"].tolist() == [[15, 2, 20, 4]] and moved["ignore_boxes"].tolist() == [[0, 0, 2, 1]]
    back, again = horizontal_flip(flipped, moved)
    assert torch.equal(back, raw) and torch.equal(again["boxes"], target["boxes"])


def test_crop_moves_boxes_and_turns_cut_objects_into_ignore_regions() -> None:
    raw = torch.arange(64 * 96, dtype=torch.float32).reshape(1, 64, 96)
    target = _target([[40, 10, 60, 30], [0, 0, 40, 20]], [0, 1])
    rng = np.random.default_rng(5)
    window, moved = random_crop(raw, target, (64, 32), rng, min_visible=0.5)
    y0, x0 = divmod(int(window[0, 0, 0]), 96)  # the value at the window's corner is y0 * 96 + x0
    assert window.shape == (1, 32, 64) and torch.equal(window, raw[:, y0 : y0 + 32, x0 : x0 + 64])
    for box, label in zip(moved["boxes"].tolist(), moved["labels"].tolist(), strict=True):
        original = target["boxes"][label].tolist()
        assert box[0] == max(original[0] - x0, 0) and box[1] == max(original[1] - y0, 0)
    kept_or_ignored = len(moved["boxes"]) + len(moved["ignore_boxes"])
    assert kept_or_ignored >= 1 and all(0 <= v <= 64 for b in moved["boxes"].tolist() for v in b[::2])


def test_tiny_model_overfits_tiny_dataset(tiny_root: Path, overfit_checkpoint: Path) -> None:
    bundle = load_detector(overfit_checkpoint)
    assert bundle.spec.modality == "events" and bundle.config.activation == "quant"
    assert bundle.metadata["train"]["epochs"] == 20
    result = evaluate_split(bundle.detect, tiny_root / "train", bundle.spec, progress=False)
    assert result["map50"] >= 0.85, result


def test_untrained_checkpoint_scores_low(tiny_root: Path, tmp_path: Path) -> None:
    config = TrainConfig(modality="events", size="tiny", epochs=1, batch_size=8, lr=1e-6, augment=NO_AUGMENT)
    train_detector(config, [tiny_root], tmp_path / "untrained.pt", progress=False, log=lambda line: None)
    bundle = load_detector(tmp_path / "untrained.pt")
    assert (
        evaluate_split(bundle.detect, tiny_root / "train", bundle.spec, progress=False)["map50"]
        < 0.2
    )


def test_same_recipe_trains_identical_weights_and_init_fine_tunes(
    tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path
) -> None:
    """Training is seeded (initialisation, order, augmentation), so one command gives one model; --init
    starts from a checkpoint's weights: a short fine-tune of the overfit model keeps its score, where the
    same short run from scratch scores low."""
    torch.set_num_threads(1)
    config = TrainConfig(
        modality="events",
        size="tiny",
        epochs=1,
        batch_size=4,
        lr=1e-4,
        warmup_steps=1,
        event_scale=3.0,
        augment=AugmentConfig(crop_size=None),
    )
    quiet = {"progress": False, "log": lambda line: None}
    for name in ("a.pt", "b.pt"):
        train_detector(config, [tiny_root], tmp_path / name, init=overfit_checkpoint, **quiet)
    first, second = (load_detector(tmp_path / name).model.state_dict() for name in ("a.pt", "b.pt"))
    assert all(torch.equal(first[key], second[key]) for key in first)
    tuned = load_detector(tmp_path / "a.pt")
    score = evaluate_split(tuned.detect, tiny_root / "train", tuned.spec, progress=False)
    assert score["map50"] >= 0.8, score
    train_detector(config, [tiny_root], tmp_path / "scratch.pt", **quiet)
    scratch = load_detector(tmp_path / "scratch.pt")
    assert (
        evaluate_split(scratch.detect, tiny_root / "train", scratch.spec, progress=False)["map50"]
        < 0.2
    )
    longer_window = replace(config, window_us=2 * WINDOW_US)
    train_detector(longer_window, [tiny_root], tmp_path / "w2.pt", init=overfit_checkpoint, **quiet)
    assert load_detector(tmp_path / "w2.pt").spec.window_us == 2 * WINDOW_US
    fewer_levels = replace(config, quant_levels=4)
    train_detector(fewer_levels, [tiny_root], tmp_path / "l4.pt", init=overfit_checkpoint, **quiet)
    assert load_detector(tmp_path / "l4.pt").config.quant_levels == 4
    taller = replace(config, anchor_min_size=12.0, anchor_aspect_ratios=(0.5, 1.0, 2.0, 3.0))
    train_detector(taller, [tiny_root], tmp_path / "r3.pt", init=overfit_checkpoint, **quiet)
    assert load_detector(tmp_path / "r3.pt").config.anchor_aspect_ratios == (0.5, 1.0, 2.0, 3.0)
    train_detector(config, [tiny_root], tmp_path / "r3b.pt", init=tmp_path / "r3.pt", **quiet)
    inherited = load_detector(tmp_path / "r3b.pt").config
    assert (inherited.anchor_min_size, inherited.anchor_aspect_ratios) == (12.0, (0.5, 1.0, 2.0, 3.0))
    train_detector(replace(config, epochs=2), [tiny_root], tmp_path / "r3b.pt", resume=True, **quiet)
    assert load_detector(tmp_path / "r3b.pt").config.anchor_aspect_ratios == (0.5, 1.0, 2.0, 3.0)
    finer = replace(config, finest_stride=4)
    train_detector(finer, [tiny_root], tmp_path / "p2.pt", init=overfit_checkpoint, **quiet)
    with_p2 = load_detector(tmp_path / "p2.pt")
    assert with_p2.config.finest_stride == 4
    train_detector(config, [tiny_root], tmp_path / "p2b.pt", init=tmp_path / "p2.pt", **quiet)
    assert load_detector(tmp_path / "p2b.pt").config.finest_stride == 4  # inherited from --init
    deeper = replace(config, head_blocks=1, new_layer_lr=1e-2)
    train_detector(deeper, [tiny_root], tmp_path / "hb.pt", init=overfit_checkpoint, **quiet)
    assert len(load_detector(tmp_path / "hb.pt").model.cls_head.tower) == 2
    # the new blocks learn at new_layer_lr, the rest at lr; a resumed run keeps the split
    saved = torch.load(tmp_path / "hb.pt.last.pt", weights_only=False)
    assert saved["state"]["new_layers"] == ["cls_head.tower.1.", "box_head.tower.1."]
    scales = sorted({group["lr_scale"] for group in saved["optimizer"]["param_groups"]})
    assert scales == pytest.approx([1.0, 1e-2 / 1e-4])
    train_detector(replace(deeper, epochs=2), [tiny_root], tmp_path / "hb.pt", resume=True, **quiet)
    saved = torch.load(tmp_path / "hb.pt.last.pt", weights_only=False)
    lrs = {group["lr_scale"]: group["lr"] for group in saved["optimizer"]["param_groups"]}
    assert lrs[1e-2 / 1e-4] == pytest.approx(lrs[1.0] * 100)
    train_detector(config, [tiny_root], tmp_path / "hb2.pt", init=tmp_path / "hb.pt", **quiet)
    assert load_detector(tmp_path / "hb2.pt").config.head_blocks == 1  # inherited from --init
    wider = replace(config, stage_channels=(8, 16, 24, 32))
    train_detector(wider, [tiny_root], tmp_path / "wd.pt", init=overfit_checkpoint, **quiet)
    widened = load_detector(tmp_path / "wd.pt")
    assert widened.config.stage_channels == (8, 16, 24, 32)
    train_detector(config, [tiny_root], tmp_path / "wd2.pt", init=tmp_path / "wd.pt", **quiet)
    assert load_detector(tmp_path / "wd2.pt").config.stage_channels == (8, 16, 24, 32)  # inherited
    with pytest.raises(UserFacingError, match="--init .*wd.pt: stage_channels .* can only be widened"):
        train_detector(replace(config, stage_channels=(8, 8, 16, 24)), [tiny_root], tmp_path / "n.pt",
                       init=tmp_path / "wd.pt", **quiet)  # fmt: skip
    history = replace(config, history_windows=1)
    train_detector(history, [tiny_root], tmp_path / "h1.pt", init=overfit_checkpoint, **quiet)
    with_history = load_detector(tmp_path / "h1.pt")
    assert (with_history.spec.history_windows, with_history.config.in_channels) == (1, 4)
    score = evaluate_split(with_history.detect, tiny_root / "train", with_history.spec, progress=False)
    assert score["map50"] >= 0.8, score  # starts as the --init model, which reads only its own window
    train_detector(config, [tiny_root], tmp_path / "h1b.pt", init=tmp_path / "h1.pt", **quiet)
    assert load_detector(tmp_path / "h1b.pt").spec.history_windows == 1
    train_detector(replace(config, epochs=2), [tiny_root], tmp_path / "h1b.pt", resume=True, **quiet)
    assert load_detector(tmp_path / "h1b.pt").spec.history_windows == 1
    with pytest.raises(UserFacingError, match="--init .*architecture"):
        train_detector(
            replace(config, size="small"), [tiny_root], tmp_path / "c.pt", init=overfit_checkpoint, **quiet
        )


def test_history_windows_stack_earlier_windows_newest_first(tiny_root: Path) -> None:
    """With ``history_windows = 2`` a sample is its own window then the two before it; the tiny split's
    windows are back to back, so those are the previous images' windows, and zeros before the start."""
    for modality, channels in (("events", 2), ("intensity", 1)):
        plain = DetectionSamples([tiny_root / "train"], modality, 3.0)
        stacked = DetectionSamples([tiny_root / "train"], modality, 3.0, history_windows=2)
        assert stacked.channels == 3 * channels and stacked[0][0].shape[0] == 3 * channels
        for i in range(len(plain)):
            raw = stacked.raw(i).unflatten(0, (3, channels))
            for k in range(3):
                expected = plain.raw(i - k) if i - k >= 0 else torch.zeros_like(plain.raw(0))
                assert torch.equal(raw[k], expected), (modality, i, k)
            image = stacked.image(i)
            one_image = stacked.splits[0].input(
                image, modality, 3.0, history_windows=2
            )  # rates: float16 cache
            assert torch.allclose(torch.from_numpy(one_image), stacked[i][0], atol=1e-3), (modality, i)
    with pytest.raises(UserFacingError, match="history windows"):
        DetectionSamples([tiny_root / "train"], "events", 3.0, history_windows=-1)


def test_polarity_swap_swaps_on_and_off_in_every_window() -> None:
    always = replace(NO_AUGMENT, polarity_swap=1.0)
    raw = torch.arange(4.0).reshape(4, 1, 1).expand(4, 8, 8).clone()  # OFF, ON of two windows
    swapped, _ = make_augment("events", always)(raw, _target([], []), np.random.default_rng(0))
    assert swapped[:, 0, 0].tolist() == [1.0, 0.0, 3.0, 2.0]


def test_carried_stem_ignores_new_windows_until_trained() -> None:
    """``carry_over_input_channels`` gives the older windows zero weight: the wider model computes what
    the source model did, whatever the extra channels hold."""
    torch.manual_seed(0)
    source_config = config_for("events", "tiny", input_size=(64, 64))
    source = build_model(source_config).eval()
    target_config = config_for("events", "tiny", input_size=(64, 64), history_windows=1)
    target = build_model(target_config).eval()
    target.load_state_dict(carry_over_input_channels(source.state_dict(), source_config, target_config))
    newest = pad_input(torch.rand(2, 2, 64, 64))
    older = pad_input(torch.rand(2, 2, 64, 64))
    with torch.no_grad():
        for expected, got in zip(source(newest), target(torch.cat([newest, older], 1)), strict=True):
            assert torch.allclose(expected, got, atol=1e-6)


def test_cli_train_resume_and_eval_json(tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path) -> None:
    out = tmp_path / "cli.pt"
    command = [
        sys.executable,
        "-m",
        "streamdet",
        "train",
        "--modality",
        "intensity",
        "--data",
        str(tiny_root),
        "--out",
        str(out),
        "--size",
        "tiny",
        "--crop",
        "none",
        "--epochs",
        "1",
        "--batch-size",
        "4",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert out.is_file() and (tmp_path / "cli.pt.last.pt").is_file() and "epoch=1" in first.stdout
    assert main([*command[3:-4], "--epochs", "2", "--batch-size", "4", "--resume"]) == 0
    assert load_detector(out).metadata["train"]["epochs"] == 2
    report = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--model",
                str(overfit_checkpoint),
                "--data",
                str(tiny_root / "train"),
                "--json",
                str(report),
                "--limit",
                "5",
            ]
        )
        == 0
    )
    summary = json.loads(report.read_text())
    assert summary["model"] == str(overfit_checkpoint) and summary["images"] == 5
    assert set(summary["ap50_per_class"]) == {"boat", "buoy"} and 0.0 <= summary["map50"] <= 1.0
    snn_report = tmp_path / "snn.json"
    snn_args = [
        "--snn",
        "--steps",
        "8",
        "--calibration-windows",
        "4",
        "--json",
        str(snn_report),
        "--limit",
        "2",
    ]
    assert (
        main(["eval", "--model", str(overfit_checkpoint), "--data", str(tiny_root / "train"), *snn_args]) == 0
    )
    assert 0.0 <= json.loads(snn_report.read_text())["snn"]["8"]["map50"] <= 1.0
    calibrated = [*snn_args, "--bias-calibration-steps", "8", "--bias-calibration-windows", "3"]
    calibrated += ["--calibration-data", str(tiny_root / "train")]
    assert (
        main(["eval", "--model", str(overfit_checkpoint), "--data", str(tiny_root / "train"), *calibrated])
        == 0
    )
    conversion = json.loads(snn_report.read_text())["snn_conversion"]
    assert conversion["bias_calibration"]["steps"] == 8 and conversion["bias_calibration"]["windows"] == 3


def test_cli_fine_tune_keeps_the_init_models_shape_and_input(
    tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path, capsys
) -> None:
    """``train --init`` without the model options fine-tunes the model it starts from (its modality, size,
    Quant-ReLU levels, window and event scale), not the from-scratch defaults (8 levels, the data's
    window); an option given still changes one; another modality, or no modality and no --init, is
    refused by name."""
    torch.set_num_threads(1)
    shaped = TrainConfig(
        modality="events",
        size="tiny",
        quant_levels=4,
        event_scale=3.0,
        window_us=2 * WINDOW_US,
        epochs=1,
        batch_size=4,
        lr=1e-4,
        warmup_steps=1,
        augment=NO_AUGMENT,
    )
    quiet = {"progress": False, "log": lambda line: None}
    train_detector(shaped, [tiny_root], tmp_path / "init.pt", init=overfit_checkpoint, **quiet)
    common = ["train", "--init", str(tmp_path / "init.pt"), "--data", str(tiny_root), "--crop", "none"]
    common += ["--epochs", "1", "--batch-size", "4", "--lr", "1e-4"]
    assert main([*common, "--out", str(tmp_path / "tuned.pt")]) == 0
    assert "--quant-levels 4" in capsys.readouterr().out
    tuned = load_detector(tmp_path / "tuned.pt")
    spec = tuned.spec
    assert (spec.modality, spec.window_us, spec.event_scale) == ("events", 2 * WINDOW_US, 3.0)
    assert (size_preset(tuned.config), tuned.config.quant_levels) == ("tiny", 4)
    assert main([*common, "--quant-levels", "8", "--out", str(tmp_path / "l8.pt")]) == 0
    assert load_detector(tmp_path / "l8.pt").config.quant_levels == 8
    assert main([*common, "--modality", "intensity", "--out", str(tmp_path / "x.pt")]) == 2
    assert "is an events model" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_root), "--out", str(tmp_path / "y.pt")]) == 2
    assert "give --modality" in capsys.readouterr().err


def test_cli_errors_are_one_line(tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path, capsys) -> None:
    empty = tmp_path / "empty"
    write_tiny_split(empty, "train", images=2, annotate=False)
    train = ["train", "--modality", "events", "--size", "tiny", "--crop", "none", "--epochs", "1"]
    assert main([*train, "--data", str(empty), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no annotations" in capsys.readouterr().err
    assert main([*train, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no annotations.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*train, "--data", str(tiny_root), "--out", str(tmp_path / "x.pt"), "--anchor-ratios", "1,a"])
    assert "comma-separated numbers" in capsys.readouterr().err
    out = str(tmp_path / "x.pt")
    assert main([*train, "--data", str(tiny_root), "--out", out, "--anchor-ratios", "1,1"]) == 2
    assert "distinct positive" in capsys.readouterr().err
    resumed = tmp_path / "r.pt"
    assert main([*train, "--data", str(tiny_root), "--out", str(resumed), "--batch-size", "8"]) == 0
    other = ["train", "--modality", "intensity", "--size", "tiny", "--crop", "none", "--epochs", "2"]
    assert main([*other, "--data", str(tiny_root), "--out", str(resumed), "--resume"]) == 2
    assert "trains the events modality" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--model",
                str(overfit_checkpoint),
                "--data",
                str(tiny_root / "train"),
                "--modality",
                "intensity",
            ]
        )
        == 2
    )
    assert "modality mismatch" in capsys.readouterr().err


def test_val_splits_select_the_epoch_and_a_missing_one_is_named(tiny_root: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = TrainConfig(
        modality="events", size="tiny", epochs=2, batch_size=4, lr=2e-2, warmup_steps=2, augment=NO_AUGMENT
    )
    out = tmp_path / "val.pt"
    record = train_detector(
        config, [tiny_root], out, progress=False, log=lambda line: None, val_splits=[tiny_root / "train"]
    )
    assert record["val"] == [str(tiny_root / "train")]
    assert all(0.0 <= entry["val_map50"] <= 1.0 for entry in record["history"])
    best = max(entry["val_map50"] for entry in record["history"])
    latest_best = [entry["epoch"] for entry in record["history"] if entry["val_map50"] == best][-1]
    assert load_detector(out).metadata["train"]["selected_epoch"] == latest_best
    missing = tmp_path / "nowhere" / "val"
    with pytest.raises(UserFacingError, match=r"nowhere/val: no annotations.json \(validation split"):
        train_detector(config, [tiny_root], tmp_path / "x.pt", progress=False, val_splits=[missing])


def test_average_is_the_mean_of_fine_tunes_and_refuses_other_architectures(
    tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path, capsys
) -> None:
    """``streamdet average`` writes the element-wise mean of runs fine-tuned from one checkpoint (a
    model soup) that loads and detects like them; a checkpoint of another architecture is named."""
    torch.set_num_threads(1)
    quiet = {"progress": False, "log": lambda line: None}
    for seed in (1, 2):
        config = TrainConfig(
            modality="events",
            size="tiny",
            epochs=1,
            batch_size=4,
            lr=1e-3,
            warmup_steps=1,
            event_scale=3.0,
            seed=seed,
            augment=AugmentConfig(crop_size=None),
        )
        train_detector(config, [tiny_root], tmp_path / f"s{seed}.pt", init=overfit_checkpoint, **quiet)
    sources = [str(tmp_path / "s1.pt"), str(tmp_path / "s2.pt")]
    assert main(["average", *sources, "--out", str(tmp_path / "soup.pt")]) == 0
    soup = load_detector(tmp_path / "soup.pt")
    first, second = (load_detector(path).model.state_dict() for path in sources)
    differing = [name for name in first if not torch.equal(first[name], second[name])]
    assert differing, "the two seeds should give different weights"
    for name, tensor in soup.model.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (first[name] + second[name]) / 2)
    saved = torch.load(tmp_path / "soup.pt", weights_only=True)
    assert [entry["source"] for entry in saved["train"]["averaged_from"]] == sources
    score = evaluate_split(soup.detect, tiny_root / "train", soup.spec, progress=False)
    assert score["map50"] >= 0.8, score
    # a file from before a field existed (no "head_blocks", loose input fields) averages with a newer one
    older = torch.load(sources[0], weights_only=True)
    del older["config"]["head_blocks"]
    inputs = older.pop("contract")["input"]
    older.update(format="streamdet-ann/1", **{k: v for k, v in inputs.items() if k != "history_windows"})
    torch.save(older, tmp_path / "older.pt")
    assert main(["average", str(tmp_path / "older.pt"), sources[1], "--out", str(tmp_path / "soup2.pt")]) == 0

    other = TrainConfig(
        modality="events", size="tiny", epochs=1, batch_size=8, augment=NO_AUGMENT, quant_levels=4
    )
    train_detector(other, [tiny_root], tmp_path / "l4.pt", init=overfit_checkpoint, **quiet)
    capsys.readouterr()
    assert main(["average", sources[0], str(tmp_path / "l4.pt"), "--out", str(tmp_path / "bad.pt")]) == 2
    error = capsys.readouterr().err
    assert "l4.pt: config" in error and "differs" in error, error
    assert main(["average", sources[0], "--out", str(tmp_path / "one.pt")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists() and not (tmp_path / "one.pt").exists()


def test_average_carries_the_start_of_a_run_over_to_the_windows_the_run_added(
    tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path
) -> None:
    """A run that added ``--history-windows`` averages with the checkpoint it started from: that one is
    carried over as ``--init`` carries it (zero weight on the older windows: the same outputs), then
    averaged; the soup reads the run's windows."""
    torch.set_num_threads(1)
    config = TrainConfig(
        modality="events", size="tiny", epochs=1, batch_size=4, lr=1e-3, warmup_steps=1, event_scale=3.0,
        history_windows=1, augment=AugmentConfig(crop_size=None),
    )  # fmt: skip
    run = tmp_path / "h1.pt"
    train_detector(config, [tiny_root], run, init=overfit_checkpoint, progress=False, log=lambda line: None)
    assert main(["average", str(overfit_checkpoint), str(run), "--out", str(tmp_path / "soup.pt")]) == 0
    start, tuned, soup = (load_detector(path) for path in (overfit_checkpoint, run, tmp_path / "soup.pt"))
    assert (start.spec.history_windows, tuned.spec.history_windows, soup.spec.history_windows) == (0, 1, 1)
    carried = with_history_windows(read_checkpoint(overfit_checkpoint), 1, overfit_checkpoint)
    carried_model = model_from_checkpoint(carried, "carried").eval()
    x = torch.rand(2, 4, 64, 64)
    with torch.no_grad():
        for got, expected in zip(carried_model(x), start.model.eval()(x[:, :2]), strict=True):
            torch.testing.assert_close(got, expected)
    soup_weights, run_weights = soup.model.state_dict(), tuned.model.state_dict()
    for name, tensor in carried["state_dict"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(soup_weights[name], (tensor + run_weights[name]) / 2)
    with pytest.raises(ValueError, match="more than 0"):
        with_history_windows(read_checkpoint(run), 0, run)


def test_average_widens_the_start_of_a_run_with_the_copies_init_made(
    tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path
) -> None:
    """A run that widened ``--stage-channels`` averages with the checkpoint it started from: that one is
    widened as ``--init`` widened it (the surgery's fixed seed: the same copied channels and consumer
    shares), computing what it computed before, and the soup is the mean of the two."""
    torch.set_num_threads(1)
    config = TrainConfig(
        modality="events", size="tiny", epochs=1, batch_size=4, lr=1e-3, warmup_steps=1, event_scale=3.0,
        stage_channels=(8, 16, 24, 32), augment=AugmentConfig(crop_size=None),
    )  # fmt: skip
    run = tmp_path / "wide.pt"
    train_detector(config, [tiny_root], run, init=overfit_checkpoint, progress=False, log=lambda line: None)
    assert main(["average", str(overfit_checkpoint), str(run), "--out", str(tmp_path / "soup.pt")]) == 0
    start, soup = load_detector(overfit_checkpoint), load_detector(tmp_path / "soup.pt")
    assert soup.config.stage_channels == (8, 16, 24, 32)
    widened = with_stage_widths(read_checkpoint(overfit_checkpoint), (8, 16, 24, 32), overfit_checkpoint)
    widened_model = model_from_checkpoint(widened, "widened").eval()
    x = torch.rand(2, 2, 64, 64)
    with torch.no_grad():
        for got, expected in zip(widened_model(x), start.model.eval()(x), strict=True):
            torch.testing.assert_close(got, expected)
    soup_weights, run_weights = soup.model.state_dict(), load_detector(run).model.state_dict()
    for name, tensor in widened["state_dict"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(soup_weights[name], (tensor + run_weights[name]) / 2)
    with pytest.raises(UserFacingError, match="can only be widened"):
        with_stage_widths(read_checkpoint(run), (8, 8, 16, 16), run)


def test_relevel_keeps_the_weights_and_changes_only_the_quant_relu_levels(
    overfit_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """``streamdet relevel`` writes the same weights and clips read at other Quant-ReLU levels: the model
    computes what the source computes with its levels changed by hand, converts to burst neurons of that
    many spikes per step, and records where it came from; a bad level count and a model without
    Quant-ReLU are refused with the reason."""
    from streamdet.loading import load_snn
    from streamdet.model import QuantReLU, read_checkpoint

    out = tmp_path / "l16.pt"
    assert main(["relevel", str(overfit_checkpoint), "--quant-levels", "16", "--out", str(out)]) == 0
    assert "16 Quant-ReLU levels instead of" in capsys.readouterr().out
    source, relevelled = load_detector(overfit_checkpoint), load_detector(out)
    before = {m.levels for m in source.model.modules() if isinstance(m, QuantReLU)}
    assert before and 16 not in before
    assert {m.levels for m in relevelled.model.modules() if isinstance(m, QuantReLU)} == {16}
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(relevelled.model.state_dict()[name], tensor), name
    by_hand = load_detector(overfit_checkpoint)
    for module in by_hand.model.modules():
        if isinstance(module, QuantReLU):
            module.levels = 16
    inputs = torch.rand(2, relevelled.spec.channels, 64, 96) * 2
    with torch.no_grad():
        for ours, theirs in zip(relevelled.model(inputs), by_hand.model(inputs), strict=True):
            assert torch.equal(ours, theirs)
        plain = source.model(inputs)[0]
    assert not torch.equal(relevelled.model(inputs)[0].detach(), plain), "16 levels should change outputs"
    assert set(load_snn(out, burst=True).spikes_per_step.values()) == {16}
    record = torch.load(out, weights_only=True)["train"]["relevelled_from"]
    assert record["source"] == str(overfit_checkpoint) and record["quant_levels"] == before.pop()

    bad = ["relevel", str(overfit_checkpoint), "--quant-levels", "0", "--out", str(tmp_path / "x.pt")]
    assert main(bad) == 2
    assert "--quant-levels must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
    plain_relu = read_checkpoint(overfit_checkpoint)
    plain_relu["config"] = {**plain_relu["config"], "activation": "relu"}
    with pytest.raises(UserFacingError, match=r"relu.pt: activation 'relu' has no Quant-ReLU levels"):
        relevel_checkpoint(plain_relu, 8, "relu.pt")


def test_sensor_augmentations_thin_add_noise_and_hot_pixels() -> None:
    """Thinning keeps a binomial share of the events (never more), noise drawn with a power favours low
    rates, and hot pixels fire in one polarity at the same pixels in every window; the defaults leave
    all three off."""
    defaults = AugmentConfig()
    assert (defaults.thinning, defaults.hot_pixels, defaults.noise_power) == (0.0, 0.0, 1.0)
    generator = torch.Generator().manual_seed(0)
    raw = torch.poisson(torch.full((4, 40, 50), 3.0), generator=generator)
    thinned = thin_events(raw, 0.5, generator)
    assert torch.all(thinned <= raw)
    assert float(thinned.sum() / raw.sum()) == pytest.approx(0.5, abs=0.02)
    hot = add_hot_pixels(torch.zeros(4, 40, 50), 0.05, 20.0, generator)
    fired = hot > 0
    assert torch.equal(fired[0] | fired[1], fired[2] | fired[3]), "the same pixels in both windows"
    assert not torch.any(fired[0] & fired[1]), "one polarity per hot pixel"
    assert 0.02 < float((fired[0] | fired[1]).float().mean()) < 0.08
    assert float(hot[fired].mean()) == pytest.approx(20.0, rel=0.1)

    quiet = replace(NO_AUGMENT, noise_rate=1.0)
    squared = replace(quiet, noise_power=2.0)
    empty = torch.zeros(2, 30, 30)
    rates = [
        [
            float(make_augment("events", c)(empty, _target([], []), np.random.default_rng(i))[0].mean())
            for i in range(40)
        ]
        for c in (quiet, squared)
    ]
    assert np.mean(rates[1]) < 0.8 * np.mean(rates[0])
    with_all = replace(NO_AUGMENT, thinning=1.0, hot_pixels=0.01)
    out, _ = make_augment("events", with_all, window_us=100_000)(
        raw, _target([], []), np.random.default_rng(1)
    )
    assert out.shape == raw.shape and float(out.sum()) < float(raw.sum())


def _intensity_augment_digest(config: AugmentConfig) -> str:
    """Digest of ``config``'s intensity transform of one fixed two-window sample, seeds 0-3."""
    raw = torch.rand((2, 200, 300), generator=torch.Generator().manual_seed(7)) * 0.8
    target = _target([[10.0, 20.0, 40.0, 60.0]], [1])
    digest = hashlib.sha256()
    for seed in range(4):
        out, moved = make_augment("intensity", config)(raw, target, np.random.default_rng(seed))
        digest.update(np.round(out.numpy() * 2**20).astype(np.int64).tobytes())
        digest.update(moved["boxes"].numpy().tobytes())
    return digest.hexdigest()[:16]


def test_intensity_defaults_are_the_transform_before_the_look_augmentations() -> None:
    """Illumination and texture are off by default and then draw no random numbers: the default
    transform (and the shipped intensity recipe's) gives the digests that the transform gave before
    they existed (computed at efaea73, whose streamdet/train.py had neither)."""
    assert (AugmentConfig().illumination, AugmentConfig().texture) == (0.0, 0.0)
    assert _intensity_augment_digest(AugmentConfig()) == "36f714a46671c3d9"
    recipe = AugmentConfig(crop_size=None, spike_noise=0.2)
    assert _intensity_augment_digest(recipe) == "297196e472f50615"


def test_illumination_and_texture_change_the_rate_keep_the_boxes_and_follow_the_seed() -> None:
    """Each option changes the rate image within [0, 1] by a gain that is smooth (illumination: far
    smaller pixel-to-pixel steps than its spread) or finer (texture), leaves the boxes where they were,
    is the same for every window of the sample, and repeats for a seed."""
    raw = torch.full((2, 192, 256), 0.5)
    target = _target([[10.0, 20.0, 40.0, 60.0]], [1], [[100.0, 100.0, 120.0, 130.0]])
    plain = replace(NO_AUGMENT, brightness=(1.0, 1.0), spike_noise=0.0)
    unchanged, _ = make_augment("intensity", plain)(raw, target, np.random.default_rng(3))
    assert torch.equal(unchanged, raw)
    steps = {}
    for name in ("illumination", "texture"):
        augment = make_augment("intensity", replace(plain, **{name: 0.8}))
        outs = [augment(raw, target, np.random.default_rng(seed)) for seed in (3, 3, 4)]
        (out, moved), (again, _), (other, _) = outs
        assert out.shape == raw.shape and not torch.equal(out, raw)
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert torch.equal(out[0], out[1]), "one gain for every window"
        assert torch.equal(out, again) and not torch.equal(out, other)
        for key in ("boxes", "labels", "ignore_boxes"):
            assert torch.equal(moved[key], target[key])
        steps[name] = float((out[0, :, 1:] - out[0, :, :-1]).abs().mean() / out[0].std())
    assert steps["illumination"] < 0.05 and steps["texture"] > 2 * steps["illumination"], steps
    field = smooth_random_field((50, 70), (3, 4), torch.Generator().manual_seed(0))
    assert field.shape == (50, 70) and float(field.abs().max()) <= 1.0


def test_bad_augmentation_settings_are_named(tiny_root: Path, tmp_path: Path, capsys) -> None:
    settings = (("--aug-thinning", "1.5"), ("--aug-noise", "-0.1"), ("--aug-hot-pixels", "-1"))
    intensity = (("--aug-spike-noise", "-0.2"), ("--aug-illumination", "-0.3"), ("--aug-texture", "-0.4"))
    for flag, value in (*settings, *intensity):
        command = ["train", "--modality", "events", "--data", str(tiny_root), "--out", str(tmp_path / "x.pt")]
        assert main([*command, "--epochs", "1", flag, value]) == 2
        error = capsys.readouterr().err
        assert "augmentation" in error and value.lstrip("-") in error, error
    assert not (tmp_path / "x.pt").exists()


def test_distillation_loss_is_zero_for_the_teacher_and_counts_only_masked_samples() -> None:
    """Zero when the student equals the teacher, positive otherwise; a sample outside the mask adds
    nothing; background logits (both networks below 0.05) are free, and the box term skips anchors the
    teacher calls background (highest probability below 0.05)."""
    generator = torch.Generator().manual_seed(0)
    teacher_cls = torch.randn(3, 50, 4, generator=generator)
    teacher_box = torch.randn(3, 50, 4, generator=generator)
    everyone = torch.tensor([True, True, True])
    assert float(distillation_loss(teacher_cls, teacher_box, teacher_cls, teacher_box, everyone)) == 0.0
    quiet = torch.full((3, 50, 4), -10.0)  # sigmoid ~ 5e-5: background in both, whatever the logit
    assert float(distillation_loss(quiet - 3.0, teacher_box, quiet, teacher_box, everyone)) == 0.0
    woken = (quiet - 3.0).clone()
    woken[0, 0, 1] = 0.0  # a new detection of the student's: counted
    assert float(distillation_loss(woken, teacher_box, quiet, teacher_box, everyone)) > 0.0
    student_cls = teacher_cls + 0.1 * torch.randn(3, 50, 4, generator=generator)
    assert float(distillation_loss(student_cls, teacher_box, teacher_cls, teacher_box, everyone)) > 0.0
    moved = student_cls.clone()
    moved[1] += torch.randn(50, 4, generator=generator)  # sample 1 differs much more
    first_only = torch.tensor([True, False, False])
    assert float(distillation_loss(moved, teacher_box, teacher_cls, teacher_box, first_only)) == float(
        distillation_loss(student_cls, teacher_box, teacher_cls, teacher_box, first_only)
    )
    assert float(distillation_loss(moved, teacher_box, teacher_cls, teacher_box, ~first_only)) > float(
        distillation_loss(student_cls, teacher_box, teacher_cls, teacher_box, ~first_only)
    )
    nobody = torch.zeros(3, dtype=torch.bool)
    assert float(distillation_loss(moved, teacher_box, teacher_cls, teacher_box, nobody)) == 0.0
    background = torch.full((1, 50, 4), -10.0)  # sigmoid ~ 5e-5 everywhere: no box is distilled
    one = torch.tensor([True])
    boxes_moved = teacher_box[:1] + 1.0
    assert float(distillation_loss(background, boxes_moved, background, teacher_box[:1], one)) == 0.0
    confident = background.clone()
    confident[0, :10, 2] = 0.0  # probability 0.5 on 10 anchors: their deltas, each off by 1, count
    confident_term = distillation_loss(confident, boxes_moved, confident, teacher_box[:1], one)
    assert float(confident_term) == pytest.approx(1.0)
    student = student_cls.clone().requires_grad_(True)
    distillation_loss(student, teacher_box, teacher_cls, teacher_box, first_only).backward()
    assert student.grad[0].abs().sum() > 0 and student.grad[1:].abs().sum() == 0


def _student_and_teacher_distance(student: Path, teacher: Path, split: Path) -> float:
    """Mean :func:`distillation_loss` of ``student``'s outputs from ``teacher``'s over ``split`` (eval)."""
    student_model, teacher_model = (load_detector(path) for path in (student, teacher))
    samples = DetectionSamples.for_model([split], teacher_model.spec)
    inputs = pad_input(torch.stack([samples[i][0] for i in range(len(samples))]))
    with torch.no_grad():
        outputs = [bundle.model.eval()(inputs) for bundle in (student_model, teacher_model)]
    everyone = torch.ones(len(samples), dtype=torch.bool)
    return float(distillation_loss(*outputs[0], *outputs[1], everyone))


def test_distillation_trains_only_on_old_scenes_and_keeps_the_teacher(
    tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path, capsys
) -> None:
    """A fine-tune on an old root (distilled) and a new one (not): the history carries the epoch's mean
    distillation term; with a frozen student (lr 1e-12, batches of one) the terms of the two roots add up, so
    a sample of the non-distilled root adds nothing; a huge weight keeps the student's outputs on the old
    scene closer to the teacher's than the same fine-tune without it; --resume reloads the teacher."""
    torch.set_num_threads(1)
    new_root = tmp_path / "new"
    write_tiny_split(new_root, "train", images=4, seed=7)
    old, new = str(tiny_root), str(new_root)
    quiet = {"progress": False, "log": lambda line: None}
    frozen = TrainConfig(
        modality="events",
        size="tiny",
        epochs=1,
        batch_size=1,
        lr=1e-12,
        event_scale=3.0,
        augment=NO_AUGMENT,
        distill_from=str(overfit_checkpoint),
        distill_data=(old,),
    )
    terms = {}
    for name, roots in (("old", (old,)), ("new", (new,)), ("both", (old, new))):
        record = train_detector(
            replace(frozen, distill_data=roots), [old, new], tmp_path / f"{name}.pt", **quiet
        )
        terms[name] = record["history"][0]["distill"]
        assert record["recipe"]["distill_data"] == roots
    assert terms["old"] > 0 and terms["new"] > 0
    assert terms["old"] + terms["new"] == pytest.approx(terms["both"], rel=1e-4)

    tune = replace(frozen, epochs=3, batch_size=4, lr=2e-2, warmup_steps=1)
    plain = replace(tune, distill_from=None, distill_data=())
    train_detector(plain, [old, new], tmp_path / "plain.pt", init=overfit_checkpoint, **quiet)
    record = train_detector(
        replace(tune, distill_weight=1000.0),
        [old, new],
        tmp_path / "kept.pt",
        init=overfit_checkpoint,
        **quiet,
    )
    assert all(entry["distill"] > 0 for entry in record["history"])
    assert "distill" not in load_detector(tmp_path / "plain.pt").metadata["train"]["history"][0]
    kept, drifted = (
        _student_and_teacher_distance(tmp_path / name, overfit_checkpoint, tiny_root / "train")
        for name in ("kept.pt", "plain.pt")
    )
    assert kept < 0.5 * drifted, (kept, drifted)

    command = ["train", "--init", str(overfit_checkpoint), "--data", old, new, "--crop", "none"]
    command += ["--batch-size", "4", "--lr", "1e-3", "--out", str(tmp_path / "cli.pt")]
    distill = ["--distill-from", str(overfit_checkpoint), "--distill-data", old, "--distill-weight", "5"]
    assert main([*command, "--epochs", "1", *distill]) == 0
    assert main([*command, "--epochs", "2", "--resume"]) == 0
    train = load_detector(tmp_path / "cli.pt").metadata["train"]
    assert train["recipe"]["distill_from"] == str(overfit_checkpoint)
    assert train["recipe"]["distill_weight"] == 5.0 and list(train["recipe"]["distill_data"]) == [old]
    assert [("distill" in entry) for entry in train["history"]] == [True, True]
    assert "distill=" in capsys.readouterr().out


def test_distillation_errors_are_named(
    tiny_root: Path, tmp_path: Path, overfit_checkpoint: Path, capsys
) -> None:
    """A teacher without the roots to distil, roots not among --data, a weight without a teacher, a bad
    weight, and a teacher whose anchors or input differ from the student's are refused by name."""
    torch.set_num_threads(1)
    command = ["train", "--init", str(overfit_checkpoint), "--data", str(tiny_root), "--crop", "none"]
    command += ["--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "x.pt")]
    teacher = ["--distill-from", str(overfit_checkpoint)]
    cases = [
        (teacher, "needs distill_data (--distill-data"),
        (["--distill-data", str(tiny_root)], "needs distill_from (--distill-from"),
        (["--distill-weight", "2"], "--distill-weight needs --distill-from"),
        ([*teacher, "--distill-data", str(tiny_root), "--distill-weight", "-1"], "distill_weight must be"),
        ([*teacher, "--distill-data", str(tmp_path / "elsewhere")], "elsewhere: not among the --data roots"),
        (
            [*teacher, "--distill-data", str(tiny_root), "--anchor-ratios", "0.5,1,2,3"],
            "anchors_per_location 9 (student: 12)",
        ),
        ([*teacher, "--distill-data", str(tiny_root), "--history-windows", "1"], "history_windows 0"),
    ]
    for options, message in cases:
        assert main([*command, *options]) == 2, options
        error = capsys.readouterr().err
        assert message in error, (options, error)
    assert not (tmp_path / "x.pt").exists()
