"""Fault injection: hostile model files, hostile but wire-valid messages, restarts, dropped
end-of-stream, slow subscribers and corrupt recordings. Each test asserts that nothing valid is lost or
that the fault gives a clear one-line error; every part is real (files, sockets, subprocesses)."""

from __future__ import annotations

import builtins
import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from streamdet import bus, formats, wire
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.events import EVENT_DTYPE

STREAMDET = [sys.executable, "-m", "streamdet"]

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: extra torch threads only wait


class _RunsCode:
    """Unpickling this calls ``builtins.exec``, which creates the file ``marker``: a hostile payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


class _HostileGraph:
    """Unpickles through ``torch.fx``'s ``reduce_graph_module`` with a ``forward`` that runs a shell
    command: the way a converted-network file (``streamdet-snn/1``) could carry code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        from torch.fx.graph_module import reduce_graph_module

        code = (
            "def forward(self, x):\n"
            f"    return __import__('os').system('touch {self.marker}')\n"
        )
        return reduce_graph_module, ({"_code": code, "_modules": {}}, "import torch")


def _hostile_file(path: Path, payload: object, file_format: str) -> Path:
    torch.save({"format": file_format, "state_dict": {}, "graph_module": payload, "recipe": {}}, path)
    return path


@pytest.mark.parametrize("payload_kind", ["exec", "fx-graph"])
@pytest.mark.parametrize("loader", ["read_checkpoint", "resume"])
def test_hostile_model_file_is_refused_without_running_its_code(
    tmp_path: Path, loader: str, payload_kind: str
) -> None:
    marker = tmp_path / "ran"
    payload = _RunsCode(marker) if payload_kind == "exec" else _HostileGraph(marker)
    path = _hostile_file(tmp_path / "model.pt", payload, "streamdet-ann/1")
    with pytest.raises(UserFacingError) as caught:
        if loader == "read_checkpoint":
            from streamdet.model import read_checkpoint

            read_checkpoint(path)
        else:
            from streamdet.train import TrainConfig, _read_resume_state

            _read_resume_state(path, TrainConfig(modality="events"))
    message = str(caught.value)
    assert not marker.exists(), f"{loader} ran the payload of {path}"
    assert message.startswith(str(path)) and "\n" not in message and "refused" in message
    if loader == "resume":
        assert isinstance(caught.value, FileFormatError)


@pytest.mark.parametrize("file_format", ["streamdet-snn/1", "streamdet-ann/1"])
def test_detect_command_refuses_a_hostile_model_in_one_line(tmp_path: Path, file_format: str) -> None:
    marker = tmp_path / "ran"
    path = _hostile_file(tmp_path / "model.pt", _RunsCode(marker), file_format)
    result = subprocess.run(
        [*STREAMDET, "detect", "--model", str(path), "--input", f"ipc://{tmp_path}/in",
         "--output", f"ipc://{tmp_path}/out"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert not marker.exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("streamdet detect: error")]
    assert len(errors) == 1 and str(path) in errors[0] and "refused" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


# --- wire-valid messages that hurt, dropped end-of-stream, slow subscribers (record, subscribe) ----------

SENSOR = (346, 260)


def _events(count: int, t0_us: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = np.zeros(count, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, SENSOR[0], count)
    events["y"] = rng.integers(0, SENSOR[1], count)
    events["t"] = t0_us + np.sort(rng.integers(0, 10_000, count))
    events["p"] = rng.integers(0, 2, count).astype(bool)
    return events


def _ipc() -> str:
    return f"ipc:///tmp/streamdet-hardening-{uuid.uuid4().hex[:12]}"


def _record_in_thread(config) -> tuple[threading.Thread, dict, list[str]]:
    from streamdet.recorder import record

    result: dict = {}
    lines: list[str] = []
    thread = threading.Thread(target=lambda: result.update(stats=record(config, say=lines.append)))
    thread.start()
    return thread, result, lines


def test_record_ends_when_the_publisher_is_gone_without_end_of_stream(tmp_path: Path) -> None:
    """The publisher sends 20 packets and closes without its end-of-stream (dropped): ``record`` ends
    after ``gone_after_s`` with every event, and says why."""
    from streamdet.recorder import RecordConfig

    endpoint = _ipc()
    out = tmp_path / "gone.npy"
    thread, result, lines = _record_in_thread(RecordConfig((endpoint,), out, gone_after_s=1.0))
    sent = [_events(100, 10_000 * index, seed=index) for index in range(20)]
    with bus.Publisher(endpoint, lossless=True) as publisher:
        assert publisher.wait_for_subscribers(1, timeout_s=30)
        for events in sent:
            publisher.send(wire.events_message("cam", events, SENSOR))
    thread.join(timeout=30)
    assert not thread.is_alive()
    stats = result["stats"]
    assert stats.ended and stats.gone == ("cam",) and "publisher gone" in stats.summary()
    assert any("its publisher is gone" in line for line in lines)
    assert np.array_equal(formats.read_events(out).events, np.concatenate(sent))


def test_injected_end_of_stream_poisoned_times_and_a_name_flood_do_not_stop_or_spoil_record(
    tmp_path: Path,
) -> None:
    """While a publisher sends 30 packets of ``cam``, an intruder (a raw socket the recorder also listens
    to) sends an end-of-stream for ``cam`` numbered 0, packets whose events lie outside their span or at
    2**62, and 300 packets on 300 new stream names. ``record`` goes on to ``cam``'s real end-of-stream
    (and counts the flood's streams as gone once silent), writes every ``cam`` event and no poisoned
    one, takes at most ``MAX_RECORDED_STREAMS`` names and counts what it refused."""
    import zmq

    from streamdet.recorder import MAX_RECORDED_STREAMS, RecordConfig

    endpoint, intruder_endpoint = _ipc(), _ipc()
    out = tmp_path / "rec.h5"
    config = RecordConfig((endpoint, intruder_endpoint), out, topics=("events",), gone_after_s=2.0)
    thread, result, lines = _record_in_thread(config)
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    intruder = context.socket(zmq.XPUB)
    intruder.bind(intruder_endpoint)
    sent = [_events(50, 10_000 * index, seed=index) for index in range(30)]
    poisoned = _events(50, 0)
    poisoned["t"][7] = 1 << 62
    try:
        with bus.Publisher(endpoint, lossless=True) as publisher:
            assert publisher.wait_for_subscribers(1, timeout_s=30) and intruder.poll(30_000)
            for index, events in enumerate(sent):
                publisher.send(wire.events_message("cam", events, SENSOR))
                if index == 5:
                    time.sleep(0.3)  # the recorder has seen cam's first packets
                    intruder.send_multipart(wire.pack(wire.eos_message("cam", "events", SENSOR).with_seq(0)))
                    intruder.send_multipart(
                        wire.pack(wire.events_message("cam", poisoned, SENSOR, 0, 10_000).with_seq(7))
                    )
                    intruder.send_multipart(
                        wire.pack(wire.events_message("cam", events, SENSOR, 1 << 62, 1 << 62).with_seq(8))
                    )
                    for name in range(300):
                        message = wire.events_message(f"flood{name}", events[:1], SENSOR).with_seq(0)
                        intruder.send_multipart(wire.pack(message))
            time.sleep(0.5)
            publisher.send(wire.eos_message("cam", "events", SENSOR))
            thread.join(timeout=60)
    finally:
        intruder.close(linger=0)
        context.term()
    stats = result["stats"]
    # cam's end-of-stream may be read before the last flood packets (two pipes), freeing one place
    flood_taken = len(stats.gone)
    assert stats.ended and "cam" not in stats.gone
    assert flood_taken in (MAX_RECORDED_STREAMS - 1, MAX_RECORDED_STREAMS)
    recorded = formats.read_events(out).events
    expected = np.concatenate([*sent, *[sent[5][:1]] * flood_taken])
    assert np.array_equal(np.sort(recorded["t"]), np.sort(expected["t"]))
    assert stats.rejected["eos-out-of-sequence"] == 1 and stats.rejected["event-time"] == 2
    assert stats.rejected["too-many-streams"] == 300 - flood_taken
    assert any("refused" in line for line in lines)


def test_a_slow_subscriber_is_told_it_is_behind_and_latest_only_catches_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subscriber busy for 2.5 s while 100 packets queue: reading them one by one it warns that its
    input is seconds old; a "latest only" subscriber of the same stream gets the newest at once."""
    caplog.set_level(logging.WARNING, logger="streamdet.bus")
    endpoint = _ipc()
    with (
        bus.Publisher(endpoint) as publisher,
        bus.Subscriber(endpoint) as slow,
        bus.Subscriber(endpoint, latest_only=True) as latest,
    ):
        assert publisher.wait_for_subscribers(2, timeout_s=30)
        for index in range(100):
            publisher.send(wire.events_message("cam", _events(10, 10_000 * index), SENSOR))
        time.sleep(2.5)
        first_slow = slow.receive(5000)
        newest = latest.receive(5000)
    assert first_slow.seq == 0 and slow.stats.max_age_ms > 2000
    assert "this subscriber is behind" in caplog.text
    assert newest.seq == 99 and latest.stats.conflated == 99


# --- the detector node: a flood of stream names, poisoned time stamps, a restarted source ---------------


def test_detector_survives_a_name_flood_poisoned_times_and_a_restarted_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A healthy stream ``cam`` of 2 ms steps, interleaved with: 100 one-event packets on new stream
    names (state for at most ``MAX_LIVE_STREAMS``, the rest refused, logged once), a packet whose events
    lie outside its span and an empty packet ending at 2**62 (both refused, ``cam`` goes on), then
    ``cam``'s source restarting from time 0 (a new epoch at once, with a log line; the stream is 160 ms
    long, so the backward threshold is cut from 200 ms to 50 ms here). Every step of both epochs is
    published, each detections header carrying its input's age."""
    from test_detector import DT_US, TINY_SENSOR, random_events, tiny_spiking_detector

    from streamdet import detector as detector_module
    from streamdet.detector import DetectorConfig, DetectorNode

    monkeypatch.setattr(detector_module, "BACKWARD_EPOCH_US", 50_000)
    events_endpoint, detections_endpoint = f"ipc://{tmp_path}/events", f"ipc://{tmp_path}/detections"
    config = DetectorConfig(
        dt_us=DT_US, window_steps=2, publish_every=1, max_backlog_steps=10_000, max_chunk_steps=8
    )
    lines: list[str] = []
    source = bus.Publisher(events_endpoint, lossless=True)
    node = DetectorNode(
        tiny_spiking_detector(), config, [events_endpoint], detections_endpoint, log=lines.append
    )
    watcher = bus.Subscriber(detections_endpoint, ["detections/cam"])
    stop = threading.Event()
    worker = threading.Thread(target=lambda: node.run(should_stop=stop.is_set), daemon=True)
    packet_us = 10 * DT_US

    def send_cam(t0: int, seed: int) -> None:
        events = random_events(200, packet_us, seed=seed, t_start=t0)
        source.send(wire.events_message("cam", events, TINY_SENSOR, t0, t0 + packet_us))

    try:
        assert source.wait_for_subscribers(1, timeout_s=30)
        worker.start()
        for k in range(5):
            send_cam(k * packet_us, k)
        one = random_events(1, 1, t_start=5 * packet_us)
        for name in range(100):  # one event each, completing no step
            flood = wire.events_message(f"flood{name}", one, TINY_SENSOR, 5 * packet_us, 5 * packet_us + 1)
            source.send(flood)
        outside = random_events(200, packet_us, t_start=5 * packet_us)
        outside["t"][3] = 1 << 62
        source.send(wire.events_message("cam", outside, TINY_SENSOR, 5 * packet_us, 6 * packet_us))
        source.send(wire.events_message("cam", one[:0], TINY_SENSOR, 5 * packet_us, 1 << 62))
        for k in range(5, 8):
            send_cam(k * packet_us, k)
        for k in range(0, 3):  # the source restarts: its time stamps start again from 0
            send_cam(k * packet_us, 100 + k)
        deadline = time.monotonic() + 60
        received = []
        while time.monotonic() < deadline and len(received) < 79 + 29:
            message = watcher.receive(500)
            if message is not None:
                received.append(message)
        live_streams = len(node.detector.streams)
    finally:
        stop.set()
        worker.join(timeout=30)
        node.close()
        watcher.close()
        source.close()
    ends = {epoch: [m.t1_us for m in received if m.extra["epoch"] == epoch] for epoch in (0, 1)}
    # epoch 0: steps 0..79 (the first full window ends at step 1); epoch 1: steps 0..29
    assert ends[0] == [(step + 1) * DT_US for step in range(1, 80)]
    assert ends[1] == [(step + 1) * DT_US for step in range(1, 30)]
    assert all(message.extra["input_age_ms"] >= message.extra["latency_ms"] >= 0 for message in received)
    assert live_streams <= detector_module.MAX_LIVE_STREAMS
    assert sum("streams are live" in line for line in lines) == 1, lines
    assert sum("outside the message's time span" in line for line in lines) == 1, lines
    assert sum("time jumped more than" in line for line in lines) == 1, lines
    assert any("jumped backwards" in line and "epoch 1 starts now" in line for line in lines), lines


# --- restarts under `streamdet launch` ----------------------------------------------------------------


def test_restarted_driver_and_recorder_under_launch_keep_detecting_and_recording(tmp_path: Path) -> None:
    """replay (looping) -> detect and record under the launcher. SIGKILL the driver: the launcher
    restarts it, its time stamps start again from the file's start, and the detector takes that as a
    new epoch at once (logged) and publishes on. SIGKILL the recorder: the restarted one records to
    ``rec.1.npy`` and the first recording stays readable (up to its last flush, once a second)."""
    import os
    import signal

    from test_detector import DT_US, TINY_SENSOR, random_events, tiny_spiking_detector

    from streamdet.launcher import Launcher, LaunchSpec, ProcessSpec
    from streamdet.loading import save_snn

    save_snn(tiny_spiking_detector(), tmp_path / "tiny.pt")
    formats.write_events(tmp_path / "events.npy", random_events(20_000, 4_000_000, seed=1), TINY_SENSOR)
    events_endpoint, detections_endpoint = f"ipc://{tmp_path}/events", f"ipc://{tmp_path}/detections"
    streamdet = (sys.executable, "-m", "streamdet")
    out = tmp_path / "rec" / "rec.npy"
    spec = LaunchSpec(
        processes=(
            ProcessSpec("replay", (*streamdet, "replay", str(tmp_path / "events.npy"), "--loop", "--endpoint",
                                   events_endpoint, "--stream", "cam"), restart="always"),
            ProcessSpec("detector", (*streamdet, "detect", "--input", events_endpoint, "--output",
                                     detections_endpoint, "--model", str(tmp_path / "tiny.pt"), "--dt-us",
                                     str(DT_US * 5), "--window-steps", "2", "--publish-every", "2",
                                     "--threads", "1")),
            ProcessSpec("recorder", (*streamdet, "record", events_endpoint, str(out)), restart="always"),
        ),
        backoff_initial_s=0.2,
        stop_timeout_s=5.0,
    )  # fmt: skip
    lines: list[str] = []
    launcher = Launcher(spec, write=lines.append, log=lines.append)
    runner = threading.Thread(target=launcher.run, kwargs={"seconds": 300}, daemon=True)
    subscriber = bus.Subscriber(detections_endpoint, topics=("detections/",))
    runner.start()
    try:
        first = subscriber.receive(timeout_ms=120_000)
        assert first is not None and first.kind == "detections" and first.extra["epoch"] == 0
        time.sleep(1.5)  # the recorder flushes once a second
        os.kill(launcher.pid("recorder"), signal.SIGKILL)
        old_replay = launcher.pid("replay")
        os.kill(old_replay, signal.SIGKILL)
        killed_at = time.monotonic()
        new_epoch = None
        while new_epoch is None and time.monotonic() - killed_at < 60:
            message = subscriber.receive(timeout_ms=500)
            if message is not None and message.kind == "detections" and message.extra["epoch"] == 1:
                new_epoch = time.monotonic() - killed_at
        deadline = time.monotonic() + 30
        while not out.with_name("rec.1.npy").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        launcher.stop()
        runner.join(timeout=60)
        subscriber.close()
    assert new_epoch is not None and new_epoch < 30, lines
    assert launcher.pid("replay") != old_replay
    assert any("[detector]" in line and "jumped backwards" in line and "epoch 1" in line for line in lines)
    first_part = formats.read_events(out).events
    second_part = formats.read_events(out.with_name("rec.1.npy")).events
    assert len(first_part) > 0 and len(second_part) > 0
    assert any("recording to" in line and "rec.1.npy" in line for line in lines)


# --- corrupt files ----------------------------------------------------------------------------------

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real"


def _header_end(data: bytes) -> int:
    offset = 0
    while data[offset : offset + 1] == b"%":
        offset = data.index(b"\n", offset) + 1
    return offset


def _corrupt_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Damaged copies of the real recordings (and made-up files), each with the words its one-line error
    must hold."""
    evt2 = (REAL / "prophesee_evt2_640x480.raw").read_bytes()
    evt3 = (REAL / "prophesee_evt3_1280x720.raw").read_bytes()
    head2, head3 = _header_end(evt2), _header_end(evt3)
    words = np.frombuffer(evt2[head2 : head2 + (len(evt2) - head2) // 4 * 4], dtype="<u4").copy()
    flipped = int(np.flatnonzero(words >> 28 <= 1)[1000])
    words[flipped] |= 1 << 10  # y + 1024 on a 480-row sensor
    wide = np.zeros(3, dtype=EVENT_DTYPE)
    wide["t"] = [-(1 << 62), 0, 1 << 62]
    files = {
        "geometry-huge": (evt2[:head2] + b"% geometry 99999x99999\n" + evt2[head2:], "not a sensor size"),
        "geometry-zero": (evt2[:head2] + b"% geometry 0x0\n" + evt2[head2:], "not a sensor size"),
        "evt3-header-cut": (evt3[: head3 - 11], "header cut mid-line"),
        "zero-body": (evt2[:head2] + bytes(len(evt2) - head2), "all zero bytes"),
        "truncated": (evt2[: head2 + 4001], "truncated"),
        "random": (np.random.default_rng(0).bytes(4096), "not a valid"),
        "flipped-bit": (evt2[:head2] + words.tobytes(), "outside the 640x480 sensor"),
    }
    paths = {}
    for name, (data, reason) in files.items():
        path = folder / f"{name}.raw"
        path.write_bytes(data)
        paths[name] = (path, reason)
    np.save(folder / "wide-times.npy", wide)
    paths["wide-times"] = (folder / "wide-times.npy", "time stamps jump by")
    return paths


def _run_bounded(argv: list[str], timeout_s: float = 30.0) -> int:
    """A ``streamdet`` command run as ``streamdet.cli.main`` runs it (its function; a UserFacingError is
    one line on standard error and exit 2), in a thread: fails the test if it has not returned in
    ``timeout_s`` (``main`` itself sets signal handlers, which only the main thread may)."""
    from streamdet.cli import build_parser

    args = build_parser(argv[0]).parse_args(argv)
    result: dict = {}

    def run() -> None:
        try:
            result["code"] = int(args.func(args) or 0)
        except UserFacingError as error:
            print(f"streamdet {args.command}: error: {error}", file=sys.stderr)
            result["code"] = 2

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"streamdet {' '.join(argv)} hangs"
    return result["code"]


def test_corrupt_files_give_one_line_errors_without_hanging(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Every class of damage through ``info`` and ``replay``: exit 2 with one line naming the file and
    the damage, never a traceback, never a hang; a bit flipped to a coordinate outside the sensor and
    time stamps at +-2**62 are warnings in ``info`` (which still reports) and errors in ``replay``."""
    for name, (path, reason) in _corrupt_files(tmp_path).items():
        for command in (["info", str(path)], ["replay", str(path), "--endpoint", _ipc(), "--speed", "max"]):
            code = _run_bounded(command)
            errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("streamdet")]
            if name in ("flipped-bit", "wide-times") and command[0] == "info":  # reported, with a warning
                assert code == 0 and len(errors) == 1 and "warning" in errors[0], (name, errors)
                assert "1 events lie outside the 640x480 sensor" in errors[0] or "jump by" in errors[0]
                continue
            assert code == 2, (name, command[0], errors)
            assert len(errors) == 1 and str(path) in errors[0] and reason in errors[0], (name, errors)
