"""Peers side by side: streamdet's converter vs SpikingJelly's ann2snn and sinabs' from_model, on the same
trained ANN, data and T list, in one run.

Usage::

    .venv/bin/python bench/peers.py --model events-default --data data/traffic/test \\
        --steps 4,8,16,32 --limit 8 --json peers.json

- streamdet: ``convert_detector`` with the default ``ConversionConfig`` (Quant-ReLU clips, channel-wise
  percentiles on adds, residual fix).
- SpikingJelly 2.0: ``ann2snn.Converter(RateCodingRecipe(calibration, mode="99.99%", channel_wise=True,
  half_threshold=True))``, stepped with ``functional.reset_net`` per window.
- sinabs: ``sinabs.utils.normalize_weights`` (99.99th percentile) then ``sinabs.from_torch.from_model``
  (IAF neurons, its default MultiSpike and reset by subtraction).

Each peer is first given the ANN as it is (with its Quant-ReLU activations). Where a peer cannot convert
it, the reason is recorded, and the peer is run again on the same ANN with each Quant-ReLU replaced by
``nn.ReLU`` (the "relu variant", whose own ANN mAP is reported too). Every SNN gets the ANN input as a
constant current for T steps with a fresh state per window; outputs are averaged over all T steps and
decoded by the same ``DetectorBundle.decode``. The peers are optional extras: they are imported here,
never by the package or the tests.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from streamdet.cli.options import parse_steps
from streamdet.convert import ConversionConfig, is_quant_relu
from streamdet.evaluate import coco_from_dict, coco_metrics, evaluate_split
from streamdet.fidelity import SimulationConfig, convert_for_evaluation, score_snn
from streamdet.model import load_detector
from streamdet.samples import DetectionSamples, split_inputs

Stepper = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def relu_variant(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every Quant-ReLU replaced by ``nn.ReLU``."""
    variant = copy.deepcopy(model)
    for name, module in list(variant.named_modules()):
        if is_quant_relu(module):
            parent_name, _, child = name.rpartition(".")
            setattr(variant.get_submodule(parent_name) if parent_name else variant, child, nn.ReLU())
    return variant.eval()


def count_quant_relu(model: nn.Module) -> int:
    return sum(1 for m in model.modules() if is_quant_relu(m))


def spikingjelly_stepper(model: nn.Module, calibration: list[torch.Tensor]) -> tuple[Stepper, Callable, dict]:
    """SpikingJelly 2.0 ann2snn conversion; returns (one step, reset, facts about the result)."""
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import Converter, RateCodingRecipe

    recipe = RateCodingRecipe(dataloader=calibration, mode="99.99%", channel_wise=True, half_threshold=True)
    snn = Converter(recipe=recipe, device="cpu").convert(copy.deepcopy(model)).eval()
    facts = {
        "spiking_neuron_modules": sum(1 for m in snn.modules() if hasattr(m, "v_threshold")),
        "quant_relu_left_unconverted": count_quant_relu(snn),
    }

    def step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return snn(x)

    return step, lambda: functional.reset_net(snn), facts


def sinabs_stepper(model: nn.Module, calibration: list[torch.Tensor]) -> tuple[Stepper, Callable, dict]:
    """sinabs: normalize_weights on the model's (conv, activation) pairs, then from_model."""
    import sinabs
    from sinabs.from_torch import from_model
    from sinabs.utils import normalize_weights

    ann = copy.deepcopy(model).eval()
    named = dict(ann.named_modules())
    activations = [n for n, m in named.items() if isinstance(m, nn.ReLU)]
    parameters = [n.rsplit(".", 1)[0] + ".0" for n in activations]
    facts = {"relu_layers": len(activations), "quant_relu_left_unconverted": count_quant_relu(ann)}
    sample = torch.cat(calibration)[:8]
    if not activations:
        facts["normalize_weights"] = "nothing to normalise: no nn.ReLU layers"
    try:
        if activations:
            normalize_weights(ann, sample, activations, parameters, percentile=99.99)
            facts["normalize_weights"] = "applied"
    except (KeyError, AttributeError, ValueError, RuntimeError) as error:
        facts["normalize_weights"] = (
            f"failed ({type(error).__name__}: {error}); it looks layers up among the model's direct "
            "children (named_children), and this model's conv/ReLU layers are nested; continuing without it"
        )
    network = from_model(ann, batch_size=calibration[0].shape[0]).eval()
    facts["iaf_layers"] = sum(1 for m in network.modules() if isinstance(m, sinabs.layers.IAFSqueeze))
    if facts["quant_relu_left_unconverted"]:
        facts["not_converted"] = (
            "from_model only replaces nn.ReLU / NeuromorphicReLU; the Quant-ReLU activations stay analog, "
            "so the result is the ANN, not an SNN"
        )

    def step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return network(x)

    return step, network.reset_states, facts


def score_stepper(
    make: Callable[[], tuple[Stepper, Callable, dict]],
    split_dir: str,
    bundle,
    steps: tuple[int, ...],
    limit: int,
    batch_size: int,
) -> dict:
    """mAP at each T of a peer SNN (one simulation to max(T) per batch, prefix means)."""
    stepper, reset, facts = make()
    detections: dict[int, dict[int, torch.Tensor]] = {t: {} for t in steps}
    ids_seen = []
    start = time.process_time()
    simulated = 0
    for ids, inputs in split_inputs(split_dir, bundle, limit, batch_size):
        if inputs.shape[0] != batch_size:
            break
        reset()
        cls_sum = box_sum = None
        for t in range(1, max(steps) + 1):
            cls, box = stepper(inputs)
            cls_sum = cls if cls_sum is None else cls_sum + cls
            box_sum = box if box_sum is None else box_sum + box
            if t in detections:
                for image_id, rows in zip(ids, bundle.decode(cls_sum / t, box_sum / t), strict=True):
                    detections[t][image_id] = rows
        simulated += max(steps) * inputs.shape[0]
        ids_seen += ids
    samples = DetectionSamples.for_model([split_dir], bundle.spec)
    coco_gt = coco_from_dict(samples.splits[0].coco, ids_seen)
    scores = {
        str(t): {k: coco_metrics(coco_gt, d)[k] for k in ("map50", "map")} for t, d in detections.items()
    }
    return {
        **facts,
        "images": len(ids_seen),
        "steps_per_cpu_s": simulated / (time.process_time() - start),
        "snn": scores,
    }


def run_peer(label: str, factory, model: nn.Module, calibration, args, bundle) -> dict:
    """A peer on the ANN as it is and, when the ANN has Quant-ReLU activations, on its ReLU variant."""
    result: dict = {}
    variants = {"as_is": model}
    if count_quant_relu(model):
        variants["relu_variant"] = relu_variant(model)
    for name, ann in variants.items():
        variant_bundle = copy.copy(bundle)
        object.__setattr__(variant_bundle, "model", ann)
        try:
            result[name] = score_stepper(
                lambda ann=ann: factory(ann, calibration),
                args.data,
                variant_bundle,
                args.steps,
                args.limit,
                4,
            )
        except Exception as error:  # a peer's failure is a result: record which and why
            result[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
        print(f"{label} {name}: {json.dumps(result[name])[:400]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=parse_steps, default=(4, 8, 16, 32, 64))
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--calibration-windows", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_detector(args.model)
    calibration = [inputs for _, inputs in split_inputs(args.data, bundle, args.calibration_windows, 4)]
    report: dict = {"model": args.model, "data": args.data, "steps": list(args.steps), "limit": args.limit}
    ann = evaluate_split(
        bundle.detect,
        args.data,
        bundle.spec,
        limit=args.limit,
    )
    relu_bundle = copy.copy(bundle)
    object.__setattr__(relu_bundle, "model", relu_variant(bundle.model))
    relu_ann = evaluate_split(
        relu_bundle.detect,
        args.data,
        bundle.spec,
        limit=args.limit,
    )
    report["ann"] = {"map50": ann["map50"], "map": ann["map"]}
    report["ann_relu_variant"] = {"map50": relu_ann["map50"], "map": relu_ann["map"]}
    print(f"ANN {report['ann']}  ReLU variant {report['ann_relu_variant']}", flush=True)

    ours = convert_for_evaluation(
        bundle, ConversionConfig(calibration_windows=args.calibration_windows), args.data
    )
    start = time.process_time()
    scores = score_snn(ours, args.data, bundle, SimulationConfig(steps=args.steps), args.limit)
    report["streamdet"] = {
        "conversion": ours.conversion,
        "snn": scores["all_steps"],
        "snn_transient_skipped": scores["transient_skipped"],
        "cpu_s": time.process_time() - start,
    }
    print(f"streamdet: {json.dumps(report['streamdet']['snn'])}", flush=True)
    report["spikingjelly"] = run_peer(
        "spikingjelly", spikingjelly_stepper, bundle.model, calibration, args, bundle
    )
    report["sinabs"] = run_peer("sinabs", sinabs_stepper, bundle.model, calibration, args, bundle)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
