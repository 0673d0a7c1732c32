"""Spiking runtime: native chunked engine vs step-by-step snntorch / norse backends, streaming state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamdet.convert import ConversionConfig, convert_network
from streamdet.errors import UserFacingError
from streamdet.fidelity import SimulationConfig, simulate_prefix_means, window_means
from streamdet.neurons import IFParameters
from streamdet.snn import SpikingNetwork, int8_supported

pytestmark = pytest.mark.usefixtures("single_thread")


DYADIC = 256
"""Parameters are rounded to multiples of 1/256 and inputs to 1/4, so every sum is exact in float32
whatever the order of summation (the folded and the per-step convolutions may block differently)."""


class SmallNet(nn.Module):
    """Conv/BN/ReLU, strided conv, residual add, transposed conv, concat, upsampling, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 6, 3, 2, 1), nn.BatchNorm2d(6), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(6, 6, 3, 1, 1), nn.ReLU(), nn.Conv2d(6, 6, 3, 1, 1))
        self.down = nn.Sequential(nn.Conv2d(6, 8, 3, 2, 1), nn.ReLU())
        self.up = nn.ConvTranspose2d(8, 4, 2, 2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = nn.Sequential(nn.Conv2d(18, 6, 1), nn.ReLU())
        self.cls = nn.Conv2d(6, 3, 3, 1, 1)
        self.box = nn.Conv2d(6, 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c1 = self.stem(x)
        c1 = torch.relu(self.body(c1) + c1)
        c2 = self.down(c1)
        p = self.fuse(torch.cat([c1, torch.relu(self.up(c2)), self.upsample(c2)], 1))
        batch = x.shape[0]
        return self.cls(p).flatten(2).transpose(1, 2), self.box(p).reshape(batch, 4, -1).permute(0, 2, 1)


def converted_network(
    reset: str = "subtract", initial_membrane: float = 0.5, spike_unactivated: bool = True
) -> SpikingNetwork:
    """SmallNet converted with dyadic parameters; by default with IF neurons on the adds as well (the
    most populations), which the shipped conversion leaves off."""
    torch.manual_seed(0)
    model = SmallNet().eval()
    calibration = [torch.rand(4, 2, 16, 20, generator=torch.Generator().manual_seed(1))]
    config = ConversionConfig(
        reset=reset, initial_membrane=initial_membrane, spike_unactivated=spike_unactivated
    )
    converted = convert_network(model, calibration, config, progress=False)
    with torch.no_grad():
        for tensor in list(converted.graph_module.parameters()) + list(converted.graph_module.buffers()):
            tensor.copy_(torch.round(tensor * DYADIC) / DYADIC)
    neuron = IFParameters(reset=reset, initial_membrane=initial_membrane)
    return SpikingNetwork(converted.graph_module, neuron, converted.sites)


def random_stream(steps: int, batch: int = 2, seed: int = 2) -> torch.Tensor:
    """Per-step input currents [T, B, 2, 16, 20]: sparse event-like counts, dyadic."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.poisson(
        torch.rand(steps, batch, 2, 16, 20, generator=generator) * 0.6, generator=generator
    )
    return counts / 4


def run_recording(network: SpikingNetwork, stream: torch.Tensor, backend: str, chunks: list[int]) -> tuple:
    """Run ``stream`` in chunks; returns (outputs per tensor [T, ...], spikes per population, state)."""
    spikes: dict[str, list[torch.Tensor]] = {}
    state = network.initial_state(stream.shape[1])
    outputs = []
    for chunk in torch.split(stream, chunks):
        out, state = network.run(
            chunk, state, backend=backend, probe=lambda n, s: spikes.setdefault(n, []).append(s)
        )
        outputs.append(out)
    joined = tuple(torch.cat([o[i] for o in outputs]) for i in range(len(outputs[0])))
    return joined, {name: torch.cat(parts) for name, parts in spikes.items()}, state


def assert_same_simulation(first: tuple, second: tuple) -> None:
    outputs_a, spikes_a, state_a = first
    outputs_b, spikes_b, state_b = second
    assert spikes_a.keys() == spikes_b.keys() and len(spikes_a) >= 6
    for name in spikes_a:
        assert torch.equal(spikes_a[name], spikes_b[name]), name
        assert torch.equal(state_a.membranes[name], state_b.membranes[name]), name
    for a, b in zip(outputs_a, outputs_b, strict=True):
        assert torch.equal(a, b)
    assert state_a.steps == state_b.steps


@pytest.mark.parametrize("spike_unactivated", [True, False], ids=["if-on-adds", "currents-on-adds"])
def test_native_engine_spikes_exactly_like_snntorch_step_by_step(spike_unactivated: bool) -> None:
    network = converted_network(spike_unactivated=spike_unactivated)
    stream = random_stream(32)
    native = run_recording(network, stream, "native", [32])
    stepwise = run_recording(network, stream, "snntorch", [32])
    assert_same_simulation(native, stepwise)
    rates = torch.stack([s.mean() for s in native[1].values()])
    assert rates.min() > 0.005 and rates.max() < 0.9  # populations are neither silent nor saturated


def test_native_engine_with_reset_to_zero_spikes_exactly_like_norse() -> None:
    network = converted_network(reset="zero", initial_membrane=0.0)
    stream = random_stream(24, seed=3)
    assert_same_simulation(
        run_recording(network, stream, "native", [24]), run_recording(network, stream, "norse", [24])
    )


def test_bounded_membranes_spike_exactly_alike_in_every_engine() -> None:
    network = converted_network()
    bounded = network.with_neuron(network.neuron._replace(membrane_floor=0.0, membrane_ceiling=1.0))
    stream = random_stream(32, seed=5)
    native = run_recording(bounded, stream, "native", [5, 27])
    assert_same_simulation(native, run_recording(bounded, stream, "snntorch", [32]))
    for membrane in native[2].membranes.values():
        assert membrane.min() >= 0.0 and membrane.max() <= 1.0
    free = run_recording(network, stream, "native", [32])
    assert any(m.min() < 0 for m in free[2].membranes.values())  # the bounds did something
    zero_reset = converted_network(reset="zero", initial_membrane=0.0)
    zero_bounded = zero_reset.with_neuron(
        zero_reset.neuron._replace(membrane_floor=0.0, membrane_ceiling=1.0)
    )
    assert_same_simulation(
        run_recording(zero_bounded, stream, "native", [32]),
        run_recording(zero_bounded, stream, "norse", [32]),
    )


@pytest.mark.parametrize("chunks", [[1] * 30, [7, 7, 7, 9], [3, 17, 10]])
def test_chunked_streaming_equals_one_chunk(chunks: list[int]) -> None:
    network = converted_network()
    stream = random_stream(30, seed=4)
    assert_same_simulation(
        run_recording(network, stream, "native", [30]), run_recording(network, stream, "native", chunks)
    )


def test_streams_in_a_batch_are_independent() -> None:
    network = converted_network()
    stream = random_stream(16, batch=3, seed=5)
    together, _, _ = run_recording(network, stream, "native", [16])
    for b in range(3):
        alone, _, _ = run_recording(network, stream[:, b : b + 1], "native", [16])
        for a, t in zip(alone, together, strict=True):
            assert torch.equal(a[:, 0], t[:, b])


def test_state_carries_over_so_the_second_window_differs_from_a_fresh_start() -> None:
    network = converted_network()
    stream = random_stream(20, seed=6)
    _, state = network.run(stream, network.initial_state(2))
    continued, _ = network.run(stream, state)
    fresh, _ = network.run(stream, network.initial_state(2))
    assert not torch.equal(continued[0], fresh[0])


def test_wrong_batch_is_rejected() -> None:
    network = converted_network()
    with pytest.raises(ValueError, match="B=3"):
        network.run(random_stream(4, batch=2), network.initial_state(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_engine_matches_cpu() -> None:
    network = converted_network()
    stream = random_stream(16, seed=7)
    cpu = run_recording(network, stream, "native", [16])
    network.to("cuda")
    gpu = run_recording(network, stream.cuda(), "native", [8, 8])
    for name in cpu[1]:
        assert torch.equal(cpu[1][name], gpu[1][name].cpu()), name


def test_one_long_constant_input_run_scores_every_shorter_window() -> None:
    """fidelity's protocol: with constant input, steps [0, T) of a T_max run are the T-step simulation."""
    network = converted_network()
    x = random_stream(1, batch=2, seed=8)[0]
    config = SimulationConfig(steps=(4, 12, 20), skip_fraction=0.25, chunk=8)
    sums = simulate_prefix_means(network, x, config)
    for steps in config.steps:
        (cls, box), _ = network.run(x.expand(steps, *x.shape), network.initial_state(2))
        skip = config.skip_start(steps)
        for got, want in zip(
            window_means(sums, steps, skip), (cls[skip:].mean(0), box[skip:].mean(0)), strict=True
        ):
            assert torch.allclose(got, want, atol=1e-6)


def burst_network(max_spikes: int = 4, burst: bool = True) -> SpikingNetwork:
    """SmallNet converted with burst neurons (``max_spikes`` at its ReLU sites), or with plain IF neurons,
    dyadic parameters, membranes bounded to [0, 1]."""
    torch.manual_seed(0)
    calibration = [torch.rand(4, 2, 16, 20, generator=torch.Generator().manual_seed(1))]
    config = ConversionConfig(burst=burst, burst_spikes=max_spikes)
    converted = convert_network(SmallNet().eval(), calibration, config, progress=False)
    with torch.no_grad():
        for tensor in list(converted.graph_module.parameters()) + list(converted.graph_module.buffers()):
            tensor.copy_(torch.round(tensor * DYADIC) / DYADIC)
    neuron = IFParameters(initial_membrane=0.5).with_bounds((0.0, 1.0))
    return SpikingNetwork(converted.graph_module, neuron, converted.sites)


def test_burst_native_engine_equals_snntorch_sub_steps() -> None:
    """Bounded to [0, 1] the burst step is exactly N IF sub-steps (streamdet.neurons): the native burst
    scan and snntorch's Leaky run N times per step give the same counts, membranes and outputs."""
    network = burst_network(4)
    assert network.burst and set(network.spikes_per_step.values()) == {4}
    stream = random_stream(12, seed=9)
    native = run_recording(network, stream, "native", [5, 7])
    assert_same_simulation(native, run_recording(network, stream, "snntorch", [12]))
    counts = torch.cat([s.flatten() for s in native[1].values()]) * 4  # probes see counts / N
    assert counts.max() == 4 and 0.02 < (counts > 0).float().mean() < 0.9
    assert torch.equal(counts, counts.round())


def test_burst_step_is_n_plain_if_steps_of_the_same_network() -> None:
    """The first population sees the same current at every step: one burst step (N = 4) fires what 4 IF
    steps of the same network fire there. Deeper populations differ by design: their IF versions see a
    spike train, their burst versions one step's counts."""
    burst, plain = burst_network(4), burst_network(4, burst=False)
    assert not plain.burst and set(plain.spikes_per_step.values()) == {1}
    x = random_stream(1, seed=10)[0]
    _, if_spikes, _ = run_recording(plain, x.expand(4, *x.shape), "native", [4])
    _, counts, _ = run_recording(burst, x[None], "native", [1])
    first = burst.populations[0]
    assert torch.equal(counts[first][0] * 4, if_spikes[first].sum(0))
    assert counts[first].max() * 4 > 1


def test_norse_refuses_burst_populations() -> None:
    network = burst_network(4)
    with pytest.raises(UserFacingError, match="norse backend cannot run burst neurons .up to 4 spikes"):
        network.run(random_stream(2), network.initial_state(2), backend="norse")


bfloat16 = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    reason="no bfloat16 convolution on this CPU",
)


@bfloat16
def test_bfloat16_runs_only_spike_fed_convolutions_low_and_keeps_membranes_float32() -> None:
    network = burst_network(4)
    low = network.with_precision("bfloat16")
    assert network.precision == "float32" and low.precision == "bfloat16"
    plan = low._plan
    lowered = {name for name, module in plan.run_modules.items() if module is not plan.modules[name]}
    convolutions = {name for name, module in low._plan.modules.items() if isinstance(module, nn.Conv2d)}
    assert "stem_1" in convolutions and "stem_1" not in lowered  # the stem reads analog event counts
    assert lowered and lowered < convolutions
    outputs, spikes, state = run_recording(low, random_stream(6, seed=11), "native", [2, 4])
    assert all(out.dtype == torch.float32 for out in outputs)
    assert all(v.dtype == torch.float32 for v in state.membranes.values())
    assert next(network.graph_module.parameters()).dtype == torch.float32  # the shared graph is unchanged


@bfloat16
def test_bfloat16_simulation_stays_within_rounding_of_the_float32_one() -> None:
    """Weights rounded to 8 significant bits and conv sums rounded once: nearly every spike count is the
    same (a membrane within rounding of a threshold fires one level apart, and that spike's weights then
    move a few outputs), the outputs on average within 2 % of their mean size; the first population reads
    the input through the float32 stem and spikes exactly alike."""
    network = burst_network(4)
    stream = random_stream(8, seed=12)
    outputs32, spikes32, _ = run_recording(network, stream, "native", [8])
    outputs16, spikes16, _ = run_recording(network.with_precision("bfloat16"), stream, "native", [8])
    for a, b in zip(outputs32, outputs16, strict=True):
        assert 0 < (a - b).abs().mean() <= 0.02 * a.abs().mean()
    agree = torch.stack([(spikes32[n] == spikes16[n]).float().mean() for n in spikes32])
    assert agree[0] == 1.0 and agree.min() > 0.97 and agree.mean() > 0.99


def test_unknown_precision_is_refused_by_name() -> None:
    with pytest.raises(UserFacingError, match="float16"):
        burst_network(4).with_precision("float16")


int8 = pytest.mark.skipif(not int8_supported(), reason="no oneDNN int8 convolution in this torch build")


def on_int8_grid(network: SpikingNetwork) -> SpikingNetwork:
    """``network`` with every convolution's weights on the int8 grid of scale 1/128 (multiples of 1/128,
    each output channel's largest exactly 127/128): per-channel int8 rounding leaves them unchanged, and
    every sum stays exact in float32 (dyadic weights, biases and spikes)."""
    with torch.no_grad():
        for module in network.graph_module.modules():
            if isinstance(module, nn.Conv2d):
                grid = torch.round(module.weight * 128).clamp(-127, 127)
                grid.reshape(grid.shape[0], -1)[:, 0] = 127
                module.weight.copy_(grid / 128)
    return network


@int8
@pytest.mark.parametrize("spikes_per_step", [1, 5, 16])
def test_an_int8_convolution_is_the_convolution_with_int8_rounded_weights(spikes_per_step: int) -> None:
    """Spikes ``counts / N`` pass as exact uint8 counts (N a power of two or not), the weights round per
    output channel to ``int8 * scale``, the sums are exact: the output is ``conv2d`` with the rounded
    weights to float32 rounding, and the rounding moves each weight by at most half a step."""
    from streamdet.snn import _Int8SpikeConv, int8_weights

    torch.manual_seed(3)
    conv = nn.Conv2d(12, 8, 3, stride=2, padding=1)
    counts = torch.randint(0, spikes_per_step + 1, (2, 12, 15, 21)) * (torch.rand(2, 12, 15, 21) < 0.4)
    x = counts.float() / spikes_per_step
    quantised, scale = int8_weights(conv.weight)
    rounded = quantised.float() * scale[:, None, None, None]
    assert (rounded - conv.weight).abs().amax(dim=(1, 2, 3)).le(scale / 2 + 1e-7).all()
    assert quantised.abs().amax(dim=(1, 2, 3)).eq(127).all()
    want = nn.functional.conv2d(x, rounded, conv.bias, stride=2, padding=1)
    got = _Int8SpikeConv(conv, spikes_per_step)(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


@int8
def test_int8_runs_only_spike_fed_convolutions_with_their_populations_spike_counts() -> None:
    from streamdet.snn import _Int8SpikeConv

    network = burst_network(4)
    low = network.with_precision("int8")
    assert low.precision == "int8"
    lowered = {
        name: module
        for name, module in low._plan.run_modules.items()
        if module is not low._plan.modules[name]
    }
    convolutions = {name for name, module in low._plan.modules.items() if isinstance(module, nn.Conv2d)}
    assert "stem_1" in convolutions and "stem_1" not in lowered  # the stem reads analog event counts
    assert lowered and set(lowered) < convolutions
    assert all(isinstance(m, _Int8SpikeConv) and m.spikes_per_step == 4 for m in lowered.values())
    outputs, _, state = run_recording(low, random_stream(6, seed=11), "native", [2, 4])
    assert all(out.dtype == torch.float32 for out in outputs)
    assert all(v.dtype == torch.float32 for v in state.membranes.values())
    assert next(network.graph_module.parameters()).dtype == torch.float32  # the shared graph is unchanged
    many = burst_network(200).with_precision("int8")  # beyond INT8_MAX_SPIKES: float32 convolutions
    assert all(module is many._plan.modules[name] for name, module in many._plan.run_modules.items())


@int8
def test_int8_weights_on_their_grid_simulate_exactly_like_float32() -> None:
    """Where int8 rounding leaves the weights as they are, the integer convolutions are the float32 ones
    bit for bit: the same spikes, membranes and outputs over a stream, burst and plain IF neurons."""
    for network in (on_int8_grid(burst_network(4)), on_int8_grid(burst_network(4, burst=False))):
        stream = random_stream(8, seed=13)
        reference = run_recording(network, stream, "native", [3, 5])
        assert_same_simulation(
            reference, run_recording(network.with_precision("int8"), stream, "native", [3, 5])
        )
        assert any(torch.count_nonzero(o) for o in reference[0])


@int8
def test_int8_simulation_stays_within_rounding_of_the_float32_one() -> None:
    """Weights rounded to int8 per channel: nearly every spike count is the same (a membrane within
    rounding of a threshold fires one level apart), the outputs on average within 5 % of their size; the
    first population reads the input through the float32 stem and spikes exactly alike. (This small
    network's channels sum 18-54 products, each weight's step a 127th of its channel's largest: 3-4 % of
    the outputs' size and 95-99 % of the counts alike here, where the shipped models score the same mAP
    at int8 as at float32, docs/conversion.md, "Precision".)"""
    network = burst_network(4)
    stream = random_stream(8, seed=12)
    outputs32, spikes32, _ = run_recording(network, stream, "native", [8])
    outputs8, spikes8, _ = run_recording(network.with_precision("int8"), stream, "native", [8])
    for a, b in zip(outputs32, outputs8, strict=True):
        assert 0 < (a - b).abs().mean() <= 0.05 * a.abs().mean()
    agree = torch.stack([(spikes32[n] == spikes8[n]).float().mean() for n in spikes32])
    assert agree[0] == 1.0 and agree.min() > 0.93 and agree.mean() > 0.97


def test_int8_is_refused_by_name_where_this_build_cannot_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamdet.snn.int8_supported", lambda: False)
    with pytest.raises(UserFacingError, match="precision int8: .*no oneDNN int8 convolution"):
        burst_network(4).with_precision("int8")


@int8
def test_int8_is_refused_off_the_cpu_before_anything_moves() -> None:
    network = burst_network(4).with_precision("int8")
    with pytest.raises(UserFacingError, match="precision int8 runs on the CPU only .*cuda"):
        network.to("cuda")
    assert next(network.graph_module.parameters()).device.type == "cpu"
    elsewhere = burst_network(4).to("meta")  # a device other than the CPU, without a GPU
    with pytest.raises(UserFacingError, match="precision int8 runs on the CPU only .*meta"):
        elsewhere.with_precision("int8")
