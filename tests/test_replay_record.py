"""Replay and record: pacing, packets, and real files through real ZeroMQ sockets and CLI processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
from streamdet.drivers import replay

from streamdet import formats
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.events import EVENT_DTYPE
from streamdet.recorder import DETECTION_RECORD_DTYPE, RecordConfig, box_records, record, streams_all_ended

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "fixtures" / "real"
DATA = Path(__file__).resolve().parent / "data"
REAL_FILES = sorted(REAL.glob("*.raw"))


def free_tcp_endpoint() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def ipc_endpoint() -> str:
    return f"ipc:///tmp/streamdet-test-{uuid.uuid4().hex[:12]}"


def streamdet(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamdet", *args]


def test_packet_due_times_follow_the_file_clock() -> None:
    from streamdet.drivers.publishing import packet_due_s

    assert packet_due_s(1_010_000, 1_000_000, 1.0) == pytest.approx(0.010)
    assert packet_due_s(1_010_000, 1_000_000, 2.0) == pytest.approx(0.005)
    assert packet_due_s(1_010_000, 1_000_000, 0.5) == pytest.approx(0.020)
    assert packet_due_s(9_000_000, 1_000_000, None) == 0.0
    with pytest.raises(Exception, match="positive"):
        packet_due_s(1, 0, 0.0)


def test_event_packets_tile_time_and_hold_every_event() -> None:
    path = REAL_FILES[0]
    whole = formats.read_events(path).events
    packets = list(replay.iter_file_packets(path, 3_000))
    assert np.array_equal(np.concatenate([packet.events for packet in packets]), whole)
    assert packets[0].t0_us == int(whole["t"][0])
    for before, after in zip(packets, packets[1:], strict=False):
        assert before.t1_us == after.t0_us
    for packet in packets:
        assert packet.t1_us - packet.t0_us == 3_000
        if len(packet.events):
            assert packet.t0_us <= packet.events["t"].min() and packet.events["t"].max() < packet.t1_us


def test_start_and_stop_select_a_time_range() -> None:
    path = REAL_FILES[0]
    whole = formats.read_events(path).events
    start_us = int(whole["t"][0]) + 10_000
    stop_us = start_us + 20_000
    packets = list(replay.iter_file_packets(path, 5_000, start_us=start_us, stop_us=stop_us))
    expected = whole[(whole["t"] >= start_us) & (whole["t"] < stop_us)]
    assert len(expected) > 1000
    assert np.array_equal(np.concatenate([packet.events for packet in packets]), expected)
    assert packets[0].t0_us >= start_us and packets[-1].t0_us < stop_us
    spike_packets = list(
        replay.iter_file_packets(DATA / "spikes_40x16.dat", 100, start_us=1150, stop_us=1400)
    )
    assert [packet.t0_us for packet in spike_packets] == [1100, 1200, 1300]


def test_spike_packets_are_whole_frames_on_the_sidecar_clock() -> None:
    frames = np.load(DATA / "spikes_40x16.frames.npy")
    packets = list(replay.iter_file_packets(DATA / "spikes_40x16.dat", 200))
    assert [len(packet.frames) for packet in packets] == [4, 4, 4]
    assert [packet.t0_us for packet in packets] == [1000, 1200, 1400]
    assert packets[-1].t1_us == 1600 and packets[0].frame_us == 50
    assert np.array_equal(np.concatenate([packet.frames for packet in packets]), frames)


def test_shifted_packets_move_time_stamps_only() -> None:
    packet = next(replay.iter_file_packets(REAL_FILES[0], 5_000))
    moved = replay.shifted(packet, 50_000)
    assert moved.t0_us == packet.t0_us + 50_000 and moved.t1_us == packet.t1_us + 50_000
    assert np.array_equal(moved.events["t"], packet.events["t"] + 50_000)
    assert np.array_equal(moved.events["x"], packet.events["x"])
    assert replay.shifted(packet, 0) is packet


def test_replay_runs_at_the_requested_fraction_of_real_time() -> None:
    path = REAL / "prophesee_evt3_1280x720.raw"
    for speed, least_s in ((0.25, 4 * 0.06), (None, 0.0)):
        stats = replay.replay_file(replay.ReplayConfig(path, ipc_endpoint(), speed=speed, packet_us=10_000))
        assert stats.packets == 6 and stats.events == 219_596
        assert stats.wall_s >= least_s * 0.99
        if speed is None:
            assert stats.wall_s < 4 * 0.06


def test_replay_refuses_events_outside_the_given_sensor() -> None:
    config = replay.ReplayConfig(REAL_FILES[0], ipc_endpoint(), speed=None, sensor_size=(320, 240))
    with pytest.raises(FileFormatError, match="outside the 320x240 sensor"):
        replay.replay_file(config)
    with pytest.raises(UserFacingError, match="stream name"):
        replay.replay_file(replay.ReplayConfig(REAL_FILES[0], ipc_endpoint(), stream="two words"))
    with pytest.raises(UserFacingError, match="positive"):
        replay.replay_file(replay.ReplayConfig(REAL_FILES[0], ipc_endpoint(), packet_us=0))


def test_looped_packets_shift_each_pass_by_the_span() -> None:
    config = replay.ReplayConfig(DATA / "spikes_40x16.dat", "ipc:///unused", loop=True, packet_us=200)
    packets = list(itertools.islice(replay.iter_replay_packets(config), 9))
    assert [index for index, _ in packets] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [packet.t0_us for _, packet in packets] == [1000 + 200 * k for k in range(9)]
    assert all(np.array_equal(packets[k][1].frames, packets[k + 3][1].frames) for k in range(6))
    once = list(
        replay.iter_replay_packets(replay.ReplayConfig(DATA / "spikes_40x16.dat", "ipc:///x", packet_us=200))
    )
    assert len(once) == 3


def test_box_records_keep_exact_microsecond_stamps() -> None:
    rows = np.array([[1.5, 2.0, 30.0, 40.0, 0.9, 1.0], [0, 0, 5, 5, 0.2, 3]], dtype=np.float32)
    records = box_records(rows, 123_456_789_012, 123_456_839_012)
    assert records.dtype == DETECTION_RECORD_DTYPE
    assert records["t1_us"][0] == 123_456_839_012
    assert list(records["label"]) == [1, 3]
    assert records["x2"][0] == 30.0 and records["score"][1] == pytest.approx(0.2)


def test_record_stops_when_every_stream_with_data_has_ended() -> None:
    assert not streams_all_ended({"cam"}, set())
    assert not streams_all_ended({"cam", "radar"}, {"cam"})
    assert streams_all_ended({"cam"}, {"cam"})
    assert streams_all_ended(set(), {"cam"})


def record_in_thread(config: RecordConfig) -> tuple[threading.Thread, dict]:
    """Run :func:`streamdet.recorder.record` in a thread; its stats land in the returned dict."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(stats=record(config)), daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
@pytest.mark.parametrize("name", [path.name for path in REAL_FILES])
def test_replay_through_record_gives_back_the_identical_events(
    tmp_path: Path, name: str, transport: str
) -> None:
    path = REAL / name
    endpoint = ipc_endpoint() if transport == "ipc" else free_tcp_endpoint()
    out = tmp_path / ("recorded.npy" if transport == "ipc" else "recorded.h5")
    thread, result = record_in_thread(RecordConfig((endpoint,), out, idle_timeout_s=60))
    sent = replay.replay_file(
        replay.ReplayConfig(
            path, endpoint, stream="cam0", speed=None, packet_us=2_000, wait_subscribers=1, lossless=True
        )
    )
    thread.join(timeout=60)
    stats = result["stats"]
    assert stats.ended and stats.dropped == 0 and not stats.rejected
    assert stats.messages == sent.packets
    expected = formats.read_events(path)
    recorded = formats.read_events(out)
    assert recorded.events.dtype == EVENT_DTYPE
    assert np.array_equal(recorded.events, expected.events)
    assert recorded.sensor_size == expected.sensor_size


def test_spike_replay_through_record_gives_back_the_identical_frames(tmp_path: Path) -> None:
    source = DATA / "spikes_40x16.dat"
    endpoint = free_tcp_endpoint()
    out = tmp_path / "copy.dat"
    thread, result = record_in_thread(RecordConfig((endpoint,), out, topics=("spikes",), idle_timeout_s=60))
    sent = replay.replay_file(
        replay.ReplayConfig(source, endpoint, stream="spk", speed=None, packet_us=150, wait_subscribers=1)
    )
    thread.join(timeout=60)
    assert sent.frames == 12 and sent.packets == 4
    assert result["stats"].ended and result["stats"].frames == 12
    assert np.array_equal(formats.read_spike_dat(out), np.load(DATA / "spikes_40x16.frames.npy"))
    assert formats.read_spike_sidecar(out) == formats.read_spike_sidecar(source)


def test_record_command_process(tmp_path: Path) -> None:
    """``streamdet record`` as a real process (tcp://127.0.0.1 into .npy); the replay command runs as a
    process in the loop test, and both transports into both file kinds are covered above."""
    path = REAL / "prophesee_evt2_640x480.raw"
    endpoint = free_tcp_endpoint()
    out = tmp_path / "evt2.npy"
    recorder = subprocess.Popen(
        streamdet("record", endpoint, str(out), "--topic", "events/cam"), stderr=subprocess.PIPE, text=True
    )
    try:
        config = replay.ReplayConfig(
            path, endpoint, stream="cam", speed=None, wait_subscribers=1, wait_timeout_s=120, lossless=True
        )
        replay.replay_file(config)
        _, record_err = recorder.communicate(timeout=60)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, record_err
    assert record_err.strip().splitlines()[-1] == (
        f"recorded 6 messages (539481 events, 0 spike frames) to {out}; end-of-stream; dropped 0, rejected 0"
    )
    recorded = formats.read_events(out)
    assert np.array_equal(recorded.events, formats.read_events(path).events)
    assert recorded.sensor_size == (640, 480)


def test_looped_replay_keeps_time_increasing_and_ends_cleanly_on_ctrl_c() -> None:
    from streamdet import bus

    path = REAL / "prophesee_evt3_1280x720.raw"
    whole = formats.read_events(path).events
    endpoint = ipc_endpoint()
    received = []
    with bus.Subscriber(endpoint, topics=("events/loop",)) as subscriber:
        process = subprocess.Popen(
            streamdet(
                "replay",
                str(path),
                "--endpoint",
                endpoint,
                "--stream",
                "loop",
                "--loop",
                "--packet-us",
                "5000",
                "--wait-subscribers",
                "1",
                "--wait-timeout",
                "120",
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 180
            interrupted = False
            while time.monotonic() < deadline:
                message = subscriber.receive(timeout_ms=1000)
                if message is None:
                    if process.poll() is not None:
                        break
                    continue
                if message.kind == "eos":
                    break
                received.append(message)
                span_us = message.t1_us - received[0].t0_us
                if not interrupted and span_us > 2.5 * (int(whole["t"][-1]) - int(whole["t"][0])):
                    process.send_signal(signal.SIGINT)
                    interrupted = True
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert message is not None and message.kind == "eos", stderr
    assert message.extra["ends"] == "events"
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "streamdet replay: interrupted"
    assert stderr.strip().splitlines()[-2].startswith("replayed ")  # the summary, also on Ctrl-C
    assert "Traceback" not in stderr
    events = np.concatenate([message.payload for message in received])
    assert np.all(np.diff(events["t"]) >= 0)
    assert np.array_equal(events[: len(whole)], whole)
    second = events[len(whole) : 2 * len(whole)]
    assert np.array_equal(second[["x", "y", "p"]], whole[["x", "y", "p"]])
    assert np.all(second["t"] - whole["t"] == second["t"][0] - whole["t"][0])
    assert [message.seq for message in received] == list(range(len(received)))
    for before, after in zip(received, received[1:], strict=False):
        assert before.t1_us == after.t0_us


def test_record_reports_sequence_gaps_as_drops(tmp_path: Path) -> None:
    """A raw XPUB socket sends wire frames whose sequence numbers skip 3, 4 and 5 (as a publisher whose
    high-water mark overflowed would): the recorder writes what came and reports 3 dropped."""
    import zmq

    from streamdet import wire

    endpoint = ipc_endpoint()
    events = formats.read_events(DATA / "dvxplorer_346x260.aedat4").events
    packets = np.array_split(events, 10)
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)  # never hang on garbage collection
    socket = context.socket(zmq.XPUB)
    socket.bind(endpoint)
    out = tmp_path / "gappy.h5"
    thread, result = record_in_thread(RecordConfig((endpoint,), out, idle_timeout_s=60))
    try:
        assert socket.poll(60_000), "the recorder never subscribed"
        while socket.poll(200):
            socket.recv()
        kept = [seq for seq in range(10) if seq not in (3, 4, 5)]
        for seq in kept:
            message = wire.events_message("cam", packets[seq], (346, 260)).with_seq(seq)
            socket.send_multipart(wire.pack(message))
        socket.send_multipart(wire.pack(wire.eos_message("cam", "events", (346, 260)).with_seq(10)))
        thread.join(timeout=60)
    finally:
        socket.close(linger=0)
        context.term()
    stats = result["stats"]
    assert stats.ended and stats.dropped == 3 and stats.messages == 7
    assert "dropped 3" in stats.summary()
    assert np.array_equal(formats.read_events(out).events, np.concatenate([packets[seq] for seq in kept]))


def test_record_ends_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "nothing.npy"
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    stats = record(RecordConfig((ipc_endpoint(),), out))
    timer.join()
    assert time.monotonic() - started < 10
    assert not stats.ended and stats.messages == 0
    assert len(np.load(out)) == 0 and np.load(out).dtype == EVENT_DTYPE


def wire_round_trip(message):
    from streamdet import wire

    return wire.unpack([bytes(frame) for frame in wire.pack(message.with_seq(0))])


@pytest.mark.parametrize("suffix", [".h5", ".npy"])
def test_message_recorder_writes_every_kind(tmp_path: Path, suffix: str) -> None:
    from streamdet import wire
    from streamdet.recorder import MessageRecorder

    events = formats.read_events(DATA / "dvxplorer_346x260.aedat4").events
    frames = np.load(DATA / "spikes_40x16.frames.npy")
    rows = np.array([[1, 2, 30, 40, 0.75, 1], [5, 6, 7, 8, 0.5, 0]], dtype=np.float32)
    names = ["boat", "buoy"]
    out = tmp_path / f"run{suffix}"
    recorder = MessageRecorder(out)
    for packet in np.array_split(events, 4):
        recorder.write(wire_round_trip(wire.events_message("cam", packet, (346, 260))))
    recorder.write(
        wire_round_trip(
            wire.detections_message("cam", rows, names, (346, 260), 17_000_000_000, 17_000_050_000)
        )
    )
    recorder.write(
        wire_round_trip(
            wire.truth_message("cam", rows[:1], names, (346, 260), 17_000_000_000, 17_000_050_000)
        )
    )
    recorder.close()
    assert (recorder.events, recorder.boxes) == (len(events), {"detections": 2, "truth": 1})
    recorded = formats.read_events(out)
    assert np.array_equal(recorded.events, events) and recorded.sensor_size == (346, 260)
    if suffix == ".h5":
        with h5py.File(out) as file:
            detections, truth = file["detections"][:], file["truth"][:]
            assert list(file["detections"].attrs["class_names"]) == names
    else:
        detections = np.load(tmp_path / "run.detections.npy")
        truth = np.load(tmp_path / "run.truth.npy")
        assert json.loads((tmp_path / "run.detections.json").read_text()) == {"class_names": names}
    assert detections.dtype == DETECTION_RECORD_DTYPE
    assert list(detections["t1_us"]) == [17_000_050_000] * 2
    assert np.array_equal(
        np.stack([detections[name] for name in ("x1", "y1", "x2", "y2", "score")], 1), rows[:, :5]
    )
    assert list(detections["label"]) == [1, 0] and len(truth) == 1

    spikes_out = tmp_path / "spikes.dat"
    spike_recorder = MessageRecorder(spikes_out)
    for first in range(0, len(frames), 5):
        spike_recorder.write(
            wire_round_trip(wire.spikes_message("spk", frames[first : first + 5], 1000 + 50 * first, 50))
        )
    spike_recorder.close()
    assert np.array_equal(formats.read_spike_dat(spikes_out), frames)
    assert np.array_equal(
        formats.read_events(spikes_out).events, formats.read_events(DATA / "spikes_40x16.dat").events
    )


def test_replay_and_record_commands_over_curve(tmp_path: Path) -> None:
    """``streamdet replay`` binds with CURVE and admits only the recorder's certificate; ``streamdet
    record`` with that certificate records every event, one without CURVE records nothing."""
    from streamdet import bus

    source = DATA / "dvxplorer_346x260.aedat4"
    endpoint = free_tcp_endpoint()
    server_public, server_secret = bus.write_curve_certificates(tmp_path / "server", "camera")
    _, recorder_secret = bus.write_curve_certificates(tmp_path / "clients", "recorder")
    admitted, plain = tmp_path / "admitted.npy", tmp_path / "plain.npy"
    recorders = [
        subprocess.Popen(
            streamdet("record", endpoint, str(admitted), "--curve-cert", str(recorder_secret),
                      "--curve-server-key", str(server_public)),
            stderr=subprocess.PIPE, text=True,
        ),
        subprocess.Popen(
            streamdet("record", endpoint, str(plain), "--idle-timeout", "3"),
            stderr=subprocess.PIPE, text=True,
        ),
    ]  # fmt: skip
    try:
        replayed = subprocess.run(
            streamdet("replay", str(source), "--endpoint", endpoint, "--stream", "cam", "--speed", "max",
                      "--lossless", "--wait-subscribers", "1", "--wait-timeout", "120",
                      "--curve-cert", str(server_secret), "--curve-clients", str(tmp_path / "clients")),
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        outputs = [recorder.communicate(timeout=60)[1] for recorder in recorders]
    finally:
        for recorder in recorders:
            if recorder.poll() is None:
                recorder.kill()
    assert replayed.returncode == 0, replayed.stderr
    assert [recorder.returncode for recorder in recorders] == [0, 0], outputs
    assert np.array_equal(formats.read_events(admitted).events, formats.read_events(source).events)
    assert len(np.load(plain)) == 0 and "recorded 0 messages" in outputs[1]


def test_a_second_recording_to_the_same_name_rotates_and_creates_the_folder(tmp_path: Path) -> None:
    from streamdet import bus, wire

    events = formats.read_events(DATA / "dvxplorer_346x260.aedat4").events
    out = tmp_path / "new" / "folder" / "rec.npy"
    lines: list[str] = []
    outputs = []
    for part in np.array_split(events, 2):
        endpoint = ipc_endpoint()
        config = RecordConfig((endpoint,), out, idle_timeout_s=30, gone_after_s=None)
        result: dict = {}
        thread = threading.Thread(
            target=lambda c=config, r=result: r.update(stats=record(c, say=lines.append))
        )
        thread.start()
        with bus.Publisher(endpoint) as publisher:
            assert publisher.wait_for_subscribers(1, timeout_s=30)
            publisher.send(wire.events_message("cam", part, (346, 260)))
            publisher.send(wire.eos_message("cam", "events", (346, 260)))
            thread.join(timeout=30)
        outputs.append(Path(result["stats"].out))
    assert outputs == [out, out.with_name("rec.1.npy")]
    assert lines == [f"record: {out} exists; recording to {outputs[1]} (a recording never overwrites)"]
    recorded = np.concatenate([formats.read_events(path).events for path in outputs])
    assert np.array_equal(recorded, events)


def test_record_stops_at_the_size_cap(tmp_path: Path) -> None:
    from streamdet import bus, wire

    endpoint = ipc_endpoint()
    out = tmp_path / "capped.h5"
    lines: list[str] = []
    config = RecordConfig((endpoint,), out, idle_timeout_s=30, max_bytes=13 * 2500)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(stats=record(config, say=lines.append)))
    thread.start()
    events = np.zeros(10_000, dtype=EVENT_DTYPE)
    events["t"] = np.arange(10_000)
    with bus.Publisher(endpoint, lossless=True) as publisher:
        assert publisher.wait_for_subscribers(1, timeout_s=30)
        for part in np.array_split(events, 10):
            publisher.send(wire.events_message("cam", part, (346, 260)))
        thread.join(timeout=30)
    stats = result["stats"]
    assert stats.stopped_at_cap and stats.events == 3000 and "size cap" in stats.summary()
    assert len(formats.read_events(out).events) == 3000 and "the cap (--max-bytes)" in lines[-1]


def test_npy_recorder_writes_its_sensor_sidecar_with_the_first_events(tmp_path: Path) -> None:
    """A recorder killed before it closes (a launcher's restart, a SIGKILL) still leaves ``<file>.json``
    whole: it is written, through a rename, as soon as the sensor size is known, and again only when it
    changes."""
    from streamdet import wire
    from streamdet.recorder import MessageRecorder

    events = formats.read_events(DATA / "dvxplorer_346x260.aedat4").events
    out = tmp_path / "run.npy"
    recorder = MessageRecorder(out)
    recorder.write(wire_round_trip(wire.events_message("cam", events[:100], (346, 260))))
    sidecar = out.with_name("run.npy.json")
    assert json.loads(sidecar.read_text()) == {"width": 346, "height": 260}  # before close
    written = sidecar.stat().st_mtime_ns
    recorder.write(wire_round_trip(wire.events_message("cam", events[100:200], (346, 260))))
    assert sidecar.stat().st_mtime_ns == written  # the same size is not written again
    recorder.close()
    assert formats.read_events(out).sensor_size == (346, 260)
    assert not list(tmp_path.glob("*.partial"))
