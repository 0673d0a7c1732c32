"""Record messages from the wire to files, appending as they arrive (bounded memory, lossless as long as
the disk keeps up with the publisher).

What goes where, by the suffix of ``out``:

| message kind | ``.h5`` | ``.npy`` | ``.dat`` |
|---|---|---|---|
| ``events`` | dataset ``events`` | ``out`` (+ ``out.json`` sensor size) | refused |
| ``spikes`` | ON events in ``events`` | ON events in ``out`` | frames, PKU layout (+ ``<stem>.json``) |
| ``detections`` | dataset ``detections`` | ``<stem>.detections.npy`` | refused |
| ``truth`` | dataset ``truth`` | ``<stem>.truth.npy`` | refused |

Spike frames become events with :func:`streamdet.formats.spike_frames_to_events` (frame ``n`` of a
message at ``t0_us + n * frame_us``). Detections and truth rows are stored as
:data:`DETECTION_RECORD_DTYPE` records: the message's time span ``t0_us``, ``t1_us`` (int64
microseconds) and the row ``x1, y1, x2, y2, score`` (float32 pixels) and ``label`` (class index);
the class names go to the HDF5 attribute ``class_names`` or to ``<stem>.<kind>.json``.
HDF5 files carry ``width``, ``height`` attributes.

An ``out`` named ``*_bbox.npy`` records only ``detections``, as a Prophesee box file
(``streamdet.prophesee_boxes.BBOX_DTYPE``, ``t = t1_us``), class names in ``<stem>.json``.

``record`` never overwrites: when ``out`` or a file beside it with its stem exists (a restarted
recorder), it records to ``<stem>.1<suffix>``, ``<stem>.2<suffix>``, ... (:func:`free_output_path`)
and says so. The folder is created when missing.

Bounds and faults (``record``): a message whose events lie outside its own span is refused
(``wire.check_event_times``); data from more than ``MAX_RECORDED_STREAMS`` stream names is refused;
the recording stops at ``max_bytes``; every sequence gap (messages the publisher dropped for this
slow subscriber) is reported as it happens; a stream silent for ``gone_after_s`` after its data counts
as ended (its publisher is gone and its end-of-stream was lost), so ``record`` never waits for ever.
An end-of-stream counts only from the publisher of the data it ends: one whose ``seq`` does not
continue its topic's is ignored (``streamdet.bus.Subscriber``).
"""

from __future__ import annotations

import glob
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamdet import formats
from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE
from streamdet.wire import BOX_KINDS, Message

if TYPE_CHECKING:
    from streamdet.bus import CurveClientKeys

DETECTION_RECORD_DTYPE = np.dtype(
    [
        ("t0_us", "<i8"),
        ("t1_us", "<i8"),
        ("x1", "<f4"),
        ("y1", "<f4"),
        ("x2", "<f4"),
        ("y2", "<f4"),
        ("score", "<f4"),
        ("label", "<i4"),
    ]
)
"""One recorded box: time span of its message (us) and the wire row ``x1, y1, x2, y2, score, class``."""

FLUSH_INTERVAL_S = 1.0
"""How often a recording is flushed to the operating system (a killed recorder loses at most this)."""

MAX_RECORDED_STREAMS = 256
"""Stream names one recording takes data from; messages of further names are refused."""

DEFAULT_MAX_BYTES = 64 << 30
"""Default size cap of a recording (64 GiB, about 80 minutes of 1 M events/s); ``record`` stops there."""

DEFAULT_GONE_AFTER_S = 10.0
"""Default silence after which a stream that sent data counts as ended (publisher gone)."""

NOTICE_INTERVAL_S = 1.0
"""Drop and refusal notices of ``record`` are printed at most this often per kind, with counts."""


@dataclass(frozen=True)
class RecordConfig:
    """Where to listen and where to write.

    ``topics``: topic prefixes to subscribe to (``""`` = everything). ``idle_timeout_s``: stop after
    that long without any message (``None`` = wait for end-of-stream or Ctrl-C). ``sensor_size``:
    used when no message states one. ``curve``: CURVE client keys (``streamdet.bus``), or None.
    ``max_bytes``: stop once this many bytes of records are written (None: no cap).
    ``gone_after_s``: a stream that sent data and then nothing for this long counts as ended, its
    publisher gone (None: wait for its end-of-stream for ever).
    """

    endpoints: tuple[str, ...]
    out: str | Path
    topics: tuple[str, ...] = ("",)
    idle_timeout_s: float | None = None
    sensor_size: tuple[int, int] | None = None
    curve: CurveClientKeys | None = None
    max_bytes: int | None = DEFAULT_MAX_BYTES
    gone_after_s: float | None = DEFAULT_GONE_AFTER_S

    def __post_init__(self) -> None:
        if self.max_bytes is not None and self.max_bytes < 1:
            raise UserFacingError(f"max_bytes must be positive, got {self.max_bytes}")
        for name in ("idle_timeout_s", "gone_after_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserFacingError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class RecordStats:
    """What a recording received and wrote.

    ``dropped``: messages the subscriber saw missing from the sequence numbers; ``rejected``: invalid
    messages by reason (wire rejects, ``event-time``, ``too-many-streams``, ``eos-out-of-sequence``);
    ``ended``: True when it stopped at end-of-stream (not Ctrl-C or idle timeout); ``gone``: streams
    counted as ended because their publisher fell silent (end-of-stream lost); ``stopped_at_cap``: True
    when it stopped at ``max_bytes``.
    """

    out: str
    messages: int
    events: int
    frames: int
    boxes: dict[str, int]
    dropped: int
    rejected: dict[str, int]
    ended: bool
    gone: tuple[str, ...] = ()
    stopped_at_cap: bool = False

    def summary(self) -> str:
        """One line for the terminal."""
        boxes = ", ".join(f"{count} {kind}" for kind, count in sorted(self.boxes.items()))
        stop = "end-of-stream" if self.ended else "stopped before end-of-stream"
        if self.gone:
            stop += f" (publisher gone, no end-of-stream: {', '.join(self.gone)})"
        if self.stopped_at_cap:
            stop = "stopped at the size cap (--max-bytes)"
        rejected = sum(self.rejected.values())
        lossy = " (NOT lossless: the publisher dropped them; give it --lossless)" if self.dropped else ""
        return (
            f"recorded {self.messages} messages ({self.events} events, {self.frames} spike frames"
            f"{', ' + boxes if boxes else ''}) to {self.out}; {stop}; "
            f"dropped {self.dropped}{lossy}, rejected {rejected}"
        )


def box_records(rows: np.ndarray, t0_us: int, t1_us: int) -> np.ndarray:
    """Wire box rows ``[N, 6]`` (``x1, y1, x2, y2, score, class``) -> ``DETECTION_RECORD_DTYPE [N]``
    stamped with the message's time span ``[t0_us, t1_us)``."""
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    records = np.empty(len(rows), dtype=DETECTION_RECORD_DTYPE)
    records["t0_us"] = t0_us
    records["t1_us"] = t1_us
    for column, name in enumerate(("x1", "y1", "x2", "y2", "score")):
        records[name] = rows[:, column]
    records["label"] = np.round(rows[:, 5]).astype(np.int32)
    return records


class MessageRecorder:
    """Appends received messages to ``out`` (see the module docstring for the layout). No sockets:
    feed it :class:`streamdet.wire.Message` objects with :meth:`write`, then :meth:`close`.

    Counters: ``messages`` (data messages written), ``events``, ``frames`` (spike frames), ``boxes``
    (rows per box kind), ``bytes`` (record bytes written). ``sensor_size`` follows the latest
    ``events``/``spikes`` message. It writes ``out`` itself (``record`` picks a free name first); a
    missing folder is created.
    """

    def __init__(self, out: str | Path, sensor_size: tuple[int, int] | None = None) -> None:
        self.out = Path(out)
        self.suffix = self.out.suffix.lower()
        if self.suffix not in (".npy", ".h5", ".hdf5", ".dat"):
            raise UserFacingError(
                f"{self.out}: cannot record to {self.suffix or 'extensionless'} files (.npy, .h5, .dat)"
            )
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserFacingError(f"{self.out}: cannot create folder {self.out.parent} ({error})") from None
        self.sensor_size = sensor_size
        self._sidecar_size: tuple[int, int] | None = None
        self.bytes = 0
        self.messages = 0
        self.events = 0
        self.frames = 0
        self.boxes: dict[str, int] = {}
        self._files: dict[str, formats.AppendableArrayFile] = {}
        self._class_names: dict[str, list[str]] = {}
        self._h5 = None
        self._dat = None
        self.prophesee_boxes = self.out.name.lower().endswith("_bbox.npy")
        if self.prophesee_boxes:
            from streamdet.prophesee_boxes import BBOX_DTYPE

            self._files["detections"] = formats.AppendableArrayFile(self.out, BBOX_DTYPE)

    def _write_prophesee_boxes(self, message: Message) -> None:
        """``*_bbox.npy``: a detections message becomes Prophesee box records stamped ``t1_us``
        (``streamdet.prophesee_boxes.detections_to_bbox``); other kinds are not recorded there."""
        from streamdet.prophesee_boxes import detections_to_bbox

        records = detections_to_bbox(message.payload, message.t1_us)
        self._files["detections"].append(records)
        self.boxes["detections"] = self.boxes.get("detections", 0) + len(records)
        if "class_names" in message.extra:
            self._class_names["detections"] = list(message.extra["class_names"])

    def _array_file(self, kind: str, dtype: np.dtype) -> formats.AppendableArrayFile:
        """The growing array for ``kind``, opened on first use."""
        if kind not in self._files:
            if self.suffix in (".h5", ".hdf5"):
                if self._h5 is None:
                    import h5py

                    self._h5 = h5py.File(self.out, "w")
                self._files[kind] = formats.AppendableArrayFile(
                    self.out, dtype, dataset=kind, h5_file=self._h5
                )
            else:
                path = self.out if kind == "events" else self.out.with_name(f"{self.out.stem}.{kind}.npy")
                self._files[kind] = formats.AppendableArrayFile(path, dtype)
        return self._files[kind]

    def _write_spike_dat(self, message: Message) -> None:
        frames = np.asarray(message.payload, dtype=bool)
        if self._dat is None:
            height, width = frames.shape[1:]
            frame_us = float(message.extra.get("frame_us", formats.SPIKE_FRAME_US))
            layout = formats.SpikeDatLayout(
                sensor_size=(width, height), frame_us=frame_us, t0_us=message.t0_us
            )
            formats.write_spike_sidecar(self.out, layout)
            self._dat = self.out.open("wb")
        self._dat.write(formats.encode_spike_frames(frames))

    def write(self, message: Message) -> None:
        """Append one data message (``events``, ``spikes``, ``detections`` or ``truth``)."""
        kind = message.kind
        if message.sensor_size is not None and kind in ("events", "spikes"):
            self.sensor_size = tuple(int(v) for v in message.sensor_size)
            if self.suffix == ".npy" and not self.prophesee_boxes and self._sidecar_size != self.sensor_size:
                # at once, not only at close: a recorder killed before it closes still leaves a readable file
                formats.write_sensor_sidecar(self.out, self.sensor_size)
                self._sidecar_size = self.sensor_size
        if self.prophesee_boxes:
            if kind != "detections":
                return
            self._write_prophesee_boxes(message)
        elif self.suffix == ".dat":
            if kind != "spikes":
                raise UserFacingError(f"{self.out}: a spike .dat records spikes messages only, got {kind!r}")
            self._write_spike_dat(message)
            self.frames += len(message.payload)
        elif kind == "events":
            self._array_file("events", EVENT_DTYPE).append(message.payload)
            self.events += len(message.payload)
        elif kind == "spikes":
            frame_us = float(message.extra.get("frame_us", formats.SPIKE_FRAME_US))
            events = formats.spike_frames_to_events(message.payload, frame_us=frame_us, t0_us=message.t0_us)
            self._array_file("events", EVENT_DTYPE).append(events)
            self.events += len(events)
            self.frames += len(message.payload)
        elif kind in BOX_KINDS:
            records = box_records(message.payload, message.t0_us, message.t1_us)
            self._array_file(kind, DETECTION_RECORD_DTYPE).append(records)
            self.boxes[kind] = self.boxes.get(kind, 0) + len(records)
            if "class_names" in message.extra:
                self._class_names[kind] = list(message.extra["class_names"])
        else:
            return
        self.messages += 1
        self.bytes = sum(array_file.length * array_file.dtype.itemsize for array_file in self._files.values())
        if self._dat is not None:
            self.bytes = self._dat.tell()

    def flush(self) -> None:
        """Push everything appended so far to the operating system."""
        for array_file in self._files.values():
            array_file.flush()
        if self._dat is not None:
            self._dat.flush()

    def close(self) -> None:
        """Finish every file: final lengths, sensor size, class names. An empty events file is written
        when nothing at all arrived, so the output always exists."""
        if self.suffix != ".dat" and not self._files:
            self._array_file("events", EVENT_DTYPE)
        if self._dat is not None:
            self._dat.close()
            self._dat = None
        elif self.suffix == ".dat":
            self.out.write_bytes(b"")
        for kind, array_file in self._files.items():
            if self._h5 is not None:
                if self.sensor_size is not None:
                    array_file.set_attributes(width=self.sensor_size[0], height=self.sensor_size[1])
                if kind in self._class_names:
                    self._h5[kind].attrs["class_names"] = self._class_names[kind]
            elif kind == "events" and self.sensor_size is not None:
                if self._sidecar_size != self.sensor_size:  # not already written with the first events
                    formats.write_sensor_sidecar(array_file.path, self.sensor_size)
            elif kind in self._class_names:
                formats.write_text_atomically(
                    array_file.path.with_suffix(".json"),
                    json.dumps({"class_names": self._class_names[kind]}) + "\n",
                )
            array_file.close()
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        self._files.clear()


def streams_all_ended(data_streams: Iterable[str], ended_streams: Iterable[str]) -> bool:
    """True when end-of-stream arrived and every stream that sent data has ended."""
    ended = set(ended_streams)
    return bool(ended) and set(data_streams) <= ended


def free_output_path(out: str | Path) -> Path:
    """``out``, or the first of ``<stem>.1<suffix>``, ``<stem>.2<suffix>``, ... such that neither it nor
    a file beside it with its stem (sidecars, ``<stem>.detections.npy``) exists: a recording never
    overwrites an earlier one (e.g. of a recorder restarted by ``launch``)."""
    out = Path(out)

    def taken(path: Path) -> bool:
        return path.exists() or any(path.parent.glob(glob.escape(path.stem) + ".*"))

    candidate, index = out, 0
    while taken(candidate):
        index += 1
        candidate = out.with_name(f"{out.stem}.{index}{out.suffix}")
    return candidate


class _Notices:
    """Lines for the terminal, at most one per ``NOTICE_INTERVAL_S`` per key, each with the count of
    events of that key since the last line."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self._last_at: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def note(self, key: str, count: int, text: Callable[[int], str]) -> None:
        now = time.monotonic()
        self._unsaid[key] = self._unsaid.get(key, 0) + count
        if now - self._last_at.get(key, -float("inf")) >= NOTICE_INTERVAL_S:
            self._last_at[key] = now
            self.say(text(self._unsaid.pop(key)))


def record(
    config: RecordConfig, *, progress: bool = False, say: Callable[[str], None] | None = None
) -> RecordStats:
    """Subscribe to ``config.endpoints`` and record until every stream has ended (end-of-stream, or
    silent for ``config.gone_after_s``), the idle timeout passes, the size cap is reached, or Ctrl-C
    (which ends the recording cleanly: the files are complete). ``say`` gets the notices (default:
    standard error): another file name chosen, messages lost upstream, refused messages."""
    from tqdm import tqdm

    from streamdet import bus, wire

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    out = free_output_path(config.out)
    if out != Path(config.out):
        say(f"record: {config.out} exists; recording to {out} (a recording never overwrites)")
    recorder = MessageRecorder(out, config.sensor_size)
    subscriber = bus.Subscriber(list(config.endpoints), topics=config.topics, curve=config.curve)
    notices = _Notices(say)
    refused: dict[str, int] = {}
    last_seen: dict[str, float] = {}
    ended_streams: set[str] = set()
    gone: list[str] = []
    ended = stopped_at_cap = False
    bar = tqdm(
        desc=f"record {recorder.out.name}", unit=" msg", file=sys.stderr, disable=None if progress else True
    )
    last_message_at = last_flush_at = time.monotonic()

    def refuse(reason: str, text: str) -> None:
        refused[reason] = refused.get(reason, 0) + 1
        notices.note(reason, 1, lambda count: f"record: refused {count} message(s): {text}")

    try:
        while True:
            dropped_before = subscriber.stats.dropped
            message = subscriber.receive(timeout_ms=100)
            now = time.monotonic()
            if subscriber.stats.dropped > dropped_before:
                notices.note(
                    "dropped",
                    subscriber.stats.dropped - dropped_before,
                    lambda count: f"record: {count} message(s) lost upstream (sequence gap): the publisher "
                    "drops for a subscriber that falls behind unless it runs with --lossless",
                )
            if now - last_flush_at > FLUSH_INTERVAL_S:
                recorder.flush()
                last_flush_at = now
            if config.gone_after_s is not None:
                for stream, seen_at in list(last_seen.items()):
                    if now - seen_at > config.gone_after_s:
                        say(
                            f"record: nothing on stream {stream} for {config.gone_after_s:g} s: its "
                            "publisher is gone, counted as ended (its end-of-stream was lost)"
                        )
                        del last_seen[stream]
                        ended_streams.add(stream)
                        gone.append(stream)
                if gone and not last_seen:
                    ended = True
                    break
            if message is None:
                if config.idle_timeout_s is not None and now - last_message_at > config.idle_timeout_s:
                    break
                continue
            last_message_at = now
            if message.kind == "eos":
                last_seen.pop(message.stream, None)
                ended_streams.add(message.stream)
                if not last_seen:  # every stream that sent data has ended
                    ended = True
                    break
                continue
            if message.stream not in last_seen and len(last_seen) >= MAX_RECORDED_STREAMS:
                refuse("too-many-streams", f"stream {message.stream}: already {MAX_RECORDED_STREAMS} streams")
                continue
            try:
                wire.check_event_times(message)
            except wire.WireError as error:
                refuse(error.reason, f"{message.topic}: {error.detail}")
                continue
            last_seen[message.stream] = now
            ended_streams.discard(message.stream)
            recorder.write(message)
            bar.update(1)
            bar.set_postfix(events=recorder.events, refresh=False)
            if config.max_bytes is not None and recorder.bytes >= config.max_bytes:
                say(f"record: {recorder.out} holds {recorder.bytes} bytes, the cap (--max-bytes); stopping")
                stopped_at_cap = True
                break
    except KeyboardInterrupt:
        ended = False
    finally:
        bar.close()
        recorder.close()
        stats = subscriber.stats
        subscriber.close()
    return RecordStats(
        out=str(recorder.out),
        messages=recorder.messages,
        events=recorder.events,
        frames=recorder.frames,
        boxes=dict(recorder.boxes),
        dropped=stats.dropped,
        rejected={**stats.rejected, **refused},
        ended=ended,
        gone=tuple(gone),
        stopped_at_cap=stopped_at_cap,
    )
