"""``streamdet convert``: convert a trained detector into a spiking network saved as one file."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert``."""
    from streamdet.cli.options import add_conversion_arguments

    convert = subparsers.add_parser(
        "convert",
        help="convert a trained detector (ANN) into a spiking network (SNN)",
        description="Parse the ANN with torch.fx, fuse BN, calibrate activation ranges on --data (or take "
        "the learned Quant-ReLU clips), normalise weights (eq. 4 of Spiking-RetinaNet), replace activations "
        "by integrate-and-fire neurons, and save the SNN as one file that `streamdet.loading.load_snn` "
        "reads.",
    )
    convert.add_argument(
        "--model", required=True, help="events-default, intensity-default or a checkpoint path"
    )
    convert.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="split (or dataset root holding one split) whose input windows calibrate the activation "
        "ranges (not needed when every activation is a Quant-ReLU and --normalisation is auto or quant) and "
        "the biases (--bias-calibration-steps)",
    )
    convert.add_argument("--out", required=True, metavar="SNN", help="file to write (.pt)")
    convert.add_argument(
        "--burst",
        choices=("on", "off"),
        default="off",
        help="burst IF neurons, up to N spikes per step with N = each Quant-ReLU's levels (on: one step "
        "reproduces a Quant-ReLU network), or plain IF neurons (off, the default)",
    )
    add_conversion_arguments(convert)
    convert.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    """``streamdet convert``."""
    from pathlib import Path

    from streamdet.cli.options import (
        bias_calibration_config_from_args,
        conversion_config_from_args,
        resolve_split,
    )
    from streamdet.convert import convert_detector
    from streamdet.errors import UserFacingError
    from streamdet.fidelity import bias_calibrate, calibration_inputs
    from streamdet.loading import save_snn
    from streamdet.model import load_detector

    config = conversion_config_from_args(args)
    bias_calibration = bias_calibration_config_from_args(args)
    if bias_calibration.steps and args.data is None:
        raise UserFacingError("--bias-calibration-steps needs --data (the split whose windows calibrate)")
    split_dir = None if args.data is None else resolve_split(args.data)
    bundle = load_detector(args.model)
    data = None if split_dir is None else calibration_inputs(split_dir, bundle, config.calibration_windows)
    snn = convert_detector(bundle, data, config)
    bias_calibrate(snn, bundle, bias_calibration, split_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_snn(snn, out)
    settings = ", ".join(f"{k}={v}" for k, v in snn.conversion.items() if k != "bias_calibration")
    print(f"wrote {out} ({len(snn.populations)} IF populations; {settings})")
    if "bias_calibration" in snn.conversion:
        calibration = snn.conversion["bias_calibration"]
        errors = calibration["mean_abs_error"].values()
        print(
            f"bias calibration at T={calibration['steps']} on {calibration['windows']} windows of "
            f"{calibration['data']}: mean rate error before correction {min(errors):.4f}-{max(errors):.4f} "
            "thresholds per population"
        )
    return 0
