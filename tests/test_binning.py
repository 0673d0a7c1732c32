"""Binning and sensor geometry: counts per polarity and pixel, linear scaling, spike rates; every sensor
size the detector is used with brought to the network by scale, crop and native, boxes back in the
sensor's pixels; what subscribers get."""

from __future__ import annotations

import numpy as np
import pytest

from streamdet.binning import (
    boxes_to_sensor,
    events_to_counts,
    events_to_input,
    events_to_step_counts,
    filter_boxes,
    map_events,
    pool_rates,
    sensor_mapping,
    spike_frames_to_input,
)
from streamdet.contract import BoxFilter, Geometry, InputSpec
from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE

SENSORS = {
    "DAVIS346": (346, 260),
    "Prophesee Gen1": (304, 240),
    "Prophesee Gen3 VGA": (640, 480),
    "Prophesee Gen4 / IMX636": (1280, 720),
    "Vidar spike camera": (400, 250),
}
"""The sensors people own (docs/streaming.md, "Sensor geometry")."""

EVENTS_SPEC = InputSpec("events", (346, 260), 100_000, 4.0)


def _events(rows: list[tuple[int, int, int, bool]]) -> np.ndarray:
    return np.array(rows, dtype=EVENT_DTYPE)


def _random_events(sensor: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = np.zeros(count, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, sensor[0], count)
    events["y"] = rng.integers(0, sensor[1], count)
    events["t"] = np.sort(rng.integers(0, 100_000, count))
    events["p"] = rng.integers(0, 2, count).astype(bool)
    return events


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


def test_step_counts_put_each_event_in_its_step() -> None:
    events = _events([(1, 0, 5, True), (1, 0, 15, True), (2, 1, 25, False), (2, 1, 35, False)])
    counts = events_to_step_counts(events, (3, 2), 10, first_step=1, steps=2)
    assert counts.shape == (2, 2, 2, 3)
    assert counts[0, 1, 0, 1] == 1 and counts[1, 0, 1, 2] == 1 and counts.sum() == 2


@pytest.mark.parametrize("name", SENSORS)
@pytest.mark.parametrize("mode", ["scale", "crop", "native"])
def test_every_sensor_in_every_mode_keeps_the_count_mean_and_maps_boxes_back_inside(
    name: str, mode: str
) -> None:
    sensor = SENSORS[name]
    mapping = sensor_mapping(sensor, EVENTS_SPEC, Geometry(mode))
    width, height = mapping.input_size
    x0, y0, region_width, region_height = mapping.region
    if mode == "native":
        assert (width, height) == sensor and mapping.scale == 1.0
    else:
        assert (width, height) == EVENTS_SPEC.sensor_size
    if mode == "scale":
        # aspect ratio kept: one scale on both axes, the region fills the input on one axis at least
        assert mapping.scale <= 1.0 and mapping.region == (0, 0, *sensor)
        filled = (round(sensor[0] * mapping.scale), round(sensor[1] * mapping.scale))
        assert filled[0] == min(sensor[0], width) or filled[1] == min(sensor[1], height)
    if mode == "crop":
        assert mapping.scale == 1.0 and region_width <= width and region_height <= height
    events = _random_events(sensor, 50_000)
    counts = events_to_counts(events, sensor, mapping)
    assert counts.shape == (2, height, width)
    inside = (
        (events["x"] >= x0)
        & (events["x"] < x0 + region_width)
        & (events["y"] >= y0)
        & (events["y"] < y0 + region_height)
    )
    # linear pooling: each event adds 1 / (pixels its input pixel covers), the mean count of those pixels
    if mapping.pixel_weights is None:
        assert counts.sum() == pytest.approx(np.count_nonzero(inside), rel=1e-5)
    else:
        _, x_in, y_in = map_events(events, mapping)
        expected = mapping.pixel_weights[y_in, x_in].sum()
        assert counts.sum() == pytest.approx(expected, rel=1e-5)
        assert expected == pytest.approx(np.count_nonzero(inside) * mapping.scale**2, rel=0.1)
    rows = np.array([[0.0, 0.0, width, height, 0.9, 0], [10, 10, 40, 30, 0.8, 1]], dtype=np.float32)
    back = boxes_to_sensor(rows, mapping)
    assert (back[:, [0, 2]] >= 0).all() and (back[:, [0, 2]] <= sensor[0]).all()
    assert (back[:, [1, 3]] >= 0).all() and (back[:, [1, 3]] <= sensor[1]).all()
    np.testing.assert_allclose(
        back[1, :4],
        [10 / mapping.scale + x0, 10 / mapping.scale + y0, 40 / mapping.scale + x0, 30 / mapping.scale + y0],
        rtol=1e-5,
    )


def test_the_models_own_sensor_is_the_identity_in_every_mode() -> None:
    events = _random_events((346, 260), 5000)
    plain = events_to_counts(events, (346, 260))
    for mode in ("scale", "crop", "native"):
        mapping = sensor_mapping((346, 260), EVENTS_SPEC, Geometry(mode))
        assert mapping.is_identity
        np.testing.assert_array_equal(events_to_counts(events, (346, 260), mapping), plain)


@pytest.mark.parametrize("sensor", [(692, 520), (640, 480), (1280, 720), (400, 250)])
def test_scaling_pools_a_uniform_count_into_the_same_uniform_count(sensor) -> None:
    """One event per sensor pixel gives one event per covered input pixel and zero in the padding, at a
    scale of 1/2 and at scales whose inverse is no integer (VGA 0.54, 1280x720 0.27, 0.865), where a
    constant weight s^2 left a grid of rows and columns covering fewer sensor pixels; the same for
    spike rates."""
    ys, xs = np.mgrid[0 : sensor[1], 0 : sensor[0]]
    events = np.zeros(xs.size, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"] = xs.ravel(), ys.ravel(), True
    mapping = sensor_mapping(sensor, EVENTS_SPEC, Geometry("scale"))
    assert mapping.scale < 1.0
    width, height = mapping.input_size
    filled_w = min(width, int(np.floor((sensor[0] - 1) * mapping.scale)) + 1)  # the last column's index + 1
    filled_h = min(height, int(np.floor((sensor[1] - 1) * mapping.scale)) + 1)
    expected = np.zeros((height, width), np.float32)
    expected[:filled_h, :filled_w] = 1.0
    counts = events_to_counts(events, sensor, mapping)
    np.testing.assert_allclose(counts[1], expected, atol=1e-6)
    np.testing.assert_allclose(counts[0], 0.0)
    rates = pool_rates(np.full((1, sensor[1], sensor[0]), 0.3, np.float32), mapping)
    np.testing.assert_allclose(rates[0], 0.3 * expected, atol=1e-6)


def test_spike_frames_are_pooled_like_events() -> None:
    spec = InputSpec("intensity", (346, 260), 50_000)
    rng = np.random.default_rng(1)
    frames = rng.random((8, 250, 400)) < 0.3
    mapping = sensor_mapping((400, 250), spec, Geometry("scale"))
    rate = spike_frames_to_input(frames, mapping)
    assert rate.shape == (1, 260, 346)
    # each input pixel holds the mean rate of the sensor pixels it covers
    _, _, region_width, region_height = mapping.region
    ys, xs = np.mgrid[0:region_height, 0:region_width]
    x_in = np.minimum(np.floor(xs * mapping.scale).astype(int), 345)
    y_in = np.minimum(np.floor(ys * mapping.scale).astype(int), 259)
    sums = np.zeros((260, 346))
    np.add.at(sums, (y_in, x_in), frames.mean(axis=0))
    covered = np.zeros((260, 346))
    np.add.at(covered, (y_in, x_in), 1.0)
    means = np.divide(sums, covered, out=np.zeros_like(sums), where=covered > 0)
    np.testing.assert_allclose(rate[0], means, atol=1e-5)


def test_region_of_interest_and_clear_errors() -> None:
    mapping = sensor_mapping((1280, 720), EVENTS_SPEC, Geometry("crop", roi=(400, 200, 346, 260)))
    assert mapping.region == (400, 200, 346, 260) and mapping.scale == 1.0
    events = _events([(400, 200, 0, True), (399, 200, 0, True), (745, 459, 0, False)])
    counts = events_to_counts(events, (1280, 720), mapping)
    assert counts[1, 0, 0] == 1 and counts[0, 259, 345] == 1 and counts.sum() == 2
    scaled = sensor_mapping((1280, 720), EVENTS_SPEC, Geometry("scale", roi=(0, 0, 692, 520)))
    assert scaled.scale == 0.5
    with pytest.raises(UserFacingError, match="reaches outside the 640x480 sensor"):
        sensor_mapping((640, 480), EVENTS_SPEC, Geometry("scale", roi=(600, 0, 100, 100)))
    with pytest.raises(UserFacingError, match="pass --geometry scale"):
        sensor_mapping((1280, 720), EVENTS_SPEC, Geometry("crop", roi=(0, 0, 640, 480)))
    with pytest.raises(UserFacingError, match="geometry must be one of"):
        Geometry("stretch")


def test_subscribers_get_scored_boxes_inside_the_sensor_with_area_at_most_max_boxes() -> None:
    names = ("boat", "buoy", "car", "pedestrian")
    rows = np.array(
        [
            [10, 10, 50, 40, 0.9, 2],
            [5, 5, 5, 30, 0.8, 2],  # no width
            [600, 10, 700, 40, 0.7, 3],  # partly outside a 640-wide sensor: clipped
            [650, 10, 700, 40, 0.7, 3],  # wholly outside: no area once clipped
            [10, 10, 30, 30, 0.6, 0],
            [10, 10, 30, 30, 0.1, 2],  # below the score
        ],
        dtype=np.float32,
    )
    out = filter_boxes(rows, names, (640, 480), BoxFilter(min_score=0.3, max_boxes=10))
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.7, 0.6]) and out[1, 2] == 640
    traffic = filter_boxes(rows, names, (640, 480), BoxFilter(min_score=0.3, classes=("car", "pedestrian")))
    assert set(traffic[:, 5].tolist()) == {2.0, 3.0}
    assert len(filter_boxes(rows, names, (640, 480), BoxFilter(min_score=0.0, max_boxes=2))) == 2
    with pytest.raises(UserFacingError, match="not a class of the model"):
        BoxFilter(classes=("bicycle",)).check_classes(names)


def test_auto_runs_natively_where_that_costs_no_more_than_the_trained_size() -> None:
    chosen = {name: sensor_mapping(size, EVENTS_SPEC, Geometry("auto")) for name, size in SENSORS.items()}
    assert chosen["Prophesee Gen1"].mode == "native" and chosen["Prophesee Gen1"].input_size == (304, 240)
    assert chosen["DAVIS346"].is_identity
    for name in ("Prophesee Gen3 VGA", "Prophesee Gen4 / IMX636", "Vidar spike camera"):
        assert chosen[name].mode == "scale" and chosen[name].input_size == (346, 260), name
