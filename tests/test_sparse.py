"""Sparse convolution path: same outputs as the dense convolution, per-layer dispatch by crossover."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamdet.convert import ConversionConfig, convert_network
from streamdet.neurons import IFParameters
from streamdet.snn import SpikingNetwork
from streamdet.sparse import (
    SparseDispatchConv2d,
    active_site_fraction,
    measure_crossover,
    sparse_conv2d,
    with_sparse_layers,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def dyadic_conv(conv: nn.Conv2d, seed: int = 0) -> nn.Conv2d:
    """Weights and bias in multiples of 1/64 below 2: every sum of a few hundred products of them with
    spike counts is exact in float32, whatever the order."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.round(torch.randn(conv.weight.shape, generator=generator) * 32) / 64)
        if conv.bias is not None:
            conv.bias.copy_(torch.round(torch.randn(conv.bias.shape, generator=generator) * 32) / 64)
    return conv.eval()


def spike_counts(shape: tuple[int, ...], site_fraction: float, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    batch, channels, height, width = shape
    sites = torch.rand(batch, 1, height, width, generator=generator) < site_fraction
    counts = torch.randint(0, 5, shape, generator=generator).float()
    return counts * sites / 4


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(6, 5, 3, 1, 1),
        nn.Conv2d(6, 5, 3, 2, 1),
        nn.Conv2d(6, 5, 1),
        nn.Conv2d(6, 5, (3, 5), (2, 1), (0, 2), dilation=(1, 2)),
        nn.Conv2d(6, 5, 3, 2, 1, bias=False),
    ],
    ids=["3x3", "stride-2", "1x1", "odd-shapes", "no-bias"],
)
@pytest.mark.parametrize("site_fraction", [0.0, 0.05, 0.5, 1.0])
def test_sparse_path_gives_the_dense_outputs_bit_for_bit(conv: nn.Conv2d, site_fraction: float) -> None:
    conv = dyadic_conv(conv)
    x = spike_counts((2, 6, 13, 17), site_fraction)
    with torch.no_grad():
        assert torch.equal(sparse_conv2d(x, conv), conv(x))


def test_sparse_path_with_float_weights_agrees_to_rounding() -> None:
    conv = nn.Conv2d(16, 12, 3, 1, 1).eval()
    x = spike_counts((1, 16, 20, 24), 0.1, seed=2)
    with torch.no_grad():
        assert torch.allclose(sparse_conv2d(x, conv), conv(x), atol=1e-5)


def test_sparse_path_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="groups=1 .* got groups=2"):
        sparse_conv2d(torch.zeros(1, 4, 5, 5), nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        sparse_conv2d(torch.zeros(1, 4, 5, 5), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))


def test_active_site_fraction_counts_sites_with_any_channel() -> None:
    x = torch.zeros(2, 3, 4, 5)
    x[0, 2, 1, 1] = 1.0
    x[1, 0, 3, 4] = 0.25
    x[1, 1, 3, 4] = 0.5
    assert active_site_fraction(x) == pytest.approx(2 / 40)


def test_dispatch_takes_the_sparse_path_below_the_crossover_only() -> None:
    conv = dyadic_conv(nn.Conv2d(4, 3, 3, 1, 1))
    layer = SparseDispatchConv2d(conv, crossover=0.2)
    sparse_input, dense_input = spike_counts((1, 4, 10, 10), 0.05), spike_counts((1, 4, 10, 10), 0.9)
    with torch.no_grad():
        assert torch.equal(layer(sparse_input), conv(sparse_input))
        assert torch.equal(layer(dense_input), conv(dense_input))
    assert layer.calls == {"sparse": 1, "dense": 1}


def test_measured_crossover_is_a_timed_fraction_or_zero() -> None:
    measured = measure_crossover(nn.Conv2d(8, 8, 3, 1, 1), (1, 8, 24, 24), (0.01, 0.5), repeats=2, layer="x")
    assert measured.fractions == (0.01, 0.5) and len(measured.dense_ms) == len(measured.sparse_ms) == 2
    assert all(t > 0 for t in measured.dense_ms + measured.sparse_ms)
    timings = zip(measured.fractions, measured.dense_ms, measured.sparse_ms, strict=True)
    faster = [fraction for fraction, dense, sparse in timings if sparse < dense]
    assert measured.crossover == (max(faster) if faster else 0.0)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 8, 3, 2, 1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.stem(x)))


def test_a_network_with_sparse_layers_runs_exactly_like_the_dense_one() -> None:
    torch.manual_seed(0)
    calibration = [torch.rand(4, 2, 16, 20, generator=torch.Generator().manual_seed(3))]
    config = ConversionConfig(burst=True, burst_spikes=4)
    converted = convert_network(Net().eval(), calibration, config, progress=False)
    with torch.no_grad():
        for tensor in converted.graph_module.parameters():
            tensor.copy_(torch.round(tensor * 64) / 64)
    dense = SpikingNetwork(converted.graph_module, IFParameters().with_bounds((0.0, 1.0)), converted.sites)
    sparse = with_sparse_layers(dense, {"body_0": 1.01, "out": 1.01})
    stream = (torch.rand(6, 2, 2, 16, 20, generator=torch.Generator().manual_seed(4)) < 0.2).float()
    want, want_state = dense.run(stream, dense.initial_state(2))
    got, got_state = sparse.run(stream, sparse.initial_state(2))
    assert torch.equal(got, want)
    for name in want_state.membranes:
        assert torch.equal(got_state.membranes[name], want_state.membranes[name])
    assert sparse.graph_module.get_submodule("body_0").calls["sparse"] == 1
    assert isinstance(dense.graph_module.get_submodule("body_0"), nn.Conv2d)  # the original is untouched
    with pytest.raises(ValueError, match="'stem_1' is not a groups=1 convolution"):
        with_sparse_layers(dense, {"stem_1": 0.5})
