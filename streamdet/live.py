"""The live-model choice: which network and which step a live detector runs on this machine.

``streamdet detect`` (``--model auto``, ``--dt-us auto``) and ``streamdet demo`` share these rules:

- the step: the shortest step of at least :data:`MIN_STEP_US` that divides the model window and that the
  network, timed alone at start (:func:`measure_step_rate`), runs :data:`REAL_TIME_HEADROOM` times faster
  than real time (:func:`live_step_us`);
- the model (``auto``): the first of :data:`AUTO_MODELS` that keeps up with its finest step (25 ms for
  IF neurons, the whole window for burst neurons), else the one that steps fastest
  (:func:`pick_live_model`, :func:`load_live_model`).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamdet.snn import SpikingDetector

MIN_STEP_US = 25_000
"""The shortest live step: 40 steps per second, what the spiking RetinaNet keeps up with in real time at
346 x 260 on two CPU cores (docs/conversion.md, "Speed")."""

REAL_TIME_HEADROOM = 1.2
"""How much faster than real time the network must step alone for a live run to keep up: in the demo the
driver and the viewer share the two cores with it (measured on the 2-core sandbox: a network stepping 50
steps/s alone ran 38-40 steps/s inside the demo; docs/demo.md)."""

AUTO_MODELS = ("events-default", "events-fast")
"""``--model auto`` (the demo's default), best detector first: ``events-default``, then ``events-fast``
at 0.37 of its compute (docs/model-card.md). The first that this machine steps at the finest live step
runs, or the faster one when neither keeps up with it (:func:`pick_live_model`)."""


def live_step_us(window_us: int, steps_per_s: float | None = None) -> int:
    """The shortest step that divides the model window and is at least :data:`MIN_STEP_US` (the whole
    window when it is shorter than that): ``T = window_us / dt`` steps per window at a pace two CPU cores
    keep up with.

    With ``steps_per_s``, the network's step rate measured alone on this machine
    (:func:`measure_step_rate`), the shortest such step ``dt`` (microseconds) with
    ``steps_per_s >= REAL_TIME_HEADROOM * 1e6 / dt``; the whole window when even that is too fast for it.
    """
    for steps in range(max(1, window_us // MIN_STEP_US), 0, -1):
        if window_us % steps:
            continue
        dt_us = window_us // steps
        if steps_per_s is None or steps_per_s >= REAL_TIME_HEADROOM * 1e6 / dt_us:
            return dt_us
    return window_us


def random_step_input(snn: SpikingDetector, seed: int = 0):
    """One step's input ``[1, 1, C, H, W]`` at ``snn``'s padded sensor size, random currents in [0, 0.5):
    what the network is timed on at start."""
    import torch

    from streamdet.model import padded_length

    width, height = (padded_length(length) for length in snn.spec.sensor_size)
    generator = torch.Generator().manual_seed(seed)
    return 0.5 * torch.rand((1, 1, snn.in_channels, height, width), generator=generator)


def measure_step_rate(snn: SpikingDetector, steps: int = 12, seed: int = 0) -> float:
    """Steps per second of ``snn`` alone on the CPU at its (padded) sensor size, batch 1 (random input
    currents in [0, 0.5), after one warm-up step that is not timed)."""
    inputs = random_step_input(snn, seed)
    _, state = snn.run(inputs, snn.initial_state(1))
    started = time.perf_counter()
    for _ in range(steps):
        _, state = snn.run(inputs, state)
    return steps / (time.perf_counter() - started)


def keeps_up_with_finest_step(window_us: int, steps_per_s: float | None, burst: bool = False) -> bool:
    """Whether a network stepping ``steps_per_s`` times a second alone keeps up with the finest step it
    runs live (always so when nothing was measured). IF neurons: :func:`live_step_us` at this rate is
    the finest step the window allows (its value without a rate). Burst neurons step once per window
    (:func:`burst_steps`), whatever the machine, so the rate must be :data:`REAL_TIME_HEADROOM` times
    that step rate: 12 steps per second for a 100 ms window."""
    if steps_per_s is None:
        return True
    if burst:
        return steps_per_s >= REAL_TIME_HEADROOM * 1e6 / burst_steps(window_us)[0]
    return live_step_us(window_us, steps_per_s) == live_step_us(window_us)


def pick_live_model(candidates: list[tuple[str, int, float | None]], burst: bool = False) -> str:
    """The name of the first ``(name, window_us, steps_per_s)`` that :func:`keeps_up_with_finest_step`
    (with IF neurons a better network at a coarser step scored 0.10 map50 below the faster one at the
    finest step on two CPU cores; with burst neurons every network that keeps up scores its ANN's
    accuracy, so the better one runs wherever it keeps up), or, when none does, of the one that steps
    fastest, which then takes the finest step it keeps up with: on a slow hour of the 2-core sandbox
    ``events-default`` at 50 ms IF steps fell behind (0.79 map50, 141 ms median latency, 60 of 400 steps
    dropped) where ``events-fast`` at 50 ms kept up (0.84, 50 ms, 11 dropped; docs/demo.md)."""
    if not candidates:
        raise ValueError("no candidate models")
    for name, window_us, steps_per_s in candidates:
        if keeps_up_with_finest_step(window_us, steps_per_s, burst):
            return name
    return max(candidates, key=lambda candidate: candidate[2])[0]


BURST_STEPS_PER_WINDOW = 1
"""Steps per model window with burst neurons: one step per window, from fresh membranes
(:func:`resolve_membranes`), is the Quant-ReLU ANN on that window, and `bench/stream_accuracy.py` scores
it as the ANN to the third decimal: `events-default` 0.777 / 0.938 mAP@0.5 on the v3 test splits (ANN
0.777 / 0.938), 0.244 on real highway video (ANN 0.243), where two steps of half a window scored 0.770 /
0.902 and 0.129 (docs/streaming.md, "Fresh membranes"). A box message every model window (every 100 ms
for the events models, 50 ms for the spike-camera ones); ``--dt-us`` half the window and
``--window-steps 2`` give one every half window."""


def burst_steps(window_us: int) -> tuple[int, int]:
    """``(dt_us, window_steps)`` of a burst network's stream: :data:`BURST_STEPS_PER_WINDOW` steps per
    model window, the output averaged over one whole window."""
    if window_us % BURST_STEPS_PER_WINDOW:
        return window_us, 1
    return window_us // BURST_STEPS_PER_WINDOW, BURST_STEPS_PER_WINDOW


MEMBRANE_CHOICES = ("auto", "keep", "fresh")
"""``--membranes`` of ``streamdet detect`` / ``demo`` (``streamdet.detector.DetectorConfig.membranes``):
``auto`` is ``fresh`` for a network of burst neurons and ``keep`` for IF neurons
(:func:`resolve_membranes`)."""


def resolve_membranes(choice: str, burst: bool) -> str:
    """``DetectorConfig.membranes`` of ``--membranes choice`` for a network with (``burst``) or without
    burst neurons. Burst neurons step from fresh membranes under ``auto``: a kept membrane carries a
    step's rounding (up to one level of ``N``) into the next, which two steps per window do not average
    out (on the v3 test splits `events-default` streamed 0.767 / 0.833 mAP@0.5 kept against 0.774 /
    0.897 fresh, the ANN 0.779 / 0.939: docs/streaming.md, "Fresh membranes"). IF neurons need kept
    membranes: a fresh IF step can only say 0 or 1."""
    if choice not in MEMBRANE_CHOICES:
        raise ValueError(f"membranes must be one of {MEMBRANE_CHOICES}, got {choice!r}")
    if choice == "auto":
        return "fresh" if burst else "keep"
    return choice


COMPILE_CHOICES = ("auto", "on", "off")
"""``--compile`` of ``streamdet detect`` / ``demo``: ``auto`` is on where :func:`compiler_found` and
the device is the CPU."""


def compiler_found() -> str | None:
    """The C++ compiler Inductor's CPU backend would call (``$CXX``, else ``g++``, ``c++``, ``clang++`` on
    the PATH), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def resolve_compile(choice: str, device: str = "cpu") -> bool:
    """Whether ``--compile choice`` compiles on ``device``: ``on`` always, ``off`` never, ``auto`` on a
    CPU with a C++ compiler (:func:`compiler_found`)."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {COMPILE_CHOICES}, got {choice!r}")
    if choice == "auto":
        return device == "cpu" and compiler_found() is not None
    return choice == "on"


def demo_threads(compiled: bool) -> int:
    """Torch threads of the demo's detector for ``--threads auto``: two where its steps are compiled and
    the machine has two cores or more, else one. On the 2-core sandbox compiled `events-fast` ran the demo
    at a median latency of 9.7-14 ms with two threads against 12.8-13.5 ms with one (three runs each, in
    turn), and node by node two threads were slower than one (the second competes with the scene driver
    and the viewer; docs/demo.md)."""
    return 2 if compiled and (os.cpu_count() or 1) >= 2 else 1


PRECISION_CHOICES = ("auto", "float32", "bfloat16", "int8")
"""``--precision`` of ``detect`` and ``demo``: ``auto`` (:func:`choose_precision`) or one of
``streamdet.snn.PRECISIONS`` (written out here so that the CLI's options need no torch import)."""

LOW_PRECISION_MIN_GAIN = 1.1
"""``--precision auto`` takes bfloat16 or int8 where this CPU runs the network's spike-fed convolutions at
least this many times faster with it than with float32 (:func:`choose_precision`): their cost in accuracy
is small but not nil (docs/conversion.md, "Precision"), so it must buy a clear gain in speed."""


def low_precisions() -> tuple[str, ...]:
    """The precisions other than float32 this CPU and torch build run: ``bfloat16`` where it has bfloat16
    convolutions (AVX512-BF16 or AMX), ``int8`` where oneDNN's int8 convolution runs (any x86-64 CPU)."""
    from streamdet.snn import bfloat16_supported, int8_supported

    return tuple(
        name
        for name, supported in (("bfloat16", bfloat16_supported), ("int8", int8_supported))
        if supported()
    )


def convolution_ms(networks: dict[str, SpikingDetector], rounds: int = 3, seed: int = 0) -> dict[str, float]:
    """Key -> milliseconds of one step's spike-fed convolutions (``SpikingNetwork.spike_fed_convolutions``,
    the part of a step a precision changes) of each of ``networks``, the same network at different
    precisions: every one fed the spike maps of one node-by-node step of the first on
    :func:`measure_step_rate`'s random input, timed in turn ``rounds`` times, the best of each kept."""
    import torch

    first = next(iter(networks.values())).with_compilation(False)
    inputs = random_step_input(first, seed)
    spike_maps: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_pre_hook(
            lambda _, args, name=name: spike_maps.setdefault(name, args[0].clone())
        )
        for name, module in first.spike_fed_convolutions().items()
    ]
    try:
        first.run(inputs, first.initial_state(1))
    finally:
        for hook in hooks:
            hook.remove()
    best = dict.fromkeys(networks, float("inf"))
    convolutions = {key: network.spike_fed_convolutions() for key, network in networks.items()}
    with torch.no_grad():
        for round_index in range(max(1, rounds) + 1):  # round 0 warms up and is not kept
            for key, modules in convolutions.items():
                started = time.perf_counter()
                for name, module in modules.items():
                    module(spike_maps[name])
                if round_index:
                    best[key] = min(best[key], 1000.0 * (time.perf_counter() - started))
    return {key: round(value, 3) for key, value in best.items()}


def choose_precision(
    snn: SpikingDetector, precision: str, device: str = "cpu", rounds: int = 3
) -> tuple[SpikingDetector, dict[str, float]]:
    """``(network at the chosen precision, {precision: milliseconds of one step's spike-fed convolutions}
    of each one timed)``.

    ``precision`` ``float32``, ``bfloat16`` or ``int8`` is taken as given (nothing timed); ``auto`` is
    float32 on a GPU, where this CPU runs no other (:func:`low_precisions`) or where the network has no
    spike-fed convolution, else the spike-fed
    convolutions of one step, the only part a precision changes, are timed at float32 and at each of those
    (:func:`convolution_ms`, in turn ``rounds`` times, the best of each kept, so that a busy moment of a
    shared machine does not decide; a fraction of a second in all), and the fastest is taken where its
    convolutions run at least :data:`LOW_PRECISION_MIN_GAIN` times faster than float32's (a network of a
    few channels convolves slower in bfloat16). The convolutions rather than whole steps: node by node the
    conversions into and out of the low precision are passes of their own, which a compiled step fuses
    with the neurons; timed as whole node-by-node steps, int8 came out too close to the threshold on the
    AMD CPU of docs/conversion.md ("Precision") and took float32 in one of two demo starts, where compiled
    int8 steps take 0.69-0.76 of float32's."""
    if precision != "auto":
        return snn.with_precision(precision), {}
    candidates = low_precisions() if device == "cpu" else ()
    if not candidates or not snn.spike_fed_convolutions():  # nothing a precision would change
        return snn.with_precision("float32"), {}
    networks = {"float32": snn, **{name: snn.with_precision(name) for name in candidates}}
    milliseconds = convolution_ms(networks, rounds)
    fastest = min(candidates, key=milliseconds.__getitem__)
    clear = LOW_PRECISION_MIN_GAIN * milliseconds[fastest] <= milliseconds["float32"]
    return networks[fastest if clear else "float32"], milliseconds


def compile_live_model(
    snn: SpikingDetector, name: str, say: Callable[[str], None], who: str
) -> SpikingDetector:
    """``snn`` compiled (``streamdet.compiled``) for its padded sensor size, said with the time it took;
    ``snn`` itself (node by node) when the compile fails, said with the reason."""
    import torch

    from streamdet.model import padded_length

    say(f"{who}: compiling {name}'s step (--compile; 10-25 s the first time on a machine, cached after) ...")
    started = time.perf_counter()
    compiled = snn.with_compilation(report=say)
    width, height = (padded_length(length) for length in snn.spec.sensor_size)
    if compiled.prepare_compiled(torch.zeros((1, 1, snn.in_channels, height, width))):
        say(f"{who}: compiled {name}'s step in {time.perf_counter() - started:.1f} s")
        measure_step_rate(compiled)  # warm-up: the first dozen compiled steps of a thread run ~1.5x slower
        return compiled
    say(f"{who}: {name} runs node by node (the compile failed; --compile off skips it)")
    return snn


def load_live_model(
    name: str,
    measure: bool,
    say: Callable[[str], None],
    who: str,
    burst: bool = False,
    precision: str = "float32",
    device: str = "cpu",
    compile: bool = False,
) -> tuple[str, SpikingDetector, dict[str, float | None], dict[str, float]]:
    """``(name, converted network, {name: steps per second alone or None} of every network loaded,
    {precision: milliseconds of one step's spike-fed convolutions} of the chosen one, empty where
    ``precision`` was not ``auto``)`` of ``--model`` for ``streamdet demo`` and ``streamdet detect``
    (``who`` starts each line ``say`` gets).
    For ``auto`` the :data:`AUTO_MODELS` are loaded and timed in turn until one keeps up with its finest
    step, and :func:`pick_live_model` chooses among those loaded (without ``measure``, on a GPU or with
    ``--dt-us`` given, nothing is timed and the first keeps up). With ``burst``, ANN checkpoints are
    converted to burst IF neurons (``streamdet.convert.ConversionConfig.burst``); each network runs at
    :func:`choose_precision` of ``precision`` (its ``precision`` attribute says which) and is timed at it;
    with ``compile`` it is compiled (``streamdet.compiled``) for its sensor size before it is timed."""
    from streamdet.loading import load_snn

    names = AUTO_MODELS if name == "auto" else (name,)
    loaded = []
    for candidate in names:
        neurons = "burst IF" if burst else "IF"
        say(f"{who}: loading {candidate} and converting it to a spiking network ({neurons} neurons) ...")
        snn, precision_rates = choose_precision(load_snn(candidate, burst=burst), precision, device)
        if precision_rates:
            listed = ", ".join(f"{p} {ms:.1f} ms" for p, ms in precision_rates.items())
            say(f"{who}: --precision auto: {candidate}'s spike-fed convolutions: {listed}; {snn.precision}")
        if compile:
            snn = compile_live_model(snn, candidate, say, who)
        rate = None
        if measure:
            rate = measure_step_rate(snn)
        loaded.append((candidate, snn, rate, precision_rates))
        if keeps_up_with_finest_step(snn.spec.window_us, rate, snn.burst):
            break  # no later candidate is needed
    chosen = pick_live_model([(n, s.spec.window_us, r) for n, s, r, _ in loaded], loaded[0][1].burst)
    rates = {n: r for n, _, r, _ in loaded}
    if len(loaded) > 1:
        listed = ", ".join(f"{n} {r:.0f}" for n, r in rates.items())
        say(f"{who}: --model auto: steps per second alone on this CPU: {listed}; running {chosen}")
    snn, precision_ms = next((snn, ms) for n, snn, _, ms in loaded if n == chosen)
    return chosen, snn, rates, precision_ms
