"""Bias calibration of a converted SNN: per-channel currents that remove the mean rate error at ``T`` steps.

After conversion an IF population's rate over a window of ``T`` steps from a fresh state differs from
the normalised ANN activation it replaces (the rate limit, ``SpikingNetwork.rate_limit``): the layers
below it are themselves only ``1/T``-accurate, their errors do not average out (a neuron rounds
``floor(T * x + v0) / T``, not the ANN's ``floor(L * x + 0.5) / L`` when ``T != L``), and every layer
adds its own. Much of that error is a shift of each channel's mean, which a constant current removes.
This is the bias calibration of Li et al., "A free lunch from ANN: towards efficient, accurate spiking
neural networks calibration" (ICML 2021; reference [3] of Qiu and Zhu 2023), applied population by population
in graph order:

    delta_l[c] = E_x[ a_l(x)[c] ] - E_x[ r_l(x, T)[c] ]
    offset_l[c] += delta_l[c]

where ``a_l`` is the rate limit of population ``l`` (mean over batch and pixels), ``r_l(x, T)`` its
spike rate over ``T`` steps of the simulation with constant input ``x`` (mean over steps, batch and
pixels), both in thresholds, and the offsets of the populations before ``l`` are already in place. The
offset is a current added at every step (``IFNeurons.current_offset``, thresholds per step): an IF
neuron's rate follows its mean current, so a shift of ``delta`` moves the rate by about ``delta`` where
it is not clipped. No labels are used, only input windows; the network's weights are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from streamdet.errors import UserFacingError
from streamdet.snn import SpikingNetwork


@dataclass(frozen=True)
class BiasCalibration:
    """What bias calibration did: ``steps`` per window, ``windows`` calibrated on, and per population the
    mean absolute rate error (thresholds) before its own correction, ``mean_abs_error[name]``."""

    steps: int
    windows: int
    mean_abs_error: dict[str, float]

    def to_dict(self) -> dict:
        return {"steps": self.steps, "windows": self.windows, "mean_abs_error": dict(self.mean_abs_error)}


class _StopAfter(Exception):
    """Raised by a probe once the population it waits for has run (the rest of the graph is not needed)."""


def channel_means(x: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """Mean of ``x`` over every axis but ``channel_axis``, float64 ``[C]``."""
    axes = tuple(a for a in range(x.dim()) if a != channel_axis)
    return x.double().mean(dim=axes)


def rate_limit_means(snn: SpikingNetwork, windows: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per population, the per-channel mean of its rate limit over ``windows`` (``[B, C, H, W]`` each)."""
    sums: dict[str, torch.Tensor] = {}

    def probe(name: str, rate: torch.Tensor) -> None:
        sums[name] = sums.get(name, 0) + channel_means(rate, 1)

    for x in windows:
        snn.rate_limit(x, probe=probe)
    return {name: total / len(windows) for name, total in sums.items()}


def spike_rate_means(
    snn: SpikingNetwork, windows: Sequence[torch.Tensor], steps: int, population: str
) -> torch.Tensor:
    """Per-channel mean spike rate of ``population`` over ``steps`` steps of constant input, from a fresh
    state, averaged over ``windows``; the graph after the population is not simulated."""
    total = 0
    for x in windows:
        found: dict[str, torch.Tensor] = {}

        def probe(name: str, spikes: torch.Tensor, found=found) -> None:
            if name == population:
                found["rate"] = channel_means(spikes, 2)
                raise _StopAfter

        try:
            snn.run(x.expand(steps, *x.shape), snn.initial_state(x.shape[0], x.device), probe=probe)
        except _StopAfter:
            pass
        if "rate" not in found:
            raise ValueError(f"population {population!r} did not run")
        total = total + found["rate"]
    return total / len(windows)


def calibrate_biases(
    snn: SpikingNetwork, windows: Sequence[torch.Tensor], steps: int, progress: bool = True
) -> BiasCalibration:
    """Set every IF population's ``current_offset`` so that its mean rate at ``steps`` steps matches the
    rate limit (the equation in the module docstring), population by population in graph order.

    Args:
        snn: the converted network; its populations' offsets are replaced (in place).
        windows: batches of padded ANN input windows ``[B, C, H, W]``, each given as constant current.
        steps: ``T``, time steps per window from a fresh state (e.g. 16).
        progress: tqdm bar on stderr.
    """
    from tqdm import tqdm

    if steps < 1:
        raise UserFacingError(f"bias calibration needs at least 1 time step, got {steps}")
    windows = list(windows)
    if not windows:
        raise UserFacingError("bias calibration needs input windows; none were given")
    populations = snn.populations
    modules = dict(snn.graph_module.named_modules())
    for name in populations:
        modules[name].set_current_offset(None)
    targets = rate_limit_means(snn, windows)
    errors: dict[str, float] = {}
    for name in tqdm(
        populations, desc=f"bias calibration T={steps}", unit="population", disable=not progress
    ):
        delta = targets[name] - spike_rate_means(snn, windows, steps, name)
        errors[name] = float(delta.abs().mean())
        modules[name].set_current_offset(delta.float())
    return BiasCalibration(steps=steps, windows=sum(int(x.shape[0]) for x in windows), mean_abs_error=errors)
