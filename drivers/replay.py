"""Replay an event or spike-camera file onto the wire, at the file's own pace, a multiple of it, or as
fast as possible.

The file is cut into packets of ``packet_us`` microseconds (:func:`iter_file_packets`); a packet
covering ``[t0_us, t1_us)`` is due once the replay clock has passed its end:

    due_s = (t1_us - start_us) / (1e6 * speed)        (speed = None: due at once)

where ``start_us`` is the start of the first packet (``streamdet.drivers.publishing``: the paced publish
loop every driver shares). Event files
go out as ``events/<stream>`` messages, spike-camera ``.dat`` files as ``spikes/<stream>`` messages of
whole frames; an end-of-stream message follows the last packet (also after Ctrl-C). With ``loop`` the
file starts again after its end and time stamps keep increasing: pass ``k`` is shifted by ``k`` times
the file's span, so a detector downstream sees one continuous stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamdet import formats
from streamdet.errors import FileFormatError, UserFacingError

from .publishing import Outgoing, PublishTarget, publish_paced

if TYPE_CHECKING:
    from streamdet.bus import CurveServerKeys

MAX_GAP_US = 600_000_000
"""Largest jump in time between two events a replayed file may have (10 minutes): a larger one is a
corrupt time stamp, which would otherwise be replayed as ``gap / packet_us`` empty packets (for ever,
for a stamp of 2**62)."""


@dataclass(frozen=True)
class ReplayConfig:
    """What to replay and how.

    ``speed``: multiple of real time (``None`` = as fast as possible). ``packet_us``: duration of one
    message, microseconds (spike files: rounded to whole frames, at least one). ``wait_subscribers``:
    wait until that many subscribers are connected (at most ``wait_timeout_s`` seconds) before the
    first message, so that a recorder started first loses nothing. ``lossless``: the publisher blocks
    instead of dropping when a subscriber's queue is full. ``sensor_size``: overrides the file's.
    ``start_us``, ``stop_us``: replay only ``[start_us, stop_us)`` of the file's time (microseconds).
    ``curve``: CURVE server keys of the bound endpoint (``streamdet.bus.CurveServerKeys``), or None.
    """

    path: str | Path
    endpoint: str
    stream: str = "replay"
    speed: float | None = 1.0
    loop: bool = False
    packet_us: int = 10_000
    wait_subscribers: int = 0
    wait_timeout_s: float = 10.0
    lossless: bool = False
    curve: CurveServerKeys | None = None
    sensor_size: tuple[int, int] | None = None
    start_us: int | None = None
    stop_us: int | None = None


@dataclass(frozen=True)
class Packet:
    """One message's worth of a file: ``[t0_us, t1_us)`` and either ``events`` or spike ``frames``
    (``[n, H, W]``, one every ``frame_us`` microseconds from ``t0_us``)."""

    t0_us: int
    t1_us: int
    events: np.ndarray | None = None
    frames: np.ndarray | None = None
    frame_us: float | None = None


@dataclass(frozen=True)
class ReplayStats:
    """What a replay sent: packets, events, spike frames, passes over the file, the wall time (s)
    from the first packet's clock start to the last packet sent, and whether Ctrl-C stopped it."""

    packets: int
    events: int
    frames: int
    loops: int
    wall_s: float
    interrupted: bool = False


def time_range_chunks(
    chunks: Iterable[np.ndarray], start_us: int | None, stop_us: int | None
) -> Iterator[np.ndarray]:
    """The events of time-ordered ``chunks`` with ``start_us <= t < stop_us`` (``None`` = open end);
    stops reading once a chunk starts at or after ``stop_us``."""
    for chunk in chunks:
        if stop_us is not None and len(chunk) and chunk["t"].min() >= stop_us:
            return
        keep = np.ones(len(chunk), dtype=bool)
        if start_us is not None:
            keep &= chunk["t"] >= start_us
        if stop_us is not None:
            keep &= chunk["t"] < stop_us
        yield chunk if keep.all() else chunk[keep]


def iter_file_packets(
    path: str | Path,
    packet_us: int,
    *,
    sensor_size: tuple[int, int] | None = None,
    start_us: int | None = None,
    stop_us: int | None = None,
) -> Iterator[Packet]:
    """Cut a file into consecutive packets of ``packet_us`` microseconds, streaming it.

    Event files: :func:`streamdet.formats.iter_timed_windows` windows (starting at the first event,
    empty windows included) of the events with ``start_us <= t < stop_us``. Spike ``.dat``:
    ``max(1, round(packet_us / frame_us))`` frames per packet, frame ``n`` at ``t0_us + n * frame_us``
    (sidecar values); the packets that overlap ``[start_us, stop_us)``.
    """
    fmt = formats.detect_format(path)
    if fmt == "spike-dat":
        layout = formats.spike_layout(path, sensor_size)
        frames_per_packet = max(1, round(packet_us / layout.frame_us))
        first_frame = 0
        for frames in formats.iter_spike_dat(path, frames_per_packet, layout.sensor_size):
            t0_us = round(layout.t0_us + first_frame * layout.frame_us)
            first_frame += len(frames)
            t1_us = round(layout.t0_us + first_frame * layout.frame_us)
            if stop_us is not None and t0_us >= stop_us:
                return
            if start_us is None or t1_us > start_us:
                yield Packet(t0_us, t1_us, frames=frames, frame_us=layout.frame_us)
        return
    chunks = time_range_chunks(
        formats.iter_event_chunks(path, sensor_size=sensor_size, fmt=fmt), start_us, stop_us
    )
    try:
        for window_start_us, events in formats.iter_timed_windows(chunks, packet_us, MAX_GAP_US):
            yield Packet(window_start_us, window_start_us + packet_us, events=events)
    except FileFormatError:
        raise
    except UserFacingError as error:
        raise FileFormatError(path, str(error)) from None


def file_sensor_size(path: str | Path, sensor_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Sensor size for publishing a file: the override, else the file's, else one streamed pass."""
    if sensor_size is not None:
        return sensor_size
    stated = formats.header_sensor_size(path)
    if stated is not None:
        return stated
    info = formats.recording_info(path)
    return info.width, info.height


def check_inside_sensor(path: str | Path, events: np.ndarray, sensor_size: tuple[int, int]) -> None:
    """FileFormatError when an event lies outside the ``(W, H)`` sensor (receivers would reject it)."""
    if len(events) == 0:
        return
    width, height = sensor_size
    x_min, x_max = int(events["x"].min()), int(events["x"].max())
    y_min, y_max = int(events["y"].min()), int(events["y"].max())
    if x_min < 0 or y_min < 0 or x_max >= width or y_max >= height:
        raise FileFormatError(
            path,
            f"events reach x {x_min}..{x_max}, y {y_min}..{y_max}, outside the {width}x{height} sensor "
            "(give the right --sensor-size)",
        )


def shifted(packet: Packet, offset_us: int) -> Packet:
    """``packet`` with its time stamps moved ``offset_us`` microseconds later (looped replays)."""
    if offset_us == 0:
        return packet
    events = packet.events
    if events is not None:
        events = events.copy()
        events["t"] += offset_us
    return Packet(
        packet.t0_us + offset_us,
        packet.t1_us + offset_us,
        events=events,
        frames=packet.frames,
        frame_us=packet.frame_us,
    )


def iter_replay_packets(config: ReplayConfig) -> Iterator[tuple[int, Packet]]:
    """``(pass_index, packet)`` for the whole replay: the file's packets (:func:`iter_file_packets`),
    again and again when ``config.loop``, pass ``k`` shifted by ``k`` times the span of pass 0 (from
    its first packet's start to its last packet's end), so that time stamps keep increasing."""
    pass_index = 0
    offset_us = 0
    first_start_us: int | None = None
    while True:
        last_end_us = None
        packets = iter_file_packets(
            config.path,
            config.packet_us,
            sensor_size=config.sensor_size,
            start_us=config.start_us,
            stop_us=config.stop_us,
        )
        for packet in packets:
            if first_start_us is None:
                first_start_us = packet.t0_us
            packet = shifted(packet, offset_us)
            last_end_us = packet.t1_us
            yield pass_index, packet
        if not config.loop or last_end_us is None or first_start_us is None:
            return
        offset_us = last_end_us - first_start_us
        pass_index += 1


def replay_file(config: ReplayConfig, *, progress: bool = False) -> ReplayStats:
    """Publish ``config.path`` on ``config.endpoint`` (binds it); returns what was sent.

    The first packet is decoded before the clock starts, so that opening the file does not delay the
    pace. Ctrl-C (KeyboardInterrupt) stops the replay after sending end-of-stream and returns what was
    sent, ``interrupted`` set.
    """
    from streamdet import wire

    if not wire.STREAM_NAME.fullmatch(config.stream):
        raise UserFacingError(f"stream name {config.stream!r} is not 1-64 of letters, digits, '_', '.', '-'")
    if config.packet_us <= 0:
        raise UserFacingError(
            f"packet duration must be a positive number of microseconds, got {config.packet_us}"
        )
    path = Path(config.path)
    fmt = formats.detect_format(path)
    kind = "spikes" if fmt == "spike-dat" else "events"
    sensor_size = (
        formats.spike_layout(path, config.sensor_size).sensor_size
        if kind == "spikes"
        else file_sensor_size(path, config.sensor_size)
    )
    if min(sensor_size) <= 0:
        raise FileFormatError(path, "holds no events and states no sensor size (give --sensor-size)")
    packet_stream = iter_replay_packets(config)
    first = next(packet_stream, None)  # decoded before the clock starts: opening the file does not delay
    passes = [0]

    def outgoing() -> Iterator[Outgoing]:
        for pass_index, packet in itertools.chain([first] if first else [], packet_stream):
            passes[0] = pass_index + 1
            if packet.frames is not None:
                message = wire.spikes_message(config.stream, packet.frames, packet.t0_us, packet.frame_us)
                yield Outgoing(packet.t1_us, (message,), packet.t1_us, frames=len(packet.frames))
            else:
                check_inside_sensor(path, packet.events, sensor_size)
                message = wire.events_message(
                    config.stream, packet.events, sensor_size, t0_us=packet.t0_us, t1_us=packet.t1_us
                )
                yield Outgoing(packet.t1_us, (message,), packet.t1_us, events=len(packet.events))

    target = PublishTarget.of(config, config.speed, f"replay {path.name}")
    tally = publish_paced(
        target,
        outgoing(),
        lambda end_us: [wire.eos_message(config.stream, kind, sensor_size, t_us=end_us)],
        start_us=None if first is None else first[1].t0_us,
        progress=progress,
    )
    return ReplayStats(
        packets=tally.packets,
        events=tally.events,
        frames=tally.frames,
        loops=passes[0],
        wall_s=tally.wall_s,
        interrupted=tally.interrupted,
    )
