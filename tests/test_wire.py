"""Wire format: round trips of every kind, zero-copy frames, one crafted message per reject reason, exact
event bounds at every record position, and in-process fuzzing that only ever raises WireError."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from streamdet import wire
from streamdet.events import EVENT_DTYPE

SENSOR = (346, 260)


def make_events(count: int, sensor: tuple[int, int] = SENSOR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = np.empty(count, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, sensor[0], count)
    events["y"] = rng.integers(0, sensor[1], count)
    events["t"] = np.sort(rng.integers(1_000_000, 2_000_000, count))
    events["p"] = rng.integers(0, 2, count).astype(bool)
    return events


def as_bytes(frames: list) -> list[bytes]:
    return [bytes(frame) for frame in frames]


def sample_messages() -> list[wire.Message]:
    rows = np.array([[1.5, 2, 30, 40, 0.9, 1], [0, 0, 5, 5, 0.25, 0]], dtype=np.float32)
    return [
        wire.events_message("cam0", make_events(1000), SENSOR).with_seq(7),
        wire.spikes_message("vidar", np.random.default_rng(1).random((3, 5, 11)) > 0.5, 1_000, 50.0),
        wire.detections_message(
            "cam0", rows, ["boat", "buoy"], SENSOR, 10, 50_010, latency_ms=3.5, dropped=0
        ),
        wire.truth_message("cam0", rows[:1], ["boat", "buoy"], SENSOR, 10, 11),
        wire.eos_message("cam0", "events", SENSOR, t_us=99),
        wire.events_message("quiet", make_events(0), SENSOR, t0_us=5, t1_us=2_005),
        wire.detections_message("cam0", np.zeros((0, 6), np.float32), ["boat"], SENSOR, 10, 20),
    ]


@pytest.mark.parametrize("message", sample_messages(), ids=lambda message: f"{message.kind}-{message.count}")
def test_every_kind_survives_a_round_trip_through_bytes(message: wire.Message) -> None:
    frames = as_bytes(wire.pack(message))
    assert frames[0] == message.topic.encode()
    received = wire.unpack(frames)
    assert (received.kind, received.stream, received.topic) == (message.kind, message.stream, message.topic)
    assert (received.sensor_size, received.t0_us, received.t1_us) == (
        message.sensor_size,
        message.t0_us,
        message.t1_us,
    )
    assert received.seq == message.seq and received.extra == message.extra
    if message.kind != "eos":
        assert received.payload.dtype == message.payload.dtype
        assert np.array_equal(received.payload, message.payload)


def test_header_carries_the_documented_fields() -> None:
    message = sample_messages()[2]
    header = json.loads(wire.pack(message)[1])
    assert list(header)[: len(wire.HEADER_FIELDS)] == list(wire.HEADER_FIELDS)
    assert header["v"] == wire.SCHEMA_VERSION and header["sensor"] == list(SENSOR)
    assert header["count"] == 2 and header["dtype"] == "<f4x6"
    assert header["class_names"] == ["boat", "buoy"] and header["latency_ms"] == 3.5


def test_spike_frames_are_bit_packed_lsb_first_along_x() -> None:
    frames = np.zeros((1, 2, 11), dtype=bool)
    frames[0, 0, 0] = frames[0, 1, 9] = True
    payload = bytes(wire.pack(wire.spikes_message("s", frames, 0, 50))[2])
    assert payload == bytes([0b00000001, 0, 0, 0b00000010])
    message = wire.spikes_message("s", np.zeros((4, 2, 11), dtype=bool), 1_000, 50.0)
    assert message.sensor_size == (11, 2) and message.t1_us == 1_200 and message.extra["frame_us"] == 50.0


def test_event_payload_is_sent_and_received_without_copies() -> None:
    events = make_events(5000)
    frames = wire.pack(wire.events_message("cam0", events, SENSOR))
    assert np.shares_memory(np.frombuffer(frames[2], dtype=np.uint8), events)
    payload_frame = bytearray(frames[2])
    received = wire.unpack([frames[0], frames[1], payload_frame])
    assert np.shares_memory(received.payload, np.frombuffer(payload_frame, dtype=np.uint8))
    assert np.array_equal(received.payload, events)


def test_received_payloads_are_read_only() -> None:
    received = wire.unpack(as_bytes(wire.pack(sample_messages()[0])))
    with pytest.raises(ValueError, match="read-only"):
        received.payload["x"][0] = 1


def test_event_span_defaults_to_the_events_and_eos_uses_the_ended_topic() -> None:
    events = make_events(10)
    message = wire.events_message("cam0", events, SENSOR)
    assert message.t0_us == events["t"].min() and message.t1_us == events["t"].max() + 1
    with pytest.raises(ValueError, match="t0_us and t1_us"):
        wire.events_message("cam0", events[:0], SENSOR)
    assert wire.eos_message("cam0", "spikes", SENSOR).topic == "spikes/cam0"
    with pytest.raises(ValueError, match="eos ends"):
        wire.eos_message("cam0", "eos", SENSOR)
    with pytest.raises(ValueError, match="stream name"):
        wire.events_message("cam/0", events, SENSOR)
    with pytest.raises(ValueError, match="clash"):
        wire.pack(wire.detections_message("cam0", [], ["boat"], SENSOR, 0, 1, seq=3))


def edited(
    message: wire.Message, topic: bytes | None = None, payload: bytes | None = None, **changes
) -> list:
    """Frames of ``message`` with header fields changed (``None`` deletes) or other frames replaced."""
    frames = as_bytes(wire.pack(message))
    header = json.loads(frames[1])
    for name, value in changes.items():
        if value is None:
            del header[name]
        else:
            header[name] = value
    return [
        frames[0] if topic is None else topic,
        json.dumps(header).encode(),
        frames[2] if payload is None else payload,
    ]


def with_event(events: np.ndarray, index: int, **values) -> bytes:
    changed = events.copy()
    for name, value in values.items():
        changed[name][index] = value
    return changed.tobytes()


def crafted_rejects() -> list[tuple[str, list]]:
    events = make_events(600)
    event_message = wire.events_message("cam0", events, SENSOR)
    detections, spikes, eos = (sample_messages()[i] for i in (2, 1, 4))
    good = as_bytes(wire.pack(event_message))
    bad_polarity = bytearray(events.tobytes())
    bad_polarity[13 * 301 + 12] = 2
    rows = detections.payload.copy()
    return [
        ("frame-count", good[:2]),
        ("frame-count", [*good, b""]),
        ("bad-topic", [b"events/\xffcam0", good[1], good[2]]),
        ("bad-topic", [b"e" * 300, good[1], good[2]]),
        ("header-too-large", [good[0], b" " * (wire.MAX_HEADER_BYTES + 1), good[2]]),
        ("bad-json", [good[0], b'{"v": 1, "kind": ', good[2]]),
        ("bad-json", [good[0], b"\xff\xfe{}", good[2]]),
        ("header-not-object", [good[0], b"[1, 2, 3]", good[2]]),
        ("bad-version", edited(event_message, v=2)),
        ("bad-version", edited(event_message, v=True)),
        ("bad-version", edited(event_message, v=None)),
        ("bad-kind", edited(event_message, kind="video")),
        ("missing-field", edited(event_message, t1_us=None)),
        ("missing-field", edited(event_message, dtype=None)),
        ("bad-field-type", edited(event_message, seq="3")),
        ("bad-field-type", edited(event_message, sensor=[346])),
        ("bad-field-type", edited(event_message, count=-1)),
        ("bad-field-type", edited(event_message, t0_us=1.5)),
        ("bad-field-type", edited(event_message, t1_us=2**70)),
        ("bad-stream", edited(event_message, topic=b"events/../x", stream="../x")),
        ("bad-extra", edited(detections, class_names=None)),
        ("bad-extra", edited(detections, class_names=["boat", 3])),
        ("bad-extra", edited(detections, latency_ms="slow")),
        ("bad-extra", edited(spikes, frame_us=0)),
        ("bad-extra", edited(eos, ends="video")),
        ("topic-mismatch", edited(event_message, topic=b"events/cam1")),
        ("topic-mismatch", edited(eos, topic=b"eos/cam0")),
        ("bad-sensor", edited(event_message, sensor=[0, 260])),
        ("bad-sensor", edited(event_message, sensor=[40_000, 260])),
        ("bad-time", edited(event_message, t1_us=event_message.t0_us - 1)),
        ("bad-dtype", edited(event_message, dtype="<f8")),
        ("bad-dtype", edited(detections, dtype="x:<i2,y:<i2,t:<i8,p:?")),
        ("size-too-large", edited(event_message, count=10**12)),
        ("size-too-large", edited(spikes, count=10**9)),
        ("size-too-large", edited(spikes, count=9, sensor=[4096, 4096])),  # 18 MiB packed > 16 MiB
        ("size-too-large", edited(event_message, count=(256 << 20) // 13 + 1)),
        ("size-too-large", edited(detections, count=(1 << 20) + 1)),
        ("size-mismatch", [good[0], good[1], good[2][:-1]]),
        ("size-mismatch", [good[0], good[1], good[2] + b"\x00" * 13]),
        ("size-mismatch", edited(eos, count=1)),
        ("out-of-sensor", [good[0], good[1], with_event(events, 17, x=SENSOR[0])]),
        ("out-of-sensor", [good[0], good[1], with_event(events, 598, y=-1)]),
        ("bad-polarity", [good[0], good[1], bytes(bad_polarity)]),
        (
            "bad-boxes",
            edited(
                detections, payload=np.where(rows == rows[0, 2], np.nan, rows).astype(np.float32).tobytes()
            ),
        ),
        ("bad-boxes", edited(detections, payload=np.where(rows == 1, 2, rows).astype(np.float32).tobytes())),
        (
            "bad-boxes",
            edited(detections, payload=np.where(rows == 1, 0.5, rows).astype(np.float32).tobytes()),
        ),
    ]


@pytest.mark.parametrize(("reason", "frames"), crafted_rejects(), ids=[case[0] for case in crafted_rejects()])
def test_each_fault_is_refused_with_its_reason(reason: str, frames: list) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.unpack(frames)
    assert caught.value.reason == reason


def test_every_reject_reason_is_exercised() -> None:
    assert {reason for reason, _ in crafted_rejects()} == set(wire.REJECT_REASONS)


def test_checks_run_in_the_documented_order() -> None:
    message = wire.events_message("cam0", make_events(10), SENSOR)
    faults = {
        "bad-version": {"v": 9},
        "bad-kind": {"kind": "video"},
        "missing-field": {"seq": None},
        "bad-stream": {"stream": "a b"},
        "bad-sensor": {"sensor": [0, 0]},
        "bad-time": {"t0_us": 10**9},
        "bad-dtype": {"dtype": "?"},
        "size-mismatch": {"count": 11},
    }
    reasons = list(faults)
    for first in range(len(reasons)):
        changes = {name: value for reason in reasons[first:] for name, value in faults[reason].items()}
        with pytest.raises(wire.WireError) as caught:
            wire.unpack(edited(message, **changes))
        assert caught.value.reason == reasons[first]
    assert reasons == sorted(reasons, key=wire.REJECT_REASONS.index)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 513, 1027])
def test_event_bounds_are_exact_at_every_record_position(count: int) -> None:
    sensor = (640, 480)
    events = make_events(count, sensor, seed=count)
    events["x"][count // 2] = sensor[0] - 1
    events["y"][count // 3] = sensor[1] - 1
    topic, header, _ = as_bytes(wire.pack(wire.events_message("cam0", events, sensor)))
    assert np.array_equal(wire.unpack([topic, header, events.tobytes()]).payload, events)
    faults = [("out-of-sensor", {"x": sensor[0]}), ("out-of-sensor", {"y": sensor[1]})]
    faults += [("out-of-sensor", {"x": -1}), ("out-of-sensor", {"y": -32768})]
    for index in range(count):
        for reason, values in faults:
            with pytest.raises(wire.WireError) as caught:
                wire.unpack([topic, header, with_event(events, index, **values)])
            assert caught.value.reason == reason, (index, values)
        polarity = bytearray(events.tobytes())
        polarity[13 * index + 12] = 255
        with pytest.raises(wire.WireError, match="polarity"):
            wire.unpack([topic, header, bytes(polarity)])


def mutations(frames: list[bytes], rng: random.Random) -> list[bytes]:
    """One random corruption of valid frames: byte flips, truncation, growth, or a header field swap."""
    frames = list(frames)
    index = rng.randrange(3)
    data = bytearray(frames[index])
    choice = rng.randrange(5)
    if choice == 0 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 1:
        del data[rng.randrange(len(data) + 1) :]
    elif choice == 2:
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
    elif choice == 3:
        header = json.loads(frames[1])
        name = rng.choice(list(header))
        header[name] = rng.choice([None, -1, 2**40, "x", [], {}, 1.5, True, [1, 2], ["a"], 0])
        return [frames[0], json.dumps(header).encode(), frames[2]]
    else:
        return frames[: rng.randrange(3)] + frames[rng.randrange(3) :]
    frames[index] = bytes(data)
    return frames


def test_fuzzed_messages_only_ever_raise_wire_error() -> None:
    rng = random.Random(2)
    originals = [as_bytes(wire.pack(message.with_seq(3))) for message in sample_messages()]
    reasons: dict[str, int] = {}
    for _ in range(3000):
        frames = mutations(rng.choice(originals), rng)
        try:
            received = wire.unpack(frames)
        except wire.WireError as error:
            reasons[error.reason] = reasons.get(error.reason, 0) + 1
            assert error.reason in wire.REJECT_REASONS
        else:
            assert received.kind in wire.KINDS and received.t1_us >= received.t0_us
    assert sum(reasons.values()) > 2000 and len(reasons) >= 10


def test_event_times_are_checked_against_the_message_span() -> None:
    events = np.zeros(3, dtype=EVENT_DTYPE)
    events["t"] = [100, 150, 199]
    wire.check_event_times(wire.events_message("cam0", events, SENSOR, t0_us=100, t1_us=200))
    wire.check_event_times(wire.eos_message("cam0", "events", SENSOR))
    poisoned = events.copy()
    poisoned["t"][1] = 1 << 62
    for stamped, span in ((poisoned, (100, 200)), (events, (100, 199)), (events, (101, 300))):
        message = wire.unpack(wire.pack(wire.events_message("cam0", stamped, SENSOR, *span).with_seq(0)))
        with pytest.raises(wire.WireError) as error:
            wire.check_event_times(message)
        assert error.value.reason == wire.EVENT_TIME_REASON and "outside the message span" in str(error.value)


def test_each_kind_has_its_own_payload_cap() -> None:
    """A dense 4096 x 4096 spike frame (2 MiB packed) passes, 9 of them do not; the caps hold before
    any array is allocated."""
    frames = np.zeros((8, 4096, 4096), dtype=bool)
    message = wire.unpack(wire.pack(wire.spikes_message("cam0", frames, 0, 1000.0).with_seq(0)))
    assert message.count == 8
    assert wire.MAX_PAYLOAD_BYTES["spikes"] == 16 << 20 and wire.MAX_PAYLOAD_BYTES["eos"] == 0
