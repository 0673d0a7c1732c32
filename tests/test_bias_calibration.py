"""Bias calibration on small networks: it shrinks the rate error it targets, keeps the engines spike-exact,
and saves with the SNN; the CLI refuses it without data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamdet.bias_calibration import calibrate_biases, rate_limit_means, spike_rate_means
from streamdet.cli import main
from streamdet.convert import ConversionConfig, convert_network
from streamdet.loading import load_snn, save_snn
from streamdet.neurons import IFParameters
from streamdet.snn import IFNeurons, SpikingNetwork

pytestmark = pytest.mark.usefixtures("single_thread")


class DeepNet(nn.Module):
    """Six conv/ReLU layers with a residual add and a signed output: errors pile up with depth."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(c_in, 8, 3, 1, 1), nn.ReLU()) for c_in in (2, 8, 8, 8, 8, 8)]
        )
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers[0](x)
        x = self.layers[1](x)
        x = self.layers[2](x) + x
        for layer in self.layers[3:]:
            x = layer(x)
        return self.out(x)


def windows(count: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(4, 2, 12, 12, generator=generator) for _ in range(count)]


def converted(dyadic: bool = False) -> SpikingNetwork:
    torch.manual_seed(0)
    model = DeepNet().eval()
    network = convert_network(model, windows(2, seed=1), ConversionConfig(), progress=False)
    if dyadic:
        with torch.no_grad():
            for tensor in list(network.graph_module.parameters()) + list(network.graph_module.buffers()):
                tensor.copy_(torch.round(tensor * 256) / 256)
    return SpikingNetwork(network.graph_module, IFParameters(), network.sites)


def rate_errors(snn: SpikingNetwork, data: list[torch.Tensor], steps: int) -> dict[str, float]:
    targets = rate_limit_means(snn, data)
    return {
        name: float((targets[name] - spike_rate_means(snn, data, steps, name)).abs().mean())
        for name in snn.populations
    }


def output_error(snn: SpikingNetwork, data: list[torch.Tensor], steps: int) -> float:
    """Mean over output channels of |channel mean of (SNN output averaged over ``steps`` - ANN output)|."""
    total = 0.0
    for x in data:
        outputs, _ = snn.run(x.expand(steps, *x.shape), snn.initial_state(x.shape[0]))
        total += float((outputs.mean(0) - snn.rate_limit(x)).mean(dim=(0, 2, 3)).abs().mean())
    return total / len(data)


def test_calibration_shrinks_the_mean_rate_error_on_unseen_windows() -> None:
    snn = converted()
    held_out = windows(3, seed=7)
    steps = 4
    before_rates, before_output = rate_errors(snn, held_out, steps), output_error(snn, held_out, steps)
    result = calibrate_biases(snn, windows(4, seed=3), steps, progress=False)
    after_rates, after_output = rate_errors(snn, held_out, steps), output_error(snn, held_out, steps)
    assert (
        result.steps == steps and result.windows == 16 and set(result.mean_abs_error) == set(snn.populations)
    )
    deepest = snn.populations[-1]
    assert before_rates[deepest] > 0.005  # there is an error to remove at this T
    assert after_rates[deepest] < 0.5 * before_rates[deepest]
    assert sum(after_rates.values()) < 0.8 * sum(before_rates.values())
    assert after_output < 0.5 * before_output
    # the rate limit (the normalised ANN) is untouched by the offsets
    x = held_out[0]
    assert torch.equal(snn.rate_limit(x), converted().rate_limit(x))


def test_offsets_keep_the_native_engine_spike_exact_with_snntorch() -> None:
    snn = converted(dyadic=True)
    calibrate_biases(snn, windows(2, seed=3), steps=4, progress=False)
    modules = dict(snn.graph_module.named_modules())
    for name in snn.populations:
        offset = modules[name].current_offset
        assert offset is not None and offset.abs().max() > 0
        modules[name].set_current_offset(torch.round(offset * 256) / 256)
    generator = torch.Generator().manual_seed(5)
    stream = torch.poisson(torch.rand(12, 2, 2, 12, 12, generator=generator) * 0.8, generator=generator) / 4
    spikes: dict[str, dict[str, list[torch.Tensor]]] = {"native": {}, "snntorch": {}}
    outputs = {}
    for backend in spikes:
        outputs[backend], _ = snn.run(
            stream,
            snn.initial_state(2),
            backend=backend,
            probe=lambda n, s, b=backend: spikes[b].setdefault(n, []).append(s),
        )
    for name in snn.populations:
        assert torch.equal(torch.cat(spikes["native"][name]), torch.cat(spikes["snntorch"][name])), name
    assert torch.equal(outputs["native"], outputs["snntorch"])


def test_offsets_are_saved_with_the_snn(tmp_path) -> None:
    from test_detector import tiny_spiking_detector

    detector = tiny_spiking_detector()
    generator = torch.Generator().manual_seed(3)
    calibration = [(torch.rand(2, 2, 64, 64, generator=generator) < 0.2).float()]
    calibrate_biases(detector, calibration, steps=4, progress=False)
    detector.conversion["bias_calibration"] = {"steps": 4}
    path = tmp_path / "calibrated.snn.pt"
    save_snn(detector, path)
    loaded = load_snn(path)
    x = (torch.rand(8, 1, 2, 64, 64, generator=generator) < 0.2).float()
    want, _ = detector.run(x, detector.initial_state(1))
    got, _ = loaded.run(x, loaded.initial_state(1))
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert loaded.conversion["bias_calibration"]["steps"] == 4
    reloaded = dict(loaded.graph_module.named_modules())
    offsets = 0
    for name, module in detector.graph_module.named_modules():
        if isinstance(module, IFNeurons) and module.current_offset is not None:
            offsets += 1
            assert torch.equal(reloaded[name].current_offset, module.current_offset)
    assert offsets > 0


def test_calibration_refuses_bad_settings_and_the_cli_needs_data(tmp_path, capsys) -> None:
    with pytest.raises(Exception, match="at least 1 time step"):
        calibrate_biases(converted(), windows(1, seed=3), steps=0, progress=False)
    with pytest.raises(Exception, match="none were given"):
        calibrate_biases(converted(), [], steps=4, progress=False)
    command = ["convert", "--model", "events-default", "--out", str(tmp_path / "x.pt")]
    assert main([*command, "--bias-calibration-steps", "8"]) == 2
    assert "--bias-calibration-steps needs --data" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
