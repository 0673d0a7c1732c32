"""Every event/spike-to-tensor binning, and the mapping of a sensor onto the network input.

One module serves the dataset, training samples, evaluation, fidelity and the streaming node alike.

Window inputs (the ANN's):
- ``events``: ``x[c, y, x] = min(count_c(y, x) / event_scale, 1)``, ``count_0`` OFF, ``count_1`` ON events
  in the window (:func:`events_to_input`);
- ``intensity``: the fraction of the window's spike frames in which the pixel fired
  (:func:`spike_frames_to_input`).
Both are linear in the counts up to the clip, so a window spread over ``T`` steps gives per-step inputs
whose mean is the window's input (:func:`step_inputs_scale`).

Sensor geometry (``streamdet.contract.Geometry``): a :class:`SensorMapping` takes a region of the
sensor to an input of ``input_size`` pixels with one scale ``s <= 1``: the event at sensor pixel
``(x, y)`` lands in input pixel ``(floor((x - rx) s), floor((y - ry) s))`` with weight
``1 / (n_x n_y)``, ``n_x`` and ``n_y`` the numbers of sensor columns and rows that land in that input
pixel's column and row (:meth:`SensorMapping.pixel_weights`), so an input pixel holds the mean count of
the sensor pixels it covers (linear in the counts, as the conversion needs; exactly the sensor's own
counts when ``s = 1``). Where ``1 / s`` is not an integer the input pixels cover 1 or 2 (``s = 0.54``)
or 3 or 4 (``s = 0.27``) sensor pixels per axis; a constant weight ``s^2`` would paint that pattern
onto the input as a grid. Spike rates are pooled the same way. Boxes go back with ``x = x_in / s + rx``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from streamdet.contract import BoxFilter, Geometry, InputSpec
from streamdet.errors import UserFacingError

# --------------------------------------------------------------------------------------------------
# sensor -> network input


@dataclass(frozen=True)
class SensorMapping:
    """A stream's sensor region mapped onto the network input.

    Attributes:
        sensor_size: ``(width, height)`` of the stream's sensor, pixels.
        region: ``(x, y, width, height)`` of the sensor region used.
        scale: ``s``, input pixels per sensor pixel on both axes (``<= 1``).
        input_size: ``(width, height)`` of the network input for this stream (before padding to the
            network's stride); the scaled region lies in its top-left corner, the rest is zeros.
        mode: the ``Geometry`` mode it was resolved from.
    """

    sensor_size: tuple[int, int]
    region: tuple[int, int, int, int]
    scale: float
    input_size: tuple[int, int]
    mode: str = "scale"

    @functools.cached_property
    def pixel_weights(self) -> np.ndarray | None:
        """Weight of one event (or one pixel's rate) in each input pixel, float32 ``[H_in, W_in]``:
        ``1 / (n_x n_y)`` with ``n_x``, ``n_y`` the region's sensor columns and rows landing in the pixel's
        column and row (0 where none land: the padding); ``None`` when ``s = 1`` (every weight 1)."""
        if self.scale == 1.0:
            return None
        _, _, region_width, region_height = self.region
        width, height = self.input_size
        columns = np.bincount(_axis_index(np.arange(region_width), 0, self.scale, width), minlength=width)
        rows = np.bincount(_axis_index(np.arange(region_height), 0, self.scale, height), minlength=height)
        covered = np.outer(rows, columns).astype(np.float32)
        return np.divide(1.0, covered, out=np.zeros_like(covered), where=covered > 0)

    @property
    def is_identity(self) -> bool:
        """True when input pixels are the sensor's own pixels (the whole sensor, scale 1)."""
        return (
            self.scale == 1.0
            and self.region == (0, 0, *self.sensor_size)
            and tuple(self.input_size) == tuple(self.sensor_size)
        )

    def describe(self) -> str:
        """One line for logs: ``1280x720 -> scale 0.27 to 346x260 (region 0,0,1280x720)``."""
        x, y, width, height = self.region
        return (
            f"{self.sensor_size[0]}x{self.sensor_size[1]} -> {self.mode} {self.scale:.3g} to "
            f"{self.input_size[0]}x{self.input_size[1]} (region {x},{y},{width}x{height})"
        )


def identity_mapping(sensor_size: tuple[int, int]) -> SensorMapping:
    """The mapping of a sensor onto an input of its own size."""
    width, height = (int(v) for v in sensor_size)
    return SensorMapping((width, height), (0, 0, width, height), 1.0, (width, height), "scale")


def sensor_mapping(sensor_size: tuple[int, int], spec: InputSpec, geometry: Geometry) -> SensorMapping:
    """Resolve ``geometry`` for a stream of ``sensor_size`` and a network trained at ``spec.sensor_size``.

    UserFacingError, with what to pass instead, for a region outside the sensor or a ``crop`` region
    larger than the network input.
    """
    width, height = (int(v) for v in sensor_size)
    net_width, net_height = spec.sensor_size
    if geometry.roi is not None:
        region = geometry.roi
    elif geometry.mode == "crop":
        crop_width, crop_height = min(width, net_width), min(height, net_height)
        region = ((width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height)
    else:
        region = (0, 0, width, height)
    x, y, region_width, region_height = region
    if x + region_width > width or y + region_height > height:
        raise UserFacingError(
            f"--roi {x},{y},{region_width},{region_height} reaches outside the {width}x{height} sensor; "
            f"pass a region inside it"
        )
    if geometry.mode == "native" or (geometry.mode == "auto" and _native_costs_no_more(region, spec)):
        return SensorMapping((width, height), region, 1.0, (region_width, region_height), "native")
    if geometry.mode == "crop":
        if region_width > net_width or region_height > net_height:
            raise UserFacingError(
                f"crop region {region_width}x{region_height} of the {width}x{height} sensor is larger than "
                f"the network input {net_width}x{net_height}; pass --geometry scale, --geometry native, "
                f"or a --roi of at most {net_width}x{net_height}"
            )
        return SensorMapping((width, height), region, 1.0, (net_width, net_height), "crop")
    scale = min(1.0, net_width / region_width, net_height / region_height)
    return SensorMapping((width, height), region, scale, (net_width, net_height), "scale")


def _native_costs_no_more(region: tuple[int, int, int, int], spec: InputSpec) -> bool:
    """Whether a network run at ``region``'s size has no more padded input pixels than at its trained size."""
    from streamdet.model import padded_length

    _, _, width, height = region
    trained = padded_length(spec.sensor_size[0]) * padded_length(spec.sensor_size[1])
    return padded_length(width) * padded_length(height) <= trained


def _axis_index(position: np.ndarray, offset: int, scale: float, length: int) -> np.ndarray:
    """Input pixel along one axis of each sensor ``position``: ``floor((position - offset) scale)``, the
    last of the ``length`` input pixels also taking any beyond it."""
    shifted = position.astype(np.int64) - offset
    if scale != 1.0:
        shifted = np.floor(shifted * scale).astype(np.int64)
    return np.minimum(shifted, length - 1)


def map_events(events: np.ndarray, mapping: SensorMapping) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input pixel of each event inside the region: ``(index, x_in, y_in)`` with ``index`` the positions
    of those events in ``events`` (events outside the region, or outside the sensor, are left out)."""
    x0, y0, region_width, region_height = mapping.region
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    inside = (x >= x0) & (x < x0 + region_width) & (y >= y0) & (y < y0 + region_height)
    index = np.flatnonzero(inside)
    width, height = mapping.input_size
    x_in = _axis_index(x[index], x0, mapping.scale, width)
    y_in = _axis_index(y[index], y0, mapping.scale, height)
    return index, x_in, y_in


def event_indices(events: np.ndarray, dt_us: int, mapping: SensorMapping) -> tuple[np.ndarray, np.ndarray]:
    """``(step, flat)`` of every event that lands in the input: its step ``floor(t / dt_us)`` and its flat
    index ``(p * H_in + y_in) * W_in + x_in`` in one step's ``[2, H_in, W_in]`` counts (int64 both;
    events outside the region or the sensor are left out)."""
    width, height = mapping.input_size
    index, x_in, y_in = map_events(events, mapping)
    polarity = (events["p"][index] > 0).astype(np.int64)
    step = events["t"][index] // dt_us
    return step, (polarity * height + y_in) * width + x_in


def count_indices(
    flat: np.ndarray | list[np.ndarray], weights: np.ndarray | None, out: np.ndarray
) -> np.ndarray:
    """Event counts from flat indices (:func:`event_indices`; one array or a list of them) written into
    ``out`` (float32, ``[..., H_in, W_in]``, indexed flat): ``out.flat[i] = w(i) #{events with index i}``,
    ``w`` the mapping's :attr:`SensorMapping.pixel_weights` (``None``: 1). Returns ``out``."""
    if isinstance(flat, list):
        flat = flat[0] if len(flat) == 1 else np.concatenate(flat)
    counts = np.bincount(flat, minlength=out.size).reshape(out.shape)
    if weights is None:
        out[...] = counts
    else:
        np.multiply(counts, weights, out=out, casting="same_kind")
    return out


def events_to_counts(
    events: np.ndarray, sensor_size: tuple[int, int], mapping: SensorMapping | None = None
) -> np.ndarray:
    """Per-pixel OFF/ON event counts of the input.

    ``counts[c, y, x] = w(x, y) #{e : e.p = c, e lands in input pixel (x, y)}`` (module docstring); with no
    mapping, the sensor's own pixels (``s = 1``).

    Args:
        events: ``EVENT_DTYPE`` array (``p`` True = ON); events outside the sensor are ignored.
        sensor_size: ``(width, height)`` of the sensor, pixels.
        mapping: sensor -> input mapping, default :func:`identity_mapping`.

    Returns:
        float32 ``[2, H_in, W_in]``; channel 0 is OFF, channel 1 is ON.
    """
    return events_to_step_counts(events, sensor_size, 1, 0, 1, mapping, all_times=True)[0]


def events_to_input(
    events: np.ndarray, sensor_size: tuple[int, int], event_scale: float, mapping: SensorMapping | None = None
) -> np.ndarray:
    """The ``events`` modality input of one window: ``min(counts / event_scale, 1)``, float32 ``[2, H, W]``.

    ``event_scale`` is the count per pixel and polarity that maps to input 1.0.
    """
    return np.minimum(events_to_counts(events, sensor_size, mapping) / float(event_scale), 1.0)


def events_to_step_counts(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    dt_us: int,
    first_step: int,
    steps: int,
    mapping: SensorMapping | None = None,
    all_times: bool = False,
) -> np.ndarray:
    """Per-step OFF/ON event counts of the input.

    ``counts[k, c, y, x] = w(x, y) #{e : floor(e.t / dt_us) = first_step + k, e.p = c, e lands in (x, y)}``,
    ``w`` the mapping's :attr:`SensorMapping.pixel_weights`.

    Args:
        events: ``EVENT_DTYPE`` array; events outside the region or outside the ``steps`` steps are ignored.
        sensor_size: ``(width, height)`` of the sensor.
        dt_us: step duration, microseconds.
        first_step: index of the first step.
        steps: ``K``, number of steps.
        mapping: sensor -> input mapping, default :func:`identity_mapping`.
        all_times: put every event in step 0 whatever its time (one window).

    Returns:
        float32 ``[K, 2, H_in, W_in]``.
    """
    mapping = mapping or identity_mapping(sensor_size)
    width, height = mapping.input_size
    step, flat = event_indices(events, dt_us, mapping)
    counts = np.zeros((steps, 2, height, width), dtype=np.float32)
    if not all_times:
        step -= first_step
        keep = (step >= 0) & (step < steps)
        if not keep.all():
            step, flat = step[keep], flat[keep]
        flat = step * (2 * height * width) + flat
    return count_indices(flat, mapping.pixel_weights, counts)


def pool_rates(rates: np.ndarray, mapping: SensorMapping) -> np.ndarray:
    """Per-pixel rates (or counts) ``[..., H, W]`` of the sensor -> ``[..., H_in, W_in]`` of the input, pooled
    like events: input pixel ``(x, y)`` gets the mean over the sensor pixels landing in it."""
    if mapping.is_identity:
        return rates
    x0, y0, region_width, region_height = mapping.region
    region = rates[..., y0 : y0 + region_height, x0 : x0 + region_width]
    width, height = mapping.input_size
    if mapping.scale != 1.0:
        region = _pool_axis(_pool_axis(region, -2, mapping.scale, height), -1, mapping.scale, width)
    out = np.zeros((*rates.shape[:-2], height, width), dtype=np.float32)
    out[..., : region.shape[-2], : region.shape[-1]] = region[..., :height, :width]
    if mapping.pixel_weights is not None:
        out *= mapping.pixel_weights
    return out


def _pool_axis(values: np.ndarray, axis: int, scale: float, length: int) -> np.ndarray:
    """Sums of ``values`` along ``axis`` over the positions landing in each of at most ``length`` input
    pixels (the last one also takes any beyond it, as :func:`map_events` does)."""
    target = _axis_index(np.arange(values.shape[axis]), 0, scale, length)
    starts = np.searchsorted(target, np.arange(int(target[-1]) + 1), side="left")
    return np.add.reduceat(values.astype(np.float32), starts, axis=axis)


def frames_to_step_rates(
    frames: np.ndarray, frame_times_us: np.ndarray, dt_us: int, first_step: int, steps: int
) -> np.ndarray:
    """Per-step spike rates of the sensor: ``rate[k, 0] = mean of the frames with floor(t / dt_us) =
    first_step + k`` (zeros for a step without frames).

    Args:
        frames: boolean spike frames ``[N, H, W]``.
        frame_times_us: time stamp of each frame ``[N]``, microseconds, non-decreasing.
        dt_us, first_step, steps: as in :func:`events_to_step_counts`.

    Returns:
        float32 ``[K, 1, H, W]`` (the sensor's pixels; :func:`pool_rates` maps them to the input).
    """
    height, width = frames.shape[1:]
    rates = np.zeros((steps, 1, height, width), dtype=np.float32)
    step_of_frame = np.asarray(frame_times_us, dtype=np.int64) // dt_us - first_step
    bounds = np.searchsorted(step_of_frame, np.arange(steps + 1), side="left")
    for k in range(steps):
        if bounds[k + 1] > bounds[k]:
            rates[k, 0] = frames[bounds[k] : bounds[k + 1]].mean(axis=0, dtype=np.float32)
    return rates


def spike_frames_to_input(frames: np.ndarray, mapping: SensorMapping | None = None) -> np.ndarray:
    """The ``intensity`` modality input of one window: per-pixel firing rate, float32 ``[1, H, W]`` in [0, 1].

    Args:
        frames: boolean spike frames ``[N, H, W]`` (N >= 1) covering the window.
        mapping: sensor -> input mapping (:func:`pool_rates`), default the sensor's own pixels.
    """
    if frames.ndim != 3 or len(frames) == 0:
        raise ValueError(f"expected spike frames [N, H, W] with N >= 1, got shape {frames.shape}")
    rate = frames.mean(axis=0, dtype=np.float32)[None]
    return rate if mapping is None else pool_rates(rate, mapping)


def raw_to_input(raw: torch.Tensor, modality: str, event_scale: float) -> torch.Tensor:
    """The model input from a raw window measurement: ``min(counts / event_scale, 1)`` (events) or the
    rate clipped to [0, 1] (intensity). Shapes ``[..., C, H, W]`` in, same out."""
    if modality == "events":
        return torch.clamp(raw / float(event_scale), 0.0, 1.0)
    return torch.clamp(raw, 0.0, 1.0)


def step_inputs(
    values: torch.Tensor, spec: InputSpec, steps_per_window: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-step network input from per-step measurements ``values [K, C, H, W]`` (counts or rates):
    ``events``: ``x_k = min(count_k * T / event_scale, 1)``, so the mean over the ``T`` steps of a window
    is the ANN input whenever a pixel's events spread evenly over it; ``intensity``: the rate as it is.
    With ``out`` (a tensor or view of ``values``' shape) the input is written there and returned."""
    if spec.modality == "events":
        if out is None:
            return torch.clamp(values * (steps_per_window / spec.event_scale), max=1.0)
        return torch.mul(values, steps_per_window / spec.event_scale, out=out).clamp_(max=1.0)
    return values if out is None else out.copy_(values)


# --------------------------------------------------------------------------------------------------
# network boxes -> sensor boxes


def boxes_to_sensor(rows: np.ndarray, mapping: SensorMapping) -> np.ndarray:
    """Rows ``x1, y1, x2, y2, score, class`` in input pixels -> the sensor's own pixels
    (``x = x_in / s + rx``), clipped to the region."""
    if mapping.is_identity or len(rows) == 0:
        return rows
    out = rows.copy()
    x0, y0, region_width, region_height = mapping.region
    out[:, [0, 2]] = np.clip(rows[:, [0, 2]] / mapping.scale + x0, x0, x0 + region_width)
    out[:, [1, 3]] = np.clip(rows[:, [1, 3]] / mapping.scale + y0, y0, y0 + region_height)
    return out


def filter_boxes(
    rows: np.ndarray, class_names: tuple[str, ...], sensor_size: tuple[int, int], box_filter: BoxFilter
) -> np.ndarray:
    """What a subscriber gets of decoded rows (sorted by decreasing score): rows clipped to the sensor,
    without a box of no area, scoring at least ``min_score``, of the ``classes`` kept, at most
    ``max_boxes`` of them."""
    if len(rows) == 0:
        return rows
    width, height = sensor_size
    out = rows.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1]) & (out[:, 4] >= box_filter.min_score)
    if box_filter.classes is not None:
        wanted = [class_names.index(name) for name in box_filter.classes if name in class_names]
        keep &= np.isin(out[:, 5].astype(np.int64), wanted)
    return out[keep][: box_filter.max_boxes]


def check_sensor_size(sensor_size: tuple[int, int], source: object) -> tuple[int, int]:
    """``(width, height)`` as ints; UserFacingError naming ``source`` for a size below 1 pixel."""
    width, height = (int(v) for v in sensor_size)
    if width < 1 or height < 1:
        raise UserFacingError(f"{source}: sensor size {width}x{height} is not a sensor")
    return width, height
