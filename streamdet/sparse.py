"""A sparse execution path for convolutions fed by spikes: cost proportional to the active input sites,
chosen per layer by a measured crossover against the dense (oneDNN) convolution.

``sparse_conv2d`` gathers the input sites ``(n, y, x)`` where any channel is non-zero (``A`` of them),
and for each kernel tap ``(ky, kx)`` multiplies their channel vectors by the tap's weights and adds the
products into the outputs they reach:

    out[n, :, oy, ox] = b + sum_{ky, kx} sum_{(n, y, x) active}  W[:, :, ky, kx] @ in[n, :, y, x]
        over the active sites with  y + p_y - ky d_y = s_y oy  and  x + p_x - kx d_x = s_x ox

which is the convolution with zero padding, restricted to the non-zero inputs (a zero input adds
nothing). Work: ``A * kh * kw * C_in * C_out`` multiply-adds plus one pass over the output (it starts
at the bias), against ``N * H_out * W_out * kh * kw * C_in * C_out`` for the dense convolution; the
gather, the per-tap index arithmetic and the scatter-add cost a fixed overhead on top.

Same outputs as the dense convolution: bit for bit when every product and partial sum is exact in
float32 (dyadic weights and spike counts, ``tests/test_sparse.py``); with other weights the two sum in
a different order and agree to float32 rounding, like the chunked and step-by-step engines
(``streamdet.snn``).

Crossover (``measure_crossover``): the dense and the sparse path are timed (CPU time, after a warm-up)
on inputs of the layer's shape whose active sites are a given fraction of all sites; the crossover is
the largest fraction at which the sparse path was faster, 0 when it never was. ``with_sparse_layers``
wraps each spike-fed convolution with a positive crossover so that it takes the sparse path whenever
its input's active-site fraction is below it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from streamdet.snn import SpikingNetwork


def active_site_fraction(x: torch.Tensor) -> float:
    """Share of the sites ``(n, y, x)`` of ``x [N, C, H, W]`` where any channel is non-zero."""
    return float(x.ne(0).any(1).float().mean())


def sparse_conv2d(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` computed from the active input sites only (equation in the module docstring).

    Args:
        x: ``[N, C_in, H, W]``, mostly zero (spike counts over ``N`` spikes per step).
        conv: a ``groups = 1`` convolution with zero padding.

    Returns:
        ``[N, C_out, H_out, W_out]`` (a channels-last view), equal to ``conv(x)`` up to float rounding.
    """
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(
            f"sparse_conv2d takes groups=1 and numeric zero padding, got groups={conv.groups}, "
            f"padding={conv.padding!r}, padding_mode={conv.padding_mode!r}"
        )
    batch, _, height, width = x.shape
    weight = conv.weight
    out_channels, _, kernel_h, kernel_w = weight.shape
    (stride_y, stride_x), (pad_y, pad_x), (dil_y, dil_x) = conv.stride, conv.padding, conv.dilation
    out_h = (height + 2 * pad_y - dil_y * (kernel_h - 1) - 1) // stride_y + 1
    out_w = (width + 2 * pad_x - dil_x * (kernel_w - 1) - 1) // stride_x + 1
    sites = x.permute(0, 2, 3, 1)
    n, y, x_pos = sites.ne(0).any(3).nonzero(as_tuple=True)
    values = sites[n, y, x_pos]
    bias = conv.bias if conv.bias is not None else weight.new_zeros(out_channels)
    out = bias.expand(batch * out_h * out_w, out_channels).clone()
    taps = weight.permute(2, 3, 1, 0)
    shifted_y, shifted_x = y + pad_y, x_pos + pad_x
    for ky in range(kernel_h):
        row = shifted_y - ky * dil_y
        row_ok = (row >= 0) & (row % stride_y == 0) & (row < out_h * stride_y)
        for kx in range(kernel_w):
            column = shifted_x - kx * dil_x
            column_ok = (column >= 0) & (column % stride_x == 0) & (column < out_w * stride_x)
            chosen = (row_ok & column_ok).nonzero().squeeze(1)
            target = (n[chosen] * out_h + row[chosen] // stride_y) * out_w + column[chosen] // stride_x
            out.index_add_(0, target, values[chosen] @ taps[ky, kx])
    return out.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)


class SparseDispatchConv2d(nn.Module):
    """A convolution that runs ``sparse_conv2d`` when its input's active-site fraction is below
    ``crossover`` and the dense convolution otherwise; ``calls`` counts ``{"sparse", "dense"}``."""

    def __init__(self, conv: nn.Conv2d, crossover: float) -> None:
        super().__init__()
        self.conv = conv
        self.crossover = float(crossover)
        self.calls = {"sparse": 0, "dense": 0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if active_site_fraction(x) < self.crossover:
            self.calls["sparse"] += 1
            return sparse_conv2d(x, self.conv)
        self.calls["dense"] += 1
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"crossover={self.crossover:g}"


@dataclass(frozen=True)
class Crossover:
    """Timings of one layer's two paths by active-site fraction, and the crossover they give.

    Attributes:
        layer: module name.
        fractions: active-site fractions timed (ascending).
        dense_ms: CPU milliseconds per call of the dense convolution, per fraction.
        sparse_ms: CPU milliseconds per call of ``sparse_conv2d``, per fraction.
        crossover: the largest fraction at which the sparse path was faster (0: never).
    """

    layer: str
    fractions: tuple[float, ...]
    dense_ms: tuple[float, ...]
    sparse_ms: tuple[float, ...]
    crossover: float


def _cpu_ms(function, repeats: int) -> float:
    function()
    start = time.process_time()
    for _ in range(repeats):
        function()
    return (time.process_time() - start) / repeats * 1e3


def measure_crossover(
    conv: nn.Conv2d,
    input_shape: tuple[int, int, int, int],
    fractions: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3),
    channel_rate: float = 0.3,
    repeats: int = 5,
    layer: str = "",
    seed: int = 0,
) -> Crossover:
    """Time both paths of ``conv`` on random spike inputs ``input_shape`` whose active sites are each of
    ``fractions`` (each active site with each channel spiking at ``channel_rate``).

    Returns:
        the timings and the crossover (module docstring). CPU time of this process: on a shared machine
        wall time also counts the waits for a core.
    """
    generator = torch.Generator().manual_seed(seed)
    batch, channels, height, width = input_shape
    dense, sparse = [], []
    with torch.no_grad():
        for fraction in sorted(fractions):
            sites = torch.rand(batch, 1, height, width, generator=generator) < fraction
            spikes = torch.rand(batch, channels, height, width, generator=generator) < channel_rate
            x = (spikes & sites).float()
            dense.append(_cpu_ms(lambda x=x: conv(x), repeats))
            sparse.append(_cpu_ms(lambda x=x: sparse_conv2d(x, conv), repeats))
    ordered = tuple(sorted(fractions))
    faster = [f for f, d, s in zip(ordered, dense, sparse, strict=True) if s < d]
    return Crossover(
        layer=layer,
        fractions=ordered,
        dense_ms=tuple(dense),
        sparse_ms=tuple(sparse),
        crossover=max(faster) if faster else 0.0,
    )


def with_sparse_layers(network: SpikingNetwork, crossovers: dict[str, float]) -> SpikingNetwork:
    """A copy of ``network`` (its own graph, the same weights) whose convolutions named in ``crossovers``
    with a positive crossover run through ``SparseDispatchConv2d``; the others stay dense.

    Raises ValueError for a name that is not a ``groups = 1`` convolution of the graph.
    """
    from streamdet.snn import _ExecutionPlan

    graph_module = copy.copy(network.graph_module)
    graph_module._modules = dict(network.graph_module._modules)
    for name, crossover in crossovers.items():
        module = graph_module._modules.get(name)
        if not isinstance(module, nn.Conv2d) or module.groups != 1:
            found = type(module).__name__
            raise ValueError(f"{name!r} is not a groups=1 convolution of the graph (found {found})")
        if crossover > 0:
            graph_module._modules[name] = SparseDispatchConv2d(module, crossover)
    other = copy.copy(network)
    other.graph_module = graph_module
    other._plan = _ExecutionPlan(graph_module)
    return other
