"""Event containers.

Events are numpy structured arrays of ``EVENT_DTYPE`` (tonic's ``events_struct``): ``x``, ``y`` in
pixels, ``t`` in microseconds, ``p`` polarity (True = ON, False = OFF). Spike-camera output is a boolean
array of spike frames ``[N, H, W]``.

How events and spike frames become network inputs is ``streamdet.binning``'s.
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
