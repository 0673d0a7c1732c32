"""The emulators' physics, measured: noise rate of a static scene, events per pixel for a brightness
step, spike-camera firing rate against intensity. Prints one table per check.

    .venv/bin/python bench/encoder_physics.py
"""

from __future__ import annotations

import dataclasses

import numpy as np

from streamdet.encoders import DVSParams, SpikeCameraParams, emulate_dvs, emulate_spike_camera

SHAPE = (96, 128)
FRAME_US = 4000


def static_noise(intensity: float, params: DVSParams, seconds: float) -> tuple[float, float, float]:
    """(measured ON rate, measured OFF rate, expected total rate), events per pixel per second."""
    count = int(seconds * 1e6 / FRAME_US) + 1
    frames = np.full((count, *SHAPE), intensity, dtype=np.float32)
    events, _ = emulate_dvs(frames, np.arange(count, dtype=np.int64) * FRAME_US, params)
    pixel_seconds = SHAPE[0] * SHAPE[1] * seconds
    shot = params.shot_noise_rate_hz * (1 + (params.shot_noise_bright_factor - 1) * intensity)
    return events["p"].sum() / pixel_seconds, (~events["p"]).sum() / pixel_seconds, params.leak_rate_hz + shot


def step_response(step_log: float, params: DVSParams) -> tuple[float, float, float]:
    """(ON events per pixel for a step up of ``step_log`` log units, expected mean d / theta_on,
    OFF events per pixel for the step back down)."""
    low = 0.2
    high = (low + params.log_eps) * np.exp(step_log) - params.log_eps
    up = np.concatenate([np.full((5, *SHAPE), low), np.full((50, *SHAPE), high)]).astype(np.float32)
    events, state = emulate_dvs(up, np.arange(len(up), dtype=np.int64) * FRAME_US, params)
    down = np.full((50, *SHAPE), low, dtype=np.float32)
    down_times = state.last_time_us + FRAME_US * np.arange(1, 51, dtype=np.int64)
    off_events, _ = emulate_dvs(down, down_times, params, state)
    pixels = SHAPE[0] * SHAPE[1]
    return (
        events["p"].sum() / pixels,
        float(np.mean(step_log / state.pos_thresholds)),
        (~off_events["p"]).sum() / pixels,
    )


def main() -> None:
    print("static scene, 2 s at 250 frames/s, 128x96 pixels (events per pixel per second)")
    columns = ("intensity", "leak Hz", "shot Hz", "ON", "OFF", "total", "expected")
    print(" ".join(f"{name:>9s}" for name in columns))
    for intensity, leak, shot in [(0.5, 0.1, 0.1), (0.5, 0.5, 2.0), (0.1, 0.0, 5.0), (0.9, 0.0, 5.0)]:
        params = DVSParams(leak_rate_hz=leak, shot_noise_rate_hz=shot)
        on, off, expected = static_noise(intensity, params, 2.0)
        print(
            f"{intensity:9.2f} {leak:8.2f} {shot:8.2f} {on:8.3f} {off:8.3f} {on + off:8.3f} {expected:8.3f}"
        )

    print()
    print("brightness step of d log units within one 4 ms frame interval, no noise, thresholds 0.2 +- 0.03")
    print("(events per pixel; the crossings of a step are spread over the interval, 4 ms * theta / d apart)")
    print(f"{'d':>5s} {'refractory us':>13s} {'ON':>7s} {'mean d/theta_on':>15s} {'OFF back':>8s}")
    quiet = DVSParams(leak_rate_hz=0.0, shot_noise_rate_hz=0.0)
    for step in (0.5, 1.0, 2.0):
        for refractory_us in (500, 0):
            params = dataclasses.replace(quiet, refractory_us=refractory_us)
            on, expected, off = step_response(step, params)
            print(f"{step:5.2f} {refractory_us:13d} {on:7.3f} {expected:15.3f} {off:8.3f}")

    print()
    print("spike camera, 20 kHz, 0.1 s of constant intensity (fraction of frames with a spike)")
    intensity = np.linspace(0.1, 1.0, 10, dtype=np.float32).reshape(1, 10)
    for fraction in (1.0, 0.5):
        params = SpikeCameraParams(max_rate_fraction=fraction)
        frames = np.repeat(intensity[None], 2, axis=0)
        spikes, _, _ = emulate_spike_camera(frames, np.array([0, 100_000]), params)
        rates = " ".join(f"{rate:.4f}" for rate in spikes.mean(axis=0)[0])
        print(f"max_rate_fraction {fraction}: intensity 0.1..1.0 -> {rates}")


if __name__ == "__main__":
    main()
