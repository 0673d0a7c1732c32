"""Detector: step binning with carry-over, sliding window, per-stream state, publish cadence, skip policy."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from streamdet.binning import (
    SensorMapping,
    events_to_counts,
    events_to_step_counts,
    filter_boxes,
    frames_to_step_rates,
    spike_frames_to_input,
)
from streamdet.contract import EVALUATION_FILTER, Decoding, Geometry, InputSpec
from streamdet.convert import ConversionConfig, convert_detector
from streamdet.detector import (
    DetectorConfig,
    SlidingWindow,
    StepBinner,
    StepHistory,
    StreamDetector,
    detect_events,
    detect_spikes,
)
from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE
from streamdet.live import resolve_compile
from streamdet.model import DetectorBundle, build_model, config_for
from streamdet.snn import SpikingDetector, bfloat16_supported, int8_supported

TINY_SENSOR = (64, 48)
"""Sensor size of the tiny detector, (width, height) pixels."""


def published(snn: SpikingDetector, rows: np.ndarray) -> np.ndarray:
    """Decoded rows as the detector gives them out by default: inside the sensor, with some area."""
    return filter_boxes(rows, snn.class_names, TINY_SENSOR, EVALUATION_FILTER)


def tiny_spiking_detector(
    modality: str = "events", seed: int = 0, history_windows: int = 0, burst: bool = False
) -> SpikingDetector:
    """A converted RetinaNet of a few hundred parameters for a 64x48 sensor, window 20 ms.

    Calibrated on random sparse inputs; the class predictor's bias is 0 and its weights large, so the
    sigmoid scores sit around 0.5 and move with the input (an untrained network would otherwise score
    everything at the 0.01 prior).
    """
    torch.manual_seed(seed)
    config = config_for(
        modality,
        input_size=TINY_SENSOR,
        history_windows=history_windows,
        stem_channels=4,
        stage_channels=(4, 6, 6, 6),
        stage_blocks=(0, 0, 0, 0),
        fpn_channels=6,
        head_convs=0,
        activation="relu",
    )
    model = build_model(config).eval()
    with torch.no_grad():
        model.cls_head.predictor.weight.normal_(0.0, 0.5)
        model.cls_head.predictor.bias.zero_()
        model.box_head.predictor.weight.normal_(0.0, 0.05)
    bundle = DetectorBundle(
        model=model,
        config=config,
        spec=InputSpec(modality, TINY_SENSOR, 20_000, 2.0, history_windows),
        decoding=Decoding(),
        class_names=("boat", "buoy", "car", "pedestrian"),
    )
    generator = torch.Generator().manual_seed(seed)
    channels = config.in_channels
    calibration = [(torch.rand(8, channels, 64, 64, generator=generator) < 0.2).float()]
    conversion = ConversionConfig(normalisation="percentile", burst=burst)
    return convert_detector(bundle, calibration, conversion, progress=False)


DT_US = 2_000
CONFIG = DetectorConfig(
    dt_us=DT_US, window_steps=4, publish_every=2, max_backlog_steps=1000, max_chunk_steps=1
)


def assert_boxes_of_direct_simulation(
    detector: StreamDetector, values: np.ndarray, results: list, fresh_steps: bool = False
) -> None:
    """Every window in ``results`` holds the boxes of the detector's network run step by step on
    ``values [K, C, H, W]`` (per-step measurements from step 0) from a fresh state (with ``fresh_steps``,
    each step from a fresh state), its outputs averaged over the ``CONFIG.window_steps`` steps ending at
    the window's step and decoded."""
    snn = detector.snn
    inputs = detector.step_inputs(values)
    state = snn.initial_state(1)
    outputs = []
    for k in range(len(values)):
        (cls, box), state = snn.run(inputs[k : k + 1], snn.initial_state(1) if fresh_steps else state)
        outputs.append((cls[0, 0], box[0, 0]))
    for result in results:
        window = outputs[result.step + 1 - CONFIG.window_steps : result.step + 1]
        cls_mean = torch.stack([c for c, _ in window]).mean(0)
        box_mean = torch.stack([b for _, b in window]).mean(0)
        expected = published(snn, snn.decode(cls_mean[None], box_mean[None])[0].numpy())
        np.testing.assert_allclose(result.rows, expected, rtol=1e-5, atol=1e-4)


def random_events(count: int, duration_us: int, seed: int = 0, t_start: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = np.zeros(count, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, TINY_SENSOR[0], count)
    events["y"] = rng.integers(0, TINY_SENSOR[1], count)
    events["t"] = np.sort(rng.integers(t_start, t_start + duration_us, count))
    events["p"] = rng.integers(0, 2, count).astype(bool)
    return events


@pytest.fixture(scope="module")
def snn():
    return tiny_spiking_detector("events")


def feed_in_packets(detector: StreamDetector, events: np.ndarray, bounds: list[int], stream: str) -> list:
    results = []
    for t0, t1 in zip(bounds[:-1], bounds[1:], strict=True):
        lo, hi = np.searchsorted(events["t"], [t0, t1])
        detector.add_events(stream, events[lo:hi], TINY_SENSOR, t0, t1)
        results.extend(detector.process())
    return results


def test_step_counts_are_window_counts_per_step():
    events = random_events(3000, 5 * DT_US, t_start=3 * DT_US)
    counts = events_to_step_counts(events, TINY_SENSOR, DT_US, first_step=3, steps=5)
    for k in range(5):
        in_step = events[(events["t"] >= (3 + k) * DT_US) & (events["t"] < (4 + k) * DT_US)]
        np.testing.assert_array_equal(counts[k], events_to_counts(in_step, TINY_SENSOR))
    assert counts.sum() == len(events)


def test_binner_carries_events_over_packets_whatever_the_cut():
    events = random_events(4000, 10 * DT_US, seed=1)
    whole = StepBinner("events", TINY_SENSOR, DT_US)
    expected, first, _ = whole.push_events(events, 0, 10 * DT_US)
    assert first == 0 and expected.shape == (10, 2, TINY_SENSOR[1], TINY_SENSOR[0])

    cut = StepBinner("events", TINY_SENSOR, DT_US)
    bounds = [0, 700, 1999, 2000, 5300, 5301, 13_000, 20_000]
    steps = []
    for t0, t1 in zip(bounds[:-1], bounds[1:], strict=True):
        lo, hi = np.searchsorted(events["t"], [t0, t1])
        counts, first, skipped = cut.push_events(events[lo:hi], t0, t1)
        assert skipped == 0 and first == len(steps)
        steps.extend(counts)
    np.testing.assert_array_equal(np.stack(steps), expected)


def test_binner_held_indices_give_the_counts_of_one_binning_at_any_scale():
    """Events are mapped and held per step as their packets arrive; the steps out must be exactly what
    events_to_step_counts makes of all the events at once, also with a scaled region and a packet whose
    events are out of time order and span several steps."""
    events = random_events(3000, 8 * DT_US, seed=4)
    mapping = SensorMapping(TINY_SENSOR, (2, 1, 12, 8), 0.5, (6, 4))
    expected = events_to_step_counts(events, TINY_SENSOR, DT_US, 0, 8, mapping)
    binner = StepBinner("events", TINY_SENSOR, DT_US, mapping)
    shuffled = np.random.default_rng(5).permutation(events[(events["t"] >= 3100) & (events["t"] < 9000)])
    packets = [
        (events[events["t"] < 3100], 0, 3100),
        (shuffled, 3100, 9000),
        (events[(events["t"] >= 9000) & (events["t"] < 9500)], 9000, 9500),
        (events[events["t"] >= 9500], 9500, 8 * DT_US),
    ]
    steps = [counts for packet in packets for counts in binner.push_events(*packet)[0]]
    assert len(steps) == 8 and expected.sum() > 0
    np.testing.assert_array_equal(np.stack(steps), expected)
    assert not binner._pending_indices  # nothing held once every step is out


def test_binner_counts_late_events_and_skips_old_steps():
    binner = StepBinner("events", TINY_SENSOR, DT_US)
    binner.push_events(random_events(100, 3 * DT_US), 0, 3 * DT_US)
    late = random_events(7, DT_US, seed=2, t_start=DT_US)
    on_time = random_events(50, 20 * DT_US, seed=3, t_start=3 * DT_US)
    counts, first, skipped = binner.push_events(np.concatenate([late, on_time]), 3 * DT_US, 23 * DT_US, 5)
    assert binner.late == 7
    assert (first, skipped, len(counts)) == (18, 15, 5)
    assert counts.sum() == np.count_nonzero(on_time["t"] >= 18 * DT_US)


def test_spike_frames_become_per_step_rates():
    rng = np.random.default_rng(0)
    frames = rng.random((40, 6, 8)) < 0.3
    frame_us = 250.0  # 8 frames per 2 ms step
    binner = StepBinner("intensity", (8, 6), DT_US)
    first_half, first, _ = binner.push_frames(frames[:13], 0, frame_us)
    second_half, _, _ = binner.push_frames(frames[13:], 13 * frame_us, frame_us)
    rates = np.concatenate([first_half, second_half])
    assert first == 0 and rates.shape == (5, 1, 6, 8)
    for k in range(5):
        np.testing.assert_allclose(rates[k], spike_frames_to_input(frames[8 * k : 8 * k + 8]))
    empty = frames_to_step_rates(frames[:2], np.array([0, 100]), DT_US, first_step=0, steps=2)
    assert empty[1].sum() == 0


def test_sliding_window_is_mean_of_last_w_steps():
    window = SlidingWindow(3)
    values = [torch.full((5, 2), float(k)) for k in range(6)]
    for k, value in enumerate(values):
        window.push(k, value, value[:, :1] * 2)
        assert window.full == (k >= 2)
    cls_mean, box_mean = window.mean()
    assert window.first_step == 3
    assert torch.allclose(cls_mean, torch.full((5, 2), 4.0))
    assert torch.allclose(box_mean, torch.full((5, 1), 8.0))
    assert torch.equal(window.cls_mean(), cls_mean)
    window.push(6, values[0], torch.arange(5.0)[:, None] * 3)  # box rows differ: the mean is taken per row
    rows = torch.tensor([4, 1])
    assert torch.equal(window.box_mean_at(rows), window.mean()[1][rows])
    assert window.box_mean_at(rows)[:, 0].tolist() == pytest.approx([(8 + 10 + 12) / 3, (8 + 10 + 3) / 3])


def test_windows_match_a_direct_simulation_and_keep_state(snn):
    events = random_events(6000, 12 * DT_US, seed=4)
    detector = StreamDetector(snn, CONFIG)
    results = feed_in_packets(detector, events, [0, 3000, 9000, 15_000, 24_000], "cam")

    steps_per_window = snn.spec.window_us / DT_US
    counts = events_to_step_counts(events, TINY_SENSOR, DT_US, 0, 12)
    inputs = detector.step_inputs(counts)
    np.testing.assert_allclose(
        inputs[:, 0, :, : TINY_SENSOR[1], : TINY_SENSOR[0]].numpy(),
        np.minimum(counts * steps_per_window / snn.spec.event_scale, 1.0),
    )
    bounded = detector.snn  # the node simulates with membranes clamped to [0, 1] thresholds
    assert (bounded.neuron.membrane_floor, bounded.neuron.membrane_ceiling) == (0.0, 1.0)
    assert snn.neuron.membrane_floor is None  # the caller's network is left as it was
    state = bounded.initial_state(1)
    outputs = []
    for k in range(12):
        (cls, box), state = bounded.run(inputs[k : k + 1], state)
        outputs.append((cls[0, 0], box[0, 0]))

    assert [r.step for r in results] == [3, 5, 7, 9, 11]
    for result in results:
        assert (result.t0_us, result.t1_us) == ((result.step - 3) * DT_US, (result.step + 1) * DT_US)
        window = outputs[result.step - 3 : result.step + 1]
        cls_mean = torch.stack([c for c, _ in window]).mean(0)
        box_mean = torch.stack([b for _, b in window]).mean(0)
        expected = published(snn, snn.decode(cls_mean[None], box_mean[None])[0].numpy())
        assert len(expected) > 0
        np.testing.assert_allclose(result.rows, expected, rtol=1e-5, atol=1e-4)
        assert result.dropped_steps == 0 and result.latency_ms >= 0
    assert len({r.rows.tobytes() for r in results}) == len(results)


def test_step_history_appends_the_steps_whole_windows_earlier():
    """Lag 2, two earlier windows: step k carries steps k, k - 2, k - 4; steps never given are zeros,
    whatever the chunking, and a gap (skipped steps) counts as empty."""
    values = np.arange(1, 11, dtype=np.float32).reshape(10, 1, 1, 1)  # step k holds k + 1
    for cuts in ([0, 10], [0, 1, 4, 5, 10], list(range(11))):
        history = StepHistory(lag=2, windows=2)
        out = np.concatenate(
            [history.stack(a, values[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        )
        expected = [[k + 1, k - 1 if k >= 2 else 0, k - 3 if k >= 4 else 0] for k in range(10)]
        assert out[:, :, 0, 0].tolist() == expected
    history = StepHistory(lag=2, windows=1)
    history.stack(0, values[:2])
    after_gap = history.stack(3, values[3:5])  # step 2 was skipped
    assert after_gap[:, :, 0, 0].tolist() == [[4, 2], [5, 0]]
    assert StepHistory(lag=2, windows=0).stack(0, values) is values


@pytest.mark.parametrize("burst", [False, True])
def test_fresh_membranes_start_every_step_from_the_initial_membrane(burst: bool):
    """``membranes="fresh"``: each window holds the boxes of every step simulated from a fresh state (no
    membrane carries one step's rounding into the next), for IF and for burst neurons; with kept
    membranes the same windows differ."""
    snn = tiny_spiking_detector("events", seed=1, history_windows=1, burst=burst)
    assert snn.burst == burst
    events = random_events(8000, 24 * DT_US, seed=5)
    lag = snn.spec.window_us // DT_US
    counts = events_to_step_counts(events, TINY_SENSOR, DT_US, 0, 24)
    values = np.concatenate([counts, np.concatenate([np.zeros_like(counts[:lag]), counts[:-lag]])], axis=1)
    fresh = StreamDetector(snn, replace(CONFIG, membranes="fresh"))
    results = feed_in_packets(fresh, events, [0, 5000, 17_000, 30_000, 48_000], "cam")
    assert [r.step for r in results] == list(range(3, 24, 2))
    assert_boxes_of_direct_simulation(fresh, values, results, fresh_steps=True)
    kept = StreamDetector(snn, CONFIG)
    kept_results = feed_in_packets(kept, events, [0, 5000, 17_000, 30_000, 48_000], "cam")
    assert any(
        not np.array_equal(a.rows, b.rows) for a, b in zip(results, kept_results, strict=True)
    )  # kept membranes change what the same steps give
    with pytest.raises(UserFacingError, match="membranes must be one of"):
        DetectorConfig(membranes="reset")


@pytest.mark.parametrize("windows", [1, 2])
def test_model_with_history_streams_its_earlier_windows(windows: int):
    """A model reading earlier windows gets, per step, the step's counts and those one, two, ...
    windows earlier (newest first); the node's boxes are those of that direct simulation."""
    snn = tiny_spiking_detector("events", seed=1, history_windows=windows)
    assert snn.in_channels == 2 * (1 + windows)
    events = random_events(8000, 24 * DT_US, seed=5)
    detector = StreamDetector(snn, CONFIG)
    detector.warm_up()
    results = feed_in_packets(detector, events, [0, 5000, 17_000, 30_000, 48_000], "cam")
    lag = snn.spec.window_us // DT_US
    counts = events_to_step_counts(events, TINY_SENSOR, DT_US, 0, 24)
    earlier = [
        np.concatenate([np.zeros_like(counts[: lag * k]), counts[: -lag * k]]) for k in range(1, windows + 1)
    ]
    assert [r.step for r in results] == list(range(3, 24, 2))
    assert_boxes_of_direct_simulation(detector, np.concatenate([counts, *earlier], axis=1), results)


def test_streams_keep_separate_state(snn):
    events_a = random_events(4000, 10 * DT_US, seed=5)
    events_b = random_events(4000, 10 * DT_US, seed=6)
    alone = detect_events(snn, events_a, TINY_SENSOR, CONFIG, packet_us=5000, stream="a")

    detector = StreamDetector(snn, CONFIG)
    mixed = []
    for t0 in range(0, 20_000, 5000):
        for name, events in (("a", events_a), ("b", events_b)):
            lo, hi = np.searchsorted(events["t"], [t0, t0 + 5000])
            detector.add_events(name, events[lo:hi], TINY_SENSOR, t0, t0 + 5000)
        mixed.extend(detector.process())
    from_a = [r for r in mixed if r.stream == "a"]
    assert len(from_a) == len(alone) == 4 and len(mixed) == 8
    for together, single in zip(from_a, alone, strict=True):
        np.testing.assert_allclose(together.rows, single.rows, rtol=1e-5, atol=1e-4)
    assert not np.array_equal(from_a[-1].rows, mixed[-1].rows)


def test_skip_policy_drops_oldest_steps_and_counts_them(snn):
    config = DetectorConfig(
        dt_us=DT_US, window_steps=4, publish_every=2, max_backlog_steps=6, max_chunk_steps=4
    )
    detector = StreamDetector(snn, config)
    detector.add_events("cam", random_events(500, 30 * DT_US), TINY_SENSOR, 0, 20 * DT_US)
    assert detector.backlog_steps() == 6 and detector.dropped_steps == 14  # binner kept only the newest 6
    detector.add_events(
        "cam", random_events(50, 4 * DT_US, t_start=20 * DT_US), TINY_SENSOR, 20 * DT_US, 24 * DT_US
    )
    assert detector.backlog_steps() == 10
    assert detector.drop_backlog() == 4
    results = detector.process()
    assert [r.step for r in results] == [21, 23]
    assert all(r.dropped_steps == 18 for r in results)
    assert results[0].t0_us == 18 * DT_US


def test_rejects_a_region_the_geometry_cannot_serve_or_another_modality(snn):
    from dataclasses import replace

    detector = StreamDetector(snn, replace(CONFIG, geometry=Geometry("crop", roi=(0, 0, 640, 480))))
    with pytest.raises(UserFacingError, match="larger than the network input 64x48; pass --geometry scale"):
        detector.add_events("cam", random_events(10, 100), (640, 480), 0, 100)
    detector = StreamDetector(snn, CONFIG)
    with pytest.raises(UserFacingError, match="carries intensity"):
        detector.add_spikes("cam", np.zeros((2, TINY_SENSOR[1], TINY_SENSOR[0]), bool), 0, 50.0)
    with pytest.raises(UserFacingError, match="must divide"):
        StreamDetector(snn, DetectorConfig(dt_us=3000))


def test_cli_defaults_step_burst_neurons_once_per_window_and_if_neurons_over_50_ms():
    import argparse

    from streamdet.cli.run import _add_detector_options, detector_config_from_args

    parser = argparse.ArgumentParser()
    _add_detector_options(parser)
    parser.add_argument("--max-backlog-steps", type=int, default=8)
    parser.add_argument("--max-chunk-steps", type=int, default=8)
    # the default, burst neurons: one step per model window, a box message per window
    config = detector_config_from_args(parser.parse_args([]), window_us=50_000)
    assert (config.dt_us, config.window_steps, config.publish_every) == (50_000, 1, 1)
    config = detector_config_from_args(parser.parse_args([]), window_us=100_000)
    assert (config.dt_us, config.window_steps, config.publish_every) == (100_000, 1, 1)
    # IF neurons: a quarter window per step, 50 ms of output
    config = detector_config_from_args(parser.parse_args(["--burst", "off"]), window_us=50_000)
    assert (config.dt_us, config.window_steps, config.publish_every) == (12_500, 4, 4)
    config = detector_config_from_args(parser.parse_args(["--dt-us", "25000"]), window_us=50_000)
    assert (config.dt_us, config.window_steps, config.publish_every) == (25_000, 2, 2)
    eight = parser.parse_args(["--burst", "off", "--window-steps", "8"])
    config = detector_config_from_args(eight, window_us=50_000)
    assert (config.window_steps, config.publish_every) == (8, 4)
    config = detector_config_from_args(parser.parse_args(["--publish-every", "3"]), window_us=50_000)
    assert config.publish_every == 3
    with pytest.raises(UserFacingError, match="must divide"):
        detector_config_from_args(parser.parse_args(["--dt-us", "30000"]), window_us=50_000)
    # a converted-network file with IF neurons keeps the IF steps whatever --burst says
    config = detector_config_from_args(parser.parse_args([]), window_us=50_000, burst=False)
    assert (config.dt_us, config.window_steps, config.membranes) == (12_500, 4, "keep")
    # --membranes auto: fresh for burst neurons, kept for IF; keep or fresh as asked otherwise
    assert detector_config_from_args(parser.parse_args([]), window_us=50_000).membranes == "fresh"
    if_neurons = parser.parse_args(["--burst", "off"])
    assert detector_config_from_args(if_neurons, window_us=50_000).membranes == "keep"
    kept = parser.parse_args(["--membranes", "keep"])
    assert detector_config_from_args(kept, window_us=50_000, burst=True).membranes == "keep"
    fresh = parser.parse_args(["--membranes", "fresh"])
    assert detector_config_from_args(fresh, window_us=50_000, burst=False).membranes == "fresh"
    # a 100 ms model with IF neurons: dt = 25 ms (T = 4 steps per model window), still 50 ms of output
    config = detector_config_from_args(parser.parse_args(["--burst", "off"]), window_us=100_000)
    assert (config.dt_us, config.window_steps) == (25_000, 2)
    # --dt-us auto: the demo's rule from the measured step rate (25 ms when nothing was measured)
    auto = parser.parse_args(["--dt-us", "auto"])
    assert detector_config_from_args(auto, window_us=100_000).dt_us == 25_000
    config = detector_config_from_args(auto, window_us=100_000, steps_per_s=30.0)
    # a slower CPU takes 50 ms steps and still publishes every 50 ms of stream, not every 200 ms
    assert (config.dt_us, config.window_steps, config.publish_every) == (50_000, 1, 1)
    assert detector_config_from_args(auto, window_us=100_000, steps_per_s=60.0).dt_us == 25_000
    with pytest.raises(SystemExit):
        parser.parse_args(["--dt-us", "fast"])


def test_intensity_model_runs_on_spike_frames():
    snn = tiny_spiking_detector("intensity", seed=1)
    detector = StreamDetector(snn, CONFIG)
    rng = np.random.default_rng(1)
    frames = rng.random((80, TINY_SENSOR[1], TINY_SENSOR[0])) < 0.2
    for start in range(0, 80, 20):
        detector.add_spikes("spk", frames[start : start + 20], start * 250, 250.0)
    results = detector.process()
    assert [r.step for r in results] == [3, 5, 7, 9]
    assert all(r.rows.shape[1] == 6 and len(r.rows) > 0 for r in results)
    # the boxes are those of the direct simulation of the per-step spike rates (8 frames of 250 us a step)
    rates = frames_to_step_rates(frames, np.arange(80) * 250, DT_US, first_step=0, steps=10)
    assert_boxes_of_direct_simulation(detector, rates, results)


def test_detect_spikes_gives_the_node_s_windows_whatever_the_packet_size():
    """``detect_spikes`` (the streaming benchmark's spike path) feeds a whole recording in packets: the
    windows are those of the node fed by hand, for packets that cut steps at odd places too."""
    snn = tiny_spiking_detector("intensity", seed=1)
    frames = np.random.default_rng(2).random((80, TINY_SENSOR[1], TINY_SENSOR[0])) < 0.2
    detector = StreamDetector(snn, CONFIG)
    for start in range(0, 80, 20):
        detector.add_spikes("spikes", frames[start : start + 20], start * 250, 250.0)
    expected = detector.process()
    for packet_frames in (20, 7, 200):
        results = detect_spikes(snn, frames, 0.0, 250.0, CONFIG, packet_frames=packet_frames)
        assert [r.step for r in results] == [r.step for r in expected] == [3, 5, 7, 9]
        for got, want in zip(results, expected, strict=True):
            np.testing.assert_allclose(got.rows, want.rows, rtol=1e-5, atol=1e-4)


def streamdet_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamdet", *args]


def test_replay_detect_record_gives_the_in_process_boxes(snn, tmp_path):
    """Three real processes over ipc sockets: replay -> detect -> record; the recorded boxes are the ones
    the in-process API finds on the same events."""
    from streamdet.formats import write_events
    from streamdet.loading import save_snn
    from streamdet.recorder import DETECTION_RECORD_DTYPE

    events = random_events(6000, 40 * DT_US, seed=8, t_start=1_000_000)
    write_events(tmp_path / "events.npy", events, TINY_SENSOR)
    save_snn(snn, tmp_path / "tiny.pt")
    events_endpoint = f"ipc://{tmp_path}/events"
    detections_endpoint = f"ipc://{tmp_path}/detections"
    recorder = subprocess.Popen(
        streamdet_command("record", detections_endpoint, str(tmp_path / "out.npy"), "--topic", "detections"),
        stderr=subprocess.PIPE,
        text=True,
    )
    detector = subprocess.Popen(
        streamdet_command(
            "detect", "--input", events_endpoint, "--output", detections_endpoint,
            "--model", str(tmp_path / "tiny.pt"), "--dt-us", str(DT_US), "--window-steps", "4",
            "--publish-every", "2", "--max-chunk-steps", "1", "--max-backlog-steps", "100000",
            "--wait-subscribers", "1", "--wait-timeout", "120", "--exit-on-eos",
            "--compile", "off",  # the reference below runs node by node (compiled: test_compiled.py)
        ),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    replay = subprocess.run(
        streamdet_command(
            "replay", str(tmp_path / "events.npy"), "--endpoint", events_endpoint, "--stream", "cam",
            "--speed", "max", "--lossless", "--wait-subscribers", "1", "--wait-timeout", "120",
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    try:
        assert replay.returncode == 0, replay.stderr
        _, detector_log = detector.communicate(timeout=120)
        _, recorder_log = recorder.communicate(timeout=60)
    finally:
        for process in (detector, recorder):
            if process.poll() is None:
                process.kill()
    assert detector.returncode == 0, detector_log
    assert recorder.returncode == 0, recorder_log
    recorded = np.load(tmp_path / "out.detections.npy")
    assert recorded.dtype == DETECTION_RECORD_DTYPE

    from dataclasses import replace

    from streamdet.contract import BoxFilter

    # detect publishes with its default filter (score >= 0.3, at most 50 boxes): the same in process
    expected = detect_events(snn, events, TINY_SENSOR, replace(CONFIG, box_filter=BoxFilter()), stream="cam")
    assert len(expected) == 19  # steps 500..539, first full window ends at step 503, every 2nd step
    spans = sorted({(int(t0), int(t1)) for t0, t1 in zip(recorded["t0_us"], recorded["t1_us"], strict=True)})
    assert spans == [(r.t0_us, r.t1_us) for r in expected]
    for result in expected:
        rows = recorded[recorded["t1_us"] == result.t1_us]
        got = np.stack([rows[name] for name in ("x1", "y1", "x2", "y2", "score")], axis=1)
        np.testing.assert_allclose(got, result.rows[:, :5], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(rows["label"], result.rows[:, 5].astype(np.int32))


def _detect_until_it_says_its_step(tmp_path, *options: str, timeout_s: float = 120) -> tuple[str, int]:
    """Start ``streamdet detect`` (a real process) with ``options``, read its stderr until it prints the
    line with its step (`` dt ``), stop it with Ctrl-C: ``(its log, its exit code)``."""
    import signal

    detector = subprocess.Popen(
        streamdet_command(
            "detect", "--input", f"ipc://{tmp_path}/events", "--output", f"ipc://{tmp_path}/detections",
            *options,
        ),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not any(" dt " in line for line in lines):
            line = detector.stderr.readline()
            if not line:
                break
            lines.append(line)
        detector.send_signal(signal.SIGINT)
        try:
            detector.wait(timeout=60)
        except subprocess.TimeoutExpired:
            detector.kill()
            detector.wait()
            log = "".join(lines) + detector.stderr.read()
            raise AssertionError(f"streamdet detect went on after Ctrl-C:\n{log}") from None
        rest = detector.stderr.read()  # not communicate(): it would skip what readline has buffered
    finally:
        if detector.poll() is None:
            detector.kill()
    return "".join(lines) + rest, detector.returncode


def test_detect_dt_auto_measures_the_network_and_says_the_step(snn, tmp_path):
    """``streamdet detect --dt-us auto`` (a real process): it times the network, prints the rate and the
    step it took (the tiny model's 20 ms window is one step), runs, and stops cleanly on Ctrl-C."""
    from streamdet.loading import save_snn

    save_snn(snn, tmp_path / "tiny.pt")
    model = str(tmp_path / "tiny.pt")
    log, code = _detect_until_it_says_its_step(tmp_path, "--model", model, "--dt-us", "auto")
    assert "times a second alone" in log, log
    assert "dt 20000 us" in log, log
    assert code == 130, log


def test_detect_model_auto_runs_a_shipped_events_network(tmp_path):
    """``streamdet detect --model auto`` (a real process): with the step given nothing is timed and it runs
    the shipped ``events-default``, as the demo does; it says so and stops cleanly on Ctrl-C."""
    log, code = _detect_until_it_says_its_step(tmp_path, "--model", "auto", "--dt-us", "25000", timeout_s=180)
    assert "detect: loading events-default" in log and "events-fast" not in log, log
    assert "detect: events-default (events, 346x260), dt 25000 us, window 2 steps" in log, log
    if resolve_compile("auto"):  # --compile auto: compiled at start where a C++ compiler is found
        assert "compiled events-default's step in" in log and ", compiled;" in log, log
    assert code == 130, log


def test_late_and_slow_subscribers_never_stall_the_detector(snn, tmp_path):
    """A subscriber that never reads and one that joins late: the node publishes every window at its own
    pace and ends; the slow one misses messages (sequence gaps) instead of holding it back."""
    from streamdet import bus, wire
    from streamdet.detector import DetectorNode

    events_endpoint = f"ipc://{tmp_path}/events"
    detections_endpoint = f"ipc://{tmp_path}/detections"
    config = DetectorConfig(
        dt_us=DT_US, window_steps=2, publish_every=1, max_backlog_steps=10_000, max_chunk_steps=8
    )
    source = bus.Publisher(events_endpoint)
    node = DetectorNode(snn, config, [events_endpoint], detections_endpoint, output_hwm=20, exit_on_eos=True)
    slow = bus.Subscriber(detections_endpoint, hwm=1)
    late = None
    late_seen: list = []

    def read_late_until_eos() -> None:  # a late subscriber that keeps up, as a real one would
        while (message := late.receive(timeout_ms=5000)) is not None:
            late_seen.append(message)
            if message.kind == "eos":
                return

    late_reader = threading.Thread(target=read_late_until_eos, daemon=True)
    worker = threading.Thread(target=node.run, daemon=True)
    steps = 300
    try:
        assert source.wait_for_subscribers(1, timeout_s=30)
        worker.start()
        for k in range(0, steps, 10):
            t0 = k * DT_US
            packet = random_events(400, 10 * DT_US, seed=k, t_start=t0)
            source.send(wire.events_message("cam", packet, TINY_SENSOR, t0, t0 + 10 * DT_US))
            while k == steps // 2 and node.stats.published < steps // 4:
                time.sleep(0.01)
            if k == steps // 2:
                late = bus.Subscriber(detections_endpoint)
                late_reader.start()
        source.send(wire.eos_message("cam", "events", TINY_SENSOR))
        worker.join(timeout=120)
        assert not worker.is_alive()
        assert node.stats.published == steps - 1 and node.stats.dropped_steps == 0
        late_reader.join(timeout=30)
        late_seqs = [m.seq for m in late_seen if m.kind == "detections"]
        assert late_seqs[0] > 0 and late_seqs == sorted(set(late_seqs))  # joined mid-stream, in order
        if late_seen[-1].kind == "eos" and late.stats.dropped == 0:
            assert late_seqs[-1] == steps - 2
        else:
            # The node never waits for a subscriber: on a loaded machine ZeroMQ's I/O thread can drain the
            # node's 20-message queue for this one too slowly while the node publishes a backlog at once, and
            # windows are dropped for it as for the slow one (the end-of-stream may still arrive, after a
            # counted gap). It still got a run of windows, and every gap is counted.
            assert late_seqs[-1] > late_seqs[0]
            assert late.stats.dropped >= (late_seqs[-1] - late_seqs[0] + 1) - len(late_seqs)
        slow_seen = []
        while (message := slow.receive(timeout_ms=500)) is not None:
            slow_seen.append(message)
        seqs = [m.seq for m in slow_seen if m.kind == "detections"]
        assert seqs[:10] == list(range(10)) and len(seqs) < (steps - 1) // 2  # the publisher dropped the rest
    finally:
        if late_reader.is_alive():
            late_reader.join(timeout=10)
        for socket in (slow, late, source):
            if socket is not None:
                socket.close()
        node.close()


@pytest.mark.parametrize("sensor", [(64, 48), (56, 40), (128, 96), (240, 120), (80, 50)])
@pytest.mark.parametrize("mode", ["scale", "crop", "native", "auto"])
def test_streams_of_any_sensor_give_boxes_in_their_own_pixels(snn, sensor, mode):
    """Sensors of the tiny model's size, smaller, twice, a wider aspect and a Vidar-like one, in every
    geometry mode: boxes come out, inside the stream's own sensor, with some area; the input the network
    saw is the one the mapping says."""
    from dataclasses import replace

    from streamdet.binning import events_to_step_counts, sensor_mapping

    config = replace(CONFIG, geometry=Geometry(mode))
    detector = StreamDetector(snn, config)
    rng = np.random.default_rng(7)
    events = np.zeros(4000, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, sensor[0], len(events))
    events["y"] = rng.integers(0, sensor[1], len(events))
    events["t"] = np.sort(rng.integers(0, 12 * DT_US, len(events)))
    events["p"] = rng.integers(0, 2, len(events)).astype(bool)
    results = []
    for t0 in range(0, 12 * DT_US, DT_US):
        lo, hi = np.searchsorted(events["t"], [t0, t0 + DT_US])
        detector.add_events("cam", events[lo:hi], sensor, t0, t0 + DT_US)
        results += detector.process()
    mapping = sensor_mapping(sensor, snn.spec, Geometry(mode))
    assert detector.streams["cam"].mapping == mapping
    assert results and any(len(r.rows) for r in results)
    for result in results:
        rows = result.rows
        assert (rows[:, 0] >= 0).all() and (rows[:, 2] <= sensor[0]).all(), (mode, sensor, rows[:, :4])
        assert (rows[:, 1] >= 0).all() and (rows[:, 3] <= sensor[1]).all(), (mode, sensor, rows[:, :4])
        assert (rows[:, 2] > rows[:, 0]).all() and (rows[:, 3] > rows[:, 1]).all()
    counts = events_to_step_counts(events, sensor, DT_US, 0, 12, mapping)
    assert counts.shape[-2:] == mapping.input_size[::-1]


def test_a_region_that_cannot_be_served_is_refused_once_and_counted(tmp_path):
    """The node logs the first refusal of a kind with what to pass, then counts the rest."""
    from streamdet import wire
    from streamdet.detector import DetectorNode

    snn = tiny_spiking_detector()
    lines: list[str] = []
    config = DetectorConfig(dt_us=DT_US, geometry=Geometry("crop", roi=(0, 0, 200, 100)))
    node = DetectorNode(snn, config, [f"ipc://{tmp_path}/in"], f"ipc://{tmp_path}/out", log=lines.append)
    try:
        for seq in range(5):
            events = random_events(10, DT_US, t_start=seq * DT_US)
            message = wire.events_message("big", events, (640, 480), seq * DT_US, (seq + 1) * DT_US)
            node._accept(message, time.monotonic())
    finally:
        node.close()
    refusals = [line for line in lines if "rejected" in line]
    assert len(refusals) == 1 and "pass --geometry scale" in refusals[0], lines
    assert node.stats.rejected == 5


def test_input_read_too_late_is_skipped_unbinned_and_counted(tmp_path):
    """A message read long after it was sent (the node cannot bin as fast as a busy sensor sends) is
    skipped before binning, counted and logged once; a fresh one is binned."""
    from dataclasses import replace

    from streamdet import wire
    from streamdet.detector import DetectorNode

    lines: list[str] = []
    node = DetectorNode(
        tiny_spiking_detector(), CONFIG, [f"ipc://{tmp_path}/in"], f"ipc://{tmp_path}/out", log=lines.append
    )
    try:
        now_us = time.time_ns() // 1000
        for seq, age_s in enumerate((300.0, 300.0, 0.0)):
            message = wire.events_message("cam", random_events(50, DT_US, t_start=seq * DT_US), TINY_SENSOR,
                                          seq * DT_US, (seq + 1) * DT_US)  # fmt: skip
            message = replace(message, extra={**message.extra, "sent_us": now_us - int(age_s * 1e6)})
            node._accept(message, time.monotonic())
    finally:
        node.close()
    assert node.stats.shed == 2
    assert sum("skipped" in line for line in lines) == 1, lines
    assert "cam" in node.detector.streams  # the fresh message was binned


@pytest.mark.parametrize(
    "precision",
    [
        pytest.param(
            "bfloat16", marks=pytest.mark.skipif(not bfloat16_supported(), reason="no bfloat16 conv")
        ),
        pytest.param("int8", marks=pytest.mark.skipif(not int8_supported(), reason="no oneDNN int8 conv")),
    ],
)
def test_a_low_precision_node_publishes_the_same_windows_with_nearly_the_same_boxes(snn, precision):
    """``DetectorConfig.precision``: the node runs its spike-fed convolutions in bfloat16 or int8 (the
    caller's network stays float32) and publishes the same windows as in float32, the top box found
    again within 2 px."""
    events = random_events(6000, 12 * DT_US, seed=4)
    bounds = [0, 3000, 9000, 15_000, 24_000]
    exact = feed_in_packets(StreamDetector(snn, CONFIG), events, bounds, "cam")
    low_detector = StreamDetector(snn, replace(CONFIG, precision=precision))
    low = feed_in_packets(low_detector, events, bounds, "cam")
    assert low_detector.snn.precision == precision and snn.precision == "float32"
    assert [r.step for r in low] == [r.step for r in exact] == [3, 5, 7, 9, 11]
    for a, b in zip(exact, low, strict=True):
        assert len(b.rows) > 0
        best = a.rows[np.argmax(a.rows[:, 4])]
        distance = np.abs(b.rows[:, :4] - best[:4]).max(axis=1)  # the top box is found again
        assert distance.min() < 2.0 and abs(b.rows[np.argmin(distance), 4] - best[4]) < 0.05
    # a configuration without a precision runs the network at its own; one that names float32 converts
    lowered = snn.with_precision(precision)
    assert StreamDetector(lowered, CONFIG).snn.precision == precision
    assert StreamDetector(lowered, replace(CONFIG, precision="float32")).snn.precision == "float32"
    with pytest.raises(UserFacingError, match="precision must be one of"):
        replace(CONFIG, precision="half")
