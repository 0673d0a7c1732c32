"""Sensor emulators: frames of luminance -> DVS events, spike-camera bit frames, or Poisson spikes.

All three are pure functions over numpy arrays; the two sensor emulators take and return an explicit
state so that a stream fed in pieces gives exactly the output of one call over the whole stream.

Frames are float32 luminance ``[N, H, W]`` in [0, 1] with int64 time stamps ``[N]`` in microseconds,
strictly increasing. The first frame of a stream (``state=None``) only initialises the sensor; output
covers the intervals between consecutive frames.

DVS (the v2e model of Hu, Liu and Delbruck 2021, simplified; see ``docs/encoders.md``)
    ``L = log(I + log_eps)`` per pixel, low-passed by the photoreceptor
    ``Lp <- Lp + a (L - Lp)``, ``a = min(1, 2 pi f_c dt (255 I + 20) / 275)`` (brighter pixels are
    faster). Each pixel keeps a memorised level ``M``; it emits ON events while ``Lp - M >= theta_on``
    and OFF events while ``Lp - M <= -theta_off``, and ``M`` moves one threshold per crossing.
    Thresholds are drawn per pixel from ``N(theta, sigma)``. ``Lp`` and ``M`` are interpolated
    linearly between frames, so the k-th crossing in an interval happens at the time where
    ``Lp(t) - M(t)`` reaches ``k theta``; a crossing less than ``refractory_us`` after the pixel's last
    event is dropped. Leak: ``M`` falls by ``leak_rate_hz * theta_on`` per second, giving ON events at
    ``leak_rate_hz`` per pixel in a static scene. Shot noise: independent events at
    ``shot_noise_rate_hz * (1 + (shot_noise_bright_factor - 1) I)`` per pixel (half ON, half OFF)
    that do not touch ``M``, drawn from ``(seed, block of stream time)``.

Spike camera (PKU "Vidar")
    Per pixel integrate-and-fire at ``rate_hz`` output frames per second:
    ``v_j = v_{j-1} + max_rate_fraction * threshold * I(t_j)``; the pixel fires in frame ``j`` when
    ``v_j >= threshold`` and then ``v_j <- v_j - threshold`` (reset by subtraction). ``I(t)`` is
    interpolated linearly between input frames, so a pixel of constant intensity ``I`` fires in a
    fraction ``max_rate_fraction * I`` of the output frames.

Poisson rate coding (norse's ``poisson_encode``)
    ``s_t = [u_t < max_rate * I]`` with ``u_t ~ U(0, 1)`` i.i.d. per step and pixel.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from streamdet.events import EVENT_DTYPE


@dataclass(frozen=True)
class DVSParams:
    """Parameters of the DVS emulator (defaults like v2e's).

    Attributes:
        pos_threshold: mean ON contrast threshold, log units.
        neg_threshold: mean OFF contrast threshold, log units.
        threshold_sigma: standard deviation of the per-pixel threshold mismatch, log units.
        min_threshold: lower clip of the per-pixel thresholds, log units.
        refractory_us: refractory period after each event of a pixel, microseconds.
        cutoff_hz: photoreceptor low-pass 3 dB frequency at full intensity, Hz (0 = no low-pass).
        leak_rate_hz: leak (background ON) events per pixel per second.
        shot_noise_rate_hz: shot-noise events per pixel per second in the dark (ON and OFF together).
        shot_noise_bright_factor: shot-noise rate at intensity 1 relative to the dark rate.
        log_eps: offset in ``log(I + log_eps)``, intensity units; keeps dark pixels finite.
        seed: seed of the threshold mismatch, leak phases and noise.
    """

    pos_threshold: float = 0.2
    neg_threshold: float = 0.2
    threshold_sigma: float = 0.03
    min_threshold: float = 0.01
    refractory_us: int = 500
    cutoff_hz: float = 300.0
    leak_rate_hz: float = 0.1
    shot_noise_rate_hz: float = 0.1
    shot_noise_bright_factor: float = 0.25
    log_eps: float = 0.02
    seed: int = 0


@dataclass(frozen=True)
class DVSState:
    """Per-pixel state of the DVS emulator between calls (arrays ``[H, W]``).

    Attributes:
        memorised_log: memorised log intensity ``M`` at ``last_time_us``.
        lowpass_log: photoreceptor output ``Lp`` at ``last_time_us``.
        pos_thresholds: per-pixel ON thresholds, log units.
        neg_thresholds: per-pixel OFF thresholds, log units.
        last_event_us: time of each pixel's last signal event, microseconds.
        last_frame: the last luminance frame seen.
        last_time_us: its time stamp, microseconds.
    """

    memorised_log: np.ndarray
    lowpass_log: np.ndarray
    pos_thresholds: np.ndarray
    neg_thresholds: np.ndarray
    last_event_us: np.ndarray
    last_frame: np.ndarray
    last_time_us: int


@dataclass(frozen=True)
class SpikeCameraParams:
    """Parameters of the spike-camera emulator.

    Attributes:
        rate_hz: output frames per second (a Vidar camera runs at 20 kHz: 50 us per frame).
        threshold: firing threshold of the integrator, in the integrator's units.
        max_rate_fraction: fraction of output frames in which a pixel of intensity 1.0 fires.
        seed: seed of the initial potentials (uniform in ``[0, threshold)``, so pixels do not fire in step).
    """

    rate_hz: float = 20_000.0
    threshold: float = 1.0
    max_rate_fraction: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class SpikeCameraState:
    """State of the spike-camera emulator between calls.

    Attributes:
        potential: integrator potential ``[H, W]`` in ``[0, threshold)`` after the last output frame.
        last_frame: the last luminance frame seen ``[H, W]``.
        last_time_us: its time stamp, microseconds.
        start_time_us: time of the first input frame; output frame ``j`` (from 1) is at
            ``start_time_us + floor(j * 1e6 / rate_hz)``.
        frames_emitted: number of output frames produced so far.
    """

    potential: np.ndarray
    last_frame: np.ndarray
    last_time_us: int
    start_time_us: int
    frames_emitted: int


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A work array of this thread, reused across calls: fresh multi-megabyte arrays in every call of a
    streaming emulator cost a page fault per 4 kB, as much as the arithmetic. Contents are undefined."""
    arrays = _SCRATCH.__dict__.setdefault("arrays", {})
    key = (name, tuple(shape), np.dtype(dtype).str)
    if key not in arrays:
        arrays[key] = np.empty(shape, dtype=dtype)
    return arrays[key]


def _check_frames(
    frames: np.ndarray, times_us: np.ndarray, last_time_us: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Frames as float32 ``[N, H, W]``, times as int64 ``[N]``; ValueError on bad shapes or times."""
    frames = np.asarray(frames, dtype=np.float32)
    times_us = np.asarray(times_us, dtype=np.int64)
    if frames.ndim != 3:
        raise ValueError(f"expected frames [N, H, W], got shape {frames.shape}")
    if times_us.shape != (len(frames),):
        raise ValueError(f"expected {len(frames)} time stamps, got shape {times_us.shape}")
    if len(times_us) > 1 and np.any(np.diff(times_us) <= 0):
        raise ValueError("frame time stamps must be strictly increasing")
    if last_time_us is not None and len(times_us) and times_us[0] <= last_time_us:
        raise ValueError(f"first frame time {int(times_us[0])} us is not after the state's {last_time_us} us")
    return frames, times_us


def log_intensity(frame: np.ndarray, log_eps: float, out: np.ndarray | None = None) -> np.ndarray:
    """``log(I + log_eps)`` as float32, same shape as ``frame``, written into ``out`` when given."""
    shifted = np.add(np.asarray(frame, dtype=np.float32), np.float32(log_eps), out=out)
    return np.log(shifted, out=shifted)


def initial_dvs_state(
    frame: np.ndarray, time_us: int, params: DVSParams, rng: np.random.Generator | None = None
) -> DVSState:
    """The state of a DVS that has looked at ``frame`` (float32 ``[H, W]``) for a long time.

    Thresholds are drawn per pixel from ``N(theta, threshold_sigma)`` clipped at ``min_threshold``; the
    memorised level is ``M = Lp - u theta_on`` with ``u ~ U(0, 1)``, the steady state of a leaking pixel,
    so leak events of different pixels are spread over time.
    """
    rng = np.random.default_rng(params.seed) if rng is None else rng
    frame = np.asarray(frame, dtype=np.float32)
    shape = frame.shape
    pos = np.maximum(rng.normal(params.pos_threshold, params.threshold_sigma, shape), params.min_threshold)
    neg = np.maximum(rng.normal(params.neg_threshold, params.threshold_sigma, shape), params.min_threshold)
    pos = pos.astype(np.float32)
    neg = neg.astype(np.float32)
    log_frame = log_intensity(frame, params.log_eps)
    memorised = log_frame - rng.random(shape, dtype=np.float32) * pos
    return DVSState(
        memorised_log=memorised,
        lowpass_log=log_frame,
        pos_thresholds=pos,
        neg_thresholds=neg,
        last_event_us=np.full(shape, int(time_us) - int(params.refractory_us) - 1, dtype=np.int64),
        last_frame=frame.copy(),
        last_time_us=int(time_us),
    )


def _signal_events(
    start_diff: np.ndarray,
    end_diff: np.ndarray,
    thresholds: np.ndarray,
    last_event_us: np.ndarray,
    t0_us: int,
    dt_us: int,
    refractory_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Threshold crossings of one polarity in one frame interval, with the refractory period applied.

    For each pixel, ``d(t) = Lp(t) - M`` (sign-flipped for OFF) goes linearly from ``start_diff`` to
    ``end_diff`` over ``(t0, t0 + dt]``; crossing ``k = 1..n``, ``n = floor(end_diff / theta)``, happens at
    ``tau_k = t0 + dt (k theta - start_diff) / (end_diff - start_diff)``. Crossings are kept greedily in
    time order when at least ``refractory_us`` after the previous kept one (or the pixel's last event).

    Returns:
        (position in ``last_event_us`` of each event's pixel, event time in us per event, crossings per
        pixel, last kept event time per pixel or -1 where none was kept).
    """
    crossings = np.floor(end_diff / thresholds).astype(np.int64)
    theta = thresholds.astype(np.float64)
    us_per_log_unit = dt_us / np.maximum(end_diff.astype(np.float64) - start_diff, 1e-12)
    spacing = theta * us_per_log_unit
    first_offset = (theta - start_diff) * us_per_log_unit
    wait = (last_event_us + (refractory_us - t0_us)) - first_offset
    first_kept = 1 + np.ceil(np.maximum(wait, 0) / spacing).astype(np.int64)
    if refractory_us > 0:
        stride = np.maximum(np.ceil(refractory_us / spacing).astype(np.int64), 1)
    else:
        stride = np.ones_like(first_kept)
    kept = np.maximum((crossings - first_kept) // stride + 1, 0)
    if kept.max(initial=0) <= 1:
        owner = np.flatnonzero(kept)
        k = first_kept[owner]
    else:
        owner = np.repeat(np.arange(len(kept)), kept)
        rank = np.arange(len(owner)) - np.repeat(np.cumsum(kept) - kept, kept)
        k = first_kept[owner] + rank * stride[owner]
    times = t0_us + np.clip(np.ceil(first_offset[owner] + (k - 1) * spacing[owner]), 1, dt_us).astype(
        np.int64
    )
    last_time = np.full(len(kept), -1, dtype=np.int64)
    last_of_owner = np.r_[owner[1:] != owner[:-1], True] if len(owner) else np.zeros(0, dtype=bool)
    last_time[owner[last_of_owner]] = times[last_of_owner]
    return owner, times, crossings, last_time


def _events_sorted_by_time(
    index: list[np.ndarray], times: list[np.ndarray], polarity: list[np.ndarray], width: int
) -> np.ndarray:
    """``EVENT_DTYPE`` events from pieces of (flat pixel index, time, polarity), stably sorted by time."""
    flat = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
    events = np.empty(len(flat), dtype=EVENT_DTYPE)
    events["x"] = flat % width
    events["y"] = flat // width
    events["t"] = np.concatenate(times) if times else 0
    events["p"] = np.concatenate(polarity) if polarity else False
    return events[np.argsort(events["t"], kind="stable")]


SHOT_NOISE_BLOCK_US = 100_000
"""Shot noise is drawn in blocks of stream time ``[b B, (b + 1) B)`` from a generator seeded with
``(seed, b)``, so it does not depend on how a stream is cut into calls."""


@functools.lru_cache(maxsize=4)
def _shot_noise_block(seed: int, rate_hz: float, pixels: int, block: int) -> tuple[np.ndarray, ...]:
    """Candidate shot-noise events of one block at the dark-pixel rate, sorted by time:
    (flat pixel index, time in us, polarity, uniform number for thinning by intensity), read-only.
    Cached: a stream fed one frame at a time asks for the same block many times."""
    rng = np.random.default_rng([seed, block & 0xFFFF_FFFF_FFFF_FFFF])
    count = int(rng.poisson(rate_hz * 1e-6 * SHOT_NOISE_BLOCK_US * pixels))
    times = block * SHOT_NOISE_BLOCK_US + rng.integers(0, SHOT_NOISE_BLOCK_US, count)
    index = rng.integers(0, pixels, count)
    polarity = rng.random(count) < 0.5
    uniform = rng.random(count, dtype=np.float32)
    order = np.argsort(times, kind="stable")
    arrays = (index[order], times[order], polarity[order], uniform[order])
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _shot_noise(
    frames: np.ndarray, times_us: np.ndarray, start_us: int, params: DVSParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shot-noise events with ``start_us < t <= times_us[-1]``: (flat pixel index, time, polarity).

    Candidates come at ``shot_noise_rate_hz`` per pixel (Poisson, uniform in time) and are kept with
    probability ``1 + (shot_noise_bright_factor - 1) I``, ``I`` the pixel's intensity in the frame that
    ends the event's interval; half are ON.
    """
    height, width = frames.shape[1:]
    blocks = range((start_us + 1) // SHOT_NOISE_BLOCK_US, int(times_us[-1]) // SHOT_NOISE_BLOCK_US + 1)
    index, times, polarity, uniform = (
        np.concatenate(parts)
        for parts in zip(
            *(_shot_noise_block(params.seed, params.shot_noise_rate_hz, height * width, b) for b in blocks),
            strict=True,
        )
    )
    inside = (times > start_us) & (times <= times_us[-1])
    index, times, polarity, uniform = index[inside], times[inside], polarity[inside], uniform[inside]
    frame_of_event = np.searchsorted(times_us, times, side="left")
    intensity = frames.reshape(len(frames), -1)[frame_of_event, index]
    keep = uniform < 1 + np.float32(params.shot_noise_bright_factor - 1.0) * intensity
    return index[keep], times[keep], polarity[keep]


def emulate_dvs(
    frames: np.ndarray,
    times_us: np.ndarray,
    params: DVSParams,
    state: DVSState | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, DVSState]:
    """Emulate a DVS looking at luminance frames (the v2e model; equations in the module docstring).

    Args:
        frames: float32 luminance ``[N, H, W]`` in [0, 1].
        times_us: int64 frame time stamps ``[N]``, microseconds, strictly increasing (and after
            ``state.last_time_us``).
        params: emulator parameters.
        state: state returned by the previous call on the same stream, or None to start a stream with
            ``frames[0]`` (which then gives no events itself).
        rng: generator of the per-pixel thresholds and leak phases when a stream starts (``state`` is
            None); None draws them from ``params.seed``. Shot noise always comes from ``params.seed`` and
            the stream time (:data:`SHOT_NOISE_BLOCK_US`), so feeding a stream in pieces gives the same
            events as one call.

    Returns:
        ``EVENT_DTYPE`` events sorted by ``t`` (stable sort), ``t`` in ``(t_prev, t_last]``; the new state.
    """
    frames, times_us = _check_frames(frames, times_us, None if state is None else state.last_time_us)
    if state is None:
        if len(frames) == 0:
            raise ValueError("a DVS stream must start with at least one frame")
        state = initial_dvs_state(frames[0], int(times_us[0]), params, rng)
        frames, times_us = frames[1:], times_us[1:]
    if frames.shape[1:] != state.last_frame.shape:
        raise ValueError(f"frame shape {frames.shape[1:]} differs from the stream's {state.last_frame.shape}")

    pixels = _DVSPixels(state, params)
    pieces_index: list[np.ndarray] = []
    pieces_time: list[np.ndarray] = []
    pieces_polarity: list[np.ndarray] = []
    for frame, t_now in zip(frames, times_us.tolist(), strict=True):
        fired = pixels.advance(frame, t_now)
        if fired is not None:
            pieces_index.append(fired[0])
            pieces_time.append(fired[1])
            pieces_polarity.append(fired[2])
    if params.shot_noise_rate_hz > 0 and len(frames):
        index, times, polarity = _shot_noise(frames, times_us, state.last_time_us, params)
        pieces_index.append(index)
        pieces_time.append(times)
        pieces_polarity.append(polarity)
    width = state.last_frame.shape[1]
    events = _events_sorted_by_time(pieces_index, pieces_time, pieces_polarity, width)
    return events, pixels.state(frames[-1].copy() if len(frames) else state.last_frame)


class _DVSPixels:
    """The working copy of a :class:`DVSState` during one :func:`emulate_dvs` call: the photoreceptor and
    memorised log intensities (double-buffered, swapped every frame), the last event times, and scratch
    arrays of this thread. :meth:`advance` takes one frame; :meth:`state` gives the state to hand on."""

    def __init__(self, state: DVSState, params: DVSParams) -> None:
        self.params = params
        self.start = state
        self.memorised, self.start_memorised = state.memorised_log.copy(), np.empty_like(state.memorised_log)
        self.lowpass, self.new_lowpass = state.lowpass_log.copy(), np.empty_like(state.lowpass_log)
        self.last_event = state.last_event_us.copy()
        self.pos_flat = state.pos_thresholds.ravel()
        self.neg_flat = state.neg_thresholds.ravel()
        self.minus_neg = -state.neg_thresholds
        self.leak_per_us = (params.leak_rate_hz * 1e-6 * state.pos_thresholds).astype(np.float32)
        shape = self.lowpass.shape
        self.log_frame, self.speed, self.diff = (
            _scratch(name, shape, np.float32) for name in ("log", "speed", "diff")
        )
        self.is_on_pixel, self.is_off_pixel = (_scratch(n, shape, np.bool_) for n in ("on", "off"))
        self.leak_cache: dict[int, np.ndarray] = {}
        self.t_prev = state.last_time_us

    def advance(self, frame: np.ndarray, t_now: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Take the frame at ``t_now``: low-pass, leak, and fire the pixels whose change crossed a
        threshold. Returns their events as ``(flat pixel index, t, is ON)``, or None when none fired."""
        dt = t_now - self.t_prev
        self._update_photoreceptor(frame, dt)
        self.memorised, self.start_memorised = self.start_memorised, self.memorised
        self._leak_memorised(dt)
        np.subtract(self.new_lowpass, self.memorised, out=self.diff)
        active = self._pixels_past_a_threshold()
        fired = self._fire(active, dt) if len(active) else None
        self.lowpass, self.new_lowpass = self.new_lowpass, self.lowpass
        self.t_prev = t_now
        return fired

    def _update_photoreceptor(self, frame: np.ndarray, dt: int) -> None:
        """``new_lowpass = Lp + a (log L - Lp)``, ``a = min(1, 2 pi f_c dt (255 I + 20) / 275)`` (just
        ``log L`` without a cutoff or where ``a`` would reach 1 everywhere)."""
        params = self.params
        log_intensity(frame, params.log_eps, out=self.log_frame)
        speed_scale = 2 * math.pi * params.cutoff_hz * dt * 1e-6 / 275
        if params.cutoff_hz > 0 and 20 * speed_scale < 1:
            np.multiply(frame, np.float32(255 * speed_scale), out=self.speed)
            self.speed += np.float32(20 * speed_scale)
            np.minimum(self.speed, np.float32(1), out=self.speed)
            self.log_frame -= self.lowpass
            self.log_frame *= self.speed
            np.add(self.lowpass, self.log_frame, out=self.new_lowpass)
        else:
            self.new_lowpass[...] = self.log_frame

    def _leak_memorised(self, dt: int) -> None:
        """``memorised = start_memorised - leak_rate * dt * theta_ON`` (the leak events' drift)."""
        if self.params.leak_rate_hz > 0:
            if dt not in self.leak_cache:
                self.leak_cache[dt] = self.leak_per_us * np.float32(dt)
            np.subtract(self.start_memorised, self.leak_cache[dt], out=self.memorised)
        else:
            self.memorised[...] = self.start_memorised

    def _pixels_past_a_threshold(self) -> np.ndarray:
        """Flat indices of the pixels whose ``diff`` reached ``theta_ON`` or ``-theta_OFF``."""
        np.greater_equal(self.diff, self.start.pos_thresholds, out=self.is_on_pixel)
        np.less_equal(self.diff, self.minus_neg, out=self.is_off_pixel)
        np.logical_or(self.is_on_pixel, self.is_off_pixel, out=self.is_on_pixel)
        return np.flatnonzero(self.is_on_pixel)

    def _fire(self, active: np.ndarray, dt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Events of the ``active`` pixels spread over ``(t_prev, t_prev + dt]`` (:func:`_signal_events`);
        their memorised levels move by the thresholds crossed and their last event times advance."""
        end_diff = self.diff.ravel()[active]
        start_diff = self.lowpass.ravel()[active] - self.start_memorised.ravel()[active]
        is_on = end_diff > 0
        sign = np.where(is_on, np.float32(1), np.float32(-1))
        thresholds = np.where(is_on, self.pos_flat[active], self.neg_flat[active])
        owner, times, crossings, last_time = _signal_events(
            sign * start_diff,
            sign * end_diff,
            thresholds,
            self.last_event.ravel()[active],
            self.t_prev,
            dt,
            int(self.params.refractory_us),
        )
        self.memorised.ravel()[active] += sign * crossings.astype(np.float32) * thresholds
        fired = last_time >= 0
        self.last_event.ravel()[active[fired]] = last_time[fired]
        return active[owner], times, is_on[owner]

    def state(self, last_frame: np.ndarray) -> DVSState:
        """The stream's state after the frames taken, ``last_frame`` the newest of them."""
        return DVSState(
            memorised_log=self.memorised,
            lowpass_log=self.lowpass,
            pos_thresholds=self.start.pos_thresholds,
            neg_thresholds=self.start.neg_thresholds,
            last_event_us=self.last_event,
            last_frame=last_frame,
            last_time_us=self.t_prev,
        )


def _rate_fraction(rate_hz: float) -> Fraction:
    """``rate_hz`` as an exact fraction, so that frame times are exact integers."""
    if rate_hz <= 0:
        raise ValueError(f"output frame rate must be positive, got {rate_hz} Hz")
    return Fraction(rate_hz).limit_denominator(1_000_000)


def output_frame_times(start_us: int, rate_hz: float, first: int, stop: int) -> np.ndarray:
    """Times of output frames ``first..stop-1`` of a stream started at ``start_us``, int64 microseconds.

    Frame ``j`` (counted from 1) is at ``start_us + floor(j * 1e6 / rate_hz)``, in exact integer arithmetic.
    """
    rate = _rate_fraction(rate_hz)
    j = np.arange(first, stop, dtype=np.int64)
    return start_us + (j * 1_000_000 * rate.denominator) // rate.numerator


def output_frames_until(start_us: int, rate_hz: float, t_us: int) -> int:
    """Number of output frames of a stream started at ``start_us`` whose time is at most ``t_us``:
    the largest ``j`` with ``floor(j * 1e6 / rate_hz) <= t_us - start_us``."""
    rate = _rate_fraction(rate_hz)
    return ((t_us - start_us + 1) * rate.numerator - 1) // (1_000_000 * rate.denominator)


def initial_spike_camera_state(
    frame: np.ndarray, time_us: int, params: SpikeCameraParams
) -> SpikeCameraState:
    """State at the start of a stream: potentials uniform in ``[0, threshold)`` drawn from ``params.seed``."""
    frame = np.asarray(frame, dtype=np.float32)
    rng = np.random.default_rng(params.seed)
    potential = rng.random(frame.shape, dtype=np.float32) * np.float32(params.threshold)
    return SpikeCameraState(
        potential=potential,
        last_frame=frame.copy(),
        last_time_us=int(time_us),
        start_time_us=int(time_us),
        frames_emitted=0,
    )


_SPIKE_BLOCK_ELEMENTS = 1 << 18
"""Output frames are computed in blocks of about this many pixels, to stay in the CPU cache."""


def emulate_spike_camera(
    frames: np.ndarray,
    times_us: np.ndarray,
    params: SpikeCameraParams,
    state: SpikeCameraState | None = None,
) -> tuple[np.ndarray, np.ndarray, SpikeCameraState]:
    """Emulate a spike camera (integrate-and-fire, reset by subtraction) looking at luminance frames.

    Output frame ``j`` at time ``t_j`` integrates ``max_rate_fraction * threshold * I(t_j)``, with ``I``
    interpolated linearly between the input frames around ``t_j`` and clipped to [0, 1]. Within one input
    interval the potential has the closed form
    ``v_j = v_0 + g (j I_a + (I_b - I_a) sum_{i<=j} s_i)``, ``s_i = (t_i - t_a) / (t_b - t_a)``, and the
    pixel fires in frame ``j`` when ``floor(v_j / threshold)`` increases, so all output frames of an
    interval are computed at once.

    Args:
        frames: float32 luminance ``[N, H, W]`` in [0, 1].
        times_us: int64 time stamps ``[N]``, microseconds, strictly increasing.
        params: emulator parameters.
        state: state from the previous call on the same stream, or None to start with ``frames[0]``.

    Returns:
        (bool spike frames ``[M, H, W]``, their int64 time stamps ``[M]`` in us, new state). The frames
        cover ``(t_prev, t_last]``; ``M`` is about ``(t_last - t_prev) * rate_hz / 1e6``.
    """
    frames, times_us = _check_frames(frames, times_us, None if state is None else state.last_time_us)
    if state is None:
        if len(frames) == 0:
            raise ValueError("a spike-camera stream must start with at least one frame")
        state = initial_spike_camera_state(frames[0], int(times_us[0]), params)
        frames, times_us = frames[1:], times_us[1:]
    if frames.shape[1:] != state.last_frame.shape:
        raise ValueError(f"frame shape {frames.shape[1:]} differs from the stream's {state.last_frame.shape}")
    gain = np.float32(params.max_rate_fraction)
    threshold = np.float32(params.threshold)
    potential = state.potential / threshold
    previous = np.clip(state.last_frame, 0, 1)
    height, width = state.last_frame.shape
    emitted = state.frames_emitted
    total = (
        output_frames_until(state.start_time_us, params.rate_hz, int(times_us[-1])) - emitted
        if len(frames)
        else 0
    )
    spike_frames = np.empty((total, height, width), dtype=bool)
    spike_times = np.empty(total, dtype=np.int64)
    block = max(1, min(total, _SPIKE_BLOCK_ELEMENTS // (height * width)))
    buffers = [_scratch(name, (block, height, width), np.float32) for name in ("level", "product", "fired")]
    t_prev = state.last_time_us
    for frame, t_now in zip(frames, times_us.tolist(), strict=True):
        current = np.clip(frame, 0, 1)
        last_index = output_frames_until(state.start_time_us, params.rate_hz, t_now)
        times = output_frame_times(state.start_time_us, params.rate_hz, emitted + 1, last_index + 1)
        cursor = emitted - state.frames_emitted
        spike_times[cursor : cursor + len(times)] = times
        fraction = ((times - t_prev) / (t_now - t_prev)).astype(np.float32)
        steps = np.arange(1, len(times) + 1, dtype=np.float32) * gain
        ramp = np.cumsum(fraction) * gain
        delta = current - previous
        fired_before = np.zeros_like(potential)
        for start in range(0, len(times), block):
            stop = min(len(times), start + block)
            level, product, fired = (buffer[: stop - start] for buffer in buffers)
            np.multiply(steps[start:stop, None, None], previous, out=level)
            np.multiply(ramp[start:stop, None, None], delta, out=product)
            level += product
            level += potential
            np.floor(level, out=fired)
            out = spike_frames[cursor + start : cursor + stop]
            np.greater(fired[0], fired_before, out=out[0])
            np.greater(fired[1:], fired[:-1], out=out[1:])
            fired_before = fired[-1].copy()
            if stop == len(times):
                potential = level[-1] - fired[-1]
        emitted = last_index
        previous = current
        t_prev = t_now
    new_state = replace(
        state,
        potential=(potential * threshold).astype(np.float32),
        last_frame=frames[-1].copy() if len(frames) else state.last_frame,
        last_time_us=t_prev,
        frames_emitted=emitted,
    )
    return spike_frames, spike_times, new_state


def poisson_encode(intensity: np.ndarray, steps: int, seed: int, max_rate: float = 1.0) -> np.ndarray:
    """Poisson rate coding through norse: ``s_t = [u_t < max_rate * I]``, ``u_t ~ U(0, 1)`` i.i.d.

    Args:
        intensity: values in [0, 1], any shape ``S`` (e.g. ``[H, W]``).
        steps: number of time steps ``T``.
        seed: seed of the ``torch.Generator`` (same seed, same spikes).
        max_rate: firing probability per step at intensity 1.

    Returns:
        bool array ``[T, *S]``.
    """
    import torch

    with warnings.catch_warnings():  # norse's import uses the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from norse.torch.functional.encode import poisson_encode as norse_poisson_encode

    generator = torch.Generator().manual_seed(int(seed))
    values = torch.as_tensor(np.asarray(intensity, dtype=np.float32))
    spikes = norse_poisson_encode(values, int(steps), f_max=float(max_rate), dt=1.0, generator=generator)
    return spikes.numpy().astype(bool)
