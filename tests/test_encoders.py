"""Physics of the sensor emulators: noise rates, contrast steps, timing, refractory period, rate codes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from streamdet.encoders import (
    DVSParams,
    SpikeCameraParams,
    emulate_dvs,
    emulate_spike_camera,
    log_intensity,
    output_frame_times,
    output_frames_until,
    poisson_encode,
)
from streamdet.events import EVENT_DTYPE

QUIET = DVSParams(leak_rate_hz=0.0, shot_noise_rate_hz=0.0, cutoff_hz=0.0, refractory_us=0)


def constant_frames(value: float, count: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.full((count, *shape), value, dtype=np.float32)


def frame_times(count: int, period_us: int = 4000) -> np.ndarray:
    return np.arange(count, dtype=np.int64) * period_us


def per_pixel_counts(events: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    counts = np.zeros(shape, dtype=np.int64)
    np.add.at(counts, (events["y"], events["x"]), 1)
    return counts


def test_static_scene_gives_leak_and_shot_noise_at_the_configured_rates():
    intensity = 0.5
    params = DVSParams(leak_rate_hz=0.5, shot_noise_rate_hz=2.0, shot_noise_bright_factor=0.25)
    frames = constant_frames(intensity, 251)
    events, _ = emulate_dvs(frames, frame_times(251), params)
    duration_s = 1.0
    pixels = frames[0].size
    shot_rate = params.shot_noise_rate_hz * (1 + (params.shot_noise_bright_factor - 1) * intensity)
    off_rate = (~events["p"]).sum() / pixels / duration_s
    on_rate = events["p"].sum() / pixels / duration_s
    assert events.dtype == EVENT_DTYPE
    assert off_rate == pytest.approx(shot_rate / 2, rel=0.1)
    assert on_rate == pytest.approx(params.leak_rate_hz + shot_rate / 2, rel=0.1)
    assert np.all(np.diff(events["t"]) >= 0)
    assert events["t"].min() > 0 and events["t"].max() <= 1_000_000


def test_static_scene_without_noise_gives_no_events():
    params = DVSParams(leak_rate_hz=0, shot_noise_rate_hz=0)
    events, _ = emulate_dvs(constant_frames(0.5, 100), frame_times(100), params)
    assert len(events) == 0


@pytest.mark.parametrize("cutoff_hz", [0.0, 300.0])
def test_brightness_step_gives_step_over_threshold_on_events_per_pixel(cutoff_hz):
    params = dataclasses.replace(QUIET, cutoff_hz=cutoff_hz)
    step_log_units = 1.0
    low = 0.2
    high = (low + params.log_eps) * np.exp(step_log_units) - params.log_eps
    frames = np.concatenate([constant_frames(low, 5), constant_frames(high, 60)])
    events, state = emulate_dvs(frames, frame_times(len(frames)), params)
    on_per_pixel = per_pixel_counts(events[events["p"]], frames.shape[1:])
    expected = np.mean(step_log_units / state.pos_thresholds)
    assert (~events["p"]).sum() == 0
    assert on_per_pixel.mean() == pytest.approx(expected, rel=0.05)
    assert on_per_pixel.max() <= np.ceil(step_log_units / state.pos_thresholds.min())

    # Back down: the memorised level sits r in [0, theta_on) below the log intensity after the ON
    # events, so the first OFF event needs a fall of r + theta_off: one event fewer on average.
    back_times = frame_times(60) + state.last_time_us + 4000
    off_events, _ = emulate_dvs(constant_frames(low, 60), back_times, params, state)
    off_per_pixel = per_pixel_counts(off_events, frames.shape[1:])
    assert off_events["p"].sum() == 0
    assert off_per_pixel.mean() == pytest.approx(np.mean(step_log_units / state.neg_thresholds) - 1, abs=0.15)


def test_event_times_are_interpolated_between_frames():
    params = dataclasses.replace(QUIET, threshold_sigma=0.0)
    ramp_log_units = 1.0
    frames = np.stack([np.full((4, 4), 0.3), np.full((4, 4), (0.3 + params.log_eps) * np.e - params.log_eps)])
    events, _ = emulate_dvs(frames.astype(np.float32), np.array([0, 10_000]), params)
    pixel = events[(events["x"] == 1) & (events["y"] == 2)]
    spacing_us = 10_000 * params.pos_threshold / ramp_log_units
    assert len(pixel) in (4, 5)
    assert np.all(np.abs(np.diff(pixel["t"]) - spacing_us) <= 1)
    assert pixel["t"].min() > 0 and pixel["t"].max() <= 10_000
    assert len(np.unique(events["t"])) > 8


def test_refractory_period_drops_crossings_closer_than_it():
    params = dataclasses.replace(QUIET, threshold_sigma=0.0, refractory_us=500)
    high = (0.1 + params.log_eps) * np.exp(2.0) - params.log_eps
    frames = np.stack([np.full((8, 8), 0.1), np.full((8, 8), high), np.full((8, 8), high)]).astype(np.float32)
    events, _ = emulate_dvs(frames, np.array([0, 1000, 2000]), params)
    counts = per_pixel_counts(events, (8, 8))
    assert counts.max() == 2
    for y, x in [(0, 0), (3, 5), (7, 7)]:
        pixel = events[(events["x"] == x) & (events["y"] == y)]
        assert np.all(np.diff(pixel["t"]) >= 500)
    without, _ = emulate_dvs(frames, np.array([0, 1000, 2000]), dataclasses.replace(params, refractory_us=0))
    assert per_pixel_counts(without, (8, 8)).min() >= 9


def moving_bar(count: int, shape: tuple[int, int] = (40, 60)) -> np.ndarray:
    columns = np.arange(shape[1])[None, None, :]
    steps = np.arange(count)[:, None, None]
    bar = np.abs(columns - (10 + 0.7 * steps)) < 6
    return np.broadcast_to(0.15 + 0.6 * bar, (count, *shape)).astype(np.float32)


def test_dvs_fed_in_pieces_equals_one_call_and_seeds_decide():
    frames = moving_bar(60)
    times = frame_times(60, 3000)
    params = DVSParams(shot_noise_rate_hz=20.0, leak_rate_hz=5.0)
    whole, _ = emulate_dvs(frames, times, params)
    state = None
    pieces = []
    for start, stop in [(0, 1), (1, 17), (17, 18), (18, 60)]:
        piece, state = emulate_dvs(frames[start:stop], times[start:stop], params, state)
        pieces.append(piece)
    assert len(whole) > 1000
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    again, _ = emulate_dvs(frames, times, params)
    np.testing.assert_array_equal(again, whole)
    other, _ = emulate_dvs(frames, times, dataclasses.replace(params, seed=1))
    assert len(other) != len(whole) or not np.array_equal(other, whole)


def test_dvs_rejects_bad_time_stamps():
    with pytest.raises(ValueError, match="strictly increasing"):
        emulate_dvs(constant_frames(0.5, 3), np.array([0, 10, 10]), DVSParams())
    _, state = emulate_dvs(constant_frames(0.5, 2), np.array([0, 10]), DVSParams())
    with pytest.raises(ValueError, match="not after"):
        emulate_dvs(constant_frames(0.5, 1), np.array([10]), DVSParams(), state)


def test_log_intensity_is_natural_log_with_offset():
    assert log_intensity(np.array([0.0, 1.0], dtype=np.float32), 0.5) == pytest.approx(np.log([0.5, 1.5]))


def test_spike_camera_rate_is_proportional_to_intensity():
    intensity = np.linspace(0.0, 1.0, 11, dtype=np.float32).reshape(1, 11)
    frames = np.repeat(intensity[None], 3, axis=0)
    params = SpikeCameraParams(rate_hz=20_000.0, max_rate_fraction=0.8)
    spikes, times, _ = emulate_spike_camera(frames, np.array([0, 50_000, 100_000]), params)
    assert spikes.dtype == bool and spikes.shape == (2000, 1, 11)
    np.testing.assert_array_equal(times, np.arange(1, 2001) * 50)
    rate = spikes.mean(axis=0)[0]
    np.testing.assert_allclose(rate, 0.8 * intensity[0], atol=1 / 2000)


def test_spike_camera_interpolates_intensity_between_frames():
    frames = np.array([[[0.0]], [[1.0]]], dtype=np.float32)
    spikes, _, _ = emulate_spike_camera(frames, np.array([0, 100_000]), SpikeCameraParams())
    first_half, second_half = spikes[:1000].sum(), spikes[1000:].sum()
    assert first_half == pytest.approx(250, abs=2)
    assert second_half == pytest.approx(750, abs=2)


def test_spike_camera_fed_in_pieces_equals_one_call_and_seeds_decide():
    frames = moving_bar(12, (20, 30))
    times = np.array([0, 1000, 2330, 4000, 5100, 7000, 9000, 9050, 9101, 12000, 15000, 19000])
    params = SpikeCameraParams(rate_hz=30_000.0)
    whole, whole_times, _ = emulate_spike_camera(frames, times, params)
    state = None
    pieces, piece_times = [], []
    for start, stop in [(0, 1), (1, 5), (5, 6), (6, 12)]:
        piece, stamps, state = emulate_spike_camera(frames[start:stop], times[start:stop], params, state)
        pieces.append(piece)
        piece_times.append(stamps)
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    np.testing.assert_array_equal(np.concatenate(piece_times), whole_times)
    assert len(whole_times) == 19000 * 3 // 100
    assert np.all(np.diff(whole_times) > 0)
    again, _, _ = emulate_spike_camera(frames, times, params)
    np.testing.assert_array_equal(again, whole)
    other, _, _ = emulate_spike_camera(frames, times, dataclasses.replace(params, seed=3))
    assert not np.array_equal(other, whole)


def test_poisson_encode_rate_and_seed():
    intensity = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    spikes = poisson_encode(intensity, steps=4000, seed=7, max_rate=0.5)
    assert spikes.dtype == bool and spikes.shape == (4000, 2, 2)
    np.testing.assert_allclose(spikes.mean(axis=0), 0.5 * intensity, atol=0.025)
    np.testing.assert_array_equal(poisson_encode(intensity, 4000, seed=7, max_rate=0.5), spikes)
    assert not np.array_equal(poisson_encode(intensity, 4000, seed=8, max_rate=0.5), spikes)


def test_output_frame_grid_is_exact_for_rates_that_do_not_divide_a_second():
    times = output_frame_times(start_us=7, rate_hz=30_000.0, first=1, stop=301)
    np.testing.assert_array_equal(times, 7 + (np.arange(1, 301) * 100) // 3)
    assert output_frames_until(7, 30_000.0, int(times[-1])) == 300
    assert output_frames_until(7, 30_000.0, int(times[-1]) - 1) == 299
