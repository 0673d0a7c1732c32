"""Event containers: tonic's dtype, conversion by field name."""

from __future__ import annotations

import numpy as np
import pytest

from streamdet.events import EVENT_DTYPE, as_events


def _events(rows: list[tuple[int, int, int, bool]]) -> np.ndarray:
    return np.array(rows, dtype=EVENT_DTYPE)


def test_event_dtype_is_tonics_events_struct() -> None:
    tonic_io = pytest.importorskip("tonic.io")
    assert EVENT_DTYPE == np.dtype(tonic_io.events_struct)


def test_as_events_copies_fields_by_name_and_names_what_is_missing() -> None:
    other = np.zeros(2, dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "<i4")])
    other["x"] = [5, 6]
    assert as_events(other)["x"].tolist() == [5, 6] and as_events(other).dtype == EVENT_DTYPE
    with pytest.raises(ValueError, match=r"\['p'\]"):
        as_events(np.zeros(1, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8")]))
