"""Where a live window's time goes, in one process: the detector's own work per published window,
part by part, on the demo's synthetic maritime stream with the live settings (burst neurons, one step
per model window from fresh membranes, boxes every window; bfloat16 and compiled steps where this
machine has them; ``--membranes keep`` for the kept, ``[0, 1]``-bounded membranes of before).

    .venv/bin/python bench/window_parts.py --model events-fast --threads 2 --json out/window_parts.json

Parts (medians over the windows after the first ``--skip``, milliseconds): ``bin`` (the packet that
completes the step, ``StreamDetector.add_events``), ``inputs`` (scaling and history channels into the
network input), ``step`` (one step of the spiking network), ``decode`` (window mean, decoding, the box
filter). The packets are fed back to back, so every part runs warm: ``bench/idle_step.py`` measures
what the 50 ms between steps add in a live node.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency import print_results, synthetic_packets  # noqa: E402

from streamdet.live import PRECISION_CHOICES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="events-fast")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seconds", type=float, default=8.0, help="stream length, seconds")
    parser.add_argument("--skip", type=int, default=12, help="windows not timed at the start")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    parser.add_argument("--membranes", choices=("fresh", "keep"), default="fresh")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from streamdet.detector import DetectorConfig, StreamDetector
    from streamdet.live import burst_steps, load_live_model, resolve_compile

    _, snn, _, _ = load_live_model(
        args.model, False, lambda line: print(line, file=sys.stderr), "bench", burst=True,
        precision=args.precision, compile=resolve_compile(args.compile),
    )  # fmt: skip
    dt_us, window_steps = burst_steps(snn.spec.window_us)
    config = DetectorConfig(
        dt_us=dt_us, window_steps=window_steps, publish_every=1, membrane_bounds=(0.0, 1.0),
        precision=snn.precision, compile=snn.compiled, membranes=args.membranes,
    )  # fmt: skip
    detector = StreamDetector(snn, config)
    detector.warm_up()
    packets = synthetic_packets(args.seconds, snn.spec.sensor_size)
    parts: dict[str, list[float]] = {"bin": [], "inputs": [], "step": [], "decode": []}
    windows = 0
    for packet in packets:
        started = time.perf_counter()
        detector.add_events("bench", packet.events, snn.spec.sensor_size, packet.t0_us, packet.t1_us)
        binned = time.perf_counter()
        state = detector.streams["bench"]
        while state.queue:
            steps = state.queue.popleft()
            inputs_started = time.perf_counter()
            inputs = detector._chunk_inputs(state, steps.first, steps.values)
            step_started = time.perf_counter()
            (cls_steps, box_steps), state.snn_state = detector.snn.run(inputs, state.snn_state)
            decode_started = time.perf_counter()
            for k in range(len(steps.values)):
                state.window.push(steps.first + k, cls_steps[k, 0], box_steps[k, 0])
            if not state.window.full:
                continue
            detector._decode(state)
            done = time.perf_counter()
            windows += 1
            if windows > args.skip:
                parts["bin"].append(binned - started)
                parts["inputs"].append(step_started - inputs_started)
                parts["step"].append(decode_started - step_started)
                parts["decode"].append(done - decode_started)
    medians = {name: round(1e3 * float(np.median(times)), 3) for name, times in parts.items()}
    results = {
        "model": args.model,
        "threads": args.threads,
        "precision": snn.precision,
        "compiled": snn.compiled,
        "membranes": args.membranes,
        "dt_us": dt_us,
        "window_steps": window_steps,
        "windows_timed": len(parts["step"]),
        "events_per_packet": round(float(np.mean([len(p.events) for p in packets]))),
        "median_ms": medians,
        "sum_of_medians_ms": round(sum(medians.values()), 3),
    }
    print_results(results, args.json)


if __name__ == "__main__":
    main()
