"""ANN-to-SNN conversion: fx parse, BN fusion, calibration, normalisation (Spiking-RetinaNet eq. 4), IF.

Pipeline (``convert_network``):

1. **Parse** the ANN with ``torch.fx`` (Quant-ReLU modules are kept as leaves). Every node of the graph
   is either converted or refused with its name and the reason (``ConversionError``).
2. **Fuse BN** into the convolution before it (``torch.nn.utils.fusion``); a BN with no convolution in
   front of it becomes a per-channel affine map of the value encoding (no run-time cost).
3. **Calibrate**: for every spiking site (each ReLU / Quant-ReLU, and with ``spike_unactivated`` each
   convolution or add output that feeds another synaptic layer without an activation in between) find
   the range ``[eps, lam]`` of the ANN activation, per channel or per layer: the ``percentiles``
   (0.01 / 99.99 by default) of the activations over the calibration data, or ``[0, clip]`` from a
   Quant-ReLU's learned clip value.
4. **Normalise**: a value ``a`` of the ANN at a spiking site is carried by spikes at rate
   ``q = (a - eps) / (lam - eps)`` in [0, 1]. Synaptic layers absorb the encodings of their input and
   output (eq. 4, with ``s = lam - eps``):

       w~[j, i] = w[j, i] * s_in[i] / s_out[j]
       b~[j]    = (b[j] + sum_i w[j, i] * eps_in[i] - eps_out[j]) / s_out[j]

   (for a padded convolution or a transposed convolution whose input has a non-zero shift the shift
   ``eps_in / s_in`` is added to the input instead, which is exact at borders too). Adds become
   ``NormAdd`` (``q = sum_k (s_k / s_out) q_k + (sum_k eps_k - eps_out) / s_out``); concatenation,
   nearest upsampling and average pooling carry the per-channel encoding through unchanged.
5. **Replace** every spiking site by ``IFNeurons`` (threshold 1, reset by subtraction, initial membrane
   0.5 by default; see ``streamdet.neurons``). Layers with no activation at the output (the last
   convolution of each head) stay non-spiking: their per-step input current is in the ANN's units
   (logits, box deltas), so its mean over the steps is the ANN output.

Heads shared across FPN levels (one module called on P3, P4, P5) get one converted copy per call, each
normalised with the statistics of its own level.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from streamdet.errors import UserFacingError
from streamdet.model import DetectorBundle
from streamdet.neurons import IFParameters
from streamdet.snn import ChannelAffine, IFNeurons, NormAdd, SpikingDetector

NORMALISATIONS = ("auto", "quant", "percentile")
GRANULARITIES = ("channel", "layer")


class ConversionError(UserFacingError):
    """A layer of the ANN that has no spiking equivalent: names the layer (fx node / module) and says why."""

    def __init__(self, layer: str, reason: str) -> None:
        super().__init__(f"cannot convert layer '{layer}': {reason}")
        self.layer = layer
        self.reason = reason


@dataclass(frozen=True)
class ConversionConfig:
    """How to convert an ANN into an SNN.

    Attributes:
        normalisation: ``"quant"`` uses each Quant-ReLU's learned clip (range ``[0, clip]``, layer-wise,
            no data needed); ``"percentile"`` calibrates every site on data; ``"auto"`` takes the clip
            where the site is a Quant-ReLU and percentiles elsewhere.
        granularity: ``"channel"`` (one range per channel, Spiking-RetinaNet) or ``"layer"`` (one per layer).
        percentiles: lower / upper percentile (in %) of the activations that map to rates 0 and 1.
        spike_unactivated: put IF neurons (with the shift of eq. 4) on convolution / add outputs that
            feed another synaptic layer without an activation (Spiking-RetinaNet's NormAdd + IF); False (the
            default) passes those on as currents: the next layer then applies a linear map of the
            spikes feeding the add (two synaptic layers in a row compose into one), which adds no
            rate-quantisation error of its own. Chosen on validation data (docs/conversion.md).
        initial_membrane: ``v[0] / v_th`` of every IF neuron (0.5 = residual fix of
            Qiu and Zhu 2023, 0 = off).
        reset: ``"subtract"`` or ``"zero"``.
        calibration_windows: at most this many input windows are used for calibration.
        membrane_bounds: ``(floor, ceiling)`` of the IF membranes in thresholds after each reset, or None
            (unbounded, as in Spiking-RetinaNet); the streaming detector sets ``(0, 1)`` itself.
        burst: burst (multi-threshold) IF neurons that emit up to ``N`` spikes per step
            (``streamdet.neurons.burst_scan``): ``N = L`` at a Quant-ReLU site with ``L`` levels converted
            with its clip (one step then reproduces the Quant-ReLU exactly), ``burst_spikes`` elsewhere.
            Needs ``reset="subtract"``. False: plain IF neurons (one spike per step at most).
        burst_spikes: ``N`` of burst populations at sites without Quant-ReLU levels (percentile-normalised
            ReLUs, IF neurons on adds).
    """

    normalisation: str = "auto"
    granularity: str = "channel"
    percentiles: tuple[float, float] = (0.01, 99.99)
    spike_unactivated: bool = False
    initial_membrane: float = 0.5
    reset: str = "subtract"
    calibration_windows: int = 64
    membrane_bounds: tuple[float, float] | None = None
    burst: bool = False
    burst_spikes: int = 8

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise UserFacingError(
                f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        if self.granularity not in GRANULARITIES:
            raise UserFacingError(f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise UserFacingError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if self.reset not in ("subtract", "zero"):
            raise UserFacingError(f"reset must be 'subtract' or 'zero', got {self.reset!r}")
        if self.calibration_windows < 1:
            raise UserFacingError(f"calibration_windows must be >= 1, got {self.calibration_windows}")
        if self.burst_spikes < 1:
            raise UserFacingError(f"burst_spikes must be >= 1, got {self.burst_spikes}")
        if self.burst and self.reset != "subtract":
            raise UserFacingError(f"burst neurons reset by subtraction only, got reset={self.reset!r}")


@dataclass(frozen=True)
class Encoding:
    """Per-channel encoding of an ANN value ``a`` by an SNN quantity ``q``: ``a = offset + scale * q``.

    ``offset`` and ``scale`` are float64 ``[C]`` (channel axis 1 of the tensor).
    """

    offset: torch.Tensor
    scale: torch.Tensor

    @property
    def is_shifted(self) -> bool:
        return bool(torch.any(self.offset != 0))


def is_quant_relu(module: nn.Module) -> bool:
    """A Quant-ReLU: ``clip * floor(clamp(x / clip, 0, 1) * levels + 0.5) / levels`` with a learned ``clip``.

    Recognised by its interface (a ``clip`` parameter and an integer ``levels``), so any module with the
    contract of ``streamdet.model.QuantReLU`` converts.
    """
    own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
    return "clip" in own and isinstance(getattr(module, "levels", None), int)


class _LeafTracer(fx.Tracer):
    """fx tracer that keeps Quant-ReLU modules as single nodes."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return is_quant_relu(module) or super().is_leaf_module(module, qualified_name)


def trace_model(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` with torch.fx (Quant-ReLU kept as a leaf); refuses untraceable models."""
    try:
        graph = _LeafTracer().trace(model)
    except Exception as error:  # fx raises many types (TraceError, TypeError, ...) for data-dependent code
        raise ConversionError(type(model).__name__, f"torch.fx cannot trace the model: {error}") from error
    return fx.GraphModule(model, graph)


_SYNAPTIC_MODULES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_PASSTHROUGH_MODULES = (nn.Identity, nn.Dropout, nn.AdaptiveAvgPool2d)
_REFUSED_MODULES: dict[type, str] = {
    nn.MaxPool2d: "max-pooling has no rate-coded IF equivalent (replace it by a strided convolution)",
    nn.AdaptiveMaxPool2d: "max-pooling has no rate-coded IF equivalent (replace it by a strided convolution)",
    nn.GroupNorm: "GroupNorm normalises by statistics of each input at run time, which spikes cannot carry",
    nn.LayerNorm: "LayerNorm normalises by statistics of each input at run time, which spikes cannot carry",
    nn.InstanceNorm2d: "InstanceNorm normalises by statistics of each input at run time",
}
_SHAPE_FUNCTIONS = {
    operator.getitem,
    getattr,
    torch.flatten,
    torch.reshape,
    torch.permute,
    torch.transpose,
    torch.squeeze,
    torch.unsqueeze,
    operator.floordiv,
    operator.mul,
    operator.add,
    operator.sub,
}
_SHAPE_METHODS = {
    "view",
    "reshape",
    "permute",
    "flatten",
    "transpose",
    "contiguous",
    "size",
    "squeeze",
    "unsqueeze",
    "dim",
    "unflatten",
}


def _activation_kind(gm: fx.GraphModule, node: fx.Node) -> str | None:
    """``"relu"``, ``"quant"`` or None for a node of the traced graph."""
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if is_quant_relu(module):
            return "quant"
        if isinstance(module, nn.ReLU):
            return "relu"
    if node.op == "call_function" and node.target in (F.relu, torch.relu):
        return "relu"
    if node.op == "call_method" and node.target == "relu":
        return "relu"
    return None


def _is_add(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in (operator.add, torch.add)) or (
        node.op == "call_method" and node.target == "add"
    )


def _is_tensor_add(node: fx.Node, meta: dict[str, Any]) -> bool:
    """An add of two tensors (a NormAdd); an add of a constant is an affine map instead."""
    return _is_add(node) and len(_tensor_args(node, meta)) == 2


def _tensor_args(node: fx.Node, meta: dict[str, Any]) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if _is_tensor(meta, n) else None)
    return found


def _is_tensor(meta: dict[str, Any], node: fx.Node) -> bool:
    return isinstance(meta.get(node.name), torch.Size)


class _GraphFacts:
    """What conversion needs to know about the traced graph: BN fusion pairs, spiking sites, shapes."""

    def __init__(self, gm: fx.GraphModule, meta: dict[str, Any], spike_unactivated: bool) -> None:
        self.gm = gm
        self.meta = meta
        self.bn_of_conv: dict[fx.Node, fx.Node] = {}
        self.conv_of_bn: dict[fx.Node, fx.Node] = {}
        nodes = list(gm.graph.nodes)
        for node in nodes:
            module = self.module(node)
            if isinstance(module, nn.BatchNorm2d):
                source = node.args[0]
                if (
                    isinstance(source, fx.Node)
                    and isinstance(self.module(source), nn.Conv2d | nn.ConvTranspose2d)
                    and len(source.users) == 1
                ):
                    self.bn_of_conv[source] = node
                    self.conv_of_bn[node] = source
        self.activations = {node: kind for node in nodes if (kind := _activation_kind(gm, node))}
        self.unactivated: set[fx.Node] = set()
        if spike_unactivated:
            for node in nodes:
                if node in self.bn_of_conv or not (self.is_synaptic(node) or _is_tensor_add(node, meta)):
                    continue
                if not _is_tensor(meta, node) or len(meta[node.name]) != 4:
                    continue
                users = list(node.users)
                if any(user in self.activations for user in users):
                    continue
                if self.feeds_synaptic(node):
                    self.unactivated.add(node)

    def feeds_synaptic(self, node: fx.Node) -> bool:
        """Whether ``node`` reaches a synaptic layer through ops that carry encodings (upsample, cat, ...)."""
        for user in node.users:
            if self.is_synaptic(user):
                return True
            carries = _carries_encoding(self, user) or (
                user.op == "call_function" and user.target is torch.cat and _concat_axis(user, self.meta) == 1
            )
            if carries and self.feeds_synaptic(user):
                return True
        return False

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.gm.get_submodule(node.target) if node.op == "call_module" else None

    def is_synaptic(self, node: fx.Node) -> bool:
        """A convolution / linear layer (or a BN fused into one)."""
        return isinstance(self.module(node), _SYNAPTIC_MODULES) or node in self.conv_of_bn

    def sites(self) -> list[fx.Node]:
        """Nodes whose ANN output is carried by IF spikes, in graph order."""
        return [n for n in self.gm.graph.nodes if n in self.activations or n in self.unactivated]

    def folds_into_source(self, site: fx.Node) -> bool:
        """Whether the normalisation of an activation site folds into the layer in front of it."""
        source = site.args[0]
        return (
            isinstance(source, fx.Node)
            and (self.is_synaptic(source) or _is_tensor_add(source, self.meta))
            and source not in self.bn_of_conv
            and len(source.users) == 1
        )


class _RecordingInterpreter(fx.Interpreter):
    """Runs the traced ANN and hands selected node outputs to ``sink(name, tensor)``; records shapes."""

    def __init__(self, gm: fx.GraphModule, names: set[str], sink) -> None:
        super().__init__(gm)
        self.names = names
        self.sink = sink
        self.meta: dict[str, Any] = {}

    def run_node(self, node: fx.Node) -> Any:
        value = super().run_node(node)
        self.meta[node.name] = value.shape if isinstance(value, torch.Tensor) else type(value)
        if node.name in self.names:
            self.sink(node.name, value)
        return value


def record_shapes(gm: fx.GraphModule, example: torch.Tensor) -> dict[str, Any]:
    """Shape of every tensor node (``torch.Size``), the type for other nodes, from one forward pass."""
    interpreter = _RecordingInterpreter(gm, set(), lambda name, value: None)
    with torch.no_grad():
        interpreter.run(example)
    return interpreter.meta


class ExtremeValues:
    """Streaming per-channel percentiles: keeps the ``capacity`` largest and smallest values per channel.

    The ``p``-th percentile of ``n`` values is the value at ascending rank ``p / 100 * (n - 1)`` (linear
    interpolation between neighbours); it is exact while that rank is within ``capacity`` of either end.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.high: torch.Tensor | None = None
        self.low: torch.Tensor | None = None
        self.count = 0

    def update(self, values: torch.Tensor) -> None:
        """Add ``values [C, M]`` (M samples of C channels)."""
        values = values.detach().to(torch.float32)
        k = min(self.capacity, values.shape[1])
        high = values.topk(k, dim=1).values
        low = (-values).topk(k, dim=1).values
        if self.high is not None:
            high = torch.cat([self.high, high], 1).topk(min(self.capacity, self.high.shape[1] + k), 1).values
            low = torch.cat([self.low, low], 1).topk(min(self.capacity, self.low.shape[1] + k), 1).values
        self.high, self.low = high, low
        self.count += values.shape[1]

    def percentile(self, percent: float) -> torch.Tensor:
        """The ``percent``-th percentile per channel, ``[C]``."""
        rank = percent / 100.0 * (self.count - 1)
        if percent >= 50.0:
            table, position = self.high, (self.count - 1) - rank
            sign = 1.0
        else:
            table, position = self.low, rank
            sign = -1.0
        position = min(position, table.shape[1] - 1)
        below, above = math.floor(position), math.ceil(position)
        fraction = position - below
        value = table[:, below] * (1 - fraction) + table[:, above] * fraction
        return sign * value


def calibrate_percentiles(
    gm: fx.GraphModule,
    site_names: list[str],
    inputs: Iterable[torch.Tensor],
    config: ConversionConfig,
    progress: bool = True,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-site activation ranges ``(eps, lam)`` from the ANN run on calibration windows.

    ``eps`` / ``lam`` are the lower / upper ``config.percentiles`` of the site's activations over all
    windows and positions, per channel (``[C]``) or per layer (``[1]``), following Spiking-RetinaNet.

    Args:
        gm: traced ANN (eval mode).
        site_names: fx node names whose outputs are calibrated.
        inputs: batches ``[B, C, H, W]`` of ANN input windows; at most ``config.calibration_windows`` used.
        config: percentiles, granularity, window budget.
        progress: show a tqdm bar on stderr.
    """
    from tqdm import tqdm

    low_percent, high_percent = config.percentiles
    trackers: dict[str, ExtremeValues] = {}
    windows_total = config.calibration_windows

    def sink(name: str, value: torch.Tensor) -> None:
        channels = value.shape[1] if config.granularity == "channel" else 1
        per_channel = value.transpose(0, 1).reshape(value.shape[1], -1).reshape(channels, -1)
        if name not in trackers:
            per_window = per_channel.shape[1] / value.shape[0]
            tail = max(low_percent, 100.0 - high_percent) / 100.0
            trackers[name] = ExtremeValues(capacity=int(math.ceil(windows_total * per_window * tail)) + 2)
        trackers[name].update(per_channel)

    interpreter = _RecordingInterpreter(gm, set(site_names), sink)
    seen = 0
    with (
        torch.no_grad(),
        tqdm(total=windows_total, desc="calibrating", unit="window", disable=not progress) as bar,
    ):
        for batch in inputs:
            batch = batch[: windows_total - seen]
            interpreter.run(batch)
            seen += batch.shape[0]
            bar.update(batch.shape[0])
            if seen >= windows_total:
                break
    if seen == 0:
        raise UserFacingError("calibration needs at least one input window, got none")
    ranges = {}
    for name in site_names:
        tracker = trackers[name]
        ranges[name] = (tracker.percentile(low_percent).double(), tracker.percentile(high_percent).double())
    return ranges


def _weight_and_bias(
    gm: fx.GraphModule, facts: _GraphFacts, node: fx.Node
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The synaptic module behind ``node`` (a conv/linear, or a BN fused into its conv) with float64 w, b."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    if node in facts.conv_of_bn:
        conv_node = facts.conv_of_bn[node]
        conv = facts.module(conv_node)
        bn = facts.module(node)
        weight, bias = fuse_conv_bn_weights(
            conv.weight.detach(),
            None if conv.bias is None else conv.bias.detach(),
            bn.running_mean,
            bn.running_var,
            bn.eps,
            bn.weight.detach() if bn.affine else torch.ones_like(bn.running_mean),
            bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean),
            transpose=isinstance(conv, nn.ConvTranspose2d),
        )
        return conv, weight.detach().double(), bias.detach().double()
    module = facts.module(node)
    out_channels = (
        module.weight.shape[1] * module.groups
        if isinstance(module, nn.ConvTranspose2d)
        else (module.weight.shape[0])
    )
    bias = (
        torch.zeros(out_channels, dtype=torch.float64)
        if module.bias is None
        else module.bias.detach().double()
    )
    return module, module.weight.detach().double(), bias


def _input_channel_factor(module: nn.Module, weight: torch.Tensor, per_input: torch.Tensor) -> torch.Tensor:
    """``per_input [C_in]`` laid out to multiply ``weight`` along its input-channel axis."""
    if isinstance(module, nn.ConvTranspose2d):
        return per_input.view(-1, *([1] * (weight.dim() - 1)))
    if isinstance(module, nn.Linear):
        return per_input.view(1, -1)
    groups = module.groups
    out_channels, in_per_group = weight.shape[:2]
    table = per_input.view(groups, in_per_group).repeat_interleave(out_channels // groups, dim=0)
    return table.view(out_channels, in_per_group, *([1] * (weight.dim() - 2)))


def _output_channel_view(module: nn.Module, weight: torch.Tensor, per_output: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.ConvTranspose2d):
        groups = module.groups
        in_channels, out_per_group = weight.shape[:2]
        table = per_output.view(groups, out_per_group).repeat_interleave(in_channels // groups, dim=0)
        return table.view(in_channels, out_per_group, *([1] * (weight.dim() - 2)))
    return per_output.view(-1, *([1] * (weight.dim() - 1)))


def normalise_synaptic_layer(
    module: nn.Module,
    weight: torch.Tensor,
    bias: torch.Tensor,
    encoding_in: Encoding | None,
    encoding_out: Encoding | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Spiking-RetinaNet eq. 4 for one convolution / linear layer.

    ``w~ = w * s_in / s_out``, ``b~ = (b + sum_i w_i eps_in_i - eps_out) / s_out`` (input layers have
    ``s_in = 1, eps_in = 0``; layers with no spiking output keep ``s_out = 1, eps_out = 0``).

    Returns:
        the normalised weight and bias (float64) and, where the input shift cannot be folded into the
        bias exactly (zero-padded or transposed convolution), the per-channel input shift ``eps_in / s_in``
        to add to the input instead (else None).
    """
    input_shift = None
    if encoding_in is not None:
        weight_in = weight * _input_channel_factor(module, weight, encoding_in.scale)
        if encoding_in.is_shifted:
            padded = isinstance(module, nn.Conv2d) and any(p != 0 for p in _as_pair(module.padding))
            if (
                isinstance(module, nn.ConvTranspose2d)
                or padded
                or getattr(module, "padding_mode", "zeros") != "zeros"
            ):
                input_shift = encoding_in.offset / encoding_in.scale
            else:
                shifted = weight * _input_channel_factor(module, weight, encoding_in.offset)
                if isinstance(module, nn.Linear):
                    bias = bias + shifted.sum(1)
                else:
                    bias = bias + shifted.sum(dim=tuple(range(1, weight.dim())))
        weight = weight_in
    if encoding_out is not None:
        weight = weight / _output_channel_view(module, weight, encoding_out.scale)
        bias = (bias - encoding_out.offset) / encoding_out.scale
    return weight, bias, input_shift


def _as_pair(value: Any) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def _normalised_copy(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A copy of the synaptic module (same hyper-parameters) with the given weight and bias, float32."""
    if isinstance(module, nn.Conv2d):
        clone = nn.Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups,
            True,
            module.padding_mode,
        )
    elif isinstance(module, nn.ConvTranspose2d):
        clone = nn.ConvTranspose2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.output_padding,
            module.groups,
            True,
            module.dilation,
        )
    else:
        clone = nn.Linear(module.in_features, module.out_features, True)
    clone.weight = nn.Parameter(weight.float(), requires_grad=False)
    clone.bias = nn.Parameter(bias.float(), requires_grad=False)
    return clone


def site_encodings(
    gm: fx.GraphModule,
    facts: _GraphFacts,
    ranges: dict[str, tuple[torch.Tensor, torch.Tensor]],
    config: ConversionConfig,
) -> dict[fx.Node, Encoding]:
    """Encoding ``a = eps + (lam - eps) q`` of each spiking site, from percentiles or Quant-ReLU clips."""
    encodings = {}
    for node in facts.sites():
        channels = facts.meta[node.name][1]
        use_clip = facts.activations.get(node) == "quant" and config.normalisation in ("auto", "quant")
        if use_clip:
            clip = max(float(facts.module(node).clip.detach().abs()), 1e-3)
            low, high = torch.zeros(1, dtype=torch.float64), torch.full((1,), clip, dtype=torch.float64)
        elif node.name in ranges:
            low, high = ranges[node.name]
        else:
            raise ConversionError(
                node.name,
                "needs calibration data: not a Quant-ReLU, so its range comes from activation percentiles",
            )
        scale = high - low
        scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
        encodings[node] = Encoding(offset=low.expand(channels).clone(), scale=scale.expand(channels).clone())
    return encodings


def _levels_of(facts: _GraphFacts, node: fx.Node, config: ConversionConfig) -> int | None:
    if facts.activations.get(node) == "quant" and config.normalisation in ("auto", "quant"):
        return int(facts.module(node).levels)
    return None


def refuse_unsupported(gm: fx.GraphModule, facts: _GraphFacts) -> None:
    """Raise ``ConversionError`` for the first node with no spiking equivalent."""
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "get_attr":
            raise ConversionError(node.name, f"reads attribute '{node.target}' inside forward; use a module")
        module = facts.module(node)
        if module is not None:
            for refused, reason in _REFUSED_MODULES.items():
                if isinstance(module, refused):
                    raise ConversionError(f"{node.target} ({type(module).__name__})", reason)
            if isinstance(module, nn.Upsample) and module.mode != "nearest":
                raise ConversionError(
                    f"{node.target} (Upsample)",
                    f"mode '{module.mode}' mixes neighbours; only 'nearest' converts",
                )
            if isinstance(module, nn.BatchNorm2d | nn.AvgPool2d | nn.Upsample | nn.Flatten | nn.Sequential):
                continue
            if isinstance(module, _SYNAPTIC_MODULES + _PASSTHROUGH_MODULES) or node in facts.activations:
                continue
            raise ConversionError(
                f"{node.target} ({type(module).__name__})",
                "no spiking equivalent (only conv/linear/BN/ReLU/"
                "Quant-ReLU/nearest upsampling/average pooling/add/concat/reshape convert)",
            )
        if node in facts.activations or _is_add(node):
            continue
        if node.op == "call_function":
            if node.target in (F.max_pool2d, torch.max_pool2d):
                raise ConversionError(node.name, _REFUSED_MODULES[nn.MaxPool2d])
            if node.target is F.interpolate:
                mode = node.kwargs.get("mode", node.args[3] if len(node.args) > 3 else "nearest")
                if mode != "nearest":
                    raise ConversionError(node.name, f"interpolation mode '{mode}'; only 'nearest' converts")
                continue
            if (
                node.target in (torch.cat, F.avg_pool2d, F.adaptive_avg_pool2d)
                or node.target in _SHAPE_FUNCTIONS
            ):
                if node.target in (operator.mul,) and len(_tensor_args(node, facts.meta)) > 1:
                    raise ConversionError(node.name, "product of two activations has no IF equivalent")
                continue
            raise ConversionError(
                node.name,
                f"function {getattr(node.target, '__name__', node.target)} has no spiking equivalent",
            )
        if node.op == "call_method" and node.target not in _SHAPE_METHODS:
            raise ConversionError(node.name, f"tensor method '{node.target}' has no spiking equivalent")


@dataclass
class ConvertedNetwork:
    """The result of conversion: the spiking graph and what the runtime and the measurements need.

    Attributes:
        graph_module: fx graph over normalised layers, ``IFNeurons``, ``NormAdd``, ``ChannelAffine``.
            Called as a plain module it computes the rate-limit (T -> infinity) of the SNN.
        sites: for each IF population (graph node name): the ANN node it replaces (name).
        config: the conversion settings used.
        ranges: ``(low, high)`` float64 ``[C]`` of each site calibrated on data (ANN node name), which
            with the ANN and ``config`` rebuild the same graph (``streamdet.loading.load_snn``).
    """

    graph_module: fx.GraphModule
    sites: dict[str, str]
    config: ConversionConfig
    ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


def convert_network(
    model: nn.Module,
    calibration_inputs: Iterable[torch.Tensor] | None,
    config: ConversionConfig,
    example_input: torch.Tensor | None = None,
    progress: bool = True,
    ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> ConvertedNetwork:
    """Convert a trained ANN into an SNN graph (the pipeline in the module docstring).

    Args:
        model: the ANN; ``forward(x [B, C, H, W])`` -> tensor or tuple of tensors.
        calibration_inputs: batches of ANN input windows ``[B, C, H, W]`` in [0, 1]; may be None when every
            activation is a Quant-ReLU converted with ``normalisation`` ``"quant"`` / ``"auto"`` and
            ``spike_unactivated`` is False (a site without a learned range raises ``ConversionError``).
        config: conversion settings.
        example_input: one input batch used to find the shapes when no calibration data is given.
        progress: show calibration progress on stderr.
        ranges: the calibrated ranges of an earlier conversion (:attr:`ConvertedNetwork.ranges`), used
            instead of calibrating again.
    """
    model = model.eval()
    gm = trace_model(model)
    batches = iter(calibration_inputs) if calibration_inputs is not None else iter(())
    first = next(batches, None)
    if first is None and example_input is None:
        raise UserFacingError("conversion needs calibration inputs or an example input to find the shapes")
    meta = record_shapes(gm, (first if first is not None else example_input)[:1])
    facts = _GraphFacts(gm, meta, config.spike_unactivated)
    refuse_unsupported(gm, facts)
    needs_data = [
        n.name
        for n in facts.sites()
        if not (facts.activations.get(n) == "quant" and config.normalisation in ("auto", "quant"))
    ]
    known_ranges = dict(ranges or {})
    ranges = {name: known_ranges[name] for name in needs_data if name in known_ranges}
    needs_data = [name for name in needs_data if name not in ranges]
    if needs_data:
        if first is None:
            unactivated = {n.name for n in facts.unactivated}
            reason = (
                "needs calibration data: spike_unactivated puts IF neurons on adds / convolutions without an "
                "activation, whose ranges come from percentiles (give data, or pass them on as currents)"
                if needs_data[0] in unactivated
                else "needs calibration data (it is not a Quant-ReLU)"
            )
            raise ConversionError(needs_data[0], reason)
        ranges.update(calibrate_percentiles(gm, needs_data, _chain(first, batches), config, progress))
    encodings = site_encodings(gm, facts, ranges, config)
    network = _build_spiking_graph(gm, facts, encodings, config)
    network.ranges = ranges
    return network


def _chain(first: torch.Tensor, rest) -> Iterable[torch.Tensor]:
    yield first
    yield from rest


def _build_spiking_graph(
    gm: fx.GraphModule, facts: _GraphFacts, encodings: dict[fx.Node, Encoding], config: ConversionConfig
) -> ConvertedNetwork:
    """Emit the spiking graph: normalised layers, NormAdd, IF populations (rules in the module docstring)."""
    return _SpikingGraphBuilder(gm, facts, encodings, config).build()


class _SpikingGraphBuilder:
    """Builds the spiking graph node by node; every ANN node becomes its spiking counterpart with the
    encoding ``a = offset + scale * q`` its value travels in (``None``: in ANN units)."""

    def __init__(
        self,
        gm: fx.GraphModule,
        facts: _GraphFacts,
        encodings: dict[fx.Node, Encoding],
        config: ConversionConfig,
    ) -> None:
        self.gm = gm
        self.facts = facts
        self.encodings = encodings
        self.config = config
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.env: dict[fx.Node, fx.Node] = {}
        self.encoding_of: dict[fx.Node, Encoding | None] = {}
        self.decoded: dict[fx.Node, fx.Node] = {}
        self.sites: dict[str, str] = {}
        self.folded_target: dict[fx.Node, Encoding] = {}
        for site, encoding in encodings.items():
            if site in facts.activations and facts.folds_into_source(site):
                self.folded_target[site.args[0]] = encoding
            elif site in facts.unactivated:
                self.folded_target[site] = encoding

    def build(self) -> ConvertedNetwork:
        """The converted network of the ANN graph's nodes, in order."""
        for node in self.gm.graph.nodes:
            self.emit(node)
        self.graph.lint()
        return ConvertedNetwork(
            graph_module=fx.GraphModule(self.root, self.graph), sites=self.sites, config=self.config
        )

    def emit(self, node: fx.Node) -> None:
        """The spiking counterpart of one ANN node (by kind)."""
        facts = self.facts
        if node.op == "placeholder":
            self.env[node] = self.graph.placeholder(node.name)
            self.encoding_of[node] = None
        elif node.op == "output":
            self.graph.output(fx.node.map_arg(node.args[0], self.decode))
        elif node in facts.bn_of_conv:
            return  # folded into its convolution
        elif facts.is_synaptic(node):
            self.emit_synaptic_layer(node)
        elif isinstance(facts.module(node), nn.BatchNorm2d):
            self.fold_batch_norm(node)
        elif node in facts.activations:
            self.emit_activation(node)
        elif _is_tensor_add(node, facts.meta):
            self.emit_add(node)
        elif _carries_encoding(facts, node):
            self.env[node] = self.copy_node(node, lambda n: self.env[n])
            self.encoding_of[node] = self.encoding_of.get(node.args[0])
        elif node.op == "call_function" and node.target is torch.cat and _concat_axis(node, facts.meta) == 1:
            self.emit_channel_concat(node)
        else:
            self.env[node] = self.copy_node(
                node, lambda n: self.decode(n) if _is_tensor(facts.meta, n) else self.env[n]
            )
            self.encoding_of[node] = None

    # ---- helpers

    def add_module(self, name: str, module: nn.Module, args: tuple) -> fx.Node:
        safe = name.replace(".", "_")
        self.root.add_module(safe, module)
        return self.graph.call_module(safe, args)

    def channels(self, node: fx.Node) -> int:
        return self.facts.meta[node.name][1]

    def identity_encoding(self, node: fx.Node) -> Encoding:
        width = self.channels(node)
        return Encoding(torch.zeros(width, dtype=torch.float64), torch.ones(width, dtype=torch.float64))

    def decode(self, node: fx.Node) -> fx.Node:
        """The value of ``node`` in ANN units (an affine map inserted if it is encoded)."""
        encoding = self.encoding_of.get(node)
        if encoding is None:
            return self.env[node]
        if node not in self.decoded:
            self.decoded[node] = self.add_module(
                f"{node.name}_decode", ChannelAffine(encoding.scale, encoding.offset), (self.env[node],)
            )
        return self.decoded[node]

    def to_encoding(self, node: fx.Node, target: Encoding, name: str) -> fx.Node:
        """``q' = (s q + eps - eps') / s'``: re-encode ``node`` for the IF population ``target``."""
        encoding = self.encoding_of.get(node) or self.identity_encoding(node)
        scale = encoding.scale / target.scale
        offset = (encoding.offset - target.offset) / target.scale
        return self.add_module(name, ChannelAffine(scale, offset), (self.env[node],))

    def copy_node(self, node: fx.Node, argument: Callable[[fx.Node], fx.Node]) -> fx.Node:
        """The node in the new graph (a module call gets a copy of its module)."""
        copied = self.graph.node_copy(node, argument)
        if node.op == "call_module":
            copied.target = node.target.replace(".", "_")
            if not hasattr(self.root, copied.target):
                self.root.add_module(copied.target, copy.deepcopy(self.facts.module(node)))
        return copied

    def emit_neurons(self, source: fx.Node, current: fx.Node, levels: int | None) -> fx.Node:
        """An IF population fed by ``current``, standing for the ANN node ``source`` (bursting up to
        ``levels`` or ``config.burst_spikes`` spikes per step with ``config.burst``)."""
        name = f"{source.name}_if"
        self.sites[name.replace(".", "_")] = source.name
        max_spikes = (levels or self.config.burst_spikes) if self.config.burst else None
        return self.add_module(name, IFNeurons(levels, max_spikes), (current,))

    # ---- one method per kind of node

    def emit_synaptic_layer(self, node: fx.Node) -> None:
        """A convolution / linear layer (with its batch norm folded in), normalised (eq. 4) from its
        input's encoding to its target's; IF neurons on it when it feeds another layer unactivated."""
        module, weight, bias = _weight_and_bias(self.gm, self.facts, node)
        conv_node = self.facts.conv_of_bn.get(node, node)
        source = conv_node.args[0]
        target = self.folded_target.get(node)
        weight, bias, input_shift = normalise_synaptic_layer(
            module, weight, bias, self.encoding_of.get(source), target
        )
        layer_input = self.env[source]
        if input_shift is not None:
            layer_input = self.add_module(
                f"{node.name}_shift", ChannelAffine(torch.ones_like(input_shift), input_shift), (layer_input,)
            )
        out = self.add_module(node.name, _normalised_copy(module, weight, bias), (layer_input,))
        if node in self.facts.unactivated:
            out = self.emit_neurons(node, out, None)
        self.env[node] = out
        self.encoding_of[node] = target

    def fold_batch_norm(self, node: fx.Node) -> None:
        """A batch norm after no synaptic layer: folded into its input's encoding."""
        bn = self.facts.module(node)
        source = node.args[0]
        inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
        gain = inv_std * (bn.weight.detach().double() if bn.affine else 1.0)
        shift = (bn.bias.detach().double() if bn.affine else 0.0) - bn.running_mean.double() * gain
        encoding = self.encoding_of.get(source) or self.identity_encoding(source)
        self.env[node] = self.env[source]
        self.encoding_of[node] = Encoding(encoding.offset * gain + shift, encoding.scale * gain)

    def emit_activation(self, node: fx.Node) -> None:
        """A ReLU / Quant-ReLU: an IF population on its input, re-encoded unless already folded."""
        encoding = self.encodings[node]
        source = node.args[0]
        if self.facts.folds_into_source(node):
            current = self.env[source]
        else:
            current = self.to_encoding(source, encoding, f"{node.name}_norm")
        self.env[node] = self.emit_neurons(node, current, _levels_of(self.facts, node, self.config))
        self.encoding_of[node] = encoding

    def emit_add(self, node: fx.Node) -> None:
        """A residual add: NormAdd of its two inputs' encodings into the output's (Spiking-RetinaNet)."""
        first, second = _tensor_args(node, self.facts.meta)
        target = self.folded_target.get(node)
        out_encoding = target or self.identity_encoding(node)
        parts = [
            self.encoding_of.get(first) or self.identity_encoding(node),
            self.encoding_of.get(second) or self.identity_encoding(node),
        ]
        scales = torch.stack([p.scale / out_encoding.scale for p in parts])
        bias = (parts[0].offset + parts[1].offset - out_encoding.offset) / out_encoding.scale
        out = self.add_module(node.name, NormAdd(scales, bias), (self.env[first], self.env[second]))
        if node in self.facts.unactivated:
            out = self.emit_neurons(node, out, None)
        self.env[node] = out
        self.encoding_of[node] = target

    def emit_channel_concat(self, node: fx.Node) -> None:
        """A concatenation over channels: the parts' encodings joined."""
        parts = node.args[0] if node.args else node.kwargs["tensors"]
        offsets, scales = [], []
        for part in parts:
            encoding = self.encoding_of.get(part) or self.identity_encoding(part)
            offsets.append(encoding.offset)
            scales.append(encoding.scale)
        self.env[node] = self.copy_node(node, lambda n: self.env[n])
        joined = Encoding(torch.cat(offsets), torch.cat(scales))
        self.encoding_of[node] = joined if (joined.is_shifted or torch.any(joined.scale != 1)) else None


def _concat_axis(node: fx.Node, meta: dict[str, Any]) -> int:
    axis = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    rank = len(meta[node.name]) if _is_tensor(meta, node) else 0
    return axis % rank if rank else axis


def _carries_encoding(facts: _GraphFacts, node: fx.Node) -> bool:
    """Ops that commute with a per-channel affine encoding: nearest upsampling, unpadded average pooling."""
    module = facts.module(node)
    if isinstance(module, nn.Upsample | nn.Identity | nn.Dropout | nn.AdaptiveAvgPool2d):
        return True
    if isinstance(module, nn.AvgPool2d):
        return all(p == 0 for p in _as_pair(module.padding))
    if node.op == "call_function" and node.target is F.interpolate:
        return True
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        return True
    return node.op == "call_method" and node.target == "contiguous"


def convert_detector(
    bundle: DetectorBundle,
    calibration_inputs: Iterable[torch.Tensor] | None,
    config: ConversionConfig,
    progress: bool = True,
    ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> SpikingDetector:
    """Convert a loaded detector into a ``SpikingDetector`` with the bundle's contract and decoding.

    Args:
        bundle: the ANN detector (``streamdet.model.load_detector``).
        calibration_inputs: batches of padded ANN input windows ``[B, C, H, W]``, or None to use only the
            learned Quant-ReLU clips (``normalisation`` ``"quant"``).
        config: conversion settings.
        progress: show calibration progress on stderr.
        ranges: calibrated ranges of an earlier conversion of the same ANN (:func:`convert_network`).
    """
    from dataclasses import asdict

    from streamdet.model import pad_input

    width, height = bundle.spec.sensor_size
    example = pad_input(torch.zeros(1, bundle.config.in_channels, height, width))
    network = convert_network(
        bundle.model, calibration_inputs, config, example_input=example, progress=progress, ranges=ranges
    )
    return SpikingDetector(
        graph_module=network.graph_module,
        neuron=IFParameters(
            threshold=1.0, reset=config.reset, initial_membrane=config.initial_membrane
        ).with_bounds(config.membrane_bounds),
        sites=network.sites,
        spec=bundle.spec,
        decoding=bundle.decoding,
        class_names=tuple(bundle.class_names),
        model_config=bundle.config.to_dict(),
        conversion=asdict(network.config),
        source={
            "state_dict": {name: value.detach().cpu() for name, value in bundle.model.state_dict().items()},
            "ranges": {name: [low.cpu(), high.cpu()] for name, (low, high) in network.ranges.items()},
        },
    )
