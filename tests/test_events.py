"""Event containers and window inputs: counts per polarity and pixel, linear scaling, spike rates."""

from __future__ import annotations

import numpy as np
import pytest

from streamdet.events import (
    EVENT_DTYPE,
    as_events,
    events_to_counts,
    events_to_input,
    spike_frames_to_input,
)


def _events(rows: list[tuple[int, int, int, bool]]) -> np.ndarray:
    return np.array(rows, dtype=EVENT_DTYPE)


def test_event_dtype_is_tonics_events_struct() -> None:
    tonic_io = pytest.importorskip("tonic.io")
    assert EVENT_DTYPE == np.dtype(tonic_io.events_struct)


def test_counts_per_polarity_and_pixel_ignore_events_outside_the_sensor() -> None:
    events = _events([(0, 0, 1, True), (0, 0, 2, True), (3, 1, 3, False), (4, 1, 4, True), (0, 2, 5, True)])
    counts = events_to_counts(events, sensor_size=(4, 2))
    assert counts.shape == (2, 2, 4) and counts.dtype == np.float32
    assert counts[1, 0, 0] == 2 and counts[0, 1, 3] == 1
    assert counts.sum() == 3


def test_events_input_is_linear_in_counts_up_to_the_clip() -> None:
    events = _events([(1, 1, t, True) for t in range(3)] + [(2, 0, 9, False)] * 10)
    x = events_to_input(events, sensor_size=(3, 2), event_scale=4.0)
    assert x[1, 1, 1] == pytest.approx(0.75)
    assert x[0, 0, 2] == 1.0
    assert x.max() <= 1.0


def test_spike_rate_is_the_fraction_of_frames_that_fired() -> None:
    frames = np.zeros((4, 2, 3), dtype=bool)
    frames[:3, 1, 2] = True
    rate = spike_frames_to_input(frames)
    assert rate.shape == (1, 2, 3) and rate[0, 1, 2] == pytest.approx(0.75)
    assert rate.sum() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="spike frames"):
        spike_frames_to_input(np.zeros((0, 2, 3), dtype=bool))


def test_as_events_copies_fields_by_name_and_names_what_is_missing() -> None:
    other = np.zeros(2, dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "<i4")])
    other["x"] = [5, 6]
    assert as_events(other)["x"].tolist() == [5, 6] and as_events(other).dtype == EVENT_DTYPE
    with pytest.raises(ValueError, match=r"\['p'\]"):
        as_events(np.zeros(1, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8")]))
