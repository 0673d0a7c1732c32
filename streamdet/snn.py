"""The spiking runtime: a converted network simulated with its state kept across calls.

A stream is one continuous simulation: ``run(inputs [K, B, C, H, W], state)`` advances the network by
``K`` time steps (one step = ``dt = window_us / T`` microseconds) and returns the per-step output
currents and the new state; calling it again with the next ``K`` steps continues where it stopped, so
any chunking of a stream gives the same spikes.

Engines (``backend=``):

- ``"native"`` (default): every non-spiking operation of the graph (convolutions, NormAdd, upsampling,
  reshapes) runs once on the whole chunk with time folded into the batch (``[K * B, C, H, W]``); each IF
  population then scans its ``K`` steps (``streamdet.neurons.if_scan``). Because there is no synaptic
  delay, step ``k`` of a layer only needs step ``k`` of the layer before, so this is the same simulation
  as stepping the whole network one step at a time.
- ``"snntorch"``: step-by-step reference on ``snntorch.Leaky`` (``beta = 1``: an IF neuron). snntorch
  fires on ``v > threshold`` (strict) and, with its internal reset, decides the reset from the previous
  step's membrane (``reset_delay``), which differs from eq. 3 of Spiking-RetinaNet when ``v >= 2``. So the
  neuron runs with ``threshold = nextafter(1, 0)`` (``v > 1 - ulp`` is ``v >= 1``) and
  ``reset_mechanism="none"``, and the reset (subtract or zero) is applied to the returned membrane.
- ``"norse"``: step-by-step on ``norse.torch.functional.iaf_feed_forward_step`` (reset to zero, strict
  ``>``, threshold ``nextafter(1, 0)``); only for networks converted with ``reset="zero"`` (the ablation).

Burst populations (``IFNeurons.max_spikes = N``, ``ConversionConfig(burst=True)``) emit up to ``N`` spikes
per step and pass ``counts / N`` on (``streamdet.neurons.burst_scan``). The native engine scans them like
IF populations; ``"snntorch"`` runs each burst step as ``N`` sub-steps of its ``Leaky`` neuron with the same
current and sums the spikes (the definition the burst neuron is equivalent to, ``streamdet.neurons``);
``"norse"`` refuses them: its IAF neuron resets to zero, and burst neurons reset by subtraction only. A
probe receives what a population passes on, in rate units: ``counts / N`` of a burst population.

Precision (``SpikingNetwork.with_precision``): ``"float32"`` (default), ``"bfloat16"``, which runs every
spike-fed convolution on bfloat16 copies of its weights in channels-last layout (oneDNN; on CPUs with
AMX a 48-channel 3x3 convolution takes about a third of its float32 time). The stem, which reads analog
event counts, stays float32. Spikes (counts over ``N``) are exact in bfloat16 where ``N`` is a power of
two (the shipped models' 4 and 8); the products are summed in float32 inside oneDNN and rounded to
bfloat16 once; membranes, neurons, NormAdd and the outputs stay float32. The weights are rounded to 8
significant bits, so a membrane near a threshold may fire one level apart from the float32 engine; what
that costs in mAP is measured (docs/conversion.md, "Precision").

``"int8"`` runs every spike-fed convolution as an integer convolution (oneDNN's ``qconv_pointwise``, the
kernel PyTorch's own x86 int8 inference lowers to): a spike map is ``counts / N`` with integer counts in
``[0, N]``, so it is passed on exactly as ``uint8`` counts with scale ``1 / N``; the weights are rounded to
``int8`` per output channel (symmetric, ``scale = max |w| / 127``); the products are summed in ``int32``
exactly and scaled back to float32 once, with the bias, in the same kernel. So an int8 convolution is the
float32 convolution with the rounded weights, to one float32 rounding (tested); only the weight rounding
(at most half a step of ``max |w| / 127`` per weight) changes what the network computes, and what that
costs in mAP is measured (docs/conversion.md, "Precision"). Populations of more than
:data:`INT8_MAX_SPIKES` spikes per step keep float32 convolutions (on CPUs without VNNI, oneDNN sums
pairs of ``uint8 x int8`` products in 16 bits, exact for counts up to that bound). The stem stays float32.

The engines give the same spikes whenever the convolutions give the same sums; float32 convolutions of
a batch of ``K * B`` and of ``B`` may round differently in the last bit (different blocking), so a
membrane that lands within one ulp of the threshold can fire one step apart. With dyadic weights
(exact sums) the spikes are identical, which the tests check.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from streamdet.contract import Decoding, InputSpec
from streamdet.errors import UserFacingError
from streamdet.neurons import (
    BurstParameters,
    IFParameters,
    IFState,
    add_channel_offset,
    burst_scan,
    if_initial_state,
    if_scan,
)

BACKENDS = ("native", "snntorch", "norse")
PRECISIONS = ("float32", "bfloat16", "int8")
INT8_MAX_SPIKES = 128
"""The most spikes per step of a population whose convolutions may run in int8 (module docstring):
``2 * 128 * 127`` fits the 16-bit pair sums of oneDNN's int8 kernels on CPUs without VNNI."""


class IFNeurons(nn.Module):
    """An IF population (threshold 1) in a converted graph.

    The runtime simulates it (``streamdet.neurons``); called as a plain module it returns the rate the
    population converges to, ``clamp(x, 0, 1)`` (quantised to ``floor(x * levels + 0.5) / levels`` when
    it replaced a Quant-ReLU with ``levels`` levels), so the graph called directly is the normalised ANN.

    ``current_offset`` (``[C]`` or None) is a per-channel current the simulation adds at every step,
    in thresholds per step; set by bias calibration (``streamdet.bias_calibration``). The rate limit
    above ignores it: it is a correction of the simulation towards that limit.

    ``max_spikes`` (``N``, or None for plain IF neurons) makes the population burst: up to ``N`` spikes per
    step, each worth ``1 / N`` (``streamdet.neurons.burst_scan``); with ``N = levels`` one step reproduces
    the Quant-ReLU it replaced.
    """

    def __init__(self, levels: int | None = None, max_spikes: int | None = None) -> None:
        super().__init__()
        self.levels = levels
        self.max_spikes = max_spikes
        self.register_buffer("current_offset", None)

    @property
    def spikes_per_step(self) -> int:
        """The most spikes a neuron emits per step: ``max_spikes``, 1 for IF (and graphs saved without it)."""
        return int(getattr(self, "max_spikes", None) or 1)

    def set_current_offset(self, offset: torch.Tensor | None) -> None:
        """Store ``offset`` ``[C]`` (a float32 buffer, saved with the graph) or remove it (None)."""
        self.register_buffer("current_offset", None if offset is None else offset.detach().float().clone())

    def offset_current(self, current: torch.Tensor) -> torch.Tensor:
        """``current + current_offset`` over channel axis 1 (``current`` unchanged without an offset)."""
        offset = getattr(self, "current_offset", None)
        if offset is None:
            return current
        return add_channel_offset(current, offset)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        rate = current.clamp(0.0, 1.0)
        if self.levels:
            rate = torch.floor(rate * self.levels + 0.5) / self.levels
        return rate

    def extra_repr(self) -> str:
        return f"levels={self.levels}, max_spikes={getattr(self, 'max_spikes', None)}"


class NormAdd(nn.Module):
    """NormAdd (Spiking-RetinaNet, fig. 3): ``out = sum_k scales[k, c] * x_k + bias[c]`` over channel axis 1.

    Args:
        scales: ``[n_inputs, C]``: ``s_k / s_out`` (input encoding scale over output scale).
        bias: ``[C]``: ``(sum_k eps_k - eps_out) / s_out``.
    """

    def __init__(self, scales: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scales", scales.float().clone())
        self.register_buffer("bias", bias.float().clone())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (inputs[0].dim() - 2)
        out = self.bias.view(shape) + inputs[0] * self.scales[0].view(shape)
        for k in range(1, len(inputs)):
            out = out + inputs[k] * self.scales[k].view(shape)
        return out


class ChannelAffine(nn.Module):
    """Per-channel affine map ``out = scale[c] * x + offset[c]`` over channel axis 1 (re-/decoding)."""

    def __init__(self, scale: torch.Tensor, offset: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.float().clone())
        self.register_buffer("offset", offset.float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(shape) + self.offset.view(shape)


@dataclass(frozen=True)
class SNNState:
    """State of a simulation: the membrane of every IF population and the number of steps simulated.

    Membranes are created at the first step that reaches a population (their shape follows the input),
    at ``initial_membrane * threshold``.
    """

    batch: int
    device: torch.device | None = None
    membranes: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0


Probe = Callable[[str, torch.Tensor], None]
"""Called with (population name, spikes ``[K, B, ...]``) for each IF population of each chunk; a burst
population's spikes are its counts over ``N`` (what it passes on, in [0, 1])."""


class SpikingNetwork:
    """A converted network (an fx graph with ``IFNeurons``) and its simulation engines.

    Args:
        graph_module: the converted graph (``streamdet.convert.convert_network``).
        neuron: IF parameters shared by all populations (threshold 1 after normalisation).
        sites: population name -> name of the ANN node it replaces (for layer-wise comparisons).
    """

    def __init__(self, graph_module: fx.GraphModule, neuron: IFParameters, sites: dict[str, str]) -> None:
        self.graph_module = graph_module.eval()
        self.neuron = neuron
        self.sites = dict(sites)
        self._plan = _ExecutionPlan(self.graph_module)
        self.precision = "float32"
        self.compiled = False
        self._compiled_step = None
        self._compile_report: Callable[[str], None] | None = None

    @property
    def populations(self) -> list[str]:
        """Names of the IF populations in graph order."""
        return [name for name, module in self._plan.modules.items() if isinstance(module, IFNeurons)]

    def spike_fed_convolutions(self) -> dict[str, nn.Module]:
        """Name -> the module each spike-fed convolution runs as at this precision (the graph's own
        ``nn.Conv2d`` at float32): the part of a step a precision changes."""
        names = _spike_fed_convolutions(self._plan.nodes, self._plan.modules)
        return {name: self._plan.run_modules[name] for name in names}

    @property
    def spikes_per_step(self) -> dict[str, int]:
        """Population name -> most spikes per neuron per step (``N`` of a burst population, 1 for IF)."""
        return {name: self._plan.modules[name].spikes_per_step for name in self.populations}

    @property
    def burst(self) -> bool:
        """Whether any population bursts (more than one spike per step)."""
        return any(n > 1 for n in self.spikes_per_step.values())

    def initial_state(self, batch: int = 1, device=None) -> SNNState:
        """A fresh simulation for ``batch`` streams (membranes at ``initial_membrane``)."""
        return SNNState(batch=batch, device=None if device is None else torch.device(device))

    def with_neuron(self, neuron: IFParameters) -> SpikingNetwork:
        """A copy that simulates with other IF parameters (e.g. membrane bounds); it shares the graph and
        its weights with this one."""
        other = copy.copy(self)
        other.neuron = neuron
        if neuron != self.neuron:
            other._compiled_step = None
        return other

    def with_precision(self, precision: str) -> SpikingNetwork:
        """A copy whose convolutions run at ``precision`` (``PRECISIONS``; module docstring); it shares
        the graph and its float32 weights with this one (bfloat16 copies are made once, here).

        Raises UserFacingError for an unknown precision, or bfloat16 where this torch build has no
        bfloat16 convolution on the CPU (``torch.ops.mkldnn._is_mkldnn_bf16_supported``)."""
        if precision not in PRECISIONS:
            raise UserFacingError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "bfloat16" and not bfloat16_supported():
            raise UserFacingError(
                "precision bfloat16: this CPU (or torch build) has no bfloat16 convolution "
                "(torch.ops.mkldnn._is_mkldnn_bf16_supported() is False); use float32"
            )
        if precision == "int8" and not int8_supported():
            raise UserFacingError(
                "precision int8: this torch build has no oneDNN int8 convolution "
                "(torch.ops.onednn.qconv_pointwise) on this CPU; use float32"
            )
        first = next(self.graph_module.parameters(), None)
        if first is not None:
            _check_precision_device(precision, first.device)
        other = copy.copy(self)
        other.precision = precision
        other._plan = _ExecutionPlan(self.graph_module, precision)
        other._compiled_step = None
        return other

    def with_compilation(
        self, enabled: bool = True, report: Callable[[str], None] | None = None
    ) -> SpikingNetwork:
        """A copy whose native steps run as one compiled graph per input shape (``streamdet.compiled``)
        once it is ready; until then, with a probe, or where compiling failed, node by node as before (the
        same outputs). ``report`` receives a line per failed compile. It shares graph and weights."""
        other = copy.copy(self)
        other.compiled = bool(enabled)
        other._compiled_step = None
        other._compile_report = report
        return other

    def compiled_step(self):
        """The :class:`streamdet.compiled.CompiledStep` of this network (built at the first call), or None
        when it is not compiled."""
        if not self.compiled:
            return None
        if self._compiled_step is None:
            from streamdet.compiled import CompiledStep

            report = self._compile_report
            self._compiled_step = CompiledStep(self._plan, self.neuron, self.populations, report)
        return self._compiled_step

    def prepare_compiled(self, inputs: torch.Tensor) -> bool:
        """Compile the step for inputs shaped like ``inputs [K, B, C, H, W]`` now (a throwaway state: one
        native step makes its membranes); True when the compiled step is ready (False when not compiled or
        the compile failed: ``compiled_step().failure``)."""
        step = self.compiled_step()
        if step is None:
            return False
        membranes: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            self._run_node_by_node(inputs[:1], membranes, None)
        return step.prepare(inputs[0], membranes)

    def to(self, device) -> SpikingNetwork:
        """Move the parameters to ``device`` (in place); returns self (unchanged, compiled steps kept, when
        they are there already). UserFacingError for int8 off the CPU (oneDNN's int8 convolution is a CPU
        kernel)."""
        first = next(self.graph_module.parameters(), None)
        if first is not None and first.device == torch.device(device):
            return self
        _check_precision_device(self.precision, device)
        self.graph_module.to(device)
        if self._plan.precision != "float32":
            self._plan = _ExecutionPlan(self.graph_module, self._plan.precision)
        self._compiled_step = None
        return self

    def run(
        self,
        inputs: torch.Tensor,
        state: SNNState,
        backend: str = "native",
        probe: Probe | None = None,
    ) -> tuple[Any, SNNState]:
        """Simulate ``K`` steps.

        Args:
            inputs: input currents ``[K, B, C, H, W]`` (mean over steps = the ANN input window).
            state: the state after the previous call (or ``initial_state``).
            backend: ``"native"``, ``"snntorch"`` or ``"norse"`` (see the module docstring).
            probe: optional callback receiving each population's spikes ``[K, B, ...]``.

        Returns:
            the graph's outputs with a leading step axis (``[K, B, ...]`` per tensor, nested like the
            ANN's output) and the new state.
        """
        if backend not in BACKENDS:
            raise UserFacingError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if inputs.dim() < 2 or inputs.shape[1] != state.batch:
            raise ValueError(f"inputs must be [K, B={state.batch}, ...], got {tuple(inputs.shape)}")
        steps, batch = inputs.shape[:2]
        membranes = dict(state.membranes)
        with torch.no_grad():
            if backend == "native":
                outputs = self._run_native(inputs, membranes, probe)
            else:
                outputs = self._run_stepwise(inputs, membranes, probe, backend)
        return outputs, SNNState(
            batch=batch, device=state.device, membranes=membranes, steps=state.steps + steps
        )

    def rate_limit(self, x: torch.Tensor, probe: Probe | None = None) -> Any:
        """The T -> infinity limit of the SNN: the normalised ANN (IF populations as clamped rates).

        Args:
            x: ANN input ``[B, C, H, W]``.
            probe: optional callback receiving each population's limit rates ``[B, ...]``.
        """

        def neurons(name: str, current: torch.Tensor) -> torch.Tensor:
            rate = self._plan.modules[name](current)
            if probe is not None:
                probe(name, rate)
            return rate

        with torch.no_grad():
            return self._plan.execute(x, neurons)

    def _membrane(self, membranes: dict[str, torch.Tensor], name: str, like: torch.Tensor) -> IFState:
        if name not in membranes:
            if self._plan.precision == "float32":
                membranes[name] = if_initial_state(like.shape, self.neuron, like.device, like.dtype).v
            else:  # float32 membranes in the layout of the (channels-last, bfloat16 or int8-fed) currents
                fill = self.neuron.initial_membrane * self.neuron.threshold
                membranes[name] = torch.full_like(like, fill, dtype=torch.float32)
        return IFState(v=membranes[name])

    def _run_native(self, inputs: torch.Tensor, membranes: dict, probe: Probe | None) -> Any:
        step = self.compiled_step() if probe is None else None
        if step is not None and membranes and all(name in membranes for name in step.populations):
            per_step = []
            for k in range(inputs.shape[0]):
                result = step(inputs[k], membranes)
                if result is None:  # not compiled for this shape yet: node by node (k is 0 here)
                    return self._run_node_by_node(inputs, membranes, probe)
                outputs, new = result
                membranes.update(new)
                per_step.append(_map_tensors(outputs, lambda t: t.float()))
            return _stack_steps(per_step)
        return self._run_node_by_node(inputs, membranes, probe)

    def _run_node_by_node(self, inputs: torch.Tensor, membranes: dict, probe: Probe | None) -> Any:
        steps, batch = inputs.shape[:2]

        def neurons(name: str, current: torch.Tensor) -> torch.Tensor:
            module = self._plan.modules[name]
            current = module.offset_current(current)
            per_step = current.reshape(steps, batch, *current.shape[1:])
            state = self._membrane(membranes, name, per_step[0])
            burst = module.spikes_per_step
            if burst > 1:
                spikes, new_state = burst_scan(per_step, state, BurstParameters.from_if(self.neuron, burst))
            else:
                spikes, new_state = if_scan(per_step, state, self.neuron)
            membranes[name] = new_state.v
            if burst > 1:
                spikes = spikes.div_(burst)
            if probe is not None:
                probe(name, spikes)
            return spikes.reshape(current.shape)

        folded = inputs.reshape(steps * batch, *inputs.shape[2:])
        outputs = self._plan.execute(folded, neurons)
        return _map_tensors(outputs, lambda t: t.float().reshape(steps, batch, *t.shape[1:]))

    def _run_stepwise(self, inputs: torch.Tensor, membranes: dict, probe: Probe | None, backend: str) -> Any:
        if backend == "norse" and self.burst:
            raise UserFacingError(
                "the norse backend cannot run burst neurons (up to "
                f"{max(self.spikes_per_step.values())} spikes per step): its IAF neuron resets to zero, "
                "and burst neurons reset by subtraction"
            )
        if backend == "norse" and self.neuron.reset != "zero":
            raise UserFacingError("the norse backend simulates reset to zero; convert with reset='zero'")
        step_neuron = _SnntorchNeuron(self.neuron) if backend == "snntorch" else _NorseNeuron(self.neuron)
        per_step_outputs = []
        for k in range(inputs.shape[0]):

            def neurons(name: str, current: torch.Tensor) -> torch.Tensor:
                module = self._plan.modules[name]
                burst = module.spikes_per_step
                current = module.offset_current(current)
                state = self._membrane(membranes, name, current)
                spikes, membranes[name] = step_neuron(name, current, state.v, burst)
                if burst > 1:
                    spikes = spikes / burst
                if probe is not None:
                    probe(name, spikes[None])
                return spikes

            per_step_outputs.append(_map_tensors(self._plan.execute(inputs[k], neurons), lambda t: t.float()))
        return _stack_steps(per_step_outputs)


def _threshold_below(threshold: float, dtype: torch.dtype) -> torch.Tensor:
    """The largest float of ``dtype`` below ``threshold``: ``v > it`` is exactly ``v >= threshold``."""
    value = torch.tensor(threshold, dtype=dtype)
    return torch.nextafter(value, torch.tensor(-float("inf"), dtype=dtype))


def _apply_reset(v: torch.Tensor, spikes: torch.Tensor, neuron: IFParameters) -> torch.Tensor:
    if neuron.reset == "subtract":
        return v - spikes * neuron.threshold
    return torch.where(spikes > 0, torch.zeros_like(v), v)


class _SnntorchNeuron:
    """One ``snntorch.Leaky`` (beta 1, threshold just below 1, no internal reset) per population; a burst
    step is ``sub_steps`` calls of it with the same current, and returns the summed spikes."""

    def __init__(self, neuron: IFParameters) -> None:
        self.neuron = neuron
        self.cells: dict[str, nn.Module] = {}

    def __call__(
        self, name: str, current: torch.Tensor, v: torch.Tensor, sub_steps: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import snntorch

        if name not in self.cells:
            self.cells[name] = snntorch.Leaky(
                beta=1.0,
                threshold=_threshold_below(self.neuron.threshold, current.dtype),
                reset_mechanism="none",
                reset_delay=False,
            ).to(current.device)
        total = torch.zeros_like(current)
        for _ in range(sub_steps):
            spikes, v = self.cells[name](current, v)
            spikes = spikes.to(current.dtype)
            v = self.neuron.bound(_apply_reset(v, spikes, self.neuron))
            total = total + spikes
        return total, v


class _NorseNeuron:
    """norse's feed-forward IAF step (reset to zero, ``v > nextafter(1, 0)``)."""

    def __init__(self, neuron: IFParameters) -> None:
        self.neuron = neuron

    def __call__(
        self, name: str, current: torch.Tensor, v: torch.Tensor, sub_steps: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from norse.torch.functional.iaf import IAFFeedForwardState, IAFParameters, iaf_feed_forward_step

        params = IAFParameters(
            v_th=_threshold_below(self.neuron.threshold, current.dtype).to(current.device),
            v_reset=torch.zeros((), dtype=current.dtype, device=current.device),
            method="heaviside",
        )
        spikes, state = iaf_feed_forward_step(current, IAFFeedForwardState(v=v), params)
        return spikes.to(current.dtype), self.neuron.bound(state.v.clone())


def _map_tensors(value: Any, function: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return function(value)
    if isinstance(value, tuple | list):
        return type(value)(_map_tensors(v, function) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, function) for k, v in value.items()}
    return value


def _stack_steps(per_step: list[Any]) -> Any:
    """Per-step outputs stacked along a new leading step axis; one step (the live node's burst step
    per window) gets the axis as a view, without copying every anchor's outputs."""
    if len(per_step) == 1:
        return _map_tensors(per_step[0], lambda t: t.unsqueeze(0))
    first = per_step[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(per_step)
    if isinstance(first, tuple | list):
        return type(first)(_stack_steps([step[i] for step in per_step]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack_steps([step[k] for step in per_step]) for k in first}
    return first


def _check_precision_device(precision: str, device) -> None:
    """UserFacingError for int8 on a device other than the CPU (oneDNN's int8 convolution is a CPU
    kernel)."""
    if precision == "int8" and torch.device(device).type != "cpu":
        raise UserFacingError(f"precision int8 runs on the CPU only (oneDNN), not on {device}; use float32")


def bfloat16_supported() -> bool:
    """Whether this torch build runs bfloat16 convolutions on this CPU (oneDNN with AVX512-BF16/AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.cache
def int8_supported() -> bool:
    """Whether this torch build runs oneDNN's int8 convolution (``torch.ops.onednn.qconv_pointwise``) on
    this CPU: tried once on a 1x1 convolution of two channels (every x86-64 CPU oneDNN supports has it)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.onednn, "qconv_pointwise"):
        return False
    try:
        conv = nn.Conv2d(2, 2, 1)
        conv.weight.data.fill_(0.5)
        out = _Int8SpikeConv(conv, 1)(torch.ones(1, 2, 2, 2))
        return bool(torch.allclose(out, conv(torch.ones(1, 2, 2, 2))))
    except RuntimeError:
        return False


class _LowPrecisionConv(nn.Module):
    """A convolution on ``dtype`` copies of its weights in channels-last layout; input cast on the way in,
    output left in ``dtype`` (the next float32 operation promotes it)."""

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.conv = copy.deepcopy(conv).to(dtype).to(memory_format=torch.channels_last).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.to(self.dtype, memory_format=torch.channels_last))


def int8_weights(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(int8 weights, float32 scales [C_out])``: ``weight`` rounded per output channel, symmetric,
    ``scale = max |w| / 127`` (1 for a channel of zeros); ``int8 * scale`` is the weight the int8
    convolution computes with."""
    flat = weight.detach().float().reshape(weight.shape[0], -1)
    scale = flat.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    quantised = torch.round(weight.detach().float() / scale.reshape(-1, *[1] * (weight.dim() - 1)))
    return quantised.clamp(-127, 127).to(torch.int8), scale


class _Int8SpikeConv(nn.Module):
    """A convolution fed by spikes ``counts / N`` (``N = spikes_per_step``), run as oneDNN's int8
    convolution: the input passed on as exact ``uint8`` counts with scale ``1 / N``, the weights rounded
    to int8 per output channel (:func:`int8_weights`), the sums exact in int32, the output float32 with
    the bias added (module docstring, "int8")."""

    def __init__(self, conv: nn.Conv2d, spikes_per_step: int) -> None:
        super().__init__()
        if not 1 <= spikes_per_step <= INT8_MAX_SPIKES:
            raise ValueError(
                f"int8 convolutions take 1 to {INT8_MAX_SPIKES} spikes per step, not {spikes_per_step}"
            )
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(
                f"int8 convolutions take numeric zero padding, not {conv.padding!r}/{conv.padding_mode}"
            )
        self.spikes_per_step = int(spikes_per_step)
        self.input_scale = 1.0 / self.spikes_per_step
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        quantised, scale = int8_weights(conv.weight)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero_point", torch.zeros(scale.shape[0], dtype=torch.long))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float().clone())
        packed = torch.ops.onednn.qconv_prepack(
            quantised, scale, self.input_scale, 0, self.stride, self.padding, self.dilation, self.groups
        )
        self.register_buffer("packed_weight", packed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 0.5 + N x is within rounding of an integer + 0.5: truncated, the count; two passes node by node
        counts = torch.add(0.5, x, alpha=self.spikes_per_step).to(
            torch.uint8, memory_format=torch.channels_last
        )
        return torch.ops.onednn.qconv_pointwise(
            counts,
            self.input_scale,
            0,
            self.packed_weight,
            self.weight_scale,
            self.weight_zero_point,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            1.0,
            0,
            torch.float32,
            "none",
            [],
            "",
        )


def _spike_fed_convolutions(nodes: list[fx.Node], modules: dict[str, nn.Module]) -> dict[str, int]:
    """The ``nn.Conv2d`` modules every call of which reads an IF population's output directly, with the
    most spikes per step of the populations they read (``N``): their inputs are spikes (counts over
    ``N``), exact in bfloat16 and in ``uint8``. The stem, which reads the analog input (event counts), is
    not among them."""
    fed: dict[str, int | None] = {}
    for node in nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.Conv2d):
            source = node.args[0]
            spikes = (
                isinstance(source, fx.Node)
                and source.op == "call_module"
                and isinstance(modules[source.target], IFNeurons)
            )
            count = modules[source.target].spikes_per_step if spikes else None
            seen = fed.get(node.target, count)
            fed[node.target] = None if seen is None or count is None else max(seen, count)
    return {name: count for name, count in fed.items() if count is not None}


class _ExecutionPlan:
    """Runs an fx graph node by node, handing IF populations to a callback and freeing dead values; at a
    ``precision`` other than float32, every spike-fed ``nn.Conv2d`` runs as a :class:`_LowPrecisionConv`
    (bfloat16) or :class:`_Int8SpikeConv` (int8) copy (the graph is unchanged)."""

    def __init__(self, graph_module: fx.GraphModule, precision: str = "float32") -> None:
        self.graph_module = graph_module
        self.precision = precision
        self.modules = dict(graph_module.named_modules())
        self.nodes = list(graph_module.graph.nodes)
        fed = _spike_fed_convolutions(self.nodes, self.modules) if precision != "float32" else {}
        self.run_modules: dict[str, nn.Module] = dict(self.modules)
        for name, spikes_per_step in fed.items():
            if precision == "bfloat16":
                self.run_modules[name] = _LowPrecisionConv(self.modules[name], torch.bfloat16)
            elif spikes_per_step <= INT8_MAX_SPIKES:
                self.run_modules[name] = _Int8SpikeConv(self.modules[name], spikes_per_step)
        last_use: dict[fx.Node, fx.Node] = {}
        for node in self.nodes:
            fx.node.map_arg(
                (node.args, node.kwargs), lambda used, user=node: last_use.__setitem__(used, user)
            )
        self.release: dict[fx.Node, list[fx.Node]] = {}
        for used, user in last_use.items():
            self.release.setdefault(user, []).append(used)

    def execute(self, x: torch.Tensor, neurons: Callable[[str, torch.Tensor], torch.Tensor]) -> Any:
        env: dict[fx.Node, Any] = {}
        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = x
                continue
            args, kwargs = fx.node.map_arg((node.args, node.kwargs), env.__getitem__)
            if node.op == "output":
                return args[0]
            if node.op == "call_module":
                module = self.run_modules[node.target]
                value = (
                    neurons(node.target, *args) if isinstance(module, IFNeurons) else module(*args, **kwargs)
                )
            elif node.op == "call_function":
                value = node.target(*args, **kwargs)
            elif node.op == "call_method":
                value = getattr(args[0], node.target)(*args[1:], **kwargs)
            else:
                value = getattr(self.graph_module, node.target)
            env[node] = value
            for dead in self.release.get(node, ()):
                del env[dead]
        raise ValueError("converted graph has no output node")


class SpikingDetector(SpikingNetwork):
    """A converted RetinaNet with what the detector node needs to run it on a stream.

    ``run`` returns per-step output currents ``(cls [K, B, A, nc], box [K, B, A, 4])`` in the ANN's units
    (logits, box deltas); their mean over the steps of a window is what ``decode`` takes.

    Attributes:
        spec: what it consumes (:class:`streamdet.contract.InputSpec`), the ANN's.
        decoding: how its outputs become boxes (:class:`streamdet.contract.Decoding`), the ANN's.
        class_names: label ``i`` is ``class_names[i]``.
        model_config: the ANN's ``RetinaNetConfig`` as a dict.
        conversion: the ``ConversionConfig`` as a dict (plus ``bias_calibration`` when calibrated).
        source: what rebuilds the graph without unpickling code (``streamdet.loading.save_snn``): the ANN's
            weights and the calibrated range of every population, or None.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        neuron: IFParameters,
        sites: dict[str, str],
        spec: InputSpec,
        decoding: Decoding,
        class_names: tuple[str, ...],
        model_config: dict,
        conversion: dict,
        source: dict | None = None,
    ) -> None:
        super().__init__(graph_module, neuron, sites)
        self.spec = spec
        self.decoding = decoding
        self.class_names = tuple(class_names)
        self.model_config = dict(model_config)
        self.conversion = dict(conversion)
        self.source = source

    @property
    def in_channels(self) -> int:
        """Input channels per step: the modality's for the current step and for each history window."""
        return self.spec.channels

    def decode(
        self, cls_logits: torch.Tensor, box_deltas: torch.Tensor, input_size: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """Boxes from mean output currents ``[B, A, nc]``, ``[B, A, 4]`` of an input of ``input_size``
        ``(W, H)`` (default the trained size): per image ``[N, 6]`` rows ``x1, y1, x2, y2, score, class``
        (input pixels), decoded like the ANN (``streamdet.model.decode_with``)."""
        from streamdet.model import RetinaNetConfig, decode_with

        config = RetinaNetConfig.from_dict(self.model_config)
        return decode_with(config, self.decoding, cls_logits, box_deltas, input_size or self.spec.sensor_size)

    def decode_window(
        self,
        cls_logits: torch.Tensor,
        box_deltas_at: Callable[[torch.Tensor], torch.Tensor],
        input_size: tuple[int, int],
    ) -> torch.Tensor:
        """One window's rows ``[N, 6]`` (as :meth:`decode`) from its mean class currents ``[A, nc]`` and a
        function giving its mean box currents ``[C, 4]`` at anchor indices ``[C]``: the live node averages
        the box currents over the window only at the candidates' anchors
        (``streamdet.model.image_detections``)."""
        from streamdet.model import RetinaNetConfig, image_detections

        config = RetinaNetConfig.from_dict(self.model_config)
        return image_detections(config, self.decoding, cls_logits, box_deltas_at, input_size)
