"""How closely the converted SNN follows the ANN: mAP by time steps, ablations, layer correlations,
spike rates, synaptic operations and an energy estimate.

Simulation protocol (``simulate_prefix_means``). A window of ``window_us`` is simulated for ``T`` steps,
``dt = window_us / T`` microseconds. The SNN's input current is the ANN input ``x`` at every step
(constant current, the rate-equivalent input of Spiking-RetinaNet: its mean over the steps is ``x``), with a
fresh state per window. Because the input is constant, the first ``T`` steps of one simulation of
``T_max`` steps *are* the ``T``-step simulation, so one run to ``T_max`` scores every ``T`` of the list.

Decoding at ``T``: the output currents (logits, box deltas in ANN units) are averaged over steps
``[k, T)`` and decoded like the ANN's. ``k = 0`` without transient skipping; with it
(Spiking-RetinaNet: "ignore the outputs of the initial transient") ``k = floor(skip_fraction * T)``,
by default the first quarter.

Energy (``energy_estimate``): ``E_ANN = MACs * 4.6 pJ`` (one 32-bit float multiply 3.7 pJ + add
0.9 pJ, 45 nm CMOS, Horowitz, ISSCC 2014) and ``E_SNN = SynOps * 0.9 pJ`` (an accumulate per synaptic
event), ``SynOps = sum_layers MACs_layer * nonzero fraction of the layer's input`` summed over the ``T``
steps of a window (the first layer's non-zero input currents count as synaptic events too).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamdet.contract import Geometry
from streamdet.convert import ConversionConfig, convert_detector
from streamdet.errors import UserFacingError
from streamdet.model import DetectorBundle
from streamdet.samples import split_inputs
from streamdet.snn import SpikingDetector

DEFAULT_STEPS = (4, 8, 16, 32, 64, 128, 256)
ENERGY_PER_MAC_PJ = 4.6
ENERGY_PER_AC_PJ = 0.9


@dataclass(frozen=True)
class SimulationConfig:
    """How a window is simulated and decoded.

    Attributes:
        steps: the numbers of time steps ``T`` per window to score.
        skip_fraction: with transient skipping, the first ``floor(skip_fraction * T)`` steps are ignored.
        chunk: steps simulated per call of the native engine (time folded into the batch).
        batch_size: windows simulated together.
    """

    steps: tuple[int, ...] = DEFAULT_STEPS
    skip_fraction: float = 0.25
    chunk: int = 8
    batch_size: int = 4

    def __post_init__(self) -> None:
        if not self.steps or any(not isinstance(t, int) or t < 1 for t in self.steps):
            raise UserFacingError(f"SimulationConfig.steps must be positive integers, got {self.steps!r}")
        if not 0.0 <= self.skip_fraction < 1.0:
            raise UserFacingError(
                f"SimulationConfig.skip_fraction must be in [0, 1), got {self.skip_fraction}"
            )
        if self.chunk < 1:
            raise UserFacingError(f"SimulationConfig.chunk must be >= 1, got {self.chunk}")
        if self.batch_size < 1:
            raise UserFacingError(f"SimulationConfig.batch_size must be >= 1, got {self.batch_size}")

    def boundaries(self) -> list[int]:
        """Step counts at which running output sums are needed (each ``T`` and each transient end)."""
        marks = set(self.steps) | {self.skip_start(t) for t in self.steps}
        return sorted(m for m in marks if m > 0)

    def skip_start(self, steps: int) -> int:
        return int(math.floor(self.skip_fraction * steps))


def calibration_inputs(
    split_dir: str | Path, bundle: DetectorBundle, windows: int, geometry: Geometry | None = None
) -> Iterable[torch.Tensor]:
    """Padded input windows of a split for calibration: ``windows`` of them spread evenly over the split,
    so every sequence and preset takes part (not only the first sequence's opening seconds); the split's
    sensor brought to the model's input by ``geometry`` (``None``: as it is)."""
    batches = split_inputs(split_dir, bundle, windows, batch_size=8, spread=True, geometry=geometry)
    return (inputs for _, inputs in batches)


@dataclass(frozen=True)
class BiasCalibrationConfig:
    """Per-channel bias calibration after conversion (``streamdet.bias_calibration``).

    Attributes:
        steps: ``T``, the window length in steps whose mean rates are matched to the ANN's; 0 = off.
        windows: input windows, spread evenly over the calibration split, calibrated on (at least 1 when
            ``steps`` is set).
    """

    steps: int = 0
    windows: int = 64

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise UserFacingError(f"--bias-calibration-steps must be >= 0, got {self.steps}")
        if self.steps and self.windows < 1:
            raise UserFacingError(f"--bias-calibration-windows must be >= 1, got {self.windows}")


def bias_calibrate(
    snn: SpikingDetector, bundle: DetectorBundle, config: BiasCalibrationConfig, split_dir: str | Path | None
) -> None:
    """Calibrate ``snn``'s biases at ``config.steps`` (if set) on ``config.windows`` windows of
    ``split_dir`` and record it in ``snn.conversion["bias_calibration"]``."""
    from streamdet.bias_calibration import calibrate_biases

    if not config.steps:
        return
    if split_dir is None:
        raise UserFacingError("--bias-calibration-steps needs a split to calibrate on (--calibration-data)")
    if not (Path(split_dir) / "annotations.json").is_file():
        raise UserFacingError(f"{split_dir}: not a built split (no annotations.json) to bias-calibrate on")
    device = next(bundle.model.parameters()).device
    batches = split_inputs(split_dir, bundle, config.windows, batch_size=8, spread=True)
    windows = [x.to(device) for _, x in batches]
    calibration = calibrate_biases(snn, windows, config.steps)
    snn.conversion["bias_calibration"] = {**calibration.to_dict(), "data": str(split_dir)}


SKIP_TRANSIENT = ("off", "on", "both")
"""``FidelityConfig.skip_transient``: average the outputs over all steps, over the steps after the
transient, or report both."""


@dataclass(frozen=True)
class FidelityConfig:
    """What :func:`evaluate_snn` converts, simulates and reports (``streamdet eval --snn``).

    Attributes:
        conversion: ANN-to-SNN conversion settings.
        bias_calibration: optional bias calibration after conversion (on ``calibration_data``).
        simulation: time steps ``T`` to score, transient fraction, chunk and batch size.
        skip_transient: one of :data:`SKIP_TRANSIENT`.
        calibration_data: split whose input windows calibrate the conversion (None: the evaluated
            split) and the biases (None: no bias calibration possible).
        limit: score the first ``limit`` images only (None: all).
        report_dir: also write ``report.json`` and PNG plots there (ablations, layer correlations,
            spike rates, energy); None: no report.
    """

    conversion: ConversionConfig = field(default_factory=ConversionConfig)
    bias_calibration: BiasCalibrationConfig = field(default_factory=BiasCalibrationConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    skip_transient: str = "both"
    calibration_data: str | Path | None = None
    limit: int | None = None
    report_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.skip_transient not in SKIP_TRANSIENT:
            raise UserFacingError(
                f"FidelityConfig.skip_transient must be one of {', '.join(SKIP_TRANSIENT)}, "
                f"got {self.skip_transient!r}"
            )


def needs_calibration(bundle: DetectorBundle, config: ConversionConfig) -> bool:
    """Whether converting ``bundle`` with ``config`` needs data (a site that is not a Quant-ReLU clip)."""
    from streamdet.convert import is_quant_relu

    if config.normalisation == "percentile":
        return True
    activations = [m for m in bundle.model.modules() if isinstance(m, nn.ReLU) or is_quant_relu(m)]
    return any(isinstance(m, nn.ReLU) for m in activations) or config.spike_unactivated


def convert_for_evaluation(
    bundle: DetectorBundle,
    config: ConversionConfig,
    calibration_dir: str | Path,
    progress: bool = True,
    geometry: Geometry | None = None,
) -> SpikingDetector:
    """Convert ``bundle`` with ``config``, calibrating on ``calibration_dir`` (read through ``geometry``)
    where needed."""
    data = calibration_inputs(calibration_dir, bundle, config.calibration_windows, geometry)
    return convert_detector(bundle, data if needs_calibration(bundle, config) else None, config, progress)


def simulate_prefix_means(
    snn: SpikingDetector, inputs: torch.Tensor, config: SimulationConfig, probe=None
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Running sums of the output currents at every boundary of ``config`` (one simulation).

    Args:
        snn: the converted detector.
        inputs: padded ANN inputs ``[B, C, H, W]``, given as constant current at every step.
        config: steps to score, transient policy, chunk size.
        probe: forwarded to ``SpikingDetector.run``.

    Returns:
        ``{n: (sum of cls currents over steps [0, n), sum of box currents)}``, ``[B, A, nc]``, ``[B, A, 4]``.
    """
    marks = config.boundaries()
    total = max(marks)
    state = snn.initial_state(inputs.shape[0], inputs.device)
    sums: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    running = None
    done = 0
    while done < total:
        chunk = min(config.chunk, total - done)
        (cls, box), state = snn.run(inputs.expand(chunk, *inputs.shape), state, probe=probe)
        cls_cum, box_cum = cls.cumsum(0), box.cumsum(0)
        if running is not None:
            cls_cum += running[0]
            box_cum += running[1]
        for mark in marks:
            if done < mark <= done + chunk:
                sums[mark] = (cls_cum[mark - done - 1].clone(), box_cum[mark - done - 1].clone())
        running = (cls_cum[-1], box_cum[-1])
        done += chunk
    return sums


def window_means(
    sums: dict[int, tuple[torch.Tensor, torch.Tensor]], steps: int, skip_start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean output currents over steps ``[skip_start, steps)`` from running sums."""
    cls, box = sums[steps]
    if skip_start > 0:
        cls, box = cls - sums[skip_start][0], box - sums[skip_start][1]
    count = steps - skip_start
    return cls / count, box / count


def score_snn(
    snn: SpikingDetector,
    split_dir: str | Path,
    bundle: DetectorBundle,
    config: SimulationConfig,
    limit: int | None,
    progress: bool = True,
    geometry: Geometry | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """COCO mAP of the SNN at every ``T`` with and without transient skipping, the split's sensor brought
    to the network's input by ``geometry`` as ``streamdet eval`` brings it to the ANN's (``None``: as it
    is), boxes scored in the split's own pixels.

    Returns:
        ``{"all_steps": {"<T>": {"map50", "map"}}, "transient_skipped": {"<T>": {...}}}``.
    """
    from tqdm import tqdm

    from streamdet.binning import boxes_to_sensor
    from streamdet.evaluate import coco_from_dict, coco_metrics
    from streamdet.samples import DetectionSamples

    samples = DetectionSamples.for_model([split_dir], bundle.spec, geometry)
    policies = {"all_steps": lambda t: 0, "transient_skipped": config.skip_start}
    detections: dict[tuple[str, int], dict[int, torch.Tensor]] = {
        (p, t): {} for p in policies for t in config.steps
    }
    batches = list(split_inputs(split_dir, bundle, limit, config.batch_size, geometry=geometry))
    images = sum(len(ids) for ids, _ in batches)
    with tqdm(total=images, desc=f"snn T<={max(config.steps)}", unit="img", disable=not progress) as bar:
        for ids, inputs in batches:
            sums = simulate_prefix_means(snn, inputs, config)
            for policy, skip in policies.items():
                for steps in config.steps:
                    means = window_means(sums, steps, skip(steps))
                    rows = snn.decode(*means, input_size=samples.mapping.input_size)
                    for image_id, found in zip(ids, rows, strict=True):
                        in_sensor = boxes_to_sensor(found.detach().cpu().numpy(), samples.mapping)
                        detections[(policy, steps)][image_id] = torch.from_numpy(in_sensor)
            bar.update(len(ids))
    coco_gt = coco_from_dict(samples.splits[0].coco, [i for ids, _ in batches for i in ids])
    scores: dict[str, dict[str, dict[str, float]]] = {p: {} for p in policies}
    for (policy, steps), found in detections.items():
        metrics = coco_metrics(coco_gt, found)
        scores[policy][str(steps)] = {"map50": metrics["map50"], "map": metrics["map"]}
    return scores


def convert_and_calibrate(
    bundle: DetectorBundle, config: FidelityConfig, split_dir: str | Path, geometry: Geometry | None = None
) -> SpikingDetector:
    """Convert ``bundle`` with ``config.conversion`` (calibrated on ``config.calibration_data``, else on
    ``split_dir`` read through ``geometry``), move it to the ANN's device and bias-calibrate it when
    ``config`` asks."""
    if config.calibration_data:
        snn = convert_for_evaluation(bundle, config.conversion, config.calibration_data)
    else:
        snn = convert_for_evaluation(bundle, config.conversion, split_dir, geometry=geometry)
    snn.to(next(bundle.model.parameters()).device)
    bias_calibrate(snn, bundle, config.bias_calibration, config.calibration_data)
    return snn


def evaluate_snn(
    bundle: DetectorBundle,
    split_dir: str | Path,
    config: FidelityConfig,
    snn: SpikingDetector | None = None,
    model_name: str = "",
    geometry: Geometry | None = None,
) -> tuple[dict, SpikingDetector]:
    """Convert ``bundle`` and score the SNN on ``split_dir`` at each ``T`` of ``config.simulation.steps``
    (``streamdet eval --snn``).

    Args:
        bundle: the ANN detector (``streamdet.model.load_detector``).
        split_dir: a built split (``streamdet dataset build``).
        config: conversion, simulation and report settings.
        snn: a conversion of ``bundle`` with ``config`` to reuse (one made for another split with the same
            ``calibration_data``), or None to convert (and bias-calibrate) here.
        model_name: the model as the user named it, recorded in the report.
        geometry: how the split's sensor is brought to the network's input (``streamdet eval
            --geometry``; ``None``: as it is); boxes are scored in the split's own pixels.

    Returns:
        ``{"<T>": {"map50", "map"}}`` (``skip_transient`` ``off`` or ``both``: averaged over all T steps;
        ``on``: over the steps after the transient); with ``both`` each entry also holds
        ``"transient_skipped": {"map50", "map", "skipped_steps"}``; and the SNN that was scored.
    """
    simulation = config.simulation
    if snn is None:
        snn = convert_and_calibrate(bundle, config, split_dir, geometry)
    scores = score_snn(snn, split_dir, bundle, simulation, config.limit, geometry=geometry)
    result: dict[str, Any] = {}
    for steps in simulation.steps:
        key = str(steps)
        skipped = {**scores["transient_skipped"][key], "skipped_steps": simulation.skip_start(steps)}
        if config.skip_transient == "on":
            result[key] = skipped
        else:
            result[key] = dict(scores["all_steps"][key])
            if config.skip_transient == "both":
                result[key]["transient_skipped"] = skipped
    if config.report_dir is not None:
        write_report(bundle, Path(split_dir), snn, config, Path(config.report_dir), model_name)
    from streamdet.cost import split_window_cost

    costs = split_window_cost(snn, bundle, split_dir, simulation.steps, simulation.chunk, geometry=geometry)
    for steps, cost in costs.items():
        result[str(steps)]["cost"] = cost.summary()
    return result, snn


ABLATIONS: dict[str, dict[str, Any]] = {
    "residual fix off": {"initial_membrane": 0.0},
    "layer-wise": {"granularity": "layer"},
    "percentile (no Quant-ReLU clips)": {"normalisation": "percentile"},
    "reset to zero": {"reset": "zero"},
    "IF on adds on (NormAdd + IF)": {"spike_unactivated": True},
    "membrane bounds [0, 1]": {"membrane_bounds": (0.0, 1.0)},
}
"""Each ablation changes one field of the evaluated ConversionConfig."""


def layer_statistics(
    snn: SpikingDetector, inputs: torch.Tensor, steps: tuple[int, ...], chunk: int
) -> dict[str, Any]:
    """Per IF population: spike rate and Pearson correlation of SNN rates with the ANN's normalised
    activations (``rate_limit``) after each ``T`` of ``steps``; output-layer samples for the scatter plot;
    MACs and synaptic operations per window.
    """
    limit_values: dict[str, torch.Tensor] = {}
    snn.rate_limit(inputs, probe=lambda name, rate: limit_values.__setitem__(name, rate.flatten()))
    counts: dict[str, torch.Tensor] = {}
    correlations: dict[str, dict[str, float]] = {name: {} for name in snn.populations}
    rates: dict[str, float] = {}
    density = SynapticCounter(snn)

    def probe(name: str, spikes: torch.Tensor) -> None:
        total = spikes.sum(0).flatten()
        counts[name] = counts[name] + total if name in counts else total

    marks = sorted(steps)
    state = snn.initial_state(inputs.shape[0])
    cls_sum = None
    done = 0
    output_samples: dict[str, list[float]] = {}
    with density:
        while done < marks[-1]:
            size = min(chunk, marks[-1] - done)
            (cls, _), state = snn.run(inputs.expand(size, *inputs.shape), state, probe=probe)
            cls_sum = cls.sum(0) if cls_sum is None else cls_sum + cls.sum(0)
            done += size
            if done in marks:
                for name in snn.populations:
                    rate = counts[name] / done
                    correlations[name][str(done)] = _pearson(rate, limit_values[name])
                output_samples[str(done)] = (cls_sum / done).flatten()[::97].tolist()
    for name in snn.populations:
        rates[name] = float(counts[name].sum() / (counts[name].numel() * done))
    ann_cls, _ = snn.rate_limit(inputs)
    return {
        "spike_rate": rates,
        "correlation": correlations,
        "output_scatter": {"ann": ann_cls.flatten()[::97].tolist(), "snn": output_samples},
        "operations": density.summary(done, inputs.shape[0]),
    }


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denominator = a.norm() * b.norm()
    return float((a @ b) / denominator) if denominator > 0 else float("nan")


class SynapticCounter:
    """Counts MACs and synaptic events of the synaptic layers while the SNN runs (forward hooks).

    For a layer with output ``[N, C_out, ...]`` and ``k`` inputs per output (``C_in / groups * kh * kw``),
    ``MACs = N * C_out * ... * k`` per call and ``SynOps = MACs * (nonzero inputs / inputs)``.
    """

    def __init__(self, snn: SpikingDetector) -> None:
        self.layers = {
            name: module
            for name, module in snn.graph_module.named_modules()
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)
        }
        self.macs = 0.0
        self.synops = 0.0
        self.handles: list = []

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            fan_in = module.in_features
        elif isinstance(module, nn.ConvTranspose2d):
            fan_in = module.weight[:, 0].numel() // (module.stride[0] * module.stride[1])
        else:
            fan_in = module.weight[0].numel()
        macs = output.numel() * fan_in
        density = float(inputs[0].count_nonzero()) / inputs[0].numel()
        self.macs += macs
        self.synops += macs * density

    def __enter__(self) -> SynapticCounter:
        self.handles = [m.register_forward_hook(self.hook) for m in self.layers.values()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()

    def summary(self, steps: int, batch: int) -> dict[str, float]:
        """Per window: ANN MACs (one pass), SNN SynOps over ``steps``, and the energy estimate."""
        ann_macs = self.macs / (steps * batch)
        synops = self.synops / batch
        return {
            "steps": steps,
            "ann_macs": ann_macs,
            "snn_synops": synops,
            "synops_per_mac": synops / ann_macs,
            **energy_estimate(ann_macs, synops),
        }


def energy_estimate(ann_macs: float, snn_synops: float) -> dict[str, float]:
    """``E_ANN = MACs * 4.6 pJ``, ``E_SNN = SynOps * 0.9 pJ`` (constants in the module docstring), in uJ."""
    return {
        "energy_ann_uj": ann_macs * ENERGY_PER_MAC_PJ * 1e-6,
        "energy_snn_uj": snn_synops * ENERGY_PER_AC_PJ * 1e-6,
        "pj_per_mac": ENERGY_PER_MAC_PJ,
        "pj_per_ac": ENERGY_PER_AC_PJ,
    }


def write_report(
    bundle: DetectorBundle,
    split_dir: Path,
    snn: SpikingDetector,
    fidelity: FidelityConfig,
    out_dir: Path,
    model_name: str = "",
) -> dict[str, Any]:
    """Ablations, layer statistics and plots into ``out_dir`` (``report.json``, ``*.png``)."""
    from streamdet.evaluate import evaluate_split

    out_dir.mkdir(parents=True, exist_ok=True)
    config = fidelity.conversion
    simulation = fidelity.simulation
    limit = fidelity.limit
    calibration_dir = fidelity.calibration_data or split_dir
    ann = evaluate_split(bundle.detect, split_dir, bundle.spec, limit=limit)
    curves = {"converted": score_snn(snn, split_dir, bundle, simulation, limit)}
    for label, change in ABLATIONS.items():
        try:
            variant = replace(config, **change)
        except UserFacingError as error:  # a setting the evaluated one excludes (reset to zero with burst)
            curves[label] = {"error": str(error)}
            continue
        if variant == config:
            continue
        try:
            converted = convert_for_evaluation(bundle, variant, calibration_dir)
        except UserFacingError as error:
            curves[label] = {"error": str(error)}
            continue
        # every ablation changes one setting; bias calibration, when asked for, applies to each
        bias_calibrate(converted, bundle, fidelity.bias_calibration, fidelity.calibration_data)
        curves[label] = score_snn(converted, split_dir, bundle, simulation, limit)
    _, first_batch = next(split_inputs(split_dir, bundle, limit, simulation.batch_size))
    layers = layer_statistics(snn, first_batch, simulation.steps, simulation.chunk)
    from streamdet.cost import measure_window_cost, plot_window_cost

    costs = measure_window_cost(snn, first_batch, tuple(simulation.steps), simulation.chunk)
    report = {
        "model": model_name,
        "data": str(split_dir),
        "images": ann["images"],
        "ann": {"map50": ann["map50"], "map": ann["map"]},
        "conversion": snn.conversion,
        "simulation": {"steps": list(simulation.steps), "skip_fraction": simulation.skip_fraction},
        "curves": curves,
        "layers": layers,
        "cost": {str(steps): cost.to_dict() for steps, cost in costs.items()},
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_report(report, out_dir)
    plot_window_cost({f"T = {t}": cost for t, cost in costs.items()}, out_dir / "cost.png")
    return report


def plot_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG plots of a report: mAP@0.5 vs T per variant, output-layer scatter (Spiking-RetinaNet fig. 1),
    per-layer correlation vs T, per-layer spike rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, policy in zip(axes, ("all_steps", "transient_skipped"), strict=True):
        for label, curve in report["curves"].items():
            if "error" in curve:
                continue
            steps = [int(t) for t in curve[policy]]
            axis.plot(steps, [curve[policy][str(t)]["map50"] for t in steps], marker="o", label=label)
        axis.axhline(report["ann"]["map50"], color="k", linestyle="--", label="ANN")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("time steps T per window")
        axis.set_ylabel("mAP@0.5")
        axis.set_title(policy.replace("_", " "))
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    written.append(out_dir / "map_vs_steps.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    scatter = report["layers"]["output_scatter"]
    marks = sorted(scatter["snn"], key=int)
    chosen = [marks[0], marks[-1]] if len(marks) > 1 else marks
    figure, axes = plt.subplots(1, len(chosen), figsize=(5 * len(chosen), 4.5), squeeze=False)
    for axis, mark in zip(axes[0], chosen, strict=True):
        axis.scatter(scatter["ann"], scatter["snn"][mark], s=2, alpha=0.4)
        low, high = min(scatter["ann"]), max(scatter["ann"])
        axis.plot([low, high], [low, high], color="k", linewidth=0.8)
        axis.set_xlabel("ANN class logit")
        axis.set_ylabel(f"SNN mean output current, T = {mark}")
        axis.set_title(f"output layer, T = {mark}")
    figure.tight_layout()
    written.append(out_dir / "output_correlation.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    correlation = report["layers"]["correlation"]
    names = list(correlation)
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for mark in marks:
        axes[0].plot(
            range(len(names)), [correlation[n].get(mark, float("nan")) for n in names], label=f"T={mark}"
        )
    axes[0].set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    axes[0].set_ylabel("Pearson r, SNN rate vs ANN activation")
    axes[0].legend(fontsize=7)
    rates = report["layers"]["spike_rate"]
    axes[1].bar(range(len(names)), [rates[n] for n in names])
    axes[1].set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    axes[1].set_ylabel(f"spike rate (spikes / neuron / step), T = {marks[-1]}")
    figure.tight_layout()
    written.append(out_dir / "layers.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)
    return written
