"""Viewer: event frames, boxes, display check, mp4 + PNG output, and `streamdet view` on real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from streamdet import CLASS_NAMES, bus, wire
from streamdet.events import EVENT_DTYPE
from streamdet.viewer import (
    BACKGROUND_BGR,
    CLASS_COLOURS_BGR,
    TRUTH_COLOUR_BGR,
    VideoOutput,
    annotated_frame,
    event_frame,
    has_display,
)

SENSOR = (80, 60)


def events_at(points: list[tuple[int, int, int, bool]]) -> np.ndarray:
    events = np.zeros(len(points), dtype=EVENT_DTYPE)
    for i, (x, y, t, p) in enumerate(points):
        events[i] = (x, y, t, p)
    return events


def test_event_frame_colours_on_off_and_background():
    image = event_frame(events_at([(3, 4, 0, True), (3, 4, 1, True), (10, 20, 2, False)]), SENSOR)
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == BACKGROUND_BGR
    on, off = image[4, 3].astype(int), image[20, 10].astype(int)
    assert on.min() > 200  # two ON events saturate to near white
    assert off[0] > off[2] + 100  # OFF is blue (B >> R)


def test_boxes_truth_and_labels_are_drawn_at_scale():
    base = event_frame(events_at([]), SENSOR)
    detections = np.array([[10, 20, 40, 50, 0.9, CLASS_NAMES.index("buoy")]], np.float32)
    truth = np.array([[50, 5, 70, 25, 1.0, 0]], np.float32)
    image = annotated_frame(base, detections, CLASS_NAMES, truth, hud=[], scale=2)
    assert image.shape == (120, 160, 3)
    assert tuple(image[70, 20]) == CLASS_COLOURS_BGR["buoy"]  # left edge x=10 at scale 2, mid-height
    assert tuple(image[30, 100]) == TRUTH_COLOUR_BGR  # truth left edge x=50
    assert tuple(image[80, 60]) == BACKGROUND_BGR  # inside the box: untouched
    label_band = image[26:40, 20:60]
    assert np.any(np.all(label_band == CLASS_COLOURS_BGR["buoy"], axis=-1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is Linux's")
def test_has_display_needs_a_server_that_answers(monkeypatch, tmp_path):
    """Unset variables, a DISPLAY where no X server listens (OpenCV aborted the viewer there, exit 134)
    and a WAYLAND_DISPLAY without a socket are no display; a socket that accepts connections is one."""
    import socket

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert not has_display()
    monkeypatch.setenv("DISPLAY", ":987")
    assert not has_display()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-test")
    assert not has_display()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "wayland-test"))
        server.listen(1)
        assert has_display()


def test_video_output_writes_readable_mp4_and_snapshots(tmp_path):
    output = VideoOutput(tmp_path / "cam.mp4", fps=10, snapshot_every_s=1.0)
    for i in range(25):
        output.write(np.full((60, 80, 3), i * 10, np.uint8))
    output.close()
    capture = cv2.VideoCapture(str(tmp_path / "cam.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 25 and frames[0].shape == (60, 80, 3)
    assert abs(int(frames[20].mean()) - 200) < 8
    assert [p.name for p in output.snapshots] == ["cam-0000.png", "cam-0001.png"]
    assert abs(int(cv2.imread(str(output.snapshots[1])).mean()) - 150) < 2


def test_view_cli_stopped_by_ctrl_c_closes_its_video_and_says_what_it_drew(tmp_path):
    """Ctrl-C stops ``streamdet view`` cleanly: the video is readable, and the summary (frames, how late
    the messages arrived) is printed, with exit code 130."""
    endpoint = f"ipc://{tmp_path}/view.sock"
    publisher = bus.Publisher(endpoint)
    viewer = subprocess.Popen(
        [sys.executable, "-m", "streamdet", "view", endpoint, "--headless", "--out", str(tmp_path / "out"),
         "--fps", "10"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert publisher.wait_for_subscribers(1, timeout_s=60)
        rng = np.random.default_rng(1)
        for k in range(12):
            t0, t1 = k * 50_000, (k + 1) * 50_000
            events = np.zeros(200, dtype=EVENT_DTYPE)
            events["x"] = rng.integers(0, SENSOR[0], 200)
            events["y"] = rng.integers(0, SENSOR[1], 200)
            events["t"] = np.sort(rng.integers(t0, t1, 200))
            publisher.send(wire.events_message("sea", events, SENSOR, t0, t1))
            time.sleep(0.01)
        video = tmp_path / "out" / "sea.mp4"
        deadline = time.monotonic() + 60
        while not video.exists() and time.monotonic() < deadline:  # the first frame opens the video
            time.sleep(0.1)
        time.sleep(1.0)
        viewer.send_signal(signal.SIGINT)
        _, stderr = viewer.communicate(timeout=60)
    finally:
        publisher.close()
        if viewer.poll() is None:
            viewer.kill()
    assert viewer.returncode == 130, stderr
    summary = [line for line in stderr.splitlines() if line.startswith("view: frames sea: ")]
    assert summary and "stopped by Ctrl-C" in summary[-1] and "ms after it was sent" in summary[-1], stderr
    capture = cv2.VideoCapture(str(tmp_path / "out" / "sea.mp4"))
    assert capture.read()[0]


def test_view_cli_records_headless_video_from_sockets(tmp_path):
    """``streamdet view`` with a DISPLAY where no X server answers (OpenCV aborted it there, exit 134):
    it writes the video instead."""
    endpoint = f"ipc://{tmp_path}/view.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":987"
    publisher = bus.Publisher(endpoint)
    viewer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamdet",
            "view",
            endpoint,
            "--out",
            str(tmp_path / "out"),
            "--fps",
            "10",
            "--snapshot-every",
            "0.5",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert publisher.wait_for_subscribers(1, timeout_s=60)
        rng = np.random.default_rng(0)
        box = np.array([[20, 10, 50, 40, 0.8, CLASS_NAMES.index("boat")]], np.float32)
        for k in range(10):
            t0, t1 = k * 50_000, (k + 1) * 50_000
            events = np.zeros(300, dtype=EVENT_DTYPE)
            events["x"] = rng.integers(20, 50, 300)
            events["y"] = rng.integers(10, 40, 300)
            events["t"] = np.sort(rng.integers(t0, t1, 300))
            events["p"] = rng.random(300) < 0.5
            publisher.send(wire.events_message("sea", events, SENSOR, t0, t1))
            publisher.send(wire.truth_message("sea", box, CLASS_NAMES, SENSOR, t1 - 1, t1))
            if k >= 2:
                publisher.send(
                    wire.detections_message("sea", box, CLASS_NAMES, SENSOR, t0 - 50_000, t1, latency_ms=3.0)
                )
            time.sleep(0.01)
        publisher.send(wire.eos_message("sea", "events", SENSOR))
        publisher.send(wire.eos_message("sea", "detections", SENSOR))
        _, stderr = viewer.communicate(timeout=60)
    finally:
        publisher.close()
        if viewer.poll() is None:
            viewer.kill()
    assert viewer.returncode == 0, stderr
    assert "no display" in stderr
    capture = cv2.VideoCapture(str(tmp_path / "out" / "sea.mp4"))
    count = 0
    last = None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        last = frame
    assert count == 1 + 8  # one paced event frame (t = 0.1 s) before the first detections, then one each
    boat_colour = np.array(CLASS_COLOURS_BGR["boat"])
    assert (
        np.abs(last[50:70, 38:42].astype(int) - boat_colour).sum(axis=-1).min() < 60
    )  # left box edge at x=40
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["sea-0000.png", "sea-0001.png"]
