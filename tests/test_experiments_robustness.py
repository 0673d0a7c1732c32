"""experiments/robustness.py: events perturbed as another sensor would record them, scored like
`streamdet eval`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from experiments import decode_sweep, robustness, selection_score, shifted_inputs
from streamdet.evaluate import evaluate_split
from streamdet.model import load_detector

pytestmark = pytest.mark.usefixtures("single_thread")


def test_perturbations_parse_and_scale_counts_in_whole_events() -> None:
    assert robustness.parse_perturbation("noise:1,2.5") == ("noise", [1.0, 2.5])
    for text in ("blur:1", "noise", "scale:x", "hot:-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            robustness.parse_perturbation(text)
    generator = torch.Generator().manual_seed(0)
    raw = torch.poisson(torch.full((2, 50, 50), 4.0), generator=generator)
    assert torch.equal(robustness.scale_counts(raw, 1.0, generator), raw)
    assert torch.equal(robustness.scale_counts(raw, 3.0, generator), 3 * raw)
    half = robustness.scale_counts(raw, 0.5, generator)
    assert torch.equal(half, half.round()) and torch.all(half <= raw)
    assert float(half.sum() / raw.sum()) == pytest.approx(0.5, abs=0.02)
    noisy = robustness.add_noise(torch.zeros(2, 100, 100), 2.0, 100_000, generator)  # 0.2 per pixel, window
    assert float(noisy.mean()) == pytest.approx(0.2, rel=0.05)


def test_sweep_scores_the_unperturbed_split_as_eval_does_and_noise_costs(
    tiny_root: Path, overfit_checkpoint: Path, tmp_path: Path
) -> None:
    split, checkpoint = tiny_root / "train", overfit_checkpoint
    report, plot = tmp_path / "robust.json", tmp_path / "robust.png"
    argv = ["--models", str(checkpoint), "--data", str(split), "--perturb", "noise:200", "hot:0.01"]
    assert robustness.main([*argv, "--json", str(report), "--plot", str(plot)]) == 0
    rows = json.loads(report.read_text())["rows"]
    assert [(row["perturbation"], row["level"]) for row in rows] == [
        ("none", 0.0),
        ("noise", 200.0),
        ("hot", 0.01),
    ]
    bundle = load_detector(checkpoint)
    with torch.no_grad():
        plain = evaluate_split(bundle.detect, split, bundle.spec, progress=False)
    assert rows[0]["map50"] == round(plain["map50"], 4) and rows[0]["map50"] >= 0.8
    assert rows[1]["map50"] < rows[0]["map50"] - 0.2, "20 noise events per pixel drown a tiny model"
    assert plot.stat().st_size > 10_000


def test_spike_rates_are_perturbed_as_a_spike_camera_would_be() -> None:
    generator = torch.Generator().manual_seed(0)
    rate = torch.full((1, 60, 80), 0.2)
    assert torch.allclose(robustness.perturb_rate(rate, "scale", 2.0, generator), rate * 2)
    noisy = robustness.perturb_rate(rate, "noise", 0.1, generator)
    assert float((noisy - rate).mean()) == pytest.approx(0.1, abs=0.01) and torch.all(noisy >= rate)
    hot = robustness.perturb_rate(rate, "hot", 0.05, generator)
    assert 0.02 < float((hot == 1.0).float().mean()) < 0.08 and torch.equal(hot[hot != 1.0], rate[hot != 1.0])


def test_shifted_inputs_pool_detections_in_sensor_coordinates(
    tiny_root: Path, overfit_checkpoint: Path, tmp_path: Path
) -> None:
    """experiments/shifted_inputs.py: no shift is `streamdet eval`; a shifted input's boxes come back to the
    sensor's coordinates, where the unshifted model put them; bad shifts are refused."""

    from streamdet.samples import DetectionSamples

    split, checkpoint = tiny_root / "train", overfit_checkpoint
    loaded = load_detector(checkpoint)  # without voting: voting averages clipped boxes
    bundle = dataclasses.replace(loaded, decoding=dataclasses.replace(loaded.decoding, vote_iou=None))
    inputs = torch.stack([DetectionSamples([split], "events", 3.0)[i][0] for i in range(4)])
    plain = bundle.detect(inputs)
    for got, want in zip(shifted_inputs.pooled_predict(bundle, [(0, 0)])(inputs), plain, strict=True):
        assert torch.allclose(got, want, atol=1e-4)  # the same boxes, voted in another order
    shifted = torch.zeros_like(inputs)
    shifted[..., 4:, 8:] = inputs[..., :-4, :-8]  # 8 px right, 4 px down
    pooled = shifted_inputs.pooled_predict(bundle, [(8, 4)])(inputs)
    for got, want in zip(pooled, bundle.detect(shifted), strict=True):
        assert torch.equal(got[0, 4:], want[0, 4:])  # same score and class
        assert torch.allclose(got[0, :4] + torch.tensor([8.0, 4.0, 8.0, 4.0]), want[0, :4], atol=1e-4)
    report = tmp_path / "shifted.json"
    assert (
        shifted_inputs.main(
            [
                "--model",
                str(checkpoint),
                "--data",
                str(split),
                "--shifts",
                "0,0",
                "8,8",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    rows = json.loads(report.read_text())["rows"]
    reference = evaluate_split(bundle.detect, split, bundle.spec, progress=False)
    assert [row["shifts"] for row in rows] == [[[0, 0]], [[0, 0], [8, 8]]]
    assert rows[0]["map50"] == reference["map50"] and rows[1]["map50"] >= 0.8 * reference["map50"]
    for text in ("4", "4,x", "-1,0", "32,0"):
        with pytest.raises(argparse.ArgumentTypeError):
            shifted_inputs.parse_shift(text)


def test_selection_score_is_the_mean_of_clean_and_perturbed_means(tmp_path: Path) -> None:
    window = tmp_path / "window.json"
    window.write_text(
        json.dumps(
            {
                "rows": [
                    {"model": "m", "data": "a/val", "map50": 0.8},
                    {"model": "m", "data": "b/val", "map50": 0.6},
                    {"model": "only-clean", "data": "a/val", "map50": 0.9},
                ]
            }
        )
    )
    robustness = tmp_path / "robustness.json"
    robustness.write_text(
        json.dumps(
            {
                "rows": [
                    {"model": "m", "perturbation": "none", "level": 0.0, "map50": 0.8},
                    {"model": "m", "perturbation": "scale", "level": 0.5, "map50": 0.5},
                    {"model": "m", "perturbation": "noise", "level": 2.0, "map50": 0.3},
                ]
            }
        )
    )
    out = tmp_path / "scores.json"
    argv = ["--window", str(window), "--robustness", str(robustness), "--json", str(out)]
    assert selection_score.main(argv) == 0
    (record,) = json.loads(out.read_text())
    assert record["model"] == "m" and record["perturbed"] == {"scale:0.5": 0.5, "noise:2": 0.3}
    assert (record["clean_mean"], record["perturbed_mean"], record["score"]) == (0.7, 0.4, 0.55)
    with pytest.raises(SystemExit, match="not an experiment JSON"):
        selection_score.main(["--window", str(tmp_path / "missing.json"), "--robustness", str(robustness)])


def test_selection_score_takes_clean_figures_from_robustness_none_rows(tmp_path: Path) -> None:
    robustness = tmp_path / "robustness.json"
    rows = [
        {"model": "m", "data": "a/val", "perturbation": "none", "level": 0.0, "map50": 0.9},
        {"model": "m", "data": "a/val", "perturbation": "noise", "level": 0.1, "map50": 0.5},
        {"model": "m", "data": "b/val", "perturbation": "none", "level": 0.0, "map50": 0.7},
        {"model": "m", "data": "b/val", "perturbation": "noise", "level": 0.1, "map50": 0.3},
        {"model": "no-perturbation", "data": "a/val", "perturbation": "none", "level": 0.0, "map50": 1.0},
    ]
    robustness.write_text(json.dumps({"rows": rows}))
    out = tmp_path / "scores.json"
    assert selection_score.main(["--robustness", str(robustness), "--json", str(out)]) == 0
    (record,) = json.loads(out.read_text())
    assert record["clean"] == {"a/val": 0.9, "b/val": 0.7}
    assert record["perturbed"] == {"a/val noise:0.1": 0.5, "b/val noise:0.1": 0.3}
    assert (record["clean_mean"], record["perturbed_mean"], record["score"]) == (0.8, 0.4, 0.6)


def test_decode_sweep_baseline_is_eval_and_settings_are_scored(
    tiny_root: Path, overfit_checkpoint: Path, tmp_path: Path
) -> None:
    split, checkpoint = tiny_root / "train", overfit_checkpoint
    assert decode_sweep.parse_vote("none") is None and decode_sweep.parse_vote("0.6") == 0.6
    report = tmp_path / "decode.json"
    argv = ["--model", str(checkpoint), "--data", str(split), "--perturb-data", str(split)]
    argv += ["--perturb", "noise:200", "--score-thresh", "0.05", "0.01", "--nms", "0.4"]
    argv += ["--vote", "none", "0.5"]
    assert decode_sweep.main([*argv, "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert len(result["rows"]) == 2 * 4 and len(result["scores"]) == 4
    bundle = load_detector(checkpoint)
    with torch.no_grad():
        plain = evaluate_split(bundle.detect, split, bundle.spec, progress=False)
    (baseline,) = [
        row
        for row in result["rows"]
        if (row["score_thresh"], row["vote_iou"], row["perturbation"]) == (0.05, 0.5, "none")  # the default
    ]
    assert baseline["map50"] == round(plain["map50"], 4) and baseline["map"] == round(plain["map"], 4)
    for record in result["scores"]:
        assert record["score"] == pytest.approx(
            (record["clean_mean"] + record["perturbed_mean"]) / 2, abs=1e-4
        )
        assert record["perturbed_mean"] < record["clean_mean"], "20 noise events per pixel cost"
    assert [r["score"] for r in result["scores"]] == sorted(r["score"] for r in result["scores"])
