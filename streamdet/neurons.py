"""Integrate-and-fire (IF) neurons as pure functions over tensors with explicit state.

The IF neuron of the converted network (Spiking-RetinaNet, eqs. 1-3, docs/references.md; threshold
``v_th = 1`` after normalisation):

    v[t] = v[t-1] + z[t]                      integrate the input current z[t]
    s[t] = 1  if v[t] >= v_th  else 0         fire (note: ``>=``, not ``>``)
    v[t] = v[t] - v_th * s[t]                 reset by subtraction   (``reset="subtract"``)
    v[t] = v[t] * (1 - s[t])                  reset to zero          (``reset="zero"``, ablation)

with ``v[0] = initial_membrane * v_th`` (0.5 = the "residual fix" of Qiu and Zhu 2023; 0 turns it off). One
step is one time step ``dt = window / T``; the neuron has no leak and no refractory period. Shapes: a
step works on any tensor ``[B, ...]``; a scan works on ``[K, B, ...]`` (K consecutive steps).

Optional membrane bounds (for streams): after the reset, ``v[t] = clamp(v[t], floor * v_th,
ceiling * v_th)``. Without them a neuron integrates every input it ever had: one that was inhibited for
seconds of a stream holds a large negative membrane and stays silent long after its input turned
positive (and one driven above its maximal rate stores the excess and keeps firing after its input
stopped), so its rate follows the whole past instead of the recent input. With ``floor = 0`` and
``ceiling = 1`` the membrane stays in ``[0, v_th]``: a constant input ``z`` in [0, 1] from a state in that
range gives the same spikes as without bounds, ``z < 0`` gives silence at once when it ends, and ``z > 1``
fires every step (the ANN's clip at 1).

With reset by subtraction and a constant current ``z`` in [0, 1], the spike count after ``T`` steps is
``floor(T * z + initial_membrane)``, so the rate is ``z`` within ``1 / T`` (within ``1 / (2T)`` with the
residual fix), which is what ANN-to-SNN conversion rests on.

Burst (multi-threshold) IF neurons (``burst_step`` / ``burst_scan``) may emit up to ``N`` spikes in one
step, ``N = max_spikes``; each spike carries ``1 / N`` of the rate, so the population's output per step is
``s[t] / N`` in [0, 1] (Li and Zeng 2022, burst spikes; Chen et al. 2025, one-timestep conversion):

    v[t] = v[t-1] + N * z[t]                  N sub-steps' worth of the current z[t]
    s[t] = clamp(floor(v[t] / v_th), 0, N)    spike count of the step
    v[t] = v[t] - v_th * s[t]                 reset by subtraction
    v[t] = clamp(v[t], floor * v_th, ceiling * v_th)   optional membrane bounds, as for IF

with ``v[0] = initial_membrane * v_th``. One burst step is ``N`` steps of the IF neuron above with the
same current ``z[t]`` at each (its membrane and its spike count summed over the ``N`` sub-steps), in exact
arithmetic, when either

- the membrane is unbounded and starts the step in ``[0, v_th)``: then for ``z <= 0`` no sub-step fires,
  for ``0 <= z <= v_th`` every sub-step ends in ``[0, v_th)`` (the count is ``floor((v + N z) / v_th)``),
  and for ``z > v_th`` every sub-step fires (``N``); a constant current in [0, 1], the conversion's
  setting, keeps the membrane in ``[0, v_th)`` from ``v[0] = 0.5 v_th``, so it holds at every step; or
- the membrane is bounded to ``[0, v_th]`` (``floor = 0``, ``ceiling = 1``, the streaming detector's
  default) and starts the step in that range, for any ``z``: the bound binds at most once, at the end.

It does not hold for an unbounded membrane outside ``[0, v_th)`` meeting a current of the other sign:
``v = 2.5``, ``z = -1``, ``N = 2`` gives 1 spike over two IF sub-steps (the first fires before the
negative current arrives) but 0 in one burst step; ``v = -1``, ``z = 1.5`` gives 1 against 2. Nor for
reset to zero (an IF sub-step that fires forgets the charge the later sub-steps would add to), so burst
neurons reset by subtraction only. In floating point the burst rounds twice per step (``N z`` and the
add) where ``N`` sub-steps round ``N`` times: the spikes are bit for bit the IF's when every product
and partial sum is exact (e.g. dyadic currents, ``tests/test_neurons.py``), else a membrane within a
few ulp of a multiple of ``v_th`` may give one spike more or fewer.

A Quant-ReLU with ``L`` levels, ``y = floor(clamp(q, 0, 1) * L + 0.5) / L`` in normalised units
(``L + 1`` values ``0, 1/L, ..., 1``), is exactly one burst step with ``N = L`` and ``v[0] = 0.5 v_th``:
``s = clamp(floor(L q + 0.5), 0, L)`` and ``s / L = y`` for every ``q``. Over ``T`` burst steps of a
constant current the count is ``floor(T N q + 0.5)`` (clamped to ``T N``), a rate within ``1 / (2 T N)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

RESET_MODES = ("subtract", "zero")


class IFParameters(NamedTuple):
    """Parameters of an IF neuron population.

    Attributes:
        threshold: firing threshold ``v_th`` (1.0 after weight normalisation).
        reset: ``"subtract"`` (reset by subtraction) or ``"zero"`` (reset to zero).
        initial_membrane: ``v[0] / v_th``; 0.5 is the residual fix.
        membrane_floor: lower bound of ``v / v_th`` after the reset (None: unbounded).
        membrane_ceiling: upper bound of ``v / v_th`` after the reset (None: unbounded).
    """

    threshold: float = 1.0
    reset: str = "subtract"
    initial_membrane: float = 0.5
    membrane_floor: float | None = None
    membrane_ceiling: float | None = None

    def with_bounds(self, bounds: tuple[float, float] | None) -> IFParameters:
        """These parameters with membrane bounds ``(floor, ceiling)``, or unbounded for None."""
        if bounds is None:
            return self._replace(membrane_floor=None, membrane_ceiling=None)
        return self._replace(membrane_floor=float(bounds[0]), membrane_ceiling=float(bounds[1]))

    @property
    def bounded(self) -> bool:
        return self.membrane_floor is not None or self.membrane_ceiling is not None

    @property
    def fresh(self) -> bool:
        """Whether both bounds sit at the initial membrane: every step ends where a fresh simulation
        starts, so no membrane carries anything into the next step (``DetectorConfig.membranes`` of
        ``streamdet.detector``)."""
        return self.membrane_floor is not None and (
            self.membrane_floor == self.membrane_ceiling == self.initial_membrane
        )

    def bound(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` clamped in place to the membrane bounds (unchanged without bounds); returns ``v``."""
        if not self.bounded:
            return v
        low = None if self.membrane_floor is None else self.membrane_floor * self.threshold
        high = None if self.membrane_ceiling is None else self.membrane_ceiling * self.threshold
        return v.clamp_(low, high)


class IFState(NamedTuple):
    """Membrane potential ``v`` of an IF population, same shape as its input current (without time)."""

    v: torch.Tensor


def if_initial_state(
    shape: torch.Size | tuple[int, ...], params: IFParameters, device=None, dtype=torch.float32
) -> IFState:
    """State at the start of a simulation: ``v = initial_membrane * threshold`` everywhere."""
    fill = params.initial_membrane * params.threshold
    return IFState(v=torch.full(tuple(shape), fill, device=device, dtype=dtype))


def add_channel_offset(current: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``current + offset`` over channel axis 1: ``offset [C]`` (cast to the current's device and dtype)
    added to ``current [B, C, ...]`` (a bias-calibrated population's per-step current offset)."""
    return current + offset.to(current.device, current.dtype).view((1, -1) + (1,) * (current.dim() - 2))


def if_step(current: torch.Tensor, state: IFState, params: IFParameters) -> tuple[torch.Tensor, IFState]:
    """One time step of the IF neuron (equations in the module docstring).

    Args:
        current: input current ``z[t]``, ``[B, ...]``.
        state: membrane ``v[t-1]``, same shape.
        params: threshold, reset mode, initial membrane, membrane bounds.

    Returns:
        spikes ``s[t]`` (0./1. in the dtype of ``current``) and the new state ``v[t]``.
    """
    v = state.v + current
    spikes = (v >= params.threshold).to(current.dtype)
    if params.reset == "subtract":
        v = v - spikes * params.threshold
    else:
        v = torch.where(spikes > 0, torch.zeros_like(v), v)
    return spikes, IFState(v=params.bound(v))


def if_scan(currents: torch.Tensor, state: IFState, params: IFParameters) -> tuple[torch.Tensor, IFState]:
    """``K`` consecutive IF steps: the recurrence of :func:`if_step` scanned over the leading time axis.

    Bit-for-bit the same spikes and membrane as ``K`` calls of :func:`if_step` (same operations in the
    same order), but without allocating per step: the membrane is updated in place on a private copy.

    Args:
        currents: ``[K, B, ...]`` input currents of K consecutive time steps.
        state: membrane before the first of them, ``[B, ...]``.
        params: threshold, reset mode, initial membrane.

    Returns:
        spikes ``[K, B, ...]`` and the membrane after the last step.
    """
    if params.reset not in RESET_MODES:
        raise ValueError(f"reset must be one of {RESET_MODES}, got {params.reset!r}")
    v = state.v.clone()
    spikes = torch.empty_like(currents)
    for k in range(currents.shape[0]):
        v.add_(currents[k])
        torch.ge(v, params.threshold, out=spikes[k])
        if params.reset == "subtract":
            v.sub_(spikes[k], alpha=params.threshold)
        else:
            v.masked_fill_(spikes[k] > 0, 0.0)
        params.bound(v)
    return spikes, IFState(v=v)


class BurstParameters(NamedTuple):
    """Parameters of a burst IF population (equations in the module docstring).

    Attributes:
        max_spikes: ``N``, the most spikes one neuron emits in one step (each worth ``1 / N`` of the rate).
        threshold: ``v_th`` of one spike (1.0 after weight normalisation).
        initial_membrane: ``v[0] / v_th``; 0.5 is the residual fix.
        membrane_floor: lower bound of ``v / v_th`` after the reset (None: unbounded).
        membrane_ceiling: upper bound of ``v / v_th`` after the reset (None: unbounded).
    """

    max_spikes: int
    threshold: float = 1.0
    initial_membrane: float = 0.5
    membrane_floor: float | None = None
    membrane_ceiling: float | None = None

    @classmethod
    def from_if(cls, params: IFParameters, max_spikes: int) -> BurstParameters:
        """A burst population with ``params``' threshold, initial membrane and bounds, ``N = max_spikes``.

        Raises ValueError for ``max_spikes < 1`` or reset to zero (no burst form, module docstring).
        """
        if int(max_spikes) < 1:
            raise ValueError(f"max_spikes must be >= 1, got {max_spikes}")
        if params.reset != "subtract":
            raise ValueError(f"burst neurons reset by subtraction only, got reset={params.reset!r}")
        return cls(
            max_spikes=int(max_spikes),
            threshold=params.threshold,
            initial_membrane=params.initial_membrane,
            membrane_floor=params.membrane_floor,
            membrane_ceiling=params.membrane_ceiling,
        )

    def bound(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` clamped in place to the membrane bounds (as ``IFParameters.bound``); returns ``v``."""
        bounds = IFParameters(
            threshold=self.threshold,
            membrane_floor=self.membrane_floor,
            membrane_ceiling=self.membrane_ceiling,
        )
        return bounds.bound(v)


def burst_step(
    current: torch.Tensor, state: IFState, params: BurstParameters
) -> tuple[torch.Tensor, IFState]:
    """One step of the burst IF neuron (equations in the module docstring).

    Args:
        current: input current ``z[t]``, ``[B, ...]``, in rate units (1 = one spike of a plain IF per step).
        state: membrane ``v[t-1]`` (an ``IFState``: burst and IF membranes are the same quantity).
        params: ``N``, threshold, initial membrane, membrane bounds.

    Returns:
        spike counts ``s[t]`` in ``{0, ..., N}`` (in the dtype of ``current``; the rate is ``s / N``) and
        the new state ``v[t]``.
    """
    v = torch.add(state.v, current, alpha=params.max_spikes)
    counts = torch.floor(v if params.threshold == 1.0 else v / params.threshold).clamp_(0, params.max_spikes)
    v = v - (counts if params.threshold == 1.0 else counts * params.threshold)
    return counts, IFState(v=params.bound(v))


def burst_scan(
    currents: torch.Tensor, state: IFState, params: BurstParameters
) -> tuple[torch.Tensor, IFState]:
    """``K`` consecutive burst steps over the leading time axis, bit for bit ``K`` calls of
    :func:`burst_step` (the same operations in the same order), updating the membrane in place on a
    private copy made by the first step's add.

    Args:
        currents: ``[K, B, ...]`` input currents of K consecutive steps.
        state: membrane before the first of them, ``[B, ...]``.
        params: ``N``, threshold, initial membrane, membrane bounds.

    Returns:
        spike counts ``[K, B, ...]`` in ``{0, ..., N}`` and the membrane after the last step.
    """
    unit = params.threshold == 1.0  # floor(v / 1) and counts * 1 are v and counts: skip two passes
    counts = torch.empty_like(currents, dtype=torch.promote_types(currents.dtype, state.v.dtype))
    v = state.v.clone() if currents.shape[0] == 0 else None
    for k in range(currents.shape[0]):
        if k == 0:
            v = torch.add(state.v, currents[0], alpha=params.max_spikes)
        else:
            v.add_(currents[k], alpha=params.max_spikes)
        torch.floor(v if unit else v / params.threshold, out=counts[k])
        counts[k].clamp_(0, params.max_spikes)
        v.sub_(counts[k] if unit else counts[k] * params.threshold)
        params.bound(v)
    return counts, IFState(v=v)
