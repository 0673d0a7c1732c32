"""Event containers and binning.

Events are numpy structured arrays of ``EVENT_DTYPE`` (tonic's ``events_struct``): ``x``, ``y`` in
pixels, ``t`` in microseconds, ``p`` polarity (True = ON, False = OFF). Spike-camera output is a boolean
array of spike frames ``[N, H, W]``.

The detector sees a window of fixed duration (``window_us``) as one input:
- ``events`` modality, 2 channels: ``x[c, y, x] = min(count_c(y, x) / event_scale, 1)`` where
  ``count_0`` counts OFF and ``count_1`` counts ON events in the window;
- ``intensity`` modality, 1 channel: the fraction of spike frames in the window in which the pixel fired.
Both inputs are linear in the counts (up to the clip), so the same window spread over ``T`` time steps
gives per-step inputs whose mean is the window's input.
"""

from __future__ import annotations

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
"""tonic's ``events_struct``: x, y (pixels), t (microseconds), p (False = OFF, True = ON)."""

DEFAULT_WINDOW_US = 50_000
"""Duration of one detector input window, microseconds."""


def empty_events() -> np.ndarray:
    """A zero-length event array of ``EVENT_DTYPE``."""
    return np.zeros(0, dtype=EVENT_DTYPE)


def as_events(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as ``EVENT_DTYPE``, fields x, y, t, p copied by name; ValueError if one is missing."""
    fields = array.dtype.names or ()
    missing = [name for name in EVENT_DTYPE.names if name not in fields]
    if missing:
        raise ValueError(f"event array lacks field(s) {missing}; has {array.dtype}")
    if array.dtype == EVENT_DTYPE:
        return array
    out = np.empty(len(array), dtype=EVENT_DTYPE)
    for name in EVENT_DTYPE.names:
        out[name] = array[name]
    return out


def events_to_counts(events: np.ndarray, sensor_size: tuple[int, int]) -> np.ndarray:
    """Per-pixel OFF/ON event counts.

    ``counts[c, y, x] = #{events e : e.p == c, e.x == x, e.y == y}``.

    Args:
        events: ``EVENT_DTYPE`` array; events outside the sensor are ignored.
        sensor_size: ``(width, height)`` in pixels.

    Returns:
        float32 array ``[2, H, W]``; channel 0 is OFF, channel 1 is ON.
    """
    width, height = sensor_size
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = (events["p"] > 0).astype(np.int64)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    flat = (p[inside] * height + y[inside]) * width + x[inside]
    counts = np.bincount(flat, minlength=2 * height * width)
    return counts.reshape(2, height, width).astype(np.float32)


def events_to_input(events: np.ndarray, sensor_size: tuple[int, int], event_scale: float) -> np.ndarray:
    """The ``events`` modality input of one window: ``min(counts / event_scale, 1)``, float32 ``[2, H, W]``.

    ``event_scale`` is the count per pixel and polarity that maps to input 1.0.
    """
    return np.minimum(events_to_counts(events, sensor_size) / float(event_scale), 1.0)


def spike_frames_to_input(frames: np.ndarray) -> np.ndarray:
    """The ``intensity`` modality input of one window: per-pixel firing rate, float32 ``[1, H, W]`` in [0, 1].

    Args:
        frames: boolean spike frames ``[N, H, W]`` (N >= 1) covering the window.
    """
    if frames.ndim != 3 or len(frames) == 0:
        raise ValueError(f"expected spike frames [N, H, W] with N >= 1, got shape {frames.shape}")
    return frames.mean(axis=0, dtype=np.float32)[None]
