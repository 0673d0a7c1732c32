"""The live-model choice shared by `streamdet detect` and `streamdet demo`: the step a machine keeps up
with, the measured step rate, and `--model auto`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_detector import tiny_spiking_detector

from streamdet.errors import UserFacingError
from streamdet.live import (
    LOW_PRECISION_MIN_GAIN,
    REAL_TIME_HEADROOM,
    choose_precision,
    keeps_up_with_finest_step,
    live_step_us,
    load_live_model,
    low_precisions,
    measure_step_rate,
    pick_live_model,
)
from streamdet.snn import bfloat16_supported, int8_supported


def test_live_step_is_the_shortest_divisor_of_the_window_of_at_least_25_ms():
    assert [live_step_us(w) for w in (50_000, 100_000, 150_000, 60_000, 70_000)] == [25_000] * 3 + [
        30_000,
        35_000,
    ]
    assert live_step_us(20_000) == 20_000  # a window shorter than 25 ms is one step


def test_live_step_is_the_shortest_that_the_measured_rate_keeps_up_with():
    need_25ms = REAL_TIME_HEADROOM * 40  # steps/s for 25 ms steps, with headroom
    assert live_step_us(100_000, steps_per_s=need_25ms) == 25_000
    assert live_step_us(100_000, steps_per_s=need_25ms - 1) == 50_000  # 100 / 3 ms does not divide
    assert live_step_us(100_000, steps_per_s=REAL_TIME_HEADROOM * 20 - 1) == 100_000
    assert live_step_us(100_000, steps_per_s=1.0) == 100_000  # never longer than the window
    assert live_step_us(150_000, steps_per_s=REAL_TIME_HEADROOM * 40 - 1) == 30_000


def test_step_rate_is_measured_on_the_network():
    rate = measure_step_rate(tiny_spiking_detector("events", history_windows=1), steps=3)
    assert np.isfinite(rate) and rate > 0


def test_auto_model_is_the_first_that_keeps_up_with_the_finest_step():
    fast_enough = REAL_TIME_HEADROOM * 40  # 25 ms steps of a 100 ms window
    too_slow = fast_enough - 1
    assert pick_live_model([("best", 100_000, fast_enough), ("fast", 100_000, 70.0)]) == "best"
    assert pick_live_model([("best", 100_000, too_slow), ("fast", 100_000, fast_enough)]) == "fast"
    # neither keeps up: the one that steps fastest, at the finest step it keeps up with
    assert pick_live_model([("best", 100_000, 10.0), ("fast", 100_000, too_slow)]) == "fast"
    assert pick_live_model([("best", 100_000, too_slow), ("fast", 100_000, 10.0)]) == "best"
    # not measured (a GPU, or --dt-us given): the first
    assert pick_live_model([("best", 100_000, None), ("fast", 100_000, None)]) == "best"
    # a 20 ms window is one step whatever the rate
    assert pick_live_model([("best", 20_000, 1.0), ("fast", 100_000, 200.0)]) == "best"


def test_auto_model_with_burst_neurons_needs_to_keep_up_with_one_step_per_window():
    """Burst neurons step once per window: 12 steps/s alone keep up with 100 ms windows, where IF neurons
    would need 48 for their 25 ms steps."""
    per_window = REAL_TIME_HEADROOM * 10  # one step per 100 ms window, with headroom
    assert keeps_up_with_finest_step(100_000, per_window, burst=True)
    assert not keeps_up_with_finest_step(100_000, per_window - 0.1, burst=True)
    assert not keeps_up_with_finest_step(100_000, per_window, burst=False)
    assert pick_live_model([("best", 100_000, per_window), ("fast", 100_000, 70.0)], burst=True) == "best"
    assert pick_live_model([("best", 100_000, per_window), ("fast", 100_000, 70.0)]) == "fast"
    # neither keeps up with one step per window: the faster
    assert pick_live_model([("best", 100_000, 5.0), ("fast", 100_000, 9.0)], burst=True) == "fast"


def test_auto_model_without_a_measurement_loads_only_events_default():
    """On a GPU or with ``--dt-us`` given nothing is timed: ``auto`` is the shipped ``events-default``,
    and ``events-fast`` is never converted."""
    said = []
    name, snn, rates, precision_ms = load_live_model("auto", measure=False, say=said.append, who="demo")
    assert (name, rates, snn.spec.modality) == ("events-default", {"events-default": None}, "events")
    assert precision_ms == {}  # float32 given: nothing timed
    assert said == ["demo: loading events-default and converting it to a spiking network (IF neurons) ..."]


def test_a_named_precision_is_taken_without_timing_and_a_gpu_keeps_float32():
    snn = tiny_spiking_detector("events", history_windows=1)
    for precision in ("float32", *low_precisions()):
        chosen, rates = choose_precision(snn, precision)
        assert (chosen.precision, rates) == (precision, {})
    assert choose_precision(snn, "auto", device="cuda")[0].precision == "float32"
    with pytest.raises(UserFacingError, match="precision must be one of"):
        choose_precision(snn, "float16")


def test_the_cli_precision_choices_are_auto_and_the_engine_precisions():
    from streamdet.live import PRECISION_CHOICES
    from streamdet.snn import PRECISIONS

    assert PRECISION_CHOICES == ("auto", *PRECISIONS)


def test_low_precisions_are_those_this_cpu_runs():
    assert low_precisions() == tuple(
        name for name, ok in (("bfloat16", bfloat16_supported()), ("int8", int8_supported())) if ok
    )


@pytest.mark.skipif(not low_precisions(), reason="no bfloat16 or int8 convolution on this CPU")
def test_auto_precision_times_the_convolutions_and_takes_the_fastest_only_for_a_clear_gain():
    snn = tiny_spiking_detector("events", history_windows=1)
    chosen, milliseconds = choose_precision(snn, "auto")
    assert set(milliseconds) == {"float32", *low_precisions()} and all(ms > 0 for ms in milliseconds.values())
    fastest = min(low_precisions(), key=milliseconds.__getitem__)
    clear = LOW_PRECISION_MIN_GAIN * milliseconds[fastest] <= milliseconds["float32"]
    assert chosen.precision == (fastest if clear else "float32")


def test_the_convolutions_timed_are_the_spike_fed_ones_at_each_precision(monkeypatch):
    """``convolution_ms`` feeds every spike-fed convolution of each network the spike map it got in one
    step of the first: the same maps, whatever the precision."""
    from streamdet.live import convolution_ms

    snn = tiny_spiking_detector("events", history_windows=1)
    other = snn.with_precision(low_precisions()[0]) if low_precisions() else snn
    seen: dict[str, list] = {}
    for key, network in (("a", snn), ("b", other)):
        for name, module in network.spike_fed_convolutions().items():
            module.register_forward_pre_hook(
                lambda _, args, key=key, name=name: seen.setdefault(name, []).append((key, args[0]))
            )
    milliseconds = convolution_ms({"a": snn, "b": other}, rounds=2)
    assert set(milliseconds) == {"a", "b"} and all(ms > 0 for ms in milliseconds.values())
    assert seen and set(seen) == set(snn.spike_fed_convolutions())
    for calls in seen.values():
        maps = [x for key, x in calls if key == "b"]
        assert len(maps) == 3 and all(torch.equal(maps[0], x) for x in maps)  # warm-up and two rounds


def test_auto_precision_keeps_float32_where_nothing_else_runs(monkeypatch):
    monkeypatch.setattr("streamdet.live.low_precisions", lambda: ())
    chosen, rates = choose_precision(tiny_spiking_detector("events", history_windows=1), "auto")
    assert (chosen.precision, rates) == ("float32", {})


def test_auto_precision_keeps_float32_where_no_convolution_reads_spikes(monkeypatch):
    snn = tiny_spiking_detector("events", history_windows=1)
    monkeypatch.setattr(type(snn), "spike_fed_convolutions", lambda self: {})
    chosen, rates = choose_precision(snn, "auto")
    assert (chosen.precision, rates) == ("float32", {})


def test_demo_threads_are_two_only_where_compiled_on_two_cores(monkeypatch):
    """``demo --threads auto``: two threads for compiled steps on a machine of two or more cores, one
    node by node or on one core."""
    from streamdet.live import demo_threads

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert (demo_threads(True), demo_threads(False)) == (2, 1)
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert demo_threads(True) == 1
