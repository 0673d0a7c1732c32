"""ANN-to-SNN conversion on small networks built from the detector's layer types."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from streamdet.contract import Decoding
from streamdet.convert import ConversionConfig, ConversionError, ExtremeValues, convert_network
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.loading import load_snn, save_snn
from streamdet.model import load_detector, pad_input
from streamdet.neurons import IFParameters
from streamdet.snn import SpikingNetwork

pytestmark = pytest.mark.usefixtures("single_thread")


class QuantReLU(nn.Module):
    """The Quant-ReLU contract of streamdet.model: ``clip * floor(clamp(x / clip, 0, 1) * L + 0.5) / L``."""

    def __init__(self, levels: int, clip_init: float) -> None:
        super().__init__()
        self.levels = levels
        self.clip = nn.Parameter(torch.tensor(float(clip_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip * torch.floor(torch.clamp(x / self.clip, 0, 1) * self.levels + 0.5) / self.levels


def activation(quant: bool) -> nn.Module:
    return QuantReLU(8, 1.5) if quant else nn.ReLU()


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, quant: bool, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = activation(quant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Head(nn.Module):
    def __init__(self, channels: int, outputs: int, quant: bool) -> None:
        super().__init__()
        self.block = ConvBlock(channels, channels, 1, quant)
        self.final = nn.Conv2d(channels, outputs, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.block(x))


class TinyDetector(nn.Module):
    """Stem, residual block (NormAdd), strided conv, average pooling + concat, lateral convs without
    activation (shifted spiking sites), nearest upsampling, transposed conv, heads shared across two
    levels, reshape/permute/cat of the outputs."""

    def __init__(self, quant: bool = False, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = ConvBlock(2, 8, 2, quant)
        self.res1 = ConvBlock(8, 8, 1, quant)
        self.res2_conv = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.res2_bn = nn.BatchNorm2d(8)
        self.res_act = activation(quant)
        self.down = ConvBlock(8, 12, 2, quant)
        self.pool = nn.AvgPool2d(2)
        self.merge = ConvBlock(20, 16, 1, quant, kernel=1)
        self.lateral4 = nn.Conv2d(16, 8, 1)
        self.lateral3 = nn.Conv2d(8, 8, 1)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.transposed = nn.ConvTranspose2d(16, 8, 2, 2)
        self.transposed_act = activation(quant)
        self.mix = ConvBlock(16, 8, 1, quant)
        self.cls_head = Head(8, 2 * num_classes, quant)
        self.box_head = Head(8, 2 * 4, quant)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c3 = self.stem(x)
        c3 = self.res_act(self.res2_bn(self.res2_conv(self.res1(c3))) + c3)
        c4 = self.merge(torch.cat([self.down(c3), self.pool(c3)], 1))
        p4 = self.lateral4(c4)
        p3 = self.lateral3(c3) + self.upsample(p4)
        p3 = self.mix(torch.cat([p3, self.transposed_act(self.transposed(c4))], 1))
        batch = x.shape[0]
        cls = [self.cls_head(p).permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes) for p in (p3, p4)]
        box = [self.box_head(p).permute(0, 2, 3, 1).reshape(batch, -1, 4) for p in (p3, p4)]
        return torch.cat(cls, 1), torch.cat(box, 1)


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BN layers non-trivial statistics (as after training) and switch to eval mode."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.1, 0.3, generator=generator)
    return model.eval()


def windows(count: int = 3, batch: int = 4, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 2, 24, 32, generator=generator) for _ in range(count)]


def simulate(network: SpikingNetwork, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, ...]:
    """Mean output current over ``steps`` steps of constant input current ``x``."""
    outputs, _ = network.run(x.expand(steps, *x.shape), network.initial_state(x.shape[0]))
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    return tuple(o.mean(0) for o in outputs)


@pytest.mark.parametrize("granularity", ["channel", "layer"])
def test_normalised_graph_reproduces_the_ann(granularity: str) -> None:
    model = trained_like(TinyDetector())
    data = windows()
    config = ConversionConfig(normalisation="percentile", granularity=granularity, percentiles=(0.0, 100.0))
    converted = convert_network(model, data, config, progress=False)
    network = SpikingNetwork(converted.graph_module, IFParameters(), converted.sites)
    with torch.no_grad():
        expected = model(data[1])
    for got, want in zip(network.rate_limit(data[1]), expected, strict=True):
        assert torch.allclose(got, want, atol=2e-5), (got - want).abs().max()


def test_output_rates_approach_the_ann_as_steps_grow() -> None:
    model = trained_like(TinyDetector())
    data = windows()
    converted = convert_network(model, data, ConversionConfig(), progress=False)
    network = SpikingNetwork(converted.graph_module, IFParameters(), converted.sites)
    x = data[0]
    with torch.no_grad():
        expected = torch.cat([o.flatten() for o in model(x)])
    errors = {}
    for steps in (16, 64, 256):
        got = torch.cat([o.flatten() for o in simulate(network, x, steps)])
        errors[steps] = ((got - expected).abs().mean() / expected.abs().mean()).item()
    assert errors[256] < errors[64] < errors[16]
    assert errors[256] < 0.01  # the stated bound: mean |SNN - ANN| below 1 % of mean |ANN| at T = 256


def test_quant_relu_layer_is_exact_at_as_many_steps_as_levels() -> None:
    """IF with v[0] = 0.5 and T = L steps of constant current z fires floor(L z + 0.5) times: Quant-ReLU."""
    torch.manual_seed(3)
    levels = 4
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), QuantReLU(levels, 0.8), nn.Conv2d(6, 3, 1)).eval()
    x = windows(1, 2)[0]
    with torch.no_grad():
        expected = model(x)
    converted = convert_network(model, None, ConversionConfig(normalisation="quant"), example_input=x)
    with_fix = SpikingNetwork(converted.graph_module, IFParameters(initial_membrane=0.5), converted.sites)
    without_fix = SpikingNetwork(converted.graph_module, IFParameters(initial_membrane=0.0), converted.sites)
    assert torch.allclose(simulate(with_fix, x, levels)[0], expected, atol=1e-5)
    assert not torch.allclose(simulate(without_fix, x, levels)[0], expected, atol=1e-2)


def assert_converts_without_data_exactly(model: nn.Module, x: torch.Tensor, atol: float) -> None:
    """A Quant-ReLU model converted from its clips alone (no data): the SNN's rate limit is the ANN."""
    config = ConversionConfig(normalisation="quant", spike_unactivated=False)
    converted = convert_network(model, None, config, example_input=x)
    with torch.no_grad():
        expected = model(x)
    network = SpikingNetwork(converted.graph_module, IFParameters(), converted.sites)
    for got, want in zip(network.rate_limit(x), expected, strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=atol), (got - want).abs().max()


def test_quant_models_convert_without_data_and_relu_sites_need_it() -> None:
    model = trained_like(TinyDetector(quant=True))
    x = windows(1)[0]
    assert_converts_without_data_exactly(model, x, atol=1e-5)
    config = ConversionConfig(normalisation="quant", spike_unactivated=False)
    plain = trained_like(TinyDetector())
    with pytest.raises(ConversionError, match="stem_act.*calibration data"):
        convert_network(plain, None, ConversionConfig(), example_input=x)
    # IF neurons on the adds were asked for: no silent fallback to currents without data
    with pytest.raises(ConversionError, match="calibration data: spike_unactivated"):
        convert_network(model, None, replace(config, spike_unactivated=True), example_input=x)


@pytest.mark.parametrize("extra", [{"finest_stride": 4}, {"head_blocks": 1}], ids=["p2", "head-block"])
def test_a_detector_with_a_stride_4_level_or_head_blocks_converts_exactly(extra: dict) -> None:
    """The P2 level (its own lateral, upsample and output modules, the shared heads on one more level)
    and residual blocks in the heads (adds inside a module called once per level) trace and convert like
    the rest: with Quant-ReLU the SNN's rate limit is the ANN's output."""
    from streamdet.model import build_model, config_for

    config = config_for("events", size="tiny", input_size=(64, 64), quant_levels=4, **extra)
    model = trained_like(build_model(config), seed=4)
    x = torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(1))
    assert_converts_without_data_exactly(model, x, atol=1e-4)


def test_channel_wise_normalisation_raises_firing_rates() -> None:
    model = trained_like(TinyDetector())
    data = windows()
    rates = {}
    for granularity in ("channel", "layer"):
        converted = convert_network(model, data, ConversionConfig(granularity=granularity), progress=False)
        network = SpikingNetwork(converted.graph_module, IFParameters(), converted.sites)
        counts = []
        network.run(
            data[0].expand(32, *data[0].shape),
            network.initial_state(4),
            probe=lambda n, s, counts=counts: counts.append(s.mean()),
        )
        rates[granularity] = torch.stack(counts).mean().item()
    assert rates["channel"] > 1.1 * rates["layer"]


def test_shared_head_gets_one_normalised_copy_per_level() -> None:
    converted = convert_network(trained_like(TinyDetector()), windows(), ConversionConfig(), progress=False)
    modules = dict(converted.graph_module.named_modules())
    first, second = modules["cls_head_block_bn"], modules["cls_head_block_bn_1"]
    assert first.weight.shape == second.weight.shape
    assert not torch.allclose(first.weight, second.weight)
    assert converted.sites["cls_head_block_act_if"] != converted.sites["cls_head_block_act_1_if"]


def test_extreme_values_percentiles_match_torch_quantile() -> None:
    values = torch.randn(3, 20000, generator=torch.Generator().manual_seed(5)) ** 3
    tracker = ExtremeValues(capacity=64)
    for part in values.split(3000, dim=1):
        tracker.update(part)
    for percent in (0.01, 0.1, 99.9, 99.99):
        want = torch.quantile(values, percent / 100, dim=1)
        assert torch.allclose(tracker.percentile(percent), want, rtol=1e-4)


class WithMaxPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.conv(x)))


@pytest.mark.parametrize(
    ("model", "layer", "reason"),
    [
        (WithMaxPool(), "pool (MaxPool2d)", "max-pooling"),
        (nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.ReLU()), "1 (GroupNorm)", "statistics"),
        (
            nn.Sequential(nn.Conv2d(2, 4, 3), nn.Upsample(scale_factor=2, mode="bilinear")),
            "1 (Upsample)",
            "nearest",
        ),
        (nn.Sequential(nn.Conv2d(2, 4, 3), nn.Sigmoid()), "1 (Sigmoid)", "no spiking equivalent"),
    ],
)
def test_refuses_layers_without_a_spiking_equivalent(model: nn.Module, layer: str, reason: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert_network(model.eval(), windows(1), ConversionConfig(), progress=False)
    assert error.value.layer == layer
    assert reason in error.value.reason
    assert str(error.value).startswith(f"cannot convert layer '{layer}'")


def test_refuses_functional_max_pool_by_node_name() -> None:
    class Functional(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(x, 2)

    with pytest.raises(ConversionError, match="'max_pool2d'.*max-pooling"):
        convert_network(Functional(), windows(1), ConversionConfig(), progress=False)


def test_converted_detector_saves_and_loads_as_one_file_of_tensors(tmp_path) -> None:
    """A percentile-calibrated tiny RetinaNet: the file holds tensors and plain values only (it loads
    with ``weights_only=True``), and the rebuilt network gives the same outputs bit for bit."""
    from test_detector import tiny_spiking_detector

    detector = tiny_spiking_detector()
    path = tmp_path / "tiny.snn.pt"
    save_snn(detector, path)
    assert torch.load(path, weights_only=True)["format"] == "streamdet-snn/2"
    loaded = load_snn(path)
    assert (loaded.class_names, loaded.spec, loaded.decoding) == (
        detector.class_names,
        detector.spec,
        detector.decoding,
    )
    x = (torch.rand(6, 1, 2, 64, 64, generator=torch.Generator().manual_seed(3)) < 0.2).float()
    want, _ = detector.run(x, detector.initial_state(1))
    got, _ = loaded.run(x, loaded.initial_state(1))
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(FileFormatError, match="streamdet-snn/2"):
        load_snn(bad)


def test_convert_cli_writes_a_loadable_snn_of_the_shipped_model(tmp_path) -> None:
    out = tmp_path / "events.snn.pt"
    done = subprocess.run(
        [sys.executable, "-m", "streamdet", "convert", "--model", "events-default", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    snn = load_snn(out)
    bundle = load_detector("events-default")
    assert snn.decoding == Decoding(score_thresh=0.05, nms_thresh=0.4, max_dets=100, vote_iou=0.5)
    # In float64: in float32 a Quant-ReLU input that lands within rounding of a level boundary flips one
    # level in one of the two graphs, and the flip spreads over its receptive field (a quarter of the
    # outputs for the shipped weights on one of three random inputs); in float64 every output agrees.
    snn.graph_module.double()
    bundle.model.double()
    for seed in range(2):
        x = torch.rand(
            1,
            bundle.config.in_channels,
            *bundle.spec.sensor_size[::-1],
            generator=torch.Generator().manual_seed(seed),
        )
        x = pad_input(x.double())
        with torch.no_grad():
            expected = bundle.model(x)
        for got, want in zip(snn.rate_limit(x), expected, strict=True):
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    refused = subprocess.run(
        [sys.executable, "-m", "streamdet", "convert", "--model", "events-default", "--out", str(out)]
        + ["--normalisation", "percentile"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot convert layer" in lines[0] and "calibration data" in lines[0]



def test_burst_conversion_of_a_quant_model_is_the_ann_in_one_step() -> None:
    """N = L per Quant-ReLU site: one burst step reproduces every Quant-ReLU, so the SNN's output at T = 1
    is the ANN's (up to float rounding of the normalised weights); plain IF neurons need T = L for it."""
    model = trained_like(TinyDetector(quant=True), seed=5)
    x = windows(1)[0]
    with torch.no_grad():
        expected = model(x)
    config = ConversionConfig(normalisation="quant", burst=True)
    converted = convert_network(model, None, config, example_input=x)
    network = SpikingNetwork(converted.graph_module, IFParameters(), converted.sites)
    assert set(network.spikes_per_step.values()) == {8}  # TinyDetector's Quant-ReLUs have 8 levels
    for got, want in zip(simulate(network, x, 1), expected, strict=True):
        close = torch.isclose(got, want, atol=1e-4)
        assert close.float().mean() > 0.99, (got - want).abs().max()
    plain = convert_network(model, None, replace(config, burst=False), example_input=x)
    one_if_step = simulate(SpikingNetwork(plain.graph_module, IFParameters(), plain.sites), x, 1)
    assert not torch.allclose(one_if_step[0], expected[0], atol=1e-2)


def test_burst_needs_reset_by_subtraction_and_is_recorded_in_the_conversion(tmp_path) -> None:
    with pytest.raises(UserFacingError, match="burst neurons reset by subtraction only, got reset='zero'"):
        ConversionConfig(burst=True, reset="zero")
    with pytest.raises(UserFacingError, match="burst_spikes must be >= 1, got 0"):
        ConversionConfig(burst=True, burst_spikes=0)
    from streamdet.convert import convert_detector

    config = ConversionConfig(normalisation="quant", burst=True)
    bundle = load_detector("events-fast")
    snn = convert_detector(bundle, None, config, progress=False)
    levels = bundle.config.quant_levels  # N = L: one burst step is the Quant-ReLU
    assert snn.conversion["burst"] is True and set(snn.spikes_per_step.values()) == {levels}
    assert snn.burst
    save_snn(snn, tmp_path / "burst.snn.pt")
    loaded = load_snn(tmp_path / "burst.snn.pt")
    assert loaded.burst and loaded.spikes_per_step == snn.spikes_per_step
    x = torch.rand(2, 1, 6, 288, 352, generator=torch.Generator().manual_seed(0)) < 0.1
    want, _ = snn.run(x.float(), snn.initial_state(1))
    got, _ = loaded.run(x.float(), loaded.initial_state(1))
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
