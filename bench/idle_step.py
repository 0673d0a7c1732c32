"""One step of a converted network timed back to back and after an idle gap, as the live node runs it
(a step every 100 ms window): how much of a live window's latency is the step waking up a cold core and
cache.

    .venv/bin/python bench/idle_step.py --model events-fast --threads 2 --json out/idle_step.json

Burst neurons, bfloat16 where the CPU has it, compiled where a C++ compiler is found (the live
defaults), each step from fresh membranes as the live node steps burst neurons (``--membranes keep``: the
kept membranes of before); random input with 10 % of the pixels active at 0.5; median over ``--steps``
steps per gap.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="events-fast")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--gaps-ms", default="0,5,20,50,100", help="idle gaps before each timed step")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per gap")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--membranes", choices=("fresh", "keep"), default="fresh")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from streamdet.detector import DetectorConfig, stream_neuron
    from streamdet.live import resolve_compile
    from streamdet.loading import load_snn
    from streamdet.model import padded_length
    from streamdet.snn import bfloat16_supported

    snn = load_snn(args.model, burst=True)
    snn = snn.with_precision("bfloat16" if bfloat16_supported() else "float32")
    snn = snn.with_neuron(stream_neuron(snn.neuron, DetectorConfig(membranes=args.membranes)))
    compiled = resolve_compile(args.compile)
    width, height = (padded_length(length) for length in snn.spec.sensor_size)
    generator = torch.Generator().manual_seed(0)
    inputs = 0.5 * (torch.rand((1, 1, snn.in_channels, height, width), generator=generator) < 0.1)
    if compiled:
        snn = snn.with_compilation()
        compiled = snn.prepare_compiled(inputs)
    state = snn.initial_state(1)
    for _ in range(30):  # the first dozen compiled steps of a thread run slower
        _, state = snn.run(inputs, state)
    medians = {}
    for gap_ms in (float(g) for g in args.gaps_ms.split(",")):
        times = []
        for _ in range(args.steps):
            if gap_ms:
                time.sleep(gap_ms / 1e3)
            started = time.perf_counter()
            _, state = snn.run(inputs, state)
            times.append(time.perf_counter() - started)
        medians[f"{gap_ms:g}"] = round(1e3 * float(np.median(times)), 2)
        print(f"idle {gap_ms:g} ms before each step: median step {medians[f'{gap_ms:g}']} ms", flush=True)
    results = {
        "model": args.model,
        "threads": args.threads,
        "precision": snn.precision,
        "compiled": bool(compiled),
        "membranes": args.membranes,
        "steps_per_gap": args.steps,
        "step_ms_median_by_gap_ms": medians,
    }
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
