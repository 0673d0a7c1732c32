"""CPU time per rendered frame of each scene preset (rendering alone, no sensor emulation).

Run: ``.venv/bin/python bench/bench_scene_render.py [--presets traffic,street] [--seeds 8] [--frames 50]``

For each seed, each preset renders ``--frames`` frames 10 ms apart at 346x260 on one OpenCV thread;
presets take turns seed by seed, so that the load of a shared machine weighs on all of them alike.
``process_time`` counts the CPU time of this process only. Street scenes are split by camera (pole or
car camera), which costs differently: a car camera redraws the whole street at every frame; harbour
scenes likewise (quay, drone or boat camera).

``--truths`` prints instead, per preset, why boxes are labelled or ignored over seeds 200-239 at
t = 1.5 s (``bench_dataset.ignore_reasons``) and how far pedestrians move on the sensor in the 50 ms
before that instant (share under 0.5 px, median).
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
from bench_dataset import ignore_reasons

from streamdet.scenes import PRESETS, SceneConfig, make_scene


def render_ms_per_frame(preset: str, seed: int, frames: int) -> tuple[float, str]:
    """CPU milliseconds per frame for the scene ``(preset, seed)`` and its camera kind."""
    scene = make_scene(SceneConfig(preset, sensor_size=(346, 260), seed=seed, duration_us=frames * 10_000))
    start = time.process_time()
    for index in range(frames):
        scene.render(index * 10_000)
    elapsed = time.process_time() - start
    cameras = {"street": lambda: "car" if scene.moving else "pole", "harbour": lambda: scene.camera_kind}
    camera = cameras.get(preset, lambda: preset)()
    return elapsed / frames * 1e3, camera


def pedestrian_motion(preset: str, seeds: range = range(200, 240), t_us: int = 1_500_000) -> dict[str, float]:
    """Share of visible pedestrians that moved under 0.5 px in the 50 ms before ``t_us``, and the median."""
    motions = []
    for seed in seeds:
        scene = make_scene(SceneConfig(preset, seed=seed, duration_us=2 * t_us))
        motions += [t.motion_px for t in scene.ground_truth(t_us) if t.class_name == "pedestrian"]
    return {
        "pedestrians": len(motions),
        "share_under_0.5_px": round(float(np.mean(np.array(motions) < 0.5)), 2) if motions else 0.0,
        "median_px": round(float(np.median(motions)), 2) if motions else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--truths", action="store_true", help="count label reasons and pedestrian motion")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    presets = [name.strip() for name in args.presets.split(",") if name.strip()]
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        parser.error(f"--presets: unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    if args.truths:
        for preset in presets:
            reasons = {"boxes_by_reason": ignore_reasons(preset), **pedestrian_motion(preset)}
            print(json.dumps({"preset": preset, **reasons}), flush=True)
        return
    timings: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        for preset in presets:
            ms, camera = render_ms_per_frame(preset, seed, args.frames)
            key = preset if camera == preset else f"{preset} ({camera} camera)"
            timings.setdefault(key, []).append(ms)
    for key, values in timings.items():
        summary = {"median": np.median(values), "min": min(values), "max": max(values)}
        print(
            json.dumps(
                {"scenes": key, "count": len(values), **{k: round(float(v), 2) for k, v in summary.items()}}
            )
        )


if __name__ == "__main__":
    main()
