"""Live drivers: synthetic scenes, video files and cameras, DV network streams - in-process and as CLIs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamdet.drivers.dv import dv_to_events, parse_address
from streamdet.drivers.synthetic import SyntheticDriveConfig, iter_synthetic_packets
from streamdet.drivers.video import FrameEncoder, iter_video_frames

from streamdet import CLASS_NAMES
from streamdet.cli import main as cli_main
from streamdet.encoders import DVSParams, emulate_dvs
from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE

STREAMDET = str(Path(sys.executable).with_name("streamdet"))


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([STREAMDET, *args], capture_output=True, text=True, timeout=timeout)


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
    assert np.all(rows[:, 2] > rows[:, 0]) and np.all(rows[:, 3] > rows[:, 1]) and np.all(rows[:, 4] == 1)
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


def test_unopenable_camera_is_a_one_line_error(tmp_path):
    camera = run_cli("drive", "video", "--camera", "99", "--endpoint", f"ipc://{tmp_path}/cam")
    assert camera.returncode == 2
    assert camera.stderr.strip().splitlines() == [
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
    result = run_cli("drive", "dv", "--address", "127.0.0.1:1", "--endpoint", f"ipc://{tmp_path}/dv")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "streamdet drive: error: cannot read the DV stream at 127.0.0.1:1: connect: Connection refused"
    ]
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
