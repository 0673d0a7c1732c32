"""Write docs/gallery/<preset>.png: luminance frame | DVS event frame | spike-rate frame, with true boxes.

Run: ``.venv/bin/python -m tools.gallery [--seeds 3] [--presets maritime,traffic] [--out docs/gallery]``

Each row is one scene (seeds 0, 1, 2, ...) at ``t = 1.0 s``; the event frame shows the events of the
50 ms window ``(t - 50 ms, t]`` (ON white, OFF black, grey where none) and the spike-rate frame the
fraction of the 50 spike frames (1 kHz) of that window in which each pixel fired. Green boxes are
labelled objects, red ones are marked ignore (too small or too hidden).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from streamdet.binning import events_to_counts
from streamdet.encoders import DVSParams, SpikeCameraParams, emulate_dvs, emulate_spike_camera
from streamdet.events import DEFAULT_WINDOW_US
from streamdet.scenes import PRESETS, SceneConfig, make_scene, render_frames

LABEL_TIME_US = 1_000_000


def gallery_row(preset: str, seed: int, sensor_size: tuple[int, int] = (346, 260)) -> np.ndarray:
    """One BGR row ``[H, 3W, 3]`` for the scene ``(preset, seed)`` at :data:`LABEL_TIME_US`."""
    scene = make_scene(SceneConfig(preset, sensor_size, seed, duration_us=2 * LABEL_TIME_US))
    times = np.arange(0, LABEL_TIME_US + 1, 4000, dtype=np.int64)
    frames = render_frames(scene, times)
    events, _ = emulate_dvs(frames, times, DVSParams(seed=seed))
    spikes, spike_times, _ = emulate_spike_camera(frames, times, SpikeCameraParams(rate_hz=1000.0, seed=seed))
    start = LABEL_TIME_US - DEFAULT_WINDOW_US
    window = events[(events["t"] > start) & (events["t"] <= LABEL_TIME_US)]
    counts = events_to_counts(window, sensor_size)
    event_image = np.clip(128 + 64 * (counts[1] - counts[0]), 0, 255).astype(np.uint8)
    in_window = (spike_times > start) & (spike_times <= LABEL_TIME_US)
    spike_rate = spikes[in_window].mean(axis=0)
    panels = [(frames[-1] * 255).astype(np.uint8), event_image, (spike_rate * 255).astype(np.uint8)]
    row = cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_GRAY2BGR)
    width = sensor_size[0]
    for truth in scene.ground_truth(LABEL_TIME_US):
        x1, y1, x2, y2 = truth.box
        colour = (40, 40, 230) if truth.ignore else (40, 200, 40)
        for panel in range(3):
            cv2.rectangle(row, (x1 + panel * width, y1), (x2 - 1 + panel * width, y2 - 1), colour, 1)
            if not truth.ignore and panel == 0:
                cv2.putText(
                    row, truth.class_name, (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_PLAIN, 0.7, colour, 1
                )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    args = parser.parse_args()
    presets = [name.strip() for name in args.presets.split(",") if name.strip()]
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        parser.error(f"--presets: unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for preset in presets:
        rows = [gallery_row(preset, seed) for seed in range(args.seeds)]
        separator = np.full((2, rows[0].shape[1], 3), 255, dtype=np.uint8)
        image = np.concatenate([part for row in rows for part in (row, separator)][:-1], axis=0)
        path = args.out / f"{preset}.png"
        cv2.imwrite(str(path), image)
        print(path)


if __name__ == "__main__":
    main()
