"""IF neuron: equations, scan == step, threshold semantics, residual fix."""

from __future__ import annotations

import math

import pytest
import torch

from streamdet.neurons import (
    BurstParameters,
    IFParameters,
    IFState,
    burst_scan,
    burst_step,
    if_initial_state,
    if_scan,
    if_step,
)

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


def if_sub_steps(
    currents: torch.Tensor, params: IFParameters, max_spikes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``K`` steps of ``N`` IF sub-steps each (the same current at every sub-step of a step): spike counts
    per step ``[K, ...]`` and the final membrane."""
    sub = currents.repeat_interleave(max_spikes, dim=0)
    spikes, state = if_scan(sub, if_initial_state(currents.shape[1:], params, dtype=currents.dtype), params)
    return spikes.reshape(currents.shape[0], max_spikes, *currents.shape[1:]).sum(1), state.v


def dyadic(values: torch.Tensor, denominator: int = 64) -> torch.Tensor:
    """Values rounded to multiples of 1 / denominator: every sum below is exact in float32."""
    return torch.round(values * denominator) / denominator


@pytest.mark.parametrize("max_spikes", [1, 2, 3, 4, 8])
def test_burst_step_is_n_if_sub_steps_for_currents_in_range(max_spikes: int) -> None:
    generator = torch.Generator().manual_seed(10)
    currents = dyadic(torch.rand(12, 3, 50, generator=generator))  # [0, 1]: membranes stay in [0, 1)
    params = IFParameters(initial_membrane=0.5)
    expected, v_expected = if_sub_steps(currents, params, max_spikes)
    burst = BurstParameters.from_if(params, max_spikes)
    counts, state = burst_scan(currents, if_initial_state(currents.shape[1:], params), burst)
    assert torch.equal(counts, expected)
    assert torch.equal(state.v, v_expected)
    assert counts.max() == max_spikes and counts.min() == 0


@pytest.mark.parametrize("max_spikes", [2, 4, 5])
def test_burst_with_bounds_0_1_is_n_if_sub_steps_for_any_current(max_spikes: int) -> None:
    generator = torch.Generator().manual_seed(11)
    currents = dyadic(torch.randn(20, 4, 40, generator=generator) * 1.5 + 0.3)  # negative and > 1
    params = IFParameters(initial_membrane=0.5).with_bounds((0.0, 1.0))
    expected, v_expected = if_sub_steps(currents, params, max_spikes)
    counts, state = burst_scan(
        currents, if_initial_state(currents.shape[1:], params), BurstParameters.from_if(params, max_spikes)
    )
    assert torch.equal(counts, expected)
    assert torch.equal(state.v, v_expected)


def test_burst_differs_from_if_sub_steps_where_the_docstring_says() -> None:
    """Unbounded membranes outside [0, 1) meeting a current of the other sign (module docstring)."""
    params = IFParameters(initial_membrane=0.0)
    burst = BurstParameters.from_if(params, 2)
    start = torch.tensor([2.5, -1.0])
    currents = torch.tensor([[-1.0, 1.5]])
    counts, state = burst_step(currents[0], IFState(start.clone()), burst)
    spikes, if_state = if_scan(currents.repeat_interleave(2, 0), IFState(start.clone()), params)
    assert counts.tolist() == [0.0, 2.0]
    assert spikes.sum(0).tolist() == [1.0, 1.0]
    assert state.v.tolist() == [0.5, 0.0] and if_state.v.tolist() == [-0.5, 1.0]


def test_one_burst_step_is_the_quant_relu() -> None:
    from streamdet.model import QuantReLU

    for levels in (2, 4, 7):
        act = QuantReLU(levels=levels, clip_init=1.0)
        q = torch.linspace(-0.5, 1.5, 4001)
        params = BurstParameters.from_if(IFParameters(initial_membrane=0.5), levels)
        counts, _ = burst_step(q, if_initial_state(q.shape, IFParameters(initial_membrane=0.5)), params)
        with torch.no_grad():
            expected = act(q)
        # the Quant-ReLU rounds q * L + 0.5 and the burst floors v = 0.5 + L q: they differ only where
        # float32 rounds a value on a half-level boundary differently (exact ties of q * L + 0.5)
        off = (counts / levels - expected).abs() > 1e-6
        ties = ((q.double() * levels + 0.5) % 1).abs() < 1e-5
        assert torch.all(ties[off])
        assert off.sum() <= 2 * levels


def test_burst_scan_is_bitwise_equal_to_steps_and_chunks() -> None:
    generator = torch.Generator().manual_seed(12)
    currents = torch.randn(30, 2, 6, 5, generator=generator) * 0.9 + 0.4
    params = BurstParameters(max_spikes=4, initial_membrane=0.5, membrane_floor=-1.0, membrane_ceiling=2.0)
    state = if_initial_state(currents.shape[1:], IFParameters())
    stepped = []
    step_state = state
    for current in currents:
        counts, step_state = burst_step(current, step_state, params)
        stepped.append(counts)
    scanned, scan_state = burst_scan(currents, state, params)
    assert torch.equal(torch.stack(stepped), scanned)
    assert torch.equal(step_state.v, scan_state.v)
    first, middle = burst_scan(currents[:7], state, params)
    second, end = burst_scan(currents[7:], middle, params)
    assert torch.equal(torch.cat([first, second]), scanned) and torch.equal(end.v, scan_state.v)


def test_burst_rate_over_t_steps_is_within_half_a_level() -> None:
    q = torch.rand(4096, generator=torch.Generator().manual_seed(13))
    for steps in (1, 2, 4):
        params = BurstParameters(max_spikes=4)
        counts, _ = burst_scan(q.expand(steps, -1).clone(), if_initial_state(q.shape, IFParameters()), params)
        rate = counts.sum(0) / (steps * 4)
        assert (rate - q).abs().max() <= 1 / (2 * steps * 4) + 1e-6


def test_burst_parameters_refuse_reset_to_zero_and_no_spikes() -> None:
    with pytest.raises(ValueError, match="reset by subtraction"):
        BurstParameters.from_if(IFParameters(reset="zero"), 4)
    with pytest.raises(ValueError, match="max_spikes must be >= 1, got 0"):
        BurstParameters.from_if(IFParameters(), 0)
