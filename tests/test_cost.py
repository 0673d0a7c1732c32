"""Cost of a window: exact synaptic-operation counts, input classes, energy, the report plot."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from streamdet.convert import ConversionConfig, convert_network
from streamdet.cost import (
    EnergyModel,
    dense_macs,
    fan_out_sums,
    measure_window_cost,
    plot_window_cost,
    synaptic_inputs,
)
from streamdet.neurons import IFParameters
from streamdet.snn import SpikingNetwork

pytestmark = pytest.mark.usefixtures("single_thread")


class QuantReLU(nn.Module):
    """The Quant-ReLU contract of streamdet.model."""

    def __init__(self, levels: int, clip: float) -> None:
        super().__init__()
        self.levels = levels
        self.clip = nn.Parameter(torch.tensor(clip))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip * torch.floor(torch.clamp(x / self.clip, 0, 1) * self.levels + 0.5) / self.levels


class Net(nn.Module):
    """Input conv (analog), spike-fed conv, residual add passed on as current (analog), nearest upsampling
    and concatenation of two populations (spikes), a strided conv with groups."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 8, 3, 1, 1), QuantReLU(4, 1.0))
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), QuantReLU(4, 1.0))
        self.after_add = nn.Conv2d(8, 8, 3, 2, 1)
        self.act = QuantReLU(4, 1.0)
        self.grouped = nn.Sequential(nn.Conv2d(16, 8, 3, 1, 1, groups=2), QuantReLU(4, 1.0))
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stem(x)
        b = self.body(a)
        c = self.act(self.after_add(a + b))
        up = nn.functional.interpolate(c, scale_factor=2, mode="nearest")
        return self.out(self.grouped(torch.cat([b, up], 1)))


def converted(burst: bool = True) -> SpikingNetwork:
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.rand(1, 2, 12, 16)
    config = ConversionConfig(normalisation="quant", burst=burst)
    network = convert_network(model, None, config, example_input=x)
    return SpikingNetwork(network.graph_module, IFParameters(), network.sites)


def reached_by_the_layer_itself(module: nn.Module, values: torch.Tensor) -> float:
    """``sum_i values_i * fanout_i`` from the layer with all weights 1 and no bias: each input adds its value
    once to every output it reaches."""
    import copy

    ones = copy.deepcopy(module)
    with torch.no_grad():
        ones.weight.fill_(1.0)
        if ones.bias is not None:
            ones.bias.zero_()
        return float(ones(values).double().sum())


@pytest.mark.parametrize(
    "module",
    [
        nn.Conv2d(4, 6, 3, 1, 1),
        nn.Conv2d(4, 6, 3, 2, 1),
        nn.Conv2d(4, 6, (3, 1), 1, (2, 0), dilation=2),
        nn.Conv2d(4, 6, 3, 1, 1, groups=2),
        nn.ConvTranspose2d(4, 6, 2, 2),
        nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1, groups=2),
    ],
    ids=["3x3", "stride-2", "dilated", "groups", "transposed", "transposed-groups"],
)
def test_fan_out_sums_count_every_synapse_a_spike_reaches(module: nn.Module) -> None:
    counts = torch.poisson(torch.rand(2, 4, 9, 11, generator=torch.Generator().manual_seed(1)) * 1.5)
    got = fan_out_sums(module, counts)
    for sample in range(2):
        assert float(got[sample]) == reached_by_the_layer_itself(module, counts[sample : sample + 1])


def test_linear_fan_out_and_dense_macs() -> None:
    layer = nn.Linear(10, 7)
    values = torch.arange(20.0).reshape(2, 10)
    assert fan_out_sums(layer, values).tolist() == [45.0 * 7, 145.0 * 7]
    assert dense_macs(layer, values, layer(values)).tolist() == [70.0, 70.0]
    conv = nn.Conv2d(3, 5, 3, 2, 1)
    x = torch.zeros(1, 3, 8, 10)
    assert dense_macs(conv, x, conv(x)).tolist() == [5 * 4 * 5 * 27]  # padding included


def test_inputs_are_classed_spikes_or_analog() -> None:
    inputs = synaptic_inputs(converted().graph_module)
    kinds = {name: (source.is_spikes, source.max_spikes) for name, source in inputs.items()}
    assert kinds["stem_0"] == (False, None)  # the input window
    assert kinds["body_0"] == (True, 4)
    assert kinds["after_add"] == (False, None)  # the add is passed on as current
    assert kinds["grouped_0"] == (True, 4)  # cat of a population and an upsampled one
    assert len(inputs["grouped_0"].populations) == 2
    assert kinds["out"] == (True, 4)
    plain = synaptic_inputs(converted(burst=False).graph_module)
    assert plain["body_0"].max_spikes == 1


def test_window_cost_counts_the_spikes_of_each_step_exactly() -> None:
    """ACs of a spike-fed layer equal the count map run through the layer with unit weights; analog
    layers cost their dense MACs at every step; the ANN one forward's."""
    network = converted()
    x = torch.rand(2, 2, 12, 16, generator=torch.Generator().manual_seed(3))
    recorded: dict[str, list[torch.Tensor]] = {}
    inputs_of_out: list[torch.Tensor] = []
    handle = network.graph_module.get_submodule("out").register_forward_hook(
        lambda m, i, o: inputs_of_out.append(i[0])
    )

    def probe(name: str, spikes: torch.Tensor) -> None:
        recorded.setdefault(name, []).append(spikes)

    network.run(x.expand(3, *x.shape), network.initial_state(2), probe=probe)
    handle.remove()
    costs = measure_window_cost(network, x, (1, 3), chunk=2)
    layers = {layer.name: layer for layer in costs[3].layers}
    counts = torch.round(inputs_of_out[0] * 4)
    expected = reached_by_the_layer_itself(network.graph_module.get_submodule("out"), counts) / 2
    assert layers["out"].acs == pytest.approx(expected, rel=1e-9)
    assert layers["out"].input == "spikes" and layers["out"].macs == 0
    stem = layers["stem_0"]
    assert stem.input == "analog" and stem.acs == 0 and stem.macs == 3 * stem.ann_macs == 3 * 8 * 12 * 16 * 18
    assert costs[1].layers[0].macs == stem.ann_macs
    one = {layer.name: layer for layer in costs[1].layers}
    assert 0 < one["out"].acs < layers["out"].acs
    population = next(iter(recorded))
    spikes = torch.cat(recorded[population])
    counts = spikes * 4  # the probe sees what the burst population passes on: counts / N
    assert costs[3].spike_rates[population] == pytest.approx(float(counts.sum()) / counts.numel())
    assert costs[3].neuron_updates == 3 * sum(s[0].numel() // 2 for s in (r[0] for r in recorded.values()))


def test_a_stream_and_a_constant_current_cost_the_same() -> None:
    network = converted()
    x = torch.rand(1, 2, 12, 16, generator=torch.Generator().manual_seed(4))
    constant = measure_window_cost(network, x, (2,))[2]
    stream = measure_window_cost(network, x.expand(2, *x.shape).clone(), (2,))[2]
    assert constant.summary() == stream.summary()
    with pytest.raises(ValueError, match="a stream of 2 steps cannot give windows of 3 steps"):
        measure_window_cost(network, x.expand(2, *x.shape), (3,))


def test_energy_follows_the_cited_per_operation_figures(tmp_path) -> None:
    network = converted()
    x = torch.rand(1, 2, 12, 16, generator=torch.Generator().manual_seed(5))
    cost = measure_window_cost(network, x, (1,))[1]
    summary = cost.summary()
    assert summary["energy_ann_uj"] == pytest.approx(summary["ann_macs"] * 4.6e-6)
    snn_pj = (summary["snn_acs"] + summary["snn_neuron_updates"]) * 0.9 + summary["snn_macs"] * 4.6
    assert summary["energy_snn_uj"] == pytest.approx(snn_pj * 1e-6)
    assert "Horowitz" in cost.energy.source
    as_json = json.loads(json.dumps(cost.to_dict()))
    assert as_json["energy_model"]["pj_per_mac"] == 4.6 and len(as_json["layers"]) == 5
    with pytest.raises(ValueError, match="pj_per_ac=0"):
        EnergyModel(pj_per_ac=0)
    smaller = replace(cost, layers=cost.layers[:2])  # variants of different networks share one figure
    path = plot_window_cost({"burst, T = 1": cost, "two layers": smaller}, tmp_path / "cost.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
