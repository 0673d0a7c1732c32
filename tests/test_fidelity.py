"""fidelity as a library: ``evaluate_snn`` takes typed configs (no argparse), gives what ``streamdet eval
--snn`` writes and prints, reuses a conversion, and its configs refuse bad settings by name."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from streamdet.cli import main
from streamdet.contract import Geometry
from streamdet.convert import ConversionConfig
from streamdet.errors import UserFacingError
from streamdet.fidelity import BiasCalibrationConfig, FidelityConfig, SimulationConfig, evaluate_snn
from streamdet.model import load_detector

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = FidelityConfig(
    conversion=ConversionConfig(calibration_windows=4), simulation=SimulationConfig(steps=(4, 8)), limit=3
)


def test_evaluate_snn_without_argparse_matches_the_cli(
    overfit_checkpoint: Path, tiny_root: Path, tmp_path: Path, capsys
) -> None:
    bundle = load_detector(overfit_checkpoint)
    result, snn = evaluate_snn(bundle, tiny_root / "train", TINY)
    assert set(result) == {"4", "8"}
    for steps, score in result.items():
        assert 0.0 <= score["map50"] <= 1.0 and 0.0 <= score["map"] <= score["map50"]
        skipped = score["transient_skipped"]
        assert skipped["skipped_steps"] == math.floor(0.25 * int(steps)) and 0.0 <= skipped["map50"] <= 1.0
    again, same = evaluate_snn(bundle, tiny_root / "train", TINY, snn=snn)
    assert again == result and same is snn  # a conversion handed in is scored, not converted again
    only_skipped, _ = evaluate_snn(bundle, tiny_root / "train", replace(TINY, skip_transient="on"), snn)
    for steps, score in only_skipped.items():  # the scores after the transient, without a nested copy
        assert {key: score[key] for key in score if key != "cost"} == result[steps]["transient_skipped"]

    # the CLI builds the same config from its options; --data may name the dataset root of one split
    out = tmp_path / "snn.json"
    options = ["--snn", "--steps", "8,4", "--calibration-windows", "4", "--limit", "3", "--json", str(out)]
    capsys.readouterr()
    assert main(["eval", "--model", str(overfit_checkpoint), "--data", str(tiny_root), *options]) == 0
    summary = json.loads(out.read_text())
    assert summary["data"] == str(tiny_root / "train") and summary["snn"] == result
    printed = capsys.readouterr().out
    for steps, score in result.items():
        skipped = score["transient_skipped"]
        assert (
            f"  SNN T={steps}: mAP@0.5={score['map50']:.3f}  mAP@[.5:.95]={score['map']:.3f}  "
            f"(first {skipped['skipped_steps']} steps skipped: mAP@0.5={skipped['map50']:.3f}"
        ) in printed


def test_snn_scores_a_split_of_another_sensor_through_the_geometry(
    overfit_checkpoint: Path, tiny_root: Path, tmp_path: Path
) -> None:
    """``streamdet eval --snn --geometry``: the same scene on a sensor twice the model's size, pooled to
    the model's input (``scale``), scores exactly what the scene at the model's size scores (the inputs
    are equal and the boxes come back in the sensor's pixels); run at the sensor's own size (``native``)
    it decodes with that size's anchors. Both used to fail: the SNN read the split as it is and decoded
    at the model's size."""
    from test_evaluate import write_tiny_split

    bundle = load_detector(overfit_checkpoint)
    big = write_tiny_split(tmp_path, "train", images=8, seed=0, upscale=2)

    def scores(result: dict) -> dict:
        return {steps: {k: v for k, v in entry.items() if k != "cost"} for steps, entry in result.items()}

    small, snn = evaluate_snn(bundle, tiny_root / "train", TINY)
    scaled, _ = evaluate_snn(bundle, big, TINY, snn=snn, geometry=Geometry("scale"))
    assert scores(scaled) == scores(small) and small["8"]["map50"] > 0.0
    native, _ = evaluate_snn(bundle, big, TINY, snn=snn, geometry=Geometry("native"))
    assert set(native) == {"4", "8"} and all(0.0 <= entry["map50"] <= 1.0 for entry in native.values())


def test_fidelity_configs_name_the_bad_setting() -> None:
    with pytest.raises(UserFacingError, match="skip_transient must be one of off, on, both, got 'sometimes'"):
        FidelityConfig(skip_transient="sometimes")
    with pytest.raises(
        UserFacingError, match=r"SimulationConfig.steps must be positive integers, got \(0, 4\)"
    ):
        SimulationConfig(steps=(0, 4))
    with pytest.raises(UserFacingError, match=r"skip_fraction must be in \[0, 1\), got 1.0"):
        SimulationConfig(skip_fraction=1.0)
    with pytest.raises(UserFacingError, match="chunk must be >= 1, got 0"):
        SimulationConfig(chunk=0)
    with pytest.raises(UserFacingError, match="--bias-calibration-windows must be >= 1, got 0"):
        BiasCalibrationConfig(steps=4, windows=0)
    assert BiasCalibrationConfig(steps=0, windows=0).steps == 0  # off: the window count is not used


def test_bias_calibration_needs_a_calibration_split(overfit_checkpoint: Path, tiny_root: Path) -> None:
    config = replace(TINY, bias_calibration=BiasCalibrationConfig(steps=4, windows=2))
    with pytest.raises(UserFacingError, match="needs a split to calibrate on"):
        evaluate_snn(load_detector(overfit_checkpoint), tiny_root / "train", config)
    calibrated = replace(config, calibration_data=tiny_root / "train")
    _, snn = evaluate_snn(load_detector(overfit_checkpoint), tiny_root / "train", calibrated)
    assert (
        snn.conversion["bias_calibration"]["steps"] == 4
        and snn.conversion["bias_calibration"]["windows"] == 2
    )
