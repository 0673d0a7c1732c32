"""The streaming detector: bin a stream into time steps, run the spiking network on it continuously,
integrate its output over a sliding window and decode boxes.

Time is cut into steps of ``dt_us`` microseconds aligned to multiples of ``dt_us``: step ``s`` covers
``[s * dt_us, (s + 1) * dt_us)``. A step is complete once a message has covered its end (the message's
``t1_us``); events of an incomplete step are carried over to the next message (:class:`StepBinner`).

Per-step network input (``T = window_us / dt_us`` steps per model window):

- ``events``: ``x_k[c, y, x] = min(count_k(c, y, x) * T / event_scale, 1)``, so the mean of ``x_k`` over
  the ``T`` steps of a window is the ANN input ``min(counts / event_scale, 1)`` whenever a pixel's events
  spread evenly over the window (exactly so for ``T = 1``); a burst within one step is clipped harder;
- ``intensity``: ``x_k[0, y, x]`` = fraction of the spike frames time-stamped in step ``k`` in which the
  pixel fired (zero for a step without frames).

A model that reads ``N`` earlier windows too (``history_windows``, ``streamdet.samples``) gets, after
step ``k``'s channels, those of steps ``k - T``, ..., ``k - N T`` (:class:`StepHistory`), so its mean
input over a window is the ANN's input stack of that window and the ``N`` before it. Steps before the
stream's first and steps dropped by the skip policy count as empty.

The network is simulated with its membranes kept across messages (one state per stream). Its per-step
output currents ``(cls [A, nc], box [A, 4])`` go into a :class:`SlidingWindow` of the last ``W`` steps;
every ``P`` steps, once the window is full (the initial transient is skipped), the window's mean currents
are decoded into boxes: ``rows = decode(mean_{k in window} cls_k, mean_{k in window} box_k)``.

Falling behind: the node drains its socket before each simulation chunk, so steps that arrived while the
network was busy queue up. When more than ``max_backlog_steps`` complete steps wait, the oldest whole
steps beyond that are dropped unsimulated (membranes and window are kept as they are) and counted in
``dropped_steps``, which every detections message carries.

:class:`StreamDetector` is the in-process API (no sockets); :class:`DetectorNode` puts it on the wire.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from streamdet import wire
from streamdet.binning import (
    SensorMapping,
    boxes_to_sensor,
    count_indices,
    event_indices,
    filter_boxes,
    frames_to_step_rates,
    pool_rates,
    sensor_mapping,
    step_inputs,
)
from streamdet.contract import EVALUATION_FILTER, BoxFilter, Geometry
from streamdet.errors import UserFacingError
from streamdet.neurons import IFParameters
from streamdet.snn import PRECISIONS, SpikingDetector

DEFAULT_STEPS_PER_WINDOW = 4
"""Steps per model window when ``dt_us`` is not given: ``dt_us = window_us / 4`` (12.5 ms for 50 ms)."""


def check_device(device: str) -> None:
    """UserFacingError unless torch can use ``device`` here (``cpu``, or ``cuda`` with a GPU)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserFacingError(f"--device {device}: no CUDA device is available here")
    if not (device == "cpu" or device.startswith("cuda")):
        raise UserFacingError(f"--device must be cpu or cuda, got {device!r}")


MEMBRANE_MODES = ("keep", "fresh")
"""``DetectorConfig.membranes``: kept from step to step, or every step from the initial membrane."""


@dataclass(frozen=True)
class DetectorConfig:
    """How the detector steps through a stream.

    Attributes:
        dt_us: duration of one simulation step, microseconds; must divide the model window
            (``T = window_us / dt_us`` steps per window).
        window_steps: ``W``, steps whose output currents are averaged for one decode. The CLI and the
            demo default to 50 ms of output (:func:`default_window_steps`), chosen on the validation
            split: longer integration makes boxes trail moving objects (``docs/streaming.md``).
        publish_every: ``P``, decode and publish every ``P`` steps (step ``s`` with ``(s + 1) % P == 0``).
        max_backlog_steps: complete steps allowed to wait per stream; older ones are dropped.
        max_chunk_steps: steps simulated in one call of the network (time folded into the batch).
        device: torch device of the network (``cpu`` or ``cuda``).
        membrane_bounds: ``(floor, ceiling)`` of every IF membrane in units of the threshold, applied
            after each reset (``streamdet.neurons``), or None for unbounded membranes. The default
            ``(0, 1)`` keeps a long stream's past from piling up in the membranes (see
            ``docs/streaming.md``, "Membrane bounds").
        membranes: ``keep`` (:data:`MEMBRANE_MODES`): every membrane runs on from step to step, within
            ``membrane_bounds``; ``fresh``: every step starts from the neurons' initial membrane, so no
            step leaves anything in the network for the next (the sliding window and the history channels
            still span steps). With burst neurons and one step per model window a fresh step is the
            Quant-ReLU ANN on that window (``docs/conversion.md``, "Burst neurons"); a kept membrane
            carries the last step's rounding into the next (``docs/streaming.md``, "Fresh membranes").
        geometry: how each stream's sensor is brought to the network input (``streamdet.contract``);
            boxes are always given in the stream's own sensor pixels.
        box_filter: what of each window's boxes is given out (the default keeps every decoded box that
            lies inside the sensor with some area: what mAP is scored on; ``detect`` publishes with
            a score threshold, ``docs/streaming.md``).
        stream_classes: ``(stream, classes)`` pairs: the classes given out for that stream instead of
            ``box_filter.classes`` (a harbour camera and a street camera on one detector).
        precision: the network's spike-fed convolutions in ``float32``, ``bfloat16`` or ``int8``
            (``streamdet.snn``, ``SpikingNetwork.with_precision``; the CLI's ``--precision auto`` takes
            the faster of the other two where this CPU convolves clearly faster with it,
            :func:`streamdet.live.choose_precision`); None (the default): the network's own.
        compile: run each step as one compiled graph (``streamdet.compiled``; compiled for the model's
            sensor size at :meth:`StreamDetector.warm_up`, for any other size in the background while the
            node-by-node engine runs).
    """

    dt_us: int = 12_500
    window_steps: int = 4
    publish_every: int = 4
    max_backlog_steps: int = 8
    max_chunk_steps: int = 8
    device: str = "cpu"
    membrane_bounds: tuple[float, float] | None = (0.0, 1.0)
    membranes: str = "keep"
    geometry: Geometry = Geometry()
    box_filter: BoxFilter = EVALUATION_FILTER
    stream_classes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    precision: str | None = None
    compile: bool = False

    def filter_for(self, stream: str) -> BoxFilter:
        """The :class:`BoxFilter` of ``stream`` (its own classes when ``stream_classes`` names it)."""
        for name, classes in self.stream_classes:
            if name == stream:
                return replace(self.box_filter, classes=classes)
        return self.box_filter

    def __post_init__(self) -> None:
        for name in ("dt_us", "window_steps", "publish_every", "max_backlog_steps", "max_chunk_steps"):
            if int(getattr(self, name)) < 1:
                raise UserFacingError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UserFacingError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.membranes not in MEMBRANE_MODES:
            raise UserFacingError(f"membranes must be one of {MEMBRANE_MODES}, got {self.membranes!r}")
        if self.membrane_bounds is not None:
            floor, ceiling = self.membrane_bounds
            if not floor < ceiling:
                raise UserFacingError(f"membrane bounds must be floor < ceiling, got {self.membrane_bounds}")
            if not floor <= 1.0:
                raise UserFacingError(f"the membrane floor must be at most the threshold (1), got {floor}")

    def steps_per_window(self, window_us: int) -> float:
        """``T = window_us / dt_us``; UserFacingError unless ``dt_us`` divides ``window_us``."""
        return float(steps_per_model_window(window_us, self.dt_us))


DEFAULT_OUTPUT_WINDOW_US = 50_000
"""Span of output currents integrated per decode without ``--window-steps`` (:func:`default_window_steps`)."""


def default_window_steps(dt_us: int) -> int:
    """``W = round(50 ms / dt)``, at least 1: the output integration the streaming detector scores best
    with on the validation split, for the 50 ms and the 100 ms events models alike (``docs/streaming.md``)."""
    return max(1, round(DEFAULT_OUTPUT_WINDOW_US / dt_us))


DEFAULT_PUBLISH_US = DEFAULT_OUTPUT_WINDOW_US
"""Stream time between box messages without ``--publish-every`` (:func:`default_publish_every`)."""


def default_publish_every(dt_us: int) -> int:
    """``P = round(50 ms / dt)``, at least 1: a box message every 50 ms of stream time (one per default
    output window, so that every step's output is published once), whatever step ``--dt-us auto`` chose
    (2 steps of 25 ms, 1 of 50 ms)."""
    return max(1, round(DEFAULT_PUBLISH_US / dt_us))


def resolve_window_steps(window_us: int, dt_us: int, window_steps: int | None) -> int:
    """``W`` for a model window and step: ``window_steps`` when given, else :func:`default_window_steps`;
    UserFacingError unless ``dt_us`` divides the model window (checked before any process starts)."""
    steps_per_model_window(window_us, dt_us)
    return window_steps if window_steps is not None else default_window_steps(dt_us)


def steps_per_model_window(window_us: int, dt_us: int) -> int:
    """``T = window_us / dt_us``, steps per model window; UserFacingError unless ``dt_us`` divides it."""
    if dt_us < 1 or window_us % dt_us:
        raise UserFacingError(f"--dt-us {dt_us} must divide the model's window of {window_us} us")
    return window_us // dt_us


@dataclass(frozen=True)
class Steps:
    """Consecutive complete steps of one stream: ``values [K, C, H, W]`` (event counts per polarity, or
    spike rates), step ``first`` covers ``[first * dt_us, (first + 1) * dt_us)``; ``received_s`` is the
    ``time.monotonic()`` at which the message completing them arrived."""

    first: int
    values: np.ndarray
    received_s: float


class StepBinner:
    """Turns the packets of one stream into complete steps of ``dt_us``, carrying the events (or spike
    frames) of an incomplete step over to the next packet.

    A packet covering ``[t0_us, t1_us)`` completes every step that ends at or before ``t1_us``. The first
    packet fixes the first step (``floor(t0_us / dt_us)``). Data time-stamped before the first incomplete
    step arrives too late to be binned; it is counted in ``late``. Complete steps come out at the network
    input's size (``mapping``, ``streamdet.binning``).

    Events are mapped to input pixels as their packet arrives and held per step as flat indices
    (``streamdet.binning.event_indices``); the packet that completes a step only maps its own events and
    counts the step's indices (``streamdet.binning.count_indices``), so the binning of a step is spread
    over the packets that fill it instead of waiting for the last one.
    """

    def __init__(
        self, modality: str, sensor_size: tuple[int, int], dt_us: int, mapping: SensorMapping | None = None
    ) -> None:
        from streamdet.binning import identity_mapping

        self.modality = modality
        self.sensor_size = sensor_size
        self.mapping = mapping or identity_mapping(sensor_size)
        self.dt_us = int(dt_us)
        self.next_step: int | None = None
        self.late = 0
        self._pending_indices: dict[int, list[np.ndarray]] = {}
        """Step -> the flat input indices of its events held so far, one array per packet."""
        width, height = sensor_size
        self._pending_frames = np.zeros((0, height, width), dtype=bool)
        self._pending_times = np.zeros(0, dtype=np.int64)

    def push_events(
        self, events: np.ndarray, t0_us: int, t1_us: int, keep_last: int | None = None
    ) -> tuple[np.ndarray, int, int]:
        """Add an event packet covering ``[t0_us, t1_us)``.

        Returns:
            ``(counts [K, 2, H, W], first_step, skipped)``: the steps this packet completed (only the last
            ``keep_last`` of them when given; the ``skipped`` older ones are not materialised).
        """
        first, complete_until = self._advance(t0_us, t1_us)
        events = self._drop_late(events, "t", first)
        step, flat = event_indices(events, self.dt_us, self.mapping)
        if len(step) and step.min() == step.max():  # the usual packet: inside one step
            self._pending_indices.setdefault(int(step[0]), []).append(flat)
        elif len(step):
            order = np.argsort(step, kind="stable")
            step, flat = step[order], flat[order]
            starts = np.flatnonzero(np.diff(step, prepend=step[0] - 1))
            for part_step, part in zip(step[starts], np.split(flat, starts[1:]), strict=True):
                self._pending_indices.setdefault(int(part_step), []).append(part)
        steps, skipped = self._kept(first, complete_until, keep_last)
        width, height = self.mapping.input_size
        counts = np.zeros((steps, 2, height, width), dtype=np.float32)
        for index in [index for index in self._pending_indices if index < complete_until]:
            held = self._pending_indices.pop(index)
            if index >= first + skipped:
                count_indices(held, self.mapping.pixel_weights, counts[index - first - skipped])
        return counts, first + skipped, skipped

    def push_frames(
        self,
        frames: np.ndarray,
        t0_us: int,
        frame_us: float,
        keep_last: int | None = None,
    ) -> tuple[np.ndarray, int, int]:
        """Add spike frames ``[N, H, W]``, frame ``n`` at ``t0_us + n * frame_us``; the packet covers
        ``[t0_us, t0_us + N * frame_us)``. Returns ``(rates [K, 1, H, W], first_step, skipped)`` as
        :meth:`push_events`."""
        times = np.round(t0_us + np.arange(len(frames)) * frame_us).astype(np.int64)
        t1_us = int(round(t0_us + len(frames) * frame_us))
        first, complete_until = self._advance(t0_us, t1_us)
        keep = times >= first * self.dt_us
        self.late += int(np.count_nonzero(~keep))
        pool_frames = np.concatenate([self._pending_frames, frames[keep]])
        pool_times = np.concatenate([self._pending_times, times[keep]])
        split = int(np.searchsorted(pool_times, complete_until * self.dt_us, side="left"))
        self._pending_frames, self._pending_times = pool_frames[split:], pool_times[split:]
        steps, skipped = self._kept(first, complete_until, keep_last)
        rates = frames_to_step_rates(
            pool_frames[:split], pool_times[:split], self.dt_us, first + skipped, steps
        )
        return pool_rates(rates, self.mapping), first + skipped, skipped

    def _advance(self, t0_us: int, t1_us: int) -> tuple[int, int]:
        if self.next_step is None:
            self.next_step = int(t0_us) // self.dt_us
        first = self.next_step
        complete_until = max(first, int(t1_us) // self.dt_us)
        self.next_step = complete_until
        return first, complete_until

    def _drop_late(self, events: np.ndarray, field_name: str, first: int) -> np.ndarray:
        on_time = events[field_name] >= first * self.dt_us
        late = len(events) - int(np.count_nonzero(on_time))
        if late:
            self.late += late
            return events[on_time]
        return events

    @staticmethod
    def _kept(first: int, complete_until: int, keep_last: int | None) -> tuple[int, int]:
        steps = complete_until - first
        kept = steps if keep_last is None else min(steps, keep_last)
        return kept, steps - kept


class SlidingWindow:
    """The last ``W`` per-step output currents of the network and their mean.

    ``mean() = (1 / n) * sum_{k in window} (cls_k, box_k)`` over the ``n <= W`` steps held; ``full`` once
    ``n = W``. Steps that were dropped unsimulated are simply absent (the window spans the last ``W``
    simulated steps).
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._steps: deque[tuple[int, torch.Tensor, torch.Tensor]] = deque(maxlen=self.size)

    def push(self, step: int, cls_current: torch.Tensor, box_current: torch.Tensor) -> None:
        """Add step ``step``'s currents ``cls [A, nc]``, ``box [A, 4]`` (the oldest leaves when full)."""
        self._steps.append((step, cls_current, box_current))

    @property
    def full(self) -> bool:
        return len(self._steps) == self.size

    @property
    def first_step(self) -> int:
        return self._steps[0][0]

    def mean(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean currents ``(cls [A, nc], box [A, 4])`` over the steps held."""
        return self.cls_mean(), self.box_mean_at(slice(None))

    def cls_mean(self) -> torch.Tensor:
        """Mean class currents ``[A, nc]`` over the steps held."""
        return _mean([cls for _, cls, _ in self._steps])

    def box_mean_at(self, anchors: torch.Tensor | slice) -> torch.Tensor:
        """Mean box currents ``[C, 4]`` over the steps held, at the anchors ``anchors`` only (indices
        ``[C]``): the decoder needs them only where a class scores above its threshold."""
        return _mean([box[anchors] for _, _, box in self._steps])


def _mean(parts: list[torch.Tensor]) -> torch.Tensor:
    """Elementwise mean of ``parts``, summed in order (``torch.stack(parts).mean(0)``, without the stack)."""
    if len(parts) == 1:
        return parts[0]
    total = parts[0] + parts[1]
    for part in parts[2:]:
        total += part
    return total.div_(len(parts))


class StepHistory:
    """Delay line of one stream's per-step values, for a model that reads ``windows`` earlier windows of
    ``lag`` steps each: :meth:`stack` appends to every step ``k`` the values of steps ``k - lag``, ...,
    ``k - windows * lag`` as more channels. Steps never given (before the first, or skipped) are zeros.
    """

    def __init__(self, lag: int, windows: int) -> None:
        self.lag = int(lag)
        self.windows = int(windows)
        self.depth = self.lag * self.windows
        self._ring: np.ndarray | None = None
        """The last ``depth`` steps, step ``s`` at slot ``s % depth`` (zeros where never given)."""
        self._next_step: int | None = None

    def stack(self, first: int, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``values [K, C, H, W]`` of steps ``first..first + K - 1`` -> ``[K, C * (1 + windows), H, W]``,
        written into ``out`` when given (an array or view of that shape).

        Each step array is copied once into the output and at most once into the ring of the last
        ``depth`` steps. A chunk that starts before the end of the previous one continues right after it.
        """
        if self.windows == 0:
            if out is None:
                return values
            out[...] = values
            return out
        count, channels = len(values), values.shape[1]
        if self._ring is None or self._ring.shape[1:] != values.shape[1:] or self._ring.dtype != values.dtype:
            self._ring = np.zeros((self.depth, *values.shape[1:]), dtype=values.dtype)
            self._next_step = None
        start = first if self._next_step is None else max(first, self._next_step)
        if self._next_step is not None:  # skipped steps are empty
            for step in range(max(self._next_step, start - self.depth), start):
                self._ring[step % self.depth] = 0
        if out is None:
            out = np.empty((count, channels * (1 + self.windows), *values.shape[2:]), dtype=values.dtype)
        out[:, :channels] = values
        for j in range(1, self.windows + 1):
            for k in range(count):
                step = start + k - j * self.lag
                source = values[step - start] if step >= start else self._ring[step % self.depth]
                out[k, j * channels : (j + 1) * channels] = source
        for step in range(max(start, start + count - self.depth), start + count):
            self._ring[step % self.depth] = values[step - start]
        self._next_step = start + count
        return out


@dataclass(frozen=True)
class WindowDetections:
    """Boxes of one stream over one window.

    Attributes:
        stream: stream name.
        rows: float32 ``[N, 6]`` rows ``x1, y1, x2, y2, score, class`` (pixels, index into class_names).
        t0_us, t1_us: the window's time span ``[t0_us, t1_us)``, microseconds.
        step: index of the window's last step (``t1_us = (step + 1) * dt_us``).
        dropped_steps: steps of this stream dropped unsimulated so far (skip policy).
        late_events: events or frames of this stream that arrived after their step was closed, so far.
        latency_ms: wall time from the arrival of the message completing the last step to the decoded
            boxes, milliseconds.
    """

    stream: str
    rows: np.ndarray
    t0_us: int
    t1_us: int
    step: int
    dropped_steps: int
    late_events: int
    latency_ms: float


MAX_LIVE_STREAMS = 16
"""Streams a detector keeps state for (membranes, window, queue: megabytes each for the shipped models).
A new stream beyond it takes the place of the streams idle for ``STREAM_IDLE_S``, or is refused
(:class:`StreamLimitError`) while every one is live."""

STREAM_IDLE_S = 5.0
"""Wall time without a message after which a stream may be evicted for a new one, seconds."""

BACKWARD_EPOCH_US = 200_000
"""A packet ending more than this before its stream's current time (a restarted source replaying its
time stamps from the start) starts a new epoch of the stream: its state starts afresh at once."""

FORWARD_LIMIT_US = 60_000_000
"""A packet ending more than this after its stream's current time is refused (:class:`TimeJumpError`):
one stray time stamp must not complete years of steps. A second packet that continues the jumped
time line (a source that resumed after a long pause) starts a new epoch at the new time."""


class StreamLimitError(UserFacingError):
    """A new stream while ``MAX_LIVE_STREAMS`` streams are live (none idle for ``STREAM_IDLE_S``)."""


class TimeJumpError(UserFacingError):
    """A packet far ahead of its stream's time (``FORWARD_LIMIT_US``), not (yet) a new epoch."""


@dataclass
class _StreamState:
    name: str
    binner: StepBinner
    snn_state: Any
    window: SlidingWindow
    history: StepHistory
    mapping: SensorMapping
    queue: deque = field(default_factory=deque)
    input_buffer: torch.Tensor | None = None
    """The network input of the last chunk (CPU), written over by the next one of the same shape."""
    dropped_steps: int = 0
    simulated_steps: int = 0
    last_seen_s: float = 0.0
    epoch: int = 0
    forward_candidate_us: int | None = None
    """End of the last packet refused as a far forward jump: the next packet continuing it is a new
    epoch."""


def stream_neuron(neuron: IFParameters, config: DetectorConfig) -> IFParameters:
    """The IF parameters the detector simulates ``neuron`` with: ``config.membrane_bounds`` (unchanged for
    None), or, for ``membranes="fresh"``, both bounds at the initial membrane: each step's membranes end
    clamped to where a fresh simulation starts."""
    if config.membranes == "fresh":
        return neuron.with_bounds((neuron.initial_membrane, neuron.initial_membrane))
    if config.membrane_bounds is None:
        return neuron
    return neuron.with_bounds(config.membrane_bounds)


class StreamDetector:
    """Runs a ``SpikingDetector`` on any number of streams, each with its own binner, membranes and window.

    Feed packets with :meth:`add_events` / :meth:`add_spikes`, then call :meth:`process` to simulate the
    queued steps; it returns the windows decoded on the way. :meth:`end_stream` forgets a stream.
    """

    def __init__(self, snn: SpikingDetector, config: DetectorConfig) -> None:
        self.snn = snn.to(config.device)
        neuron = stream_neuron(self.snn.neuron, config)
        if neuron != self.snn.neuron:
            self.snn = self.snn.with_neuron(neuron)
        if config.precision is not None and config.precision != self.snn.precision:
            self.snn = self.snn.with_precision(config.precision)
        if config.compile != self.snn.compiled:
            self.snn = self.snn.with_compilation(config.compile)
        self.config = config
        self.spec = snn.spec
        config.box_filter.check_classes(snn.class_names)
        for stream, _ in config.stream_classes:
            config.filter_for(stream).check_classes(snn.class_names)
        self.device = torch.device(config.device)
        self.steps_per_window = config.steps_per_window(self.spec.window_us)
        self.streams: dict[str, _StreamState] = {}
        self.dropped_steps = 0
        self.simulated_steps = 0
        self.busy_s = 0.0
        """Wall time spent simulating and decoding, seconds (``simulated_steps / busy_s`` = steps/s)."""

    def mapping_for(self, sensor_size: tuple[int, int]) -> SensorMapping:
        """How a stream of ``sensor_size`` reaches the network (UserFacingError, saying what to pass, when
        the geometry cannot serve it)."""
        return sensor_mapping(sensor_size, self.spec, self.config.geometry)

    def _stream(self, stream: str, modality: str, sensor_size: tuple[int, int]) -> _StreamState:
        if modality != self.spec.modality:
            raise UserFacingError(
                f"stream {stream!r} carries {modality} but the model takes {self.spec.modality}"
            )
        state = self.streams.get(stream)
        if state is not None and tuple(state.binner.sensor_size) != tuple(sensor_size):
            self.streams.pop(stream)
            state = None
        if state is None:
            self._make_room_for(stream)
            mapping = self.mapping_for(tuple(sensor_size))
            state = self.streams[stream] = _StreamState(
                name=stream,
                binner=StepBinner(modality, tuple(sensor_size), self.config.dt_us, mapping),
                snn_state=self.snn.initial_state(1, self.device),
                window=SlidingWindow(self.config.window_steps),
                history=StepHistory(self.steps_per_window, self.spec.history_windows),
                mapping=mapping,
                epoch=self.epochs.pop(stream, 0),
            )
        state.last_seen_s = time.monotonic()
        return state

    @property
    def epochs(self) -> dict[str, int]:
        """Epoch each ended or restarted stream starts at when it next sends (see ``start_epoch``)."""
        return self.__dict__.setdefault("_epochs", {})

    @property
    def evicted(self) -> list[str]:
        """Streams evicted so far to make room for new ones (idle for ``STREAM_IDLE_S``)."""
        return self.__dict__.setdefault("_evicted", [])

    def _make_room_for(self, stream: str) -> None:
        """Evict every stream idle for ``STREAM_IDLE_S`` when ``MAX_LIVE_STREAMS`` are live;
        ``StreamLimitError`` when none is idle."""
        if len(self.streams) < MAX_LIVE_STREAMS:
            return
        now = time.monotonic()
        idle = [name for name, state in self.streams.items() if now - state.last_seen_s > STREAM_IDLE_S]
        if not idle:
            raise StreamLimitError(
                f"stream {stream!r} refused: {MAX_LIVE_STREAMS} streams are live, none idle for "
                f"{STREAM_IDLE_S:g} s"
            )
        for name in idle:
            self.streams.pop(name)
            self.evicted.append(name)
        del self.evicted[:-MAX_LIVE_STREAMS]

    def check_span(self, stream: str, t0_us: int, t1_us: int) -> str | None:
        """Where a packet ``[t0_us, t1_us)`` lies against ``stream``'s current time (the start of its
        first incomplete step): None when it continues the stream (or the stream is new), ``"backwards"``
        when it ends more than ``BACKWARD_EPOCH_US`` before it (a restarted source), ``"forwards"`` when
        it continues a far jump ahead refused just before. ``TimeJumpError`` for a packet ending more
        than ``FORWARD_LIMIT_US`` ahead (remembered: the next packet continuing it is ``"forwards"``)."""
        state = self.streams.get(stream)
        if state is None or state.binner.next_step is None:
            return None
        current_us = state.binner.next_step * self.config.dt_us
        if t1_us < current_us - BACKWARD_EPOCH_US:
            state.forward_candidate_us = None
            return "backwards"
        if t1_us <= current_us + FORWARD_LIMIT_US:
            state.forward_candidate_us = None
            return None
        candidate = state.forward_candidate_us
        if candidate is not None and candidate - BACKWARD_EPOCH_US <= t0_us <= candidate + FORWARD_LIMIT_US:
            state.forward_candidate_us = None
            return "forwards"
        state.forward_candidate_us = t1_us
        raise TimeJumpError(
            f"time jumped more than {FORWARD_LIMIT_US // 1_000_000} s ahead of the stream (packet ending at "
            "a far later time); refused, a next packet continuing it starts a new epoch"
        )

    def start_epoch(self, stream: str) -> int:
        """Forget ``stream``'s state (as :meth:`end_stream`); its next packet starts epoch ``n + 1``,
        returned."""
        state = self.streams.pop(stream, None)
        epoch = (state.epoch if state is not None else self.epochs.get(stream, 0)) + 1
        self.epochs[stream] = epoch
        if len(self.epochs) > 4 * MAX_LIVE_STREAMS:
            del self.epochs[next(iter(self.epochs))]
        return epoch

    def add_events(
        self,
        stream: str,
        events: np.ndarray,
        sensor_size: tuple[int, int],
        t0_us: int,
        t1_us: int,
        received_s: float | None = None,
    ) -> None:
        """Queue the steps completed by an event packet ``[t0_us, t1_us)`` of ``stream``."""
        state = self._stream(stream, "events", sensor_size)
        counts, first, skipped = state.binner.push_events(
            events, t0_us, t1_us, keep_last=self.config.max_backlog_steps
        )
        self._queue(state, counts, first, skipped, received_s)

    def add_spikes(
        self,
        stream: str,
        frames: np.ndarray,
        t0_us: int,
        frame_us: float,
        received_s: float | None = None,
    ) -> None:
        """Queue the steps completed by spike frames ``[N, H, W]`` (frame ``n`` at ``t0 + n * frame_us``)."""
        sensor_size = (frames.shape[2], frames.shape[1])
        state = self._stream(stream, "intensity", sensor_size)
        rates, first, skipped = state.binner.push_frames(
            frames, t0_us, frame_us, keep_last=self.config.max_backlog_steps
        )
        self._queue(state, rates, first, skipped, received_s)

    def _queue(
        self, state: _StreamState, values: np.ndarray, first: int, skipped: int, received_s: float | None
    ) -> None:
        received = time.monotonic() if received_s is None else received_s
        self._count_dropped(state, skipped)
        if len(values):
            state.queue.append(Steps(first, values, received))

    def _count_dropped(self, state: _StreamState, steps: int) -> None:
        state.dropped_steps += steps
        self.dropped_steps += steps

    def backlog_steps(self) -> int:
        """Complete steps queued and not simulated yet, over all streams."""
        return sum(len(steps.values) for state in self.streams.values() for steps in state.queue)

    def drop_backlog(self) -> int:
        """Skip policy: per stream, drop the oldest queued steps beyond ``max_backlog_steps``; returns how
        many were dropped now."""
        dropped_now = 0
        for state in self.streams.values():
            excess = sum(len(steps.values) for steps in state.queue) - self.config.max_backlog_steps
            while excess > 0:
                oldest = state.queue[0]
                if len(oldest.values) <= excess:
                    state.queue.popleft()
                    removed = len(oldest.values)
                else:
                    state.queue[0] = Steps(oldest.first + excess, oldest.values[excess:], oldest.received_s)
                    removed = excess
                excess -= removed
                dropped_now += removed
                self._count_dropped(state, removed)
        return dropped_now

    def warm_up(self, input_size: tuple[int, int] | None = None) -> None:
        """Run one step of zeros and one decode on a throwaway state, so that lazy initialisation (kernel
        selection, the first NMS) does not count as latency of the first window."""
        width, height = input_size or self.spec.sensor_size
        zeros = np.zeros((1, self.snn.in_channels, height, width), dtype=np.float32)
        (cls_steps, box_steps), _ = self.snn.run(
            self.step_inputs(zeros), self.snn.initial_state(1, self.device)
        )
        self.snn.decode(cls_steps[0], box_steps[0], (width, height))
        if self.snn.compiled:
            self.snn.prepare_compiled(self.step_inputs(zeros))

    def end_stream(self, stream: str) -> None:
        """Forget ``stream`` (its queue, membranes and window); a new stream of that name starts fresh."""
        self.streams.pop(stream, None)

    def step_inputs(self, values: np.ndarray) -> torch.Tensor:
        """Network input ``[K, 1, C, H_pad, W_pad]`` of steps ``values [K, C, H, W]`` at the input's size
        (``streamdet.binning.step_inputs``), zero-padded at the bottom and right to the network's stride."""
        from streamdet.model import padded_length

        measured = torch.from_numpy(values).to(self.device)
        steps, channels, height, width = measured.shape
        padded_shape = (steps, channels, padded_length(height), padded_length(width))
        inputs = torch.zeros(padded_shape, dtype=measured.dtype, device=measured.device)
        step_inputs(measured, self.spec, self.steps_per_window, out=inputs[..., :height, :width])
        return inputs.unsqueeze(1)

    def _chunk_inputs(self, state: _StreamState, first: int, values: np.ndarray) -> torch.Tensor:
        """:meth:`step_inputs` of a chunk of ``state``'s steps with their history channels. On the CPU each
        step is scaled once, as it comes from the binner (the history ring then holds inputs, not counts:
        the scaling is the same elementwise map for every step), and the stack is written straight into
        the stream's input buffer, reused from chunk to chunk (the network keeps nothing of its input)."""
        from streamdet.model import padded_length

        if self.device.type != "cpu":
            return self.step_inputs(state.history.stack(first, values))
        count, channels, height, width = values.shape
        channels *= 1 + state.history.windows
        shape = (count, 1, channels, padded_length(height), padded_length(width))
        if state.input_buffer is None or tuple(state.input_buffer.shape) != shape:
            state.input_buffer = torch.zeros(shape, dtype=torch.float32)
        measured = torch.from_numpy(values)  # the binner's fresh array: scaled in place, before the stack
        step_inputs(measured, self.spec, self.steps_per_window, out=measured)
        state.history.stack(first, values, out=state.input_buffer[:, 0, :, :height, :width].numpy())
        return state.input_buffer

    def process(self, max_steps: int | None = None) -> list[WindowDetections]:
        """Simulate queued steps (all, or at most ``max_steps`` per stream) in chunks of at most
        ``max_chunk_steps``; returns the windows decoded, in stream-time order per stream."""
        results: list[WindowDetections] = []
        for name, state in list(self.streams.items()):
            budget = math.inf if max_steps is None else max_steps
            while state.queue and budget > 0:
                steps = state.queue[0]
                take = int(min(len(steps.values), self.config.max_chunk_steps, budget))
                chunk = steps.values[:take]
                if take == len(steps.values):
                    state.queue.popleft()
                else:
                    state.queue[0] = Steps(steps.first + take, steps.values[take:], steps.received_s)
                results.extend(self._simulate(name, state, steps.first, chunk, steps.received_s))
                budget -= take
        return results

    def _simulate(
        self, name: str, state: _StreamState, first: int, values: np.ndarray, received_s: float
    ) -> list[WindowDetections]:
        started = time.perf_counter()
        inputs = self._chunk_inputs(state, first, values)
        (cls_steps, box_steps), state.snn_state = self.snn.run(inputs, state.snn_state)
        results = []
        for k in range(len(values)):
            step = first + k
            state.window.push(step, cls_steps[k, 0], box_steps[k, 0])
            state.simulated_steps += 1
            self.simulated_steps += 1
            if state.window.full and (step + 1) % self.config.publish_every == 0:
                results.append(
                    WindowDetections(
                        stream=name,
                        rows=self._decode(state),
                        t0_us=state.window.first_step * self.config.dt_us,
                        t1_us=(step + 1) * self.config.dt_us,
                        step=step,
                        dropped_steps=state.dropped_steps,
                        late_events=state.binner.late,
                        latency_ms=(time.monotonic() - received_s) * 1e3,
                    )
                )
        self.busy_s += time.perf_counter() - started
        return results

    def _decode(self, state: _StreamState) -> np.ndarray:
        """The window's boxes in the stream's sensor pixels, filtered (``config.box_filter``)."""
        window = state.window
        rows = self.snn.decode_window(window.cls_mean(), window.box_mean_at, state.mapping.input_size)
        rows = rows.detach().cpu().numpy().astype(np.float32).reshape(-1, 6)
        rows = boxes_to_sensor(rows, state.mapping)
        box_filter = self.config.filter_for(state.name)
        return filter_boxes(rows, self.snn.class_names, state.mapping.sensor_size, box_filter)


def detect_events(
    snn: SpikingDetector,
    events: np.ndarray,
    sensor_size: tuple[int, int],
    config: DetectorConfig,
    packet_us: int = 10_000,
    stream: str = "events",
) -> list[WindowDetections]:
    """In-process detection over a whole event array: the same binning, simulation and windows as the
    node, packets of ``packet_us`` from the first event's packet boundary, nothing dropped."""
    detector = StreamDetector(snn, _unbounded(config))
    results: list[WindowDetections] = []
    if len(events) == 0:
        return results
    if config.compile:
        detector.warm_up()  # compiled for the model's size before the first step (at once when it is)
    start = int(events["t"][0]) // packet_us * packet_us
    end = int(events["t"][-1]) + 1
    for t0 in range(start, end, packet_us):
        lo, hi = np.searchsorted(events["t"], [t0, t0 + packet_us], side="left")
        detector.add_events(stream, events[lo:hi], sensor_size, t0, t0 + packet_us)
        results.extend(detector.process())
    return results


def detect_spikes(
    snn: SpikingDetector,
    frames: np.ndarray,
    t0_us: float,
    frame_us: float,
    config: DetectorConfig,
    packet_frames: int = 200,
    stream: str = "spikes",
) -> list[WindowDetections]:
    """In-process detection over a whole spike-camera recording ``frames [N, H, W]`` (frame ``n`` at
    ``t0_us + n * frame_us``), in packets of ``packet_frames`` frames as a spike driver sends them: the
    same binning, simulation and windows as the node, nothing dropped (:func:`detect_events` for spikes)."""
    detector = StreamDetector(snn, _unbounded(config))
    results: list[WindowDetections] = []
    if config.compile and len(frames):
        detector.warm_up()
    for first in range(0, len(frames), packet_frames):
        packet = frames[first : first + packet_frames]
        detector.add_spikes(stream, packet, t0_us + first * frame_us, frame_us)
        results.extend(detector.process())
    return results


def _unbounded(config: DetectorConfig) -> DetectorConfig:

    return replace(config, max_backlog_steps=2**31 - 1)


MIN_SHED_AFTER_MS = 1000.0
"""Input is never skipped unbinned before it is this old when read, milliseconds."""

MAX_DRAIN_S = 0.05
"""Seconds spent reading and binning messages per turn of the node loop at most, before the next
simulation chunk: input that arrives faster than it can be binned cannot starve the network."""

REJECT_SUMMARY_S = 10.0
"""Seconds between the log lines that sum up repeated refusals of one kind."""

MAX_DRAIN_MESSAGES = 10_000
"""Messages binned per turn of the node loop at most, before the next simulation chunk."""


@dataclass
class NodeStats:
    """What a detector node did: messages in, windows published, steps simulated and dropped,
    invalid messages, the per-window latencies (ms) and the time spent simulating (s)."""

    messages: int = 0
    published: int = 0
    simulated_steps: int = 0
    dropped_steps: int = 0
    rejected: int = 0
    shed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    busy_s: float = 0.0

    def steps_per_s(self) -> float:
        """Simulation throughput: steps simulated per second spent simulating and decoding."""
        return self.simulated_steps / self.busy_s if self.busy_s > 0 else 0.0


class DetectorNode:
    """Subscribes to ``events/*`` and ``spikes/*`` on ``inputs``, runs a :class:`StreamDetector`, publishes
    ``detections/<stream>`` on ``output`` (bound).

    Loop: drain every message already waiting (binning is cheap), apply the skip policy, simulate one
    chunk per stream, publish what was decoded; repeat. A publisher never waits for a slow subscriber
    (ZeroMQ high-water mark), so a late or slow viewer cannot stall the detector. End-of-stream on an
    input topic ends that stream and is forwarded on ``detections/<stream>``.

    Args:
        snn: a ``SpikingDetector`` (``streamdet.snn.load_snn``).
        config: stepping, window and skip policy.
        inputs: endpoints to connect to (publishers, or a broker's backend).
        output: endpoint to bind (or to connect to, e.g. a broker's frontend, with ``output_connect``).
        topics: topic prefixes to subscribe to; a worker behind a broker takes some streams only.
        output_connect: connect the output instead of binding it.
        output_hwm: detections messages queued per subscriber before that subscriber misses some.
        wait_subscribers: wait for this many subscribers of the output before subscribing to the inputs.
        wait_timeout_s: how long to wait for them, seconds (UserFacingError after).
        exit_on_eos: stop once every stream seen has ended.
        log: called with one line of text for warnings (falling behind, rejected messages).
        input_curve: CURVE client keys of the input connections (``streamdet.bus``), or None.
        output_curve: CURVE keys of the output: server keys when it binds, client keys when it
            connects (a broker's frontend), or None.
    """

    def __init__(
        self,
        snn: SpikingDetector,
        config: DetectorConfig,
        inputs: Iterable[str],
        output: str,
        topics: Iterable[str] = ("events/", "spikes/"),
        output_connect: bool = False,
        output_hwm: int = 1000,
        wait_subscribers: int = 0,
        wait_timeout_s: float = 10.0,
        exit_on_eos: bool = False,
        log: Callable[[str], None] | None = None,
        input_curve: Any = None,
        output_curve: Any = None,
    ) -> None:
        from streamdet import bus

        self.detector = StreamDetector(snn, config)
        self.config = config
        self.input_kind = snn.spec.wire_kind
        self.publisher = bus.Publisher(output, connect=output_connect, hwm=output_hwm, curve=output_curve)
        try:
            self.detector.warm_up()
            if wait_subscribers and not self.publisher.wait_for_subscribers(wait_subscribers, wait_timeout_s):
                raise UserFacingError(
                    f"{output}: fewer than {wait_subscribers} subscriber(s) after {wait_timeout_s} s"
                )
            self.subscriber = bus.Subscriber(list(inputs), topics=tuple(topics), curve=input_curve)
        except BaseException:
            self.publisher.close()
            raise
        self.exit_on_eos = exit_on_eos
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stats = NodeStats()
        self.sensor_sizes: dict[str, tuple[int, int]] = {}
        self._ended: set[str] = set()
        self._last_behind_log = -math.inf
        self._rejects: dict[tuple[str, str], int] = {}
        self._last_shed_log = -math.inf
        self._shed_after_ms = max(MIN_SHED_AFTER_MS, 2 * config.max_backlog_steps * config.dt_us / 1000)
        """Input older than this when read is skipped unbinned (:meth:`_shed`): twice the backlog the
        skip policy keeps, at least :data:`MIN_SHED_AFTER_MS`."""
        self._last_reject_summary = -math.inf
        self._announced: set[str] = set()

    def close(self) -> None:
        self.subscriber.close()
        self.publisher.close()

    def _accept(self, message: wire.Message, received_s: float) -> None:
        self.stats.messages += 1
        try:
            if message.kind == "eos":
                self._end(message)
                return
            if message.kind in ("events", "spikes"):
                self._check_time(message)
                sent_us = message.extra.get("sent_us")
                if sent_us is not None:
                    self._transit_ms[message.stream] = (time.time_ns() // 1000 - sent_us) / 1000
                    if self._transit_ms[message.stream] > self._shed_after_ms:
                        self._shed(message)
                        return
            if message.kind == "events":
                self.detector.add_events(
                    message.stream,
                    message.payload,
                    tuple(message.sensor_size),
                    message.t0_us,
                    message.t1_us,
                    received_s,
                )
                self.sensor_sizes[message.stream] = tuple(message.sensor_size)
            elif message.kind == "spikes":
                self.detector.add_spikes(
                    message.stream,
                    message.payload,
                    message.t0_us,
                    float(message.extra["frame_us"]),
                    received_s,
                )
                self.sensor_sizes[message.stream] = tuple(message.sensor_size)
        except StreamLimitError as error:
            self.stats.rejected += 1
            self._log_once("stream-limit", f"detect: {error} (logged once; further ones are counted)")
        except wire.WireError as error:
            self._reject(message, f"events outside the message's time span ({error.detail})")
        except TimeJumpError as error:
            self._reject(message, str(error))
        except UserFacingError as error:
            self._reject(message, str(error))
        evicted = self.detector.evicted
        if evicted:
            self._log_once(
                "evicted",
                f"detect: more than {MAX_LIVE_STREAMS} streams: evicted idle stream(s) "
                f"{', '.join(evicted)} to make room (logged once)",
            )
            for name in evicted:
                self.sensor_sizes.pop(name, None)
                self._transit_ms.pop(name, None)
                self._announced.discard(name)
            evicted.clear()

    @property
    def _transit_ms(self) -> dict[str, float]:
        """Per stream: how long its latest input message took from its publisher's ``send`` to here."""
        return self.__dict__.setdefault("_input_transit_ms", {})

    def _log_once(self, key: str, line: str) -> None:
        logged = self.__dict__.setdefault("_logged_once", set())
        if key not in logged:
            logged.add(key)
            self.log(line)

    def _check_time(self, message: wire.Message) -> None:
        """Event times within the message's span (``wire.check_event_times``), then the span against the
        stream's time (``StreamDetector.check_span``): a restarted source (time back) or a confirmed
        jump ahead starts a new epoch at once, with a log line; a far jump ahead alone is refused."""
        wire.check_event_times(message)
        jump = self.detector.check_span(message.stream, message.t0_us, message.t1_us)
        if jump is None:
            return
        state = self.detector.streams[message.stream]
        was_us = state.binner.next_step * self.config.dt_us
        self._apply_skip_policy()
        self.drain_stream(message.stream)
        epoch = self.detector.start_epoch(message.stream)
        cause = "a restarted source" if jump == "backwards" else "resumed after a pause"
        self.log(
            f"detect: stream {message.stream} jumped {jump} in time from {was_us} us to "
            f"[{message.t0_us}, {message.t1_us}) us ({cause}): epoch {epoch} starts now"
        )

    def _shed(self, message: wire.Message) -> None:
        """Skip a data message that waited longer than :attr:`_shed_after_ms` to be read: the node cannot
        even bin its input as fast as it arrives (a sensor of millions of events a second); its steps
        would be dropped by the skip policy anyway. Counted in ``stats.shed``, logged at most once a
        second."""
        self.stats.shed += 1
        now = time.monotonic()
        if now - self._last_shed_log > 1.0:
            self._last_shed_log = now
            self.log(
                f"detect: {message.kind}/{message.stream} arrived {self._transit_ms[message.stream]:.0f} ms "
                f"after it was sent: reading the input falls behind; skipped {self.stats.shed} old "
                "message(s) unbinned so far (fewer events per second, a --roi, or a faster CPU)"
            )

    def _reject(self, message: wire.Message, reason: str) -> None:
        """Count a refused message; the first of each kind of refusal per stream is logged with its
        reason, the rest are counted and summed up every :data:`REJECT_SUMMARY_S` seconds."""
        self.stats.rejected += 1
        key = (f"{message.kind}/{message.stream}", reason)
        count = self._rejects.get(key, 0) + 1
        self._rejects[key] = count
        now = time.monotonic()
        if count == 1:
            self.log(f"detect: rejected {key[0]}: {reason} (further ones are counted, not printed)")
            self._last_reject_summary = now
        elif now - self._last_reject_summary > REJECT_SUMMARY_S:
            self._last_reject_summary = now
            self.log(f"detect: rejected {key[0]} {count} times so far: {reason}")

    def _log_new_streams(self) -> None:
        for name, state in self.detector.streams.items():
            if name not in self._announced:
                self._announced.add(name)
                self.log(f"detect: stream {name}: {state.mapping.describe()}")

    def _end(self, message: wire.Message) -> None:
        stream = message.stream
        if stream not in self.detector.streams and stream not in self.sensor_sizes:
            return  # never sent data here: nothing to end or to forward
        self._transit_ms.pop(stream, None)
        self._apply_skip_policy()
        self.drain_stream(stream)
        self.detector.end_stream(stream)
        self._announced.discard(stream)
        sensor_size = self.sensor_sizes.get(stream, tuple(message.sensor_size))
        self.publisher.send(wire.eos_message(stream, "detections", sensor_size))
        self.sensor_sizes.pop(stream, None)
        self._ended.add(stream)

    def _epoch_of(self, stream: str) -> int:
        state = self.detector.streams.get(stream)
        return state.epoch if state is not None else 0

    def drain_stream(self, stream: str) -> None:
        """Simulate everything queued for ``stream`` and publish it (before its end-of-stream)."""
        state = self.detector.streams.get(stream)
        while state is not None and state.queue:
            self._publish(self.detector.process())

    def _publish(self, results: list[WindowDetections]) -> None:
        for result in results:
            message = wire.detections_message(
                result.stream,
                result.rows,
                self.detector.snn.class_names,
                self.sensor_sizes.get(result.stream, self.detector.spec.sensor_size),
                result.t0_us,
                result.t1_us,
                latency_ms=round(result.latency_ms, 3),
                dropped=result.dropped_steps,
                dropped_messages=self.subscriber.stats.dropped_by_topic.get(
                    f"{self.input_kind}/{result.stream}", 0
                ),
                late=result.late_events,
                step=result.step,
                dt_us=self.config.dt_us,
                input_age_ms=round(result.latency_ms + self._transit_ms.get(result.stream, 0.0), 3),
                epoch=self._epoch_of(result.stream),
            )
            self.publisher.send(message)
            self.stats.published += 1
            self.stats.latencies_ms.append(result.latency_ms)

    def poll_once(self, timeout_ms: int = 100) -> bool:
        """One turn of the loop; returns False once every stream has ended (with ``exit_on_eos``)."""
        message = self.subscriber.receive(timeout_ms=timeout_ms if not self.detector.backlog_steps() else 0)
        drain_until = time.monotonic() + MAX_DRAIN_S
        for _ in range(MAX_DRAIN_MESSAGES):
            if message is None:
                break
            self._accept(message, time.monotonic())
            if time.monotonic() > drain_until:
                message = None
                break
            message = self.subscriber.receive(timeout_ms=0)
        if message is not None:
            self._accept(message, time.monotonic())
        self._log_new_streams()
        self._apply_skip_policy()
        self._publish(self.detector.process(max_steps=self.config.max_chunk_steps))
        self.stats.simulated_steps = self.detector.simulated_steps
        self.stats.busy_s = self.detector.busy_s
        if self.exit_on_eos and self._ended and not self.detector.streams:
            return False
        return True

    def _apply_skip_policy(self) -> None:
        self.detector.drop_backlog()
        dropped = self.detector.dropped_steps - self.stats.dropped_steps
        if dropped:
            self.stats.dropped_steps = self.detector.dropped_steps
            now = time.monotonic()
            if now - self._last_behind_log > 1.0:
                self.log(
                    f"detect: falling behind: input arrives faster than the network simulates; dropped the "
                    f"oldest {dropped} step(s) beyond the backlog of {self.config.max_backlog_steps} "
                    f"(total dropped {self.detector.dropped_steps})"
                )
                self._last_behind_log = now

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> NodeStats:
        """Loop until ``should_stop()`` (or every stream ended, with ``exit_on_eos``)."""
        while not should_stop() and self.poll_once():
            pass
        return self.stats
