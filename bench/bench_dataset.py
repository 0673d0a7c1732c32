"""Time `streamdet dataset build` for 60 s of each preset at 346x260 with the default options.

Run: ``.venv/bin/python bench/bench_dataset.py [--sequences 6] [--seconds 10] [--out /tmp/streamdet-bench]``

For each preset it runs the CLI in a subprocess (default: 6 sequences x 10 s = 60 s of scene, 2
workers, 250 rendered frames/s, spike stream at 1 kHz), reports the wall time, the output size and
the event rate, then deletes the output. ``cpu_s`` is the CPU time of the CLI and its workers
(user + system); on a machine shared with other jobs, ``cpu_s / 2`` estimates the wall time on two
free cores. It also times the per-frame parts on one core: scene rendering alone, and rendering +
DVS + spike-camera emulation. First it counts why boxes are labelled or ignored over 40 seeds
(``--labels-only`` stops there).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from streamdet.encoders import DVSParams, SpikeCameraParams, emulate_dvs, emulate_spike_camera
from streamdet.scenes import PRESETS, SceneConfig, make_scene, render_frames


def per_frame_costs(preset: str, frames: int = 500, seeds: int = 3) -> dict[str, float]:
    """Milliseconds per rendered frame (346x260, 4 ms apart) for rendering and for the whole chain."""
    cv2.setNumThreads(1)
    render_ms, chain_ms = [], []
    for seed in range(seeds):
        scene = make_scene(SceneConfig(preset, seed=seed, duration_us=frames * 4000))
        times = np.arange(frames, dtype=np.int64) * 4000
        start = time.perf_counter()
        luminance = render_frames(scene, times)
        rendered = time.perf_counter()
        emulate_dvs(luminance, times, DVSParams(seed=seed))
        emulate_spike_camera(luminance, times, SpikeCameraParams(rate_hz=1000.0))
        done = time.perf_counter()
        render_ms.append((rendered - start) / frames * 1e3)
        chain_ms.append((done - start) / frames * 1e3)
    return {
        "render_ms_per_frame": round(float(np.median(render_ms)), 2),
        "render_dvs_spikes_ms_per_frame": round(float(np.median(chain_ms)), 2),
    }


def ignore_reasons(preset: str, seeds: range = range(200, 240), t_us: int = 1_500_000) -> dict[str, int]:
    """Why boxes are labelled or ignored, counted over ``seeds`` at ``t_us`` (reasons joined by ``+``)."""
    counts: dict[str, int] = {}
    for seed in seeds:
        scene = make_scene(SceneConfig(preset, seed=seed, duration_us=2 * t_us))
        config = scene.config
        for truth in scene.ground_truth(t_us):
            x1, y1, x2, y2 = truth.box
            reasons = [
                name
                for name, hit in (
                    ("small", min(x2 - x1, y2 - y1) < config.min_visible_side_px),
                    ("hidden", truth.visible_fraction < config.min_visible_fraction),
                    ("faint", truth.contrast < config.min_contrast),
                    ("still", truth.motion_px < config.min_motion_px),
                )
                if hit
            ]
            key = "+".join(reasons) or "labelled"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def build_time(preset: str, sequences: int, seconds: float, out: Path) -> dict[str, float]:
    """Wall time of the CLI building ``sequences x seconds`` of ``preset``, plus output size and events."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "streamdet",
        "dataset",
        "build",
        "--preset",
        preset,
        "--sequences",
        str(sequences),
        "--seconds",
        str(seconds),
        "--split",
        "train",
        "--seed",
        "0",
        "--out",
        str(out),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    info = json.loads((out / "train" / "annotations.json").read_text())
    events = sum(sequence["events"] for sequence in info["info"]["sequences"])
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    shutil.rmtree(out, ignore_errors=True)
    return {
        "scene_seconds": sequences * seconds,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "events_per_s": round(events / (sequences * seconds)),
        "images": len(info["images"]),
        "boxes": len(info["annotations"]),
        "megabytes": round(size / 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/streamdet-bench"))
    parser.add_argument("--labels-only", action="store_true", help="only count labelled and ignored boxes")
    args = parser.parse_args()
    for preset in PRESETS:
        print(json.dumps({"preset": preset, "boxes_by_reason": ignore_reasons(preset)}), flush=True)
    if args.labels_only:
        return
    for preset in PRESETS:
        result = {
            "preset": preset,
            **per_frame_costs(preset),
            **build_time(preset, args.sequences, args.seconds, args.out),
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
