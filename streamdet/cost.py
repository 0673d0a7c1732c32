"""The cost of a box: spike rates, synaptic operations and an energy estimate per window of a converted SNN,
beside the multiply-accumulates of the ANN it came from.

Every synaptic layer (convolution, transposed convolution, linear) of the converted graph is classed by
what feeds it (``synaptic_inputs``):

- **spikes**: every tensor reaching it comes from IF / burst populations through operations that only
  move values (nearest upsampling, channel concatenation, identity). Each spike is one accumulate (AC) at
  every synapse it reaches; a burst of ``s`` spikes is ``s`` ACs (with ``N <= 5`` spikes per step, ``s``
  adds cost at most as much as one multiply-accumulate). Counted exactly per step:
  ``AC = sum_i count_i * fanout_i``, computed as a convolution of the count map with a kernel of ones
  (same stride, padding, dilation and groups as the layer), times ``C_out / groups``; borders included.
- **analog**: anything else (the input window, the currents of residual / FPN adds passed on without IF
  neurons, shifted inputs): the multiply-accumulates (MACs) of a dense engine at every step,
  ``output size * fan_in`` (padding included, as ``streamdet.model.count_macs``).

Per window of ``T`` steps the SNN costs ``AC_syn + MAC_syn`` summed over its layers and steps, plus one
add per neuron and step for integrating the membrane (``neuron_updates``, counted as ACs). The ANN costs
the dense MACs of one forward pass (the same layers, BN fused; the activations are not counted).

Energy (45 nm CMOS, 32-bit float; M. Horowitz, "Computing's energy problem (and what we can do about
it)", ISSCC 2014, fig. 1.1.9): add 0.9 pJ, multiply 3.7 pJ, so an accumulate costs 0.9 pJ and a
multiply-accumulate 4.6 pJ:

    E_SNN = (AC_syn + neuron_updates) * 0.9 pJ + MAC_syn * 4.6 pJ        per window
    E_ANN = MAC_ANN * 4.6 pJ                                              per window

Memory traffic (weights, membranes, spike addresses) is not counted: on the same paper's figures an
8 kB SRAM read of 64 bits costs ~10 pJ and a DRAM read ~1.3-2.6 nJ, so the estimate is the arithmetic
share only, the usual comparison in the ANN-to-SNN literature.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from streamdet.contract import Geometry
from streamdet.model import DetectorBundle
from streamdet.snn import IFNeurons, SpikingNetwork

SYNAPTIC = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
"""Layers whose operations are counted."""

HOROWITZ_2014 = "Horowitz, ISSCC 2014, 45 nm, 32-bit float: add 0.9 pJ, multiply 3.7 pJ, MAC 4.6 pJ"


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in picojoules and where the figures come from."""

    pj_per_ac: float = 0.9
    pj_per_mac: float = 4.6
    source: str = HOROWITZ_2014

    def __post_init__(self) -> None:
        if not (self.pj_per_ac > 0 and self.pj_per_mac > 0):
            raise ValueError(
                f"energies per operation must be positive, got pj_per_ac={self.pj_per_ac}, "
                f"pj_per_mac={self.pj_per_mac}"
            )


@dataclass(frozen=True)
class SynapticInput:
    """What feeds a synaptic layer: ``spikes`` with ``max_spikes`` per step (the populations' ``N``), or
    analog values (``max_spikes`` None)."""

    populations: tuple[str, ...]
    max_spikes: int | None

    @property
    def is_spikes(self) -> bool:
        return self.max_spikes is not None


_MOVING_FUNCTIONS = {F.interpolate, torch.cat, operator.getitem}


def synaptic_inputs(graph_module: fx.GraphModule) -> dict[str, SynapticInput]:
    """For each synaptic module call (by module name), whether its input is spikes (module docstring).

    A layer fed by populations of different ``N`` through a concatenation is classed analog (its input
    values are no longer one spike count times one unit).
    """
    modules = dict(graph_module.named_modules())
    sources: dict[fx.Node, tuple[str, ...] | None] = {}

    def spike_sources(node: Any) -> tuple[str, ...] | None:
        if not isinstance(node, fx.Node):
            return None
        if node in sources:
            return sources[node]
        found: tuple[str, ...] | None = None
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, IFNeurons):
                found = (node.target,)
            elif isinstance(module, nn.Identity | nn.Dropout) or (
                isinstance(module, nn.Upsample) and module.mode == "nearest"
            ):
                found = spike_sources(node.args[0])
        elif node.op == "call_method" and node.target == "contiguous":
            found = spike_sources(node.args[0])
        elif node.op == "call_function" and node.target is F.interpolate:
            mode = node.kwargs.get("mode", node.args[3] if len(node.args) > 3 else "nearest")
            found = spike_sources(node.args[0]) if mode == "nearest" else None
        elif node.op == "call_function" and node.target is torch.cat:
            parts = node.args[0] if node.args else node.kwargs["tensors"]
            axis = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            each = [spike_sources(part) for part in parts]
            if axis in (1, -3) and all(e is not None for e in each):
                found = tuple(name for e in each for name in e)
        sources[node] = found
        return found

    result = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], SYNAPTIC):
            populations = spike_sources(node.args[0])
            counts = {modules[p].spikes_per_step for p in populations} if populations else set()
            result[node.target] = SynapticInput(
                populations=populations or (), max_spikes=counts.pop() if len(counts) == 1 else None
            )
    return result


def fan_out_sums(module: nn.Module, values: torch.Tensor) -> torch.Tensor:
    """``sum_i values_i * fanout_i`` per sample (``[N]``): the synapses the inputs ``values`` reach,
    weighted by the values (spike counts -> ACs; all ones -> the layer's dense MACs)."""
    if isinstance(module, nn.Linear):
        return values.flatten(1).sum(1) * module.out_features
    groups = module.groups
    if isinstance(module, nn.ConvTranspose2d):
        ones = values.new_ones(module.in_channels, 1, *module.kernel_size)
        reached = F.conv_transpose2d(
            values,
            ones,
            stride=module.stride,
            padding=module.padding,
            output_padding=module.output_padding,
            groups=groups,
            dilation=module.dilation,
        )
    else:
        if module.padding_mode != "zeros":
            raise ValueError(f"padding_mode {module.padding_mode!r}: only zero padding is counted")
        ones = values.new_ones(groups, module.in_channels // groups, *module.kernel_size)
        reached = F.conv2d(
            values,
            ones,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=groups,
        )
    return reached.flatten(1).sum(1) * (module.out_channels // groups)


def dense_macs(module: nn.Module, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """MACs of a dense engine per sample (``[N]``): every output reads its whole fan-in, padding included
    (``output.numel() * fan_in``, as ``streamdet.model.count_macs``); a transposed convolution's outputs
    read ``fan_in / stride`` inputs on average, counted exactly with :func:`fan_out_sums`."""
    if isinstance(module, nn.ConvTranspose2d):
        return fan_out_sums(module, torch.ones_like(x))
    fan_in = module.in_features if isinstance(module, nn.Linear) else module.weight[0].numel()
    return torch.full((x.shape[0],), float(output[0].numel() * fan_in), device=x.device)


@dataclass(frozen=True)
class LayerCost:
    """One synaptic layer's operations per window (averaged over the windows measured).

    Attributes:
        name: module name in the converted graph.
        input: ``"spikes"`` or ``"analog"``.
        ann_macs: dense MACs of one ANN forward pass.
        acs: accumulates per window (spike input; 0 for analog).
        macs: multiply-accumulates per window (analog input; 0 for spikes).
        input_spike_rate: spikes per input neuron per step (spike input; None for analog).
        input_active_fraction: share of input values that are non-zero, over all steps.
    """

    name: str
    input: str
    ann_macs: float
    acs: float
    macs: float
    input_spike_rate: float | None
    input_active_fraction: float


@dataclass(frozen=True)
class WindowCost:
    """The cost of one window of ``steps`` steps (module docstring), per window.

    Attributes:
        steps: time steps per window.
        windows: windows averaged over.
        layers: per synaptic layer, graph order.
        spike_rates: per population: spikes per neuron per step (0..N).
        max_spikes: per population: ``N`` (1 for IF).
        neuron_updates: membrane integrations per window (neurons x steps).
        energy: the per-operation energies used.
    """

    steps: int
    windows: int
    layers: tuple[LayerCost, ...]
    spike_rates: dict[str, float]
    max_spikes: dict[str, int]
    neuron_updates: float
    energy: EnergyModel = field(default_factory=EnergyModel)

    @property
    def acs(self) -> float:
        return sum(layer.acs for layer in self.layers)

    @property
    def macs(self) -> float:
        return sum(layer.macs for layer in self.layers)

    @property
    def ann_macs(self) -> float:
        return sum(layer.ann_macs for layer in self.layers)

    @property
    def energy_snn_uj(self) -> float:
        pj = (self.acs + self.neuron_updates) * self.energy.pj_per_ac + self.macs * self.energy.pj_per_mac
        return pj * 1e-6

    @property
    def energy_ann_uj(self) -> float:
        return self.ann_macs * self.energy.pj_per_mac * 1e-6

    def per_step(self) -> WindowCost:
        """The mean cost of one of the ``steps`` steps (a window of one step each, as a stream run at one
        step per window has): operations and neuron updates divided by ``steps``; the ANN's unchanged."""
        layers = tuple(
            replace(layer, acs=layer.acs / self.steps, macs=layer.macs / self.steps) for layer in self.layers
        )
        return replace(self, steps=1, layers=layers, neuron_updates=self.neuron_updates / self.steps)

    def summary(self) -> dict[str, float]:
        """Totals per window: operations, energies (uJ) and their ratio SNN / ANN."""
        return {
            "steps": self.steps,
            "windows": self.windows,
            "ann_macs": self.ann_macs,
            "snn_acs": self.acs,
            "snn_macs": self.macs,
            "snn_neuron_updates": self.neuron_updates,
            "mean_spike_rate": _mean(self.spike_rates.values()),
            "energy_ann_uj": self.energy_ann_uj,
            "energy_snn_uj": self.energy_snn_uj,
            "energy_ratio": self.energy_snn_uj / self.energy_ann_uj if self.energy_ann_uj else float("nan"),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the summary, per-layer figures, per-population spike rates and the energy model."""
        return {
            **self.summary(),
            "energy_model": asdict(self.energy),
            "layers": [asdict(layer) for layer in self.layers],
            "spike_rates": dict(self.spike_rates),
            "max_spikes": dict(self.max_spikes),
        }


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


class _Counter:
    """Forward hooks on the synaptic layers and a probe on the populations, accumulating per-step totals
    while the network runs chunks of ``steps`` steps (native engine: time folded into the batch)."""

    def __init__(self, network: SpikingNetwork) -> None:
        self.modules = {
            name: module
            for name, module in network.graph_module.named_modules()
            if isinstance(module, SYNAPTIC)
        }
        self.inputs = synaptic_inputs(network.graph_module)
        self.max_spikes = network.spikes_per_step
        self.chunk_steps = 1
        self.acs: dict[str, list[torch.Tensor]] = {name: [] for name in self.modules}
        self.dense: dict[str, list[torch.Tensor]] = {name: [] for name in self.modules}
        self.active: dict[str, list[tuple[float, float]]] = {name: [] for name in self.modules}
        self.spikes: dict[str, list[torch.Tensor]] = {}
        self.neurons: dict[str, int] = {}
        self.handles: list = []

    def hook(self, name: str):
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0]
            per_step = (self.chunk_steps, x.shape[0] // self.chunk_steps)
            dense = dense_macs(module, x[:1], output[:1]).expand(x.shape[0])
            self.dense[name].append(dense.reshape(per_step).sum(1))
            source = self.inputs[name]
            if source.is_spikes:
                counts = torch.round(x * source.max_spikes)
                self.acs[name].append(fan_out_sums(module, counts).reshape(per_step).sum(1))
            self.active[name].append((float(x.count_nonzero()), float(x.numel())))

        return record

    def probe(self, name: str, spikes: torch.Tensor) -> None:
        counts = torch.round(spikes * self.max_spikes[name])  # a burst population passes counts / N on
        self.spikes.setdefault(name, []).append(counts.flatten(2).sum(2).sum(1))
        self.neurons[name] = spikes[0].numel()

    def __enter__(self) -> _Counter:
        self.handles = [m.register_forward_hook(self.hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def measure_window_cost(
    network: SpikingNetwork,
    inputs: torch.Tensor,
    steps: tuple[int, ...],
    chunk: int = 8,
    energy: EnergyModel | None = None,
) -> dict[int, WindowCost]:
    """The cost of windows of each ``T`` in ``steps`` from one simulation of ``max(steps)`` steps.

    Args:
        network: a converted network (IF or burst populations).
        inputs: ANN input windows ``[B, C, H, W]``, given as constant current at every step (the
            protocol of ``streamdet eval --snn``: steps ``[0, T)`` of the run are the ``T``-step window),
            or per-step input currents ``[K, B, C, H, W]`` of a stream, then ``steps`` must not exceed K
            and a window of ``T`` is the first ``T`` of them.
        steps: window lengths ``T`` to report.
        chunk: steps per engine call.
        energy: per-operation energies (Horowitz 2014 by default).

    Returns:
        ``{T: WindowCost}`` averaged over the ``B`` windows.
    """
    if not steps or min(steps) < 1:
        raise ValueError(f"steps must list positive integers, got {steps}")
    total = max(steps)
    stream = inputs if inputs.dim() == 5 else None
    if stream is not None and stream.shape[0] < total:
        raise ValueError(f"a stream of {stream.shape[0]} steps cannot give windows of {total} steps")
    batch = inputs.shape[1] if stream is not None else inputs.shape[0]
    counter = _Counter(network)
    state = network.initial_state(batch, inputs.device)
    with counter, torch.no_grad():
        done = 0
        while done < total:
            size = min(chunk, total - done)
            part = stream[done : done + size] if stream is not None else inputs.expand(size, *inputs.shape)
            counter.chunk_steps = size
            _, state = network.run(part, state, probe=counter.probe)
            done += size
    return {t: _window_cost(network, counter, t, batch, energy or EnergyModel()) for t in sorted(set(steps))}


def split_window_cost(
    snn: SpikingNetwork,
    bundle: DetectorBundle,
    split_dir: str | Path,
    steps: tuple[int, ...],
    chunk: int = 8,
    windows: int = 4,
    energy: EnergyModel | None = None,
    geometry: Geometry | None = None,
) -> dict[int, WindowCost]:
    """:func:`measure_window_cost` on ``windows`` input windows spread evenly over a built split (every
    sequence and preset takes part), as ``streamdet eval --snn`` simulates them (constant current), the
    split's sensor brought to the network's input by ``geometry`` (``None``: as it is).

    Args:
        snn: the converted detector.
        bundle: the ANN detector it came from (its input settings read the split).
        split_dir: a built split (``streamdet dataset build``).
        steps: window lengths ``T`` to report.
        chunk: steps per engine call.
        windows: input windows averaged over.
        energy: per-operation energies (Horowitz 2014 by default).
        geometry: see above.
    """
    from streamdet.samples import split_inputs

    device = next(snn.graph_module.parameters()).device
    batches = split_inputs(split_dir, bundle, windows, batch_size=windows, spread=True, geometry=geometry)
    _, inputs = next(batches)
    return measure_window_cost(snn, inputs.to(device), tuple(steps), chunk, energy)


def _window_cost(
    network: SpikingNetwork, counter: _Counter, steps: int, batch: int, energy: EnergyModel
) -> WindowCost:
    layers = []
    for name in counter.modules:
        if not counter.dense[name]:
            continue
        dense_per_step = torch.cat(counter.dense[name])[:steps]
        source = counter.inputs[name]
        active, seen = map(sum, zip(*counter.active[name], strict=True))
        if source.is_spikes:
            acs = float(torch.cat(counter.acs[name])[:steps].sum()) / batch
            spikes = sum(float(torch.cat(counter.spikes[p])[:steps].sum()) for p in source.populations)
            neurons = sum(counter.neurons[p] for p in source.populations) * steps
            rate = spikes / neurons if neurons else 0.0
        else:
            acs, rate = 0.0, None
        layers.append(
            LayerCost(
                name=name,
                input="spikes" if source.is_spikes else "analog",
                ann_macs=float(dense_per_step[0]) / batch,
                acs=acs,
                macs=0.0 if source.is_spikes else float(dense_per_step.sum()) / batch,
                input_spike_rate=rate,
                input_active_fraction=active / seen if seen else 0.0,
            )
        )
    rates = {
        p: float(torch.cat(counter.spikes[p])[:steps].sum()) / (counter.neurons[p] * steps)
        for p in counter.spikes
    }
    return WindowCost(
        steps=steps,
        windows=batch,
        layers=tuple(layers),
        spike_rates=rates,
        max_spikes=dict(network.spikes_per_step),
        neuron_updates=sum(counter.neurons[p] // batch for p in counter.spikes) * steps,
        energy=energy,
    )


def plot_window_cost(costs: dict[str, WindowCost], path: str | Path, title: str = "") -> Path:
    """PNG, one row per variant (each may be another network): per synaptic layer, the energy of its
    operations per window beside the ANN's (log scale; the totals and their ratio in the legend), and
    the spike rate of each population."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(costs), 2, figsize=(15, 4.2 * len(costs)), squeeze=False)
    for row, (label, cost) in enumerate(costs.items()):
        names = [layer.name for layer in cost.layers]
        positions = range(len(names))
        ann = [layer.ann_macs * cost.energy.pj_per_mac * 1e-6 for layer in cost.layers]
        snn = [
            (layer.acs * cost.energy.pj_per_ac + layer.macs * cost.energy.pj_per_mac) * 1e-6
            for layer in cost.layers
        ]
        ratio = cost.energy_snn_uj / cost.energy_ann_uj
        axis = axes[row][0]
        axis.bar([p - 0.2 for p in positions], ann, 0.4, color="k", label=f"ANN: {cost.energy_ann_uj:.0f} uJ")
        axis.bar(
            [p + 0.2 for p in positions],
            snn,
            0.4,
            color=["tab:orange" if layer.input == "analog" else "tab:blue" for layer in cost.layers],
            label=f"SNN: {cost.energy_snn_uj:.0f} uJ ({ratio:.2f}x; orange: analog input, MACs)",
        )
        axis.set_yscale("log")
        axis.set_xticks(list(positions), names, rotation=90, fontsize=5)
        axis.set_ylabel("uJ per window")
        axis.set_title(f"{label}: {cost.steps} step(s), synaptic operations", fontsize=9)
        axis.legend(fontsize=7)
        populations = list(cost.spike_rates)
        axes[row][1].bar(range(len(populations)), [cost.spike_rates[p] for p in populations])
        axes[row][1].set_xticks(range(len(populations)), populations, rotation=90, fontsize=5)
        axes[row][1].set_ylabel("spikes / neuron / step")
        axes[row][1].set_title(f"{label}: spike rates (at most {max(cost.max_spikes.values())})", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
