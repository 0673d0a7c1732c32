"""Live drivers: synthetic scenes, video files and cameras, DV network streams - in-process and as CLIs."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamdet.drivers.dv import DVDriveConfig, drive_dv, dv_to_events, parse_address
from streamdet.drivers.synthetic import SyntheticDriveConfig, iter_synthetic_packets
from streamdet.drivers.video import FrameEncoder, VideoDriveConfig, drive_video, iter_video_frames

from streamdet import CLASS_NAMES
from streamdet.bus import Subscriber
from streamdet.cli import main as cli_main
from streamdet.encoders import DVSParams, emulate_dvs
from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE

STREAMDET = str(Path(sys.executable).with_name("streamdet"))


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    """Write 8-bit grey frames as an MJPG .avi that OpenCV reads back."""
    height, width = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def ramp_video_frames(count: int = 12, shape: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """A bright square moving right over a dark background."""
    frames = []
    for index in range(count):
        frame = np.full(shape, 40, dtype=np.uint8)
        frame[16:32, 4 + 3 * index : 20 + 3 * index] = 220
        frames.append(frame)
    return frames


def test_synthetic_packets_tile_time_and_carry_truth():
    config = SyntheticDriveConfig(
        preset="maritime",
        endpoint="unused",
        sensor_size=(128, 96),
        seconds=0.25,
        speed=None,
        render_fps=200.0,
        truth_every_us=50_000,
        episode_s=0.1,
    )
    packets = list(iter_synthetic_packets(config))
    assert [p.t0_us for p in packets] == list(range(0, 250_000, 10_000))
    assert all(p.t1_us == p.t0_us + 10_000 for p in packets)
    for packet in packets:
        assert packet.events.dtype == EVENT_DTYPE
        assert np.all((packet.events["t"] >= packet.t0_us) & (packet.events["t"] < packet.t1_us))
        assert np.all((packet.events["x"] < 128) & (packet.events["y"] < 96))
    assert sum(len(p.events) for p in packets) > 1000
    truths = [p for p in packets if p.truth is not None]
    assert [p.truth_us for p in truths] == [50_000, 100_000, 150_000, 200_000, 250_000]
    rows = np.concatenate([p.truth for p in truths])
    assert rows.dtype == np.float32 and rows.shape[1] == 6 and len(rows) > 0
    assert set(rows[:, 5].astype(int)) <= {CLASS_NAMES.index("boat"), CLASS_NAMES.index("buoy")}
    assert np.all(rows[:, 2] > rows[:, 0]) and np.all(rows[:, 3] > rows[:, 1])
    assert np.all((rows[:, 4] == 1) | (rows[:, 4] == 0))  # 0: marked ignore
    again = list(iter_synthetic_packets(config))
    np.testing.assert_array_equal(
        np.concatenate([p.events for p in again]), np.concatenate([p.events for p in packets])
    )


def test_synthetic_spike_packets_hold_whole_frames_at_the_spike_rate():
    config = SyntheticDriveConfig(
        preset="traffic",
        endpoint="unused",
        sensor="spike",
        sensor_size=(96, 64),
        seconds=0.05,
        speed=None,
        spike_rate_hz=2000.0,
    )
    packets = list(iter_synthetic_packets(config))
    times = np.concatenate([p.frame_times_us for p in packets])
    np.testing.assert_array_equal(times, np.arange(1, 100) * 500)
    for packet in packets:
        assert packet.frames.dtype == bool and packet.frames.shape[1:] == (64, 96)
        assert np.all((packet.frame_times_us >= packet.t0_us) & (packet.frame_times_us < packet.t1_us))
    assert 0.05 < np.concatenate([p.frames for p in packets]).mean() < 0.95


def test_video_file_frames_are_luminance_stamped_at_the_file_rate(tmp_path):
    path = tmp_path / "square.avi"
    write_video(path, ramp_video_frames(), fps=25.0)
    frames = list(iter_video_frames(str(path)))
    assert [t for t, _ in frames] == [k * 40_000 for k in range(12)]
    first = frames[0][1]
    assert first.dtype == np.float32 and first.shape == (48, 64)
    assert first[24, 10] == pytest.approx(220 / 255, abs=0.05) and first[2, 2] == pytest.approx(
        40 / 255, abs=0.05
    )
    stream = iter_video_frames(str(path), size=(32, 24), loop=True)
    looped = [next(stream) for _ in range(30)]
    stream.close()
    assert [t for t, _ in looped] == [k * 40_000 for k in range(30)]
    assert looped[0][1].shape == (24, 32)


def test_frame_encoder_gives_what_the_emulators_give_on_the_whole_video(tmp_path):
    path = tmp_path / "square.avi"
    write_video(path, ramp_video_frames(), fps=25.0)
    frames = list(iter_video_frames(str(path)))
    encoder = FrameEncoder("dvs", 1000.0, seed=3, dvs=DVSParams(), poisson_max_rate=1.0)
    outputs = [encoder.push(t, frame) for t, frame in frames]
    assert outputs[0] is None
    pushed = np.concatenate([events for kind, events in outputs[1:]])
    whole, _ = emulate_dvs(
        np.stack([f for _, f in frames]), np.array([t for t, _ in frames]), DVSParams(seed=3)
    )
    np.testing.assert_array_equal(pushed, whole)
    assert pushed["p"].sum() > 100 and (~pushed["p"]).sum() > 100

    for encoding in ("spike", "poisson"):
        encoder = FrameEncoder(encoding, 1000.0, seed=3, dvs=DVSParams(), poisson_max_rate=1.0)
        outputs = [encoder.push(t, frame) for t, frame in frames][1:]
        spikes = np.concatenate([payload[0] for _, payload in outputs])
        times = np.concatenate([payload[1] for _, payload in outputs])
        np.testing.assert_array_equal(times, np.arange(1, 441) * 1000)
        assert spikes.dtype == bool and spikes.shape == (440, 48, 64)
        background = spikes[:, :8, :].mean()
        assert background == pytest.approx(40 / 255, abs=0.03)


def test_unopenable_camera_is_a_one_line_error(tmp_path, capfd):
    assert cli_main(["drive", "video", "--camera", "99", "--endpoint", f"ipc://{tmp_path}/cam"]) == 2
    assert capfd.readouterr().err.splitlines() == [
        "streamdet drive: error: camera 99 cannot be opened (is it connected, and free?)"
    ]


def test_missing_or_unreadable_video_file_is_a_user_error(tmp_path, capsys):
    missing = tmp_path / "none.mp4"
    assert cli_main(["drive", "video", str(missing), "--endpoint", f"ipc://{tmp_path}/v"]) == 2
    assert capsys.readouterr().err == f"streamdet drive: error: {missing}: no such video file\n"
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    assert cli_main(["drive", "video", str(not_video), "--endpoint", f"ipc://{tmp_path}/g"]) == 2
    assert capsys.readouterr().err.startswith(f"streamdet drive: error: {not_video}: ")
    assert cli_main(["drive", "video", "--endpoint", f"ipc://{tmp_path}/g"]) == 2
    assert "give either a video FILE or --camera N" in capsys.readouterr().err


def test_unreachable_dv_stream_is_a_one_line_error(tmp_path, capsys):
    address = f"127.0.0.1:{free_tcp_port()}"
    assert cli_main(["drive", "dv", "--address", address, "--endpoint", f"ipc://{tmp_path}/dv"]) == 2
    assert capsys.readouterr().err == (
        f"streamdet drive: error: cannot read the DV stream at {address}: connect: Connection refused\n"
    )
    assert cli_main(["drive", "dv", "--address", "localhost", "--endpoint", f"ipc://{tmp_path}/dv"]) == 2
    assert "127.0.0.1:7777" in capsys.readouterr().err


def test_parse_address_and_dv_event_conversion():
    assert parse_address("127.0.0.1:7777") == ("127.0.0.1", 7777)
    for text in ("7777", "host:", "host:99999", ":80"):
        with pytest.raises(UserFacingError):
            parse_address(text)
    dv_dtype = np.dtype([("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "i1")])
    batch = np.array([(10, 1, 2, 1), (12, 3, 4, 0)], dtype=dv_dtype)
    events = dv_to_events(batch)
    assert events.dtype == EVENT_DTYPE
    assert events.tolist() == [(1, 2, 10, True), (3, 4, 12, False)]


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def collect_until_eos(
    subscriber: Subscriber, topics: set[str], timeout_s: float, on_message=lambda received: None
) -> dict[str, list]:
    """Messages per topic, as (arrival time, message), until every topic in ``topics`` has sent
    end-of-stream; ``on_message(received)`` is called after each data message."""
    received: dict[str, list] = {topic: [] for topic in topics}
    ended: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while ended != topics:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        assert remaining_ms > 0, f"no end-of-stream on {topics - ended} in {timeout_s} s"
        message = subscriber.receive(remaining_ms)
        if message is None:
            continue
        if message.kind == "eos":
            ended.add(message.topic)
        else:
            received[message.topic].append((time.monotonic(), message))
            on_message(received)
    return received


def test_drive_synthetic_cli_publishes_paced_events_and_truth_until_ctrl_c(tmp_path):
    endpoint = f"ipc://{tmp_path}/synthetic"
    args = ["--preset", "traffic", "--size", "96x64", "--speed", "0.5", "--stream", "street"]

    def interrupt_after_45_packets(received: dict) -> None:
        if len(received["events/street"]) == 45:
            process.send_signal(signal.SIGINT)

    with Subscriber(endpoint, ["events/street", "truth/street"]) as subscriber:
        process = subprocess.Popen(
            [STREAMDET, "drive", "synthetic", *args, "--endpoint", endpoint]
            + ["--wait-subscribers", "1", "--wait-timeout", "60"],
            stderr=subprocess.PIPE,
            text=True,
        )
        received = collect_until_eos(
            subscriber, {"events/street", "truth/street"}, timeout_s=90, on_message=interrupt_after_45_packets
        )
        assert subscriber.stats.dropped == 0 and subscriber.stats.rejected_total == 0
    assert process.wait(timeout=30) == 130
    last_lines = process.stderr.read().splitlines()[-2:]
    assert last_lines[1] == "streamdet drive: interrupted"
    assert last_lines[0].startswith("drive synthetic: sent ")  # the summary, also on Ctrl-C
    events = [message for _, message in received["events/street"]][:40]
    assert [m.seq for m in events] == list(range(40))
    assert [(m.t0_us, m.t1_us) for m in events] == [(k * 10_000, (k + 1) * 10_000) for k in range(40)]
    arrival = [at for at, _ in received["events/street"]][:40]
    # Paced to the wall clock at half speed: the last packet is due 0.78 s after the first one.
    assert arrival[-1] - arrival[0] > 0.5, f"packets arrived within {arrival[-1] - arrival[0]:.3f} s"
    config = SyntheticDriveConfig(
        preset="traffic", endpoint="unused", stream="street", sensor_size=(96, 64), seconds=0.4, speed=None
    )
    expected = list(iter_synthetic_packets(config))
    np.testing.assert_array_equal(
        np.concatenate([m.payload for m in events]), np.concatenate([p.events for p in expected])
    )
    truths = [message for _, message in received["truth/street"]][:4]
    assert [m.t1_us for m in truths] == [100_000, 200_000, 300_000, 400_000]
    assert all(tuple(m.extra["class_names"]) == CLASS_NAMES for m in truths)
    expected_truths = [p.truth for p in expected if p.truth is not None]
    assert len(expected_truths) == 4 and sum(len(rows) for rows in expected_truths) > 0
    for message, rows in zip(truths, expected_truths, strict=True):
        np.testing.assert_array_equal(message.payload, rows)


def test_drive_video_publishes_the_encoded_file(tmp_path):
    path = tmp_path / "square.avi"
    write_video(path, ramp_video_frames(), fps=25.0)
    endpoint = f"ipc://{tmp_path}/video"
    config = VideoDriveConfig(
        source=str(path), endpoint=endpoint, encode="spike", stream="cam", speed=None, wait_subscribers=1
    )
    with Subscriber(endpoint, ["spikes/cam"]) as subscriber:
        result: dict = {}
        sender = threading.Thread(target=lambda: result.update(stats=drive_video(config)))
        sender.start()
        received = collect_until_eos(subscriber, {"spikes/cam"}, timeout_s=30)
        sender.join(timeout=30)
    messages = [message for _, message in received["spikes/cam"]]
    frames = np.concatenate([m.payload for m in messages])
    encoder = FrameEncoder("spike", 1000.0, seed=0, dvs=DVSParams(), poisson_max_rate=1.0)
    pushed = [encoder.push(t, frame) for t, frame in iter_video_frames(str(path))][1:]
    np.testing.assert_array_equal(frames, np.concatenate([payload[0] for _, payload in pushed]))
    assert [m.t0_us for m in messages] == [int(payload[1][0]) for _, payload in pushed]
    assert all(m.extra["frame_us"] == 1000.0 and m.sensor_size == (64, 48) for m in messages)
    assert result["stats"].frames == 440


DV_WRITER = """
import os, sys, time
import dv_processing as dv
import numpy as np
port, batches = int(sys.argv[1]), int(sys.argv[2])
stream = dv.io.Stream.EventStream(0, "events", "DVXplorer_test", (64, 48))
writer = dv.io.NetworkWriter("127.0.0.1", port, stream)
print("listening", flush=True)
deadline = time.monotonic() + 120
while writer.getClientCount() < 1 and time.monotonic() < deadline:
    time.sleep(0.01)
rng = np.random.default_rng(5)
t = 1_700_000_000_000_000
for _ in range(batches):
    store = dv.EventStore()
    for _ in range(200):
        t += int(rng.integers(1, 50))
        store.push_back(t, int(rng.integers(0, 64)), int(rng.integers(0, 48)), bool(rng.integers(0, 2)))
    writer.writeEvents(store)
    time.sleep(0.05)
time.sleep(0.5)
os._exit(0)
"""


def expected_dv_events(batches: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    rows = []
    t = 1_700_000_000_000_000
    for _ in range(batches * 200):
        t += int(rng.integers(1, 50))
        rows.append((int(rng.integers(0, 64)), int(rng.integers(0, 48)), t, bool(rng.integers(0, 2))))
    return np.array(rows, dtype=EVENT_DTYPE)


def test_drive_dv_republishes_a_dv_network_stream_unchanged(tmp_path):
    port = free_tcp_port()
    endpoint = f"ipc://{tmp_path}/dv"
    writer = subprocess.Popen(
        [sys.executable, "-c", DV_WRITER, str(port), "6"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline() == "listening\n"
        config = DVDriveConfig(
            endpoint=endpoint, address=f"127.0.0.1:{port}", stream="davis", wait_subscribers=1
        )
        with Subscriber(endpoint, ["events/davis"]) as subscriber:
            result: dict = {}
            driver = threading.Thread(target=lambda: result.update(stats=drive_dv(config)))
            driver.start()
            received = collect_until_eos(subscriber, {"events/davis"}, timeout_s=60)
            driver.join(timeout=30)
    finally:
        writer.kill()
        writer.wait()
    messages = [message for _, message in received["events/davis"]]
    events = np.concatenate([m.payload for m in messages])
    np.testing.assert_array_equal(events, expected_dv_events(6))
    assert all(m.sensor_size == (64, 48) for m in messages)
    assert messages[0].t0_us == events["t"][0] and messages[-1].t1_us == events["t"][-1] + 1
    assert all(a.t1_us == b.t0_us for a, b in zip(messages, messages[1:], strict=False))
    assert result["stats"].events == 1200 and result["stats"].packets == len(messages)


def test_drive_takes_sensor_size_as_replay_record_and_info_do() -> None:
    """``--sensor-size`` (the name replay, record and info use) and ``--size`` are one option."""
    from streamdet.cli import build_parser

    base = ["drive", "synthetic", "--preset", "maritime", "--endpoint", "ipc:///tmp/unused"]
    assert build_parser("drive").parse_args([*base, "--sensor-size", "640x480"]).size == (640, 480)
    assert build_parser("drive").parse_args([*base, "--size", "640x480"]).size == (640, 480)
    video = ["drive", "video", "clip.mp4", "--endpoint", "ipc:///tmp/unused", "--sensor-size", "320x240"]
    assert build_parser("drive").parse_args(video).size == (320, 240)
