"""IF neuron: equations, scan == step, threshold semantics, residual fix."""

from __future__ import annotations

import math

import pytest
import torch

from streamdet.neurons import IFParameters, IFState, if_initial_state, if_scan, if_step

pytestmark = pytest.mark.usefixtures("single_thread")


def simulate_steps(currents: torch.Tensor, params: IFParameters) -> tuple[torch.Tensor, torch.Tensor]:
    state = if_initial_state(currents.shape[1:], params, dtype=currents.dtype)
    spikes = []
    for current in currents:
        s, state = if_step(current, state, params)
        spikes.append(s)
    return torch.stack(spikes), state.v


def test_constant_current_spike_count_is_floor_of_charge() -> None:
    steps = 32
    currents = torch.linspace(0.0, 1.0, 101)
    for initial in (0.0, 0.5):
        params = IFParameters(initial_membrane=initial)
        spikes, _ = if_scan(currents.expand(steps, -1).clone(), if_initial_state((101,), params), params)
        expected = torch.floor(steps * currents.double() + initial).clamp(max=steps)
        # floor of a float32 sum may sit one ulp off the exact product; allow only those exact ties
        off = (spikes.sum(0).double() - expected).abs()
        assert off.max() <= 1
        ties = (steps * currents.double() + initial) % 1 < 1e-5
        assert torch.all(ties[off > 0])


def test_scan_is_bitwise_equal_to_steps_for_both_resets() -> None:
    generator = torch.Generator().manual_seed(1)
    currents = torch.randn(50, 3, 7, 5, generator=generator) * 0.8 + 0.3  # negative and > 1 included
    for reset in ("subtract", "zero"):
        params = IFParameters(reset=reset, initial_membrane=0.5)
        stepped, v_stepped = simulate_steps(currents, params)
        scanned, state = if_scan(currents, if_initial_state(currents.shape[1:], params), params)
        assert torch.equal(stepped, scanned)
        assert torch.equal(v_stepped, state.v)
        assert 0.05 < scanned.mean() < 0.95


def test_scan_in_chunks_continues_the_same_simulation() -> None:
    generator = torch.Generator().manual_seed(2)
    currents = torch.rand(40, 2, 9, generator=generator) * 1.5 - 0.2
    params = IFParameters()
    whole, state_whole = if_scan(currents, if_initial_state((2, 9), params), params)
    state = if_initial_state((2, 9), params)
    parts = []
    for chunk in torch.split(currents, [1, 7, 13, 19]):
        spikes, state = if_scan(chunk, state, params)
        parts.append(spikes)
    assert torch.equal(torch.cat(parts), whole)
    assert torch.equal(state.v, state_whole.v)


def test_fires_at_threshold_inclusive_and_resets() -> None:
    params = IFParameters(initial_membrane=0.0)
    spikes, state = if_step(torch.tensor([1.0, 0.999, 2.5]), IFState(torch.zeros(3)), params)
    assert spikes.tolist() == [1.0, 0.0, 1.0]
    assert state.v.tolist() == [0.0, 0.9990000128746033, 1.5]
    zero = IFParameters(initial_membrane=0.0, reset="zero")
    spikes, state = if_step(torch.tensor([1.0, 0.999, 2.5]), IFState(torch.zeros(3)), zero)
    assert state.v.tolist() == [0.0, 0.9990000128746033, 0.0]


def test_residual_fix_halves_the_rate_error() -> None:
    steps = 16
    currents = torch.rand(4096, generator=torch.Generator().manual_seed(3))
    errors = {}
    for initial in (0.0, 0.5):
        params = IFParameters(initial_membrane=initial)
        spikes, _ = if_scan(currents.expand(steps, -1).clone(), if_initial_state((4096,), params), params)
        errors[initial] = (spikes.mean(0) - currents).abs()
    assert errors[0.0].max() <= 1 / steps + 1e-6
    assert errors[0.5].max() <= 1 / (2 * steps) + 1e-6
    assert math.isclose(errors[0.0].mean().item() / errors[0.5].mean().item(), 2.0, rel_tol=0.1)


def test_bounded_scan_is_bitwise_equal_to_steps_and_stays_in_bounds() -> None:
    generator = torch.Generator().manual_seed(3)
    currents = torch.randn(40, 3, 50, generator=generator) * 1.5
    for reset in ("subtract", "zero"):
        params = IFParameters(reset=reset, membrane_floor=0.0, membrane_ceiling=1.0)
        scan_spikes, scan_state = if_scan(currents, if_initial_state((3, 50), params), params)
        step_spikes, step_v = simulate_steps(currents, params)
        assert torch.equal(scan_spikes, step_spikes)
        assert torch.equal(scan_state.v, step_v)
        assert scan_state.v.min() >= 0.0 and scan_state.v.max() <= 1.0


def test_bounds_leave_a_constant_current_in_range_unchanged() -> None:
    currents = torch.linspace(0.0, 1.0, 101).expand(64, -1).clone()
    free = IFParameters()
    bounded = IFParameters(membrane_floor=0.0, membrane_ceiling=1.0)
    free_spikes, _ = if_scan(currents, if_initial_state((101,), free), free)
    bounded_spikes, _ = if_scan(currents, if_initial_state((101,), bounded), bounded)
    assert torch.equal(free_spikes, bounded_spikes)


def test_bounded_neuron_forgets_a_long_inhibition_and_a_long_overdrive() -> None:
    """The streaming case: after 200 steps of negative (or of saturating) input the input changes to
    0.5; with bounds the rate is 0.5 at once, without them the past dominates for hundreds of steps."""
    for before in (-1.0, 3.0):
        currents = torch.cat([torch.full((200, 1), before), torch.full((40, 1), 0.5)])
        free = IFParameters()
        bounded = IFParameters(membrane_floor=0.0, membrane_ceiling=1.0)
        free_spikes, _ = if_scan(currents, if_initial_state((1,), free), free)
        bounded_spikes, _ = if_scan(currents, if_initial_state((1,), bounded), bounded)
        assert abs(float(bounded_spikes[200:].mean()) - 0.5) <= 1 / 40
        assert abs(float(free_spikes[200:].mean()) - 0.5) >= 0.45  # silent, or firing every step
