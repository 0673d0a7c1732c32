"""Throughput of the sensor emulators on rendered synthetic scenes (one thread).

Renders ``--frames`` frames of each preset at ``--fps`` with :mod:`streamdet.scenes` (not timed), then
times :func:`streamdet.encoders.emulate_dvs` over all of them and :func:`emulate_spike_camera` over the
first ``--spike-frames`` of them, and prints one line per preset and emulator: frames per second of
process CPU time (what the code costs, little affected by other processes on a shared machine) and of
wall time.

    .venv/bin/python bench/bench_encoders.py --frames 500 --fps 250
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from streamdet.encoders import DVSParams, SpikeCameraParams, emulate_dvs, emulate_spike_camera
from streamdet.scenes import SceneConfig, make_scene, render_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--fps", type=float, default=250.0)
    parser.add_argument("--spike-frames", type=int, default=26)
    parser.add_argument("--sensor", type=int, nargs=2, default=(346, 260), metavar=("W", "H"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    times = (np.arange(args.frames) * 1e6 / args.fps).astype(np.int64)
    for preset in ("maritime", "traffic"):
        scene = make_scene(SceneConfig(preset=preset, sensor_size=tuple(args.sensor), seed=1))
        frames = render_frames(scene, times)
        size = f"{args.sensor[0]}x{args.sensor[1]}"
        start, cpu_start = time.perf_counter(), time.process_time()
        events, _ = emulate_dvs(frames, times, DVSParams())
        wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        scene_s = (times[-1] - times[0]) * 1e-6
        print(
            f"{preset:9s} dvs   {size}: {args.frames / cpu_s:6.0f} input frames per CPU s "
            f"({args.frames / wall_s:6.0f} per wall s), {len(events) / scene_s / 1e6:.2f} Mev per scene s"
        )
        count = args.spike_frames
        start, cpu_start = time.perf_counter(), time.process_time()
        spikes, _, _ = emulate_spike_camera(frames[:count], times[:count], SpikeCameraParams())
        wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        print(
            f"{preset:9s} spike {size}: {len(spikes) / cpu_s:6.0f} 20 kHz output frames per CPU s "
            f"({len(spikes) / wall_s:6.0f} per wall s), firing fraction {spikes.mean():.3f}"
        )


if __name__ == "__main__":
    main()
