"""Real sensor recordings end to end: ``streamdet replay FILE --loop | streamdet detect | subscriber``.

For each recording, the shipped model runs in a real ``streamdet detect`` process fed by a real
``streamdet replay`` process over ipc; this script subscribes to the detections like any user process.
It reports the boxes (all must lie inside the recording's own sensor), the latency the detector stamps in
every message (p50 / p99) and the steps it dropped, and draws the boxes of the busiest message over the
events of its window (PNG).

    python -m bench.real_recordings --recordings DIR [--seconds 20] [--model events-default] \
        [--out docs/real-sensors] [--json out.json] [-- DETECT OPTIONS...]

``DIR`` holds the Prophesee recordings ``prophesee_evt2_640x480.raw`` and ``prophesee_evt3_1280x720.raw``
(any ``.raw`` / ``.dat`` / ``.h5`` event file works; ``--files`` names others).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DEFAULT_FILES = ("prophesee_evt2_640x480.raw", "prophesee_evt3_1280x720.raw")


def _start(command: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise SystemExit(f"error: {process.args[:3]} exited early:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    raise SystemExit(f"error: no {text!r} from {process.args[:3]} after {timeout_s} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_recording(path: Path, seconds: float, model: str, detect_options: list[str], work: Path) -> dict:
    """Replay ``path`` in a loop into a detector for ``seconds``; the detections messages received."""
    from streamdet.bus import Subscriber

    name = path.stem.replace(".", "-")
    events_ep, detections_ep = f"ipc://{work}/{name}-events", f"ipc://{work}/{name}-dets"
    detect_log, replay_log = work / f"{name}-detect.log", work / f"{name}-replay.log"
    detect = _start(
        [
            sys.executable,
            "-m",
            "streamdet",
            "detect",
            "--input",
            events_ep,
            "--output",
            detections_ep,
            "--model",
            model,
            *detect_options,
        ],
        detect_log,
    )
    messages = []
    stop = threading.Event()

    def collect() -> None:
        with Subscriber([detections_ep], ["detections/"]) as subscriber:
            while not stop.is_set():
                message = subscriber.receive(200)
                if message is not None and message.kind == "detections":
                    messages.append(message)

    listener = threading.Thread(target=collect, daemon=True)
    listener.start()
    try:
        _wait_for_line(detect_log, f"-> {detections_ep}", detect, timeout_s=300)
        replay = _start(
            [
                sys.executable,
                "-m",
                "streamdet",
                "replay",
                str(path),
                "--endpoint",
                events_ep,
                "--stream",
                name,
                "--loop",
                "--speed",
                "1",
                "--wait-subscribers",
                "1",
                "--wait-timeout",
                "60",
            ],
            replay_log,
        )
        time.sleep(seconds)
        _stop(replay)
    finally:
        _stop(detect)
        stop.set()
        listener.join(timeout=5)
    return {"name": name, "messages": messages, "detect_log": detect_log.read_text(errors="replace")}


def summarise(path: Path, messages: list) -> dict:
    """Boxes inside the sensor, latency p50 / p99, dropped steps and rows per message."""
    from streamdet import formats

    sensor = formats.read_events(path).sensor_size
    rows = [m.payload.reshape(-1, 6) for m in messages]
    boxes = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
    inside = (
        (boxes[:, 0] >= 0)
        & (boxes[:, 1] >= 0)
        & (boxes[:, 2] <= sensor[0])
        & (boxes[:, 3] <= sensor[1])
        & (boxes[:, 2] > boxes[:, 0])
        & (boxes[:, 3] > boxes[:, 1])
    )
    latencies = [float(m.extra.get("latency_ms", float("nan"))) for m in messages]
    names = messages[0].extra.get("class_names", []) if messages else []
    per_class = {name: int(np.count_nonzero(boxes[:, 5] == k)) for k, name in enumerate(names)}
    return {
        "file": path.name,
        "sensor": list(sensor),
        "header_sensor": list(messages[0].sensor_size) if messages else None,
        "messages": len(messages),
        "boxes": int(len(boxes)),
        "boxes_inside_sensor": int(np.count_nonzero(inside)),
        "boxes_per_class": per_class,
        "score_min": float(boxes[:, 4].min()) if len(boxes) else None,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies else None,
        "dropped_steps": int(messages[-1].extra.get("dropped", 0)) if messages else None,
    }


def draw(path: Path, messages: list, out: Path) -> Path | None:
    """The busiest message's boxes over the events of its window (the replay loops, so stream time is
    folded back into the file's time span)."""
    import cv2

    from streamdet import formats
    from streamdet.viewer import draw_boxes, event_frame

    if not messages:
        return None
    read = formats.read_events(path)
    events, sensor = read.events, read.sensor_size
    message = max(messages, key=lambda m: (len(m.payload.reshape(-1, 6)), m.t1_us))
    first, last = int(events["t"][0]), int(events["t"][-1])
    span = last - first + 1
    folded = (events["t"] - first) % span
    window = events  # the whole recording is shorter than one detector window: show all of it
    if span > message.t1_us - message.t0_us:
        lo, hi = (message.t0_us - first) % span, (message.t1_us - first) % span
        keep = (folded >= lo) & (folded < hi) if lo < hi else (folded >= lo) | (folded < hi)
        window = events[keep]
    scale = 1 if sensor[0] >= 640 else 2
    image = event_frame(window, sensor)
    if scale != 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    names = tuple(message.extra.get("class_names", ()))
    draw_boxes(image, message.payload.reshape(-1, 6), names, scale)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{path.stem}.png"
    cv2.imwrite(str(target), image)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", required=True, type=Path, help="folder of the recordings")
    parser.add_argument("--files", nargs="+", default=list(DEFAULT_FILES), help="recordings in the folder")
    parser.add_argument("--seconds", type=float, default=20.0, help="replay time per recording (20)")
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--out", type=Path, default=Path("docs/real-sensors"), help="folder for the PNGs")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("detect_options", nargs=argparse.REMAINDER, help="-- then options for detect")
    args = parser.parse_args(argv)
    detect_options = [o for o in args.detect_options if o != "--"]
    results = []
    with tempfile.TemporaryDirectory(prefix="sd-real-") as work:
        for file in args.files:
            path = args.recordings / file
            run = run_recording(path, args.seconds, args.model, detect_options, Path(work))
            summary = summarise(path, run["messages"])
            summary["geometry"] = next(
                (
                    line.split(": ", 2)[-1]
                    for line in run["detect_log"].splitlines()
                    if "detect: stream" in line
                ),
                None,
            )
            picture = draw(path, run["messages"], args.out)
            summary["picture"] = str(picture) if picture else None
            results.append(summary)
            print(json.dumps(summary), flush=True)
    report = {
        "model": args.model,
        "seconds": args.seconds,
        "detect_options": detect_options,
        "recordings": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
