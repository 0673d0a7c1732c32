"""The wire format: typed messages as ZeroMQ multipart frames ``[topic, header, payload]``.

Pure functions over numpy arrays and JSON; no sockets (``streamdet.bus`` puts messages on sockets).

- ``topic``: ASCII ``"<kind>/<stream>"``; end-of-stream travels on the topic of the data it ends
  (``extra["ends"]`` names that kind), so a subscriber of ``events/cam0`` sees the end of ``cam0``.
- ``header``: a UTF-8 JSON object (at most ``MAX_HEADER_BYTES``) with the fields of ``HEADER_FIELDS``
  plus kind-specific fields (``class_names``, ``frame_us``, ``ends``, ``latency_ms``, ``dropped``, ...).
- ``payload``: raw little-endian bytes, ``count`` items of the kind's layout (``Message.payload``):

  - ``events``: ``count * 13`` bytes of ``EVENT_DTYPE`` records (``EVENT_DTYPE [count]``);
  - ``spikes``: ``count * H * ceil(W / 8)`` bytes, frames packed along x with
    ``np.packbits(..., axis=-1, bitorder="little")`` (bool ``[count, H, W]``, row 0 on top);
  - ``detections`` and ``truth``: ``count * 24`` bytes, float32 rows ``x1, y1, x2, y2, score, class``
    in pixels, ``class`` an index into the header's ``class_names`` (float32 ``[count, 6]``);
  - ``eos``: empty.

``unpack`` validates every frame before it builds anything and raises ``WireError`` with a short
``reason`` (see ``REJECT_REASONS``, in the order the checks run). Its cost is O(1) per message plus
vectorised O(count) bounds checks (event coordinates, box class indexes).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streamdet.events import EVENT_DTYPE, as_events

SCHEMA_VERSION = 1
"""Version of the header schema; ``unpack`` refuses any other (reason ``bad-version``)."""

KINDS = ("events", "spikes", "detections", "truth", "eos")
DATA_KINDS = KINDS[:-1]
BOX_KINDS = ("detections", "truth")

BOX_DTYPE = np.dtype("<f4")
BOX_COLUMNS = ("x1", "y1", "x2", "y2", "score", "class")

PAYLOAD_DTYPES = {
    "events": "x:<i2,y:<i2,t:<i8,p:?",
    "spikes": "bits:u1-le",
    "detections": "<f4x6",
    "truth": "<f4x6",
    "eos": "",
}
"""The ``dtype`` header field of each kind: names the payload layout exactly."""

HEADER_FIELDS = ("v", "kind", "stream", "seq", "sensor", "t0_us", "t1_us", "count", "dtype")
"""Header fields every message carries; every other header field is kind-specific (``Message.extra``)."""

MAX_HEADER_BYTES = 64 * 1024
MAX_TOPIC_BYTES = 256
MAX_PAYLOAD_BYTES = {
    "events": 256 << 20,
    "spikes": 16 << 20,
    "detections": 24 << 20,
    "truth": 24 << 20,
    "eos": 0,
}
"""Largest declared payload of each kind, bytes, refused before anything is allocated: events 256 MiB
(20.6 M events), spikes 16 MiB packed (128 MiB once unpacked to bool frames: 8 frames of 4096 x 4096),
boxes 24 MiB (1 M rows)."""
MAX_SENSOR_SIDE = 32767
"""Largest sensor width or height: event coordinates are int16."""
MAX_CLASS_NAMES = 1024
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
"""A stream name: 1 to 64 characters, letters, digits, ``_ . -``, starting with a letter or digit."""

REJECT_REASONS = (
    "frame-count",
    "bad-topic",
    "header-too-large",
    "bad-json",
    "header-not-object",
    "bad-version",
    "bad-kind",
    "missing-field",
    "bad-field-type",
    "bad-stream",
    "bad-extra",
    "topic-mismatch",
    "bad-sensor",
    "bad-time",
    "bad-dtype",
    "size-too-large",
    "size-mismatch",
    "out-of-sensor",
    "bad-polarity",
    "bad-boxes",
)
"""Every reason ``unpack`` can give, in the order its checks run."""


class WireError(ValueError):
    """A message that does not follow the wire format. ``reason`` is one of ``REJECT_REASONS``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, eq=False)
class Message:
    """One typed message.

    Attributes:
        kind: one of ``KINDS``.
        stream: stream name (``STREAM_NAME``), e.g. the camera.
        payload: ``events``: ``EVENT_DTYPE [N]``; ``spikes``: bool ``[N, H, W]`` (row 0 at the top);
            ``detections``/``truth``: float32 ``[N, 6]`` ``x1, y1, x2, y2, score, class``; ``eos``: empty.
            Payloads of received messages are read-only views of the received bytes.
        sensor_size: ``(width, height)`` in pixels.
        t0_us, t1_us: time span covered, microseconds, ``t0_us <= t1_us``.
        seq: sequence number per topic, from 0, stamped by ``bus.Publisher``; -1 before stamping.
        extra: kind-specific header fields: ``class_names`` (boxes), ``frame_us`` (spikes), ``ends``
            (eos), and anything JSON-serialisable a sender adds (``latency_ms``, ``dropped``, ...).
    """

    kind: str
    stream: str
    payload: np.ndarray
    sensor_size: tuple[int, int]
    t0_us: int
    t1_us: int
    seq: int = -1
    extra: dict = field(default_factory=dict)

    @property
    def topic(self) -> str:
        """``"<kind>/<stream>"``; end-of-stream uses the kind it ends (``extra["ends"]``)."""
        kind = self.extra.get("ends", "") if self.kind == "eos" else self.kind
        return f"{kind}/{self.stream}"

    @property
    def count(self) -> int:
        """Number of items in the payload: events, spike frames or box rows."""
        return int(len(self.payload))

    def with_seq(self, seq: int) -> Message:
        """The same message stamped with sequence number ``seq``."""
        return dataclasses.replace(self, seq=int(seq))


def _sensor(sensor_size: Sequence[int]) -> tuple[int, int]:
    width, height = (int(value) for value in sensor_size)
    if not (0 < width <= MAX_SENSOR_SIDE and 0 < height <= MAX_SENSOR_SIDE):
        raise ValueError(f"sensor size {sensor_size} is not (width, height) in 1..{MAX_SENSOR_SIDE}")
    return width, height


def _check_stream(stream: str) -> str:
    if not isinstance(stream, str) or not STREAM_NAME.fullmatch(stream):
        raise ValueError(f"stream name {stream!r} is not 1-64 of letters, digits, '_', '.', '-'")
    return stream


def events_message(
    stream: str,
    events: np.ndarray,
    sensor_size: tuple[int, int],
    t0_us: int | None = None,
    t1_us: int | None = None,
) -> Message:
    """An ``events`` message. The span defaults to ``[min t, max t + 1)`` of the events (microseconds);
    an empty packet needs both ``t0_us`` and ``t1_us``."""
    events = np.ascontiguousarray(as_events(np.asarray(events)))
    if t0_us is None or t1_us is None:
        if len(events) == 0:
            raise ValueError("an empty event packet needs t0_us and t1_us")
        times = events["t"]
        t0_us = int(times.min()) if t0_us is None else t0_us
        t1_us = int(times.max()) + 1 if t1_us is None else t1_us
    return Message("events", _check_stream(stream), events, _sensor(sensor_size), int(t0_us), int(t1_us))


def spikes_message(stream: str, frames: np.ndarray, t0_us: int, frame_us: float) -> Message:
    """A ``spikes`` message of bool frames ``[N, H, W]``, the first at ``t0_us``, one every ``frame_us``
    microseconds: ``t1_us = t0_us + round(N * frame_us)``. Sensor size ``(W, H)`` from the shape."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise ValueError(f"spike frames must be [N, H, W], got shape {frames.shape}")
    if not (math.isfinite(frame_us) and frame_us > 0):
        raise ValueError(f"frame_us must be positive, got {frame_us}")
    frames = np.ascontiguousarray(frames, dtype=bool)
    t1_us = int(t0_us) + round(len(frames) * float(frame_us))
    sensor_size = _sensor((frames.shape[2], frames.shape[1]))
    extra = {"frame_us": float(frame_us)}
    return Message("spikes", _check_stream(stream), frames, sensor_size, int(t0_us), t1_us, extra=extra)


def _box_message(
    kind: str,
    stream: str,
    rows: np.ndarray,
    class_names: Sequence[str],
    sensor_size: tuple[int, int],
    t0_us: int,
    t1_us: int,
    extra: dict,
) -> Message:
    rows = np.ascontiguousarray(np.asarray(rows, dtype=BOX_DTYPE).reshape(-1, 6))
    extra = {"class_names": [str(name) for name in class_names], **extra}
    return Message(
        kind, _check_stream(stream), rows, _sensor(sensor_size), int(t0_us), int(t1_us), extra=extra
    )


def detections_message(
    stream: str,
    rows: np.ndarray,
    class_names: Sequence[str],
    sensor_size: tuple[int, int],
    t0_us: int,
    t1_us: int,
    **extra: object,
) -> Message:
    """A ``detections`` message: float32 rows ``[N, 6]`` ``x1, y1, x2, y2, score, class`` (pixels, class
    index into ``class_names``) for the input window ``[t0_us, t1_us)``; ``extra`` adds header fields
    such as ``latency_ms`` or ``dropped``."""
    return _box_message("detections", stream, rows, class_names, sensor_size, t0_us, t1_us, extra)


def truth_message(
    stream: str,
    rows: np.ndarray,
    class_names: Sequence[str],
    sensor_size: tuple[int, int],
    t0_us: int,
    t1_us: int,
) -> Message:
    """A ``truth`` message: ground-truth boxes, same row layout as ``detections_message``; score 1 for a
    labelled object, 0 for one marked ignore (scorers treat it as a crowd region)."""
    return _box_message("truth", stream, rows, class_names, sensor_size, t0_us, t1_us, {})


def eos_message(stream: str, ends: str, sensor_size: tuple[int, int], t_us: int = 0) -> Message:
    """End of stream ``stream`` for data kind ``ends``, sent on topic ``"<ends>/<stream>"``."""
    if ends not in DATA_KINDS:
        raise ValueError(f"eos ends one of {DATA_KINDS}, not {ends!r}")
    payload = np.zeros(0, dtype=EVENT_DTYPE)
    return Message(
        "eos",
        _check_stream(stream),
        payload,
        _sensor(sensor_size),
        int(t_us),
        int(t_us),
        extra={"ends": ends},
    )


def _payload_bytes(message: Message) -> np.ndarray:
    """The payload as the contiguous little-endian array whose bytes go on the wire."""
    if message.kind == "events":
        return np.ascontiguousarray(message.payload, dtype=EVENT_DTYPE)
    if message.kind == "spikes":
        return np.packbits(np.asarray(message.payload, dtype=bool), axis=-1, bitorder="little")
    if message.kind in BOX_KINDS:
        return np.ascontiguousarray(message.payload, dtype=BOX_DTYPE).reshape(-1, 6)
    return np.zeros(0, dtype=np.uint8)


def header_dict(message: Message) -> dict:
    """The header fields of ``message`` (``HEADER_FIELDS`` then ``extra``); refuses extra fields that
    would overwrite a standard one."""
    clash = set(HEADER_FIELDS) & set(message.extra)
    if clash:
        raise ValueError(f"extra fields {sorted(clash)} clash with standard header fields")
    return {
        "v": SCHEMA_VERSION,
        "kind": message.kind,
        "stream": message.stream,
        "seq": int(message.seq),
        "sensor": [int(message.sensor_size[0]), int(message.sensor_size[1])],
        "t0_us": int(message.t0_us),
        "t1_us": int(message.t1_us),
        "count": message.count if message.kind != "eos" else 0,
        "dtype": PAYLOAD_DTYPES[message.kind],
        **message.extra,
    }


def pack(message: Message) -> list[bytes | memoryview]:
    """``[topic, header, payload]`` frames of ``message``. The payload frame is a memoryview of the
    message's own array where its layout already is the wire layout (events, boxes): no copy is made,
    so the array must not change until the frames are sent. Spike frames are bit-packed (a new array)."""
    if message.kind not in KINDS:
        raise ValueError(f"kind {message.kind!r} is not one of {KINDS}")
    header = json.dumps(header_dict(message), separators=(",", ":")).encode()
    payload = _payload_bytes(message)
    return [message.topic.encode("ascii"), header, memoryview(payload.reshape(-1).view(np.uint8))]


def _frame_buffer(frame: object) -> memoryview:
    """A byte view of one received frame: ``bytes``, ``memoryview`` or ``zmq.Frame`` (its ``buffer``)."""
    view = memoryview(getattr(frame, "buffer", frame))
    if view.format == "B" and view.ndim == 1:
        return view
    try:
        return view.cast("B")
    except TypeError:
        return memoryview(view.tobytes())


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_FIELD_TYPES = {
    "v": _is_int,
    "kind": lambda value: isinstance(value, str),
    "stream": lambda value: isinstance(value, str),
    "seq": lambda value: _is_int(value) and value >= -1,
    "sensor": lambda value: isinstance(value, list) and len(value) == 2 and all(map(_is_int, value)),
    "t0_us": _is_int,
    "t1_us": _is_int,
    "count": lambda value: _is_int(value) and value >= 0,
    "dtype": lambda value: isinstance(value, str),
}


def _check_extra(kind: str, header: dict) -> None:
    """Kind-specific header fields: ``class_names`` (boxes), ``frame_us`` (spikes), ``ends`` (eos), and
    the optional numbers ``latency_ms`` and ``dropped``."""
    if kind in BOX_KINDS:
        names = header.get("class_names")
        if not (
            isinstance(names, list)
            and 0 < len(names) <= MAX_CLASS_NAMES
            and all(isinstance(name, str) and 0 < len(name) <= 64 for name in names)
        ):
            raise WireError("bad-extra", f"{kind} need class_names, a list of 1-{MAX_CLASS_NAMES} names")
    if kind == "spikes" and not (_is_number(header.get("frame_us")) and header["frame_us"] > 0):
        raise WireError("bad-extra", f"spikes need frame_us > 0, got {header.get('frame_us')!r}")
    if kind == "eos" and header.get("ends") not in DATA_KINDS:
        raise WireError("bad-extra", f"eos needs ends in {DATA_KINDS}, got {header.get('ends')!r}")
    for name in ("latency_ms", "dropped", "sent_us", "input_age_ms"):
        if name in header and not _is_number(header[name]):
            raise WireError("bad-extra", f"{name} must be a finite number, got {header[name]!r}")


def _parse_header(topic_frame: memoryview, header_frame: memoryview) -> tuple[str, dict]:
    """Topic string and header dict, with every field checked; raises WireError."""
    if len(topic_frame) > MAX_TOPIC_BYTES:
        raise WireError("bad-topic", f"topic of {len(topic_frame)} bytes (at most {MAX_TOPIC_BYTES})")
    try:
        topic = bytes(topic_frame).decode("ascii")
    except UnicodeDecodeError as error:
        raise WireError("bad-topic", "topic is not ASCII") from error
    if len(header_frame) > MAX_HEADER_BYTES:
        raise WireError("header-too-large", f"{len(header_frame)} bytes (at most {MAX_HEADER_BYTES})")
    try:
        header = json.loads(bytes(header_frame))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise WireError("bad-json", f"header is not JSON ({error})") from error
    if not isinstance(header, dict):
        raise WireError("header-not-object", f"header is a JSON {type(header).__name__}, not an object")
    if header.get("v") != SCHEMA_VERSION or not _is_int(header.get("v")):
        raise WireError("bad-version", f"schema version {header.get('v')!r}, expected {SCHEMA_VERSION}")
    kind = header.get("kind")
    if kind not in KINDS:
        raise WireError("bad-kind", f"kind {kind!r} is not one of {KINDS}")
    for name, is_valid in _FIELD_TYPES.items():
        if name not in header:
            raise WireError("missing-field", f"header lacks {name!r}")
        if not is_valid(header[name]):
            raise WireError("bad-field-type", f"header field {name!r} = {header[name]!r:.80}")
    if not STREAM_NAME.fullmatch(header["stream"]):
        raise WireError("bad-stream", f"stream name {header['stream']!r:.80}")
    _check_extra(kind, header)
    expected_topic = f"{header['ends'] if kind == 'eos' else kind}/{header['stream']}"
    if topic != expected_topic:
        raise WireError("topic-mismatch", f"topic {topic!r:.80} but header says {expected_topic!r}")
    width, height = header["sensor"]
    if not (0 < width <= MAX_SENSOR_SIDE and 0 < height <= MAX_SENSOR_SIDE):
        raise WireError("bad-sensor", f"sensor {header['sensor']} outside 1..{MAX_SENSOR_SIDE}")
    if header["t1_us"] < header["t0_us"]:
        raise WireError("bad-time", f"t1_us {header['t1_us']} < t0_us {header['t0_us']}")
    if header["dtype"] != PAYLOAD_DTYPES[kind]:
        raise WireError(
            "bad-dtype", f"{kind} dtype {header['dtype']!r:.80}, expected {PAYLOAD_DTYPES[kind]!r}"
        )
    return topic, header


def _declared_payload_bytes(kind: str, count: int, width: int, height: int) -> int:
    if kind == "events":
        return count * EVENT_DTYPE.itemsize
    if kind == "spikes":
        return count * height * ((width + 7) // 8)
    if kind in BOX_KINDS:
        return count * 6 * BOX_DTYPE.itemsize
    return 0


def _check_event_fields(events: np.ndarray, width: int, height: int) -> None:
    """``0 <= x < W`` and ``0 <= y < H`` (unsigned views: one max per field), polarity byte 0 or 1."""
    if len(events) == 0:
        return
    if int(events["x"].view(np.uint16).max()) >= width or int(events["y"].view(np.uint16).max()) >= height:
        raise WireError("out-of-sensor", f"event coordinates outside the {width} x {height} sensor")
    if int(events["p"].view(np.uint8).max()) > 1:
        raise WireError("bad-polarity", "event polarity byte other than 0 or 1")


PAIR_TILE = 256
"""Event pairs per row of the pair views in ``_check_events``."""


@functools.lru_cache(maxsize=64)
def _pair_limits(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column upper limits of the two uint16 views of event pairs (see ``_check_events``)."""
    even = np.full(13, 0xFFFF, dtype=np.uint16)
    even[[0, 1, 12]] = (width - 1, height - 1, 0x01FF)
    odd = np.full(13, 0xFFFF, dtype=np.uint16)
    odd[[5, 6, 7]] = (0x01FF, width - 1, height - 1)
    return np.tile(even, PAIR_TILE), np.tile(odd, PAIR_TILE)


def _check_events(buffer: memoryview, events: np.ndarray, width: int, height: int) -> None:
    """Vectorised bounds check of event records: ``0 <= x < W``, ``0 <= y < H``, polarity byte 0 or 1.

    Two records are 26 bytes, 13 uint16 words. Read as uint16 from byte 0, word 0 is ``x`` and word 1
    ``y`` of the even record, word 12 is ``t``'s top byte plus ``256 * p`` of the odd one; read from
    byte 1, word 5 is ``t``'s top byte plus ``256 * p`` of the even record, words 6 and 7 ``x`` and
    ``y`` of the odd one. Negative coordinates are large as unsigned, and ``p <= 1`` iff its word is
    ``<= 0x01FF``, so every check is ``column max <= limit``: two contiguous max-reductions over the
    whole payload (rows of ``PAIR_TILE`` pairs), much faster than per-field strided maxima.
    """
    body_pairs = (max(len(events) - 1, 0) // 2 // PAIR_TILE) * PAIR_TILE
    if body_pairs:
        even_limits, odd_limits = _pair_limits(width, height)
        row = 13 * PAIR_TILE
        even = np.frombuffer(buffer, dtype=np.uint16, count=13 * body_pairs, offset=0).reshape(-1, row)
        odd = np.frombuffer(buffer, dtype=np.uint16, count=13 * body_pairs, offset=1).reshape(-1, row)
        if not ((even.max(axis=0) <= even_limits).all() and (odd.max(axis=0) <= odd_limits).all()):
            _check_event_fields(events[: 2 * body_pairs], width, height)
    _check_event_fields(events[2 * body_pairs :], width, height)


def _check_boxes(rows: np.ndarray, class_count: int) -> None:
    """Finite values, class column an integer index into ``class_names``."""
    if len(rows) == 0:
        return
    if not np.isfinite(rows).all():
        raise WireError("bad-boxes", "box rows hold NaN or infinity")
    classes = rows[:, 5]
    if not ((classes >= 0) & (classes < class_count) & (classes == np.round(classes))).all():
        raise WireError("bad-boxes", f"class column is not an index into {class_count} class names")


EVENT_TIME_REASON = "event-time"
"""Reason of the ``WireError`` from :func:`check_event_times` (not one of ``unpack``'s checks)."""


def check_event_times(message: Message) -> None:
    """``WireError`` (reason ``EVENT_TIME_REASON``) unless every event of an ``events`` message lies in
    its span, ``t0_us <= t < t1_us``.

    Not part of :func:`unpack`: a minimum and a maximum over the strided ``t`` column cost about 12 ms
    per million events (2-core sandbox), more than the whole bounds check, and a receiver that only
    forwards or counts does not need it. Receivers that use event times (the detector node, the
    recorder) call it; a message stamped far from its own span would otherwise make the detector bin
    up to the stray time stamp, or a recording span years.
    """
    if message.kind != "events" or len(message.payload) == 0:
        return
    times = message.payload["t"]
    first, last = int(times.min()), int(times.max())
    if first < message.t0_us or last >= message.t1_us:
        raise WireError(
            EVENT_TIME_REASON,
            f"events at t {first}..{last} us outside the message span [{message.t0_us}, {message.t1_us})",
        )


def unpack(frames: Sequence[object]) -> Message:
    """The message in ``[topic, header, payload]`` frames (``bytes``, ``memoryview`` or ``zmq.Frame``),
    after checking every field; raises ``WireError`` (reason in ``REJECT_REASONS``) otherwise.

    Declared sizes are compared with the received byte counts before any array is built; event and
    box payloads are zero-copy read-only views of the payload frame.
    """
    if len(frames) != 3:
        raise WireError("frame-count", f"{len(frames)} frames, expected 3 (topic, header, payload)")
    topic_frame, header_frame, payload_frame = (_frame_buffer(frame) for frame in frames)
    _, header = _parse_header(topic_frame, header_frame)
    kind, count = header["kind"], header["count"]
    width, height = header["sensor"]
    if kind == "eos" and count != 0:
        raise WireError("size-mismatch", f"eos declares {count} items")
    declared = _declared_payload_bytes(kind, count, width, height)
    if declared > MAX_PAYLOAD_BYTES[kind]:
        raise WireError(
            "size-too-large",
            f"{kind} payload of {declared} bytes declared (at most {MAX_PAYLOAD_BYTES[kind]})",
        )
    if declared != len(payload_frame):
        raise WireError(
            "size-mismatch", f"{kind} x {count} need {declared} bytes, payload has {len(payload_frame)}"
        )
    if kind == "events":
        payload = np.frombuffer(payload_frame, dtype=EVENT_DTYPE)
        _check_events(payload_frame, payload, width, height)
    elif kind == "spikes":
        packed = np.frombuffer(payload_frame, dtype=np.uint8).reshape(count, height, (width + 7) // 8)
        payload = np.unpackbits(packed, axis=-1, count=width, bitorder="little").view(bool)
    elif kind in BOX_KINDS:
        payload = np.frombuffer(payload_frame, dtype=BOX_DTYPE).reshape(count, 6)
        _check_boxes(payload, len(header["class_names"]))
    else:
        payload = np.zeros(0, dtype=EVENT_DTYPE)
    extra = {name: value for name, value in header.items() if name not in _FIELD_TYPES}
    return Message(
        kind=kind,
        stream=header["stream"],
        payload=payload,
        sensor_size=(width, height),
        t0_us=header["t0_us"],
        t1_us=header["t1_us"],
        seq=header["seq"],
        extra=extra,
    )
