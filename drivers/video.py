"""Encode a video file or a webcam into events or spike frames and publish them.

Each captured frame is converted to luminance ``Y = (0.299 R + 0.587 G + 0.114 B) / 255`` (OpenCV's
``COLOR_BGR2GRAY``), optionally resized to ``size`` with area interpolation, and stamped:

- file: ``t_k = round(k * 1e6 / fps)`` microseconds for frame ``k`` (fps from the container, 30 if it
  states none); with ``loop`` pass ``p`` continues at ``p`` times the file's span, so time keeps rising;
  frames are published at the file's pace times ``speed`` (None: as fast as possible);
- camera: microseconds of the monotonic clock since the first frame (the camera sets the pace).

The first frame starts the encoder; every later frame ``k`` yields the output for ``(t_{k-1}, t_k]``:

- ``dvs``: :func:`streamdet.encoders.emulate_dvs` events, one ``events/<stream>`` message spanning
  ``[t_{k-1} + 1, t_k + 1)`` (the events' times lie in ``(t_{k-1}, t_k]``);
- ``spike``: :func:`streamdet.encoders.emulate_spike_camera` frames at ``spike_rate_hz``;
- ``poisson``: :func:`streamdet.encoders.poisson_encode` of frame ``k`` over the same output frame grid
  (seed ``seed + k``), one spike frame per output frame time in ``(t_{k-1}, t_k]``;

the last two as ``spikes/<stream>`` messages. End-of-stream follows the last frame (also after Ctrl-C).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamdet.encoders import (
    DVSParams,
    SpikeCameraParams,
    emulate_dvs,
    emulate_spike_camera,
    output_frame_times,
    output_frames_until,
    poisson_encode,
)
from streamdet.errors import FileFormatError, UserFacingError

from .publishing import Outgoing, PublishTarget, publish_paced
from .synthetic import DriveStats

ENCODINGS: tuple[str, ...] = ("dvs", "spike", "poisson")
"""How video frames become spikes."""

DEFAULT_FPS = 30.0
"""Frame rate assumed for a video file that states none."""


if TYPE_CHECKING:
    from streamdet.bus import CurveServerKeys


@dataclass(frozen=True)
class VideoDriveConfig:
    """What the video driver reads, how it encodes, where it publishes.

    Attributes:
        source: a video file path, or a camera index (int).
        endpoint: ZeroMQ endpoint to bind.
        encode: ``dvs``, ``spike`` or ``poisson``.
        stream: stream name; topic ``events/NAME`` (dvs) or ``spikes/NAME``.
        size: ``(width, height)`` to resize frames to; None keeps the source's size.
        loop: start a file again at its end (time keeps rising).
        speed: multiple of the file's pace; None = as fast as possible (ignored for cameras).
        seconds: stop after this much stream time, seconds; None = until the source ends.
        spike_rate_hz: output frame rate of the ``spike`` and ``poisson`` encodings.
        poisson_max_rate: firing probability per output frame at intensity 1 (``poisson``).
        seed: seed of the encoders.
        dvs: DVS emulator parameters (their ``seed`` is replaced by ``seed``).
        wait_subscribers: wait for that many subscribers before the first message.
        wait_timeout_s: how long to wait for them, seconds.
        lossless: block instead of dropping when a subscriber lags.
        curve: CURVE server keys of the bound endpoint (`streamdet.bus.CurveServerKeys`), or None.
    """

    source: str | int
    endpoint: str
    encode: str = "dvs"
    stream: str = "video"
    size: tuple[int, int] | None = None
    loop: bool = False
    speed: float | None = 1.0
    seconds: float | None = None
    spike_rate_hz: float = 1000.0
    poisson_max_rate: float = 1.0
    seed: int = 0
    dvs: DVSParams = field(default_factory=DVSParams)
    wait_subscribers: int = 0
    wait_timeout_s: float = 10.0
    lossless: bool = False
    curve: CurveServerKeys | None = None

    def __post_init__(self) -> None:
        if self.encode not in ENCODINGS:
            raise UserFacingError(f"unknown encoding {self.encode!r}; choose one of {', '.join(ENCODINGS)}")
        if not self.spike_rate_hz > 0:
            raise UserFacingError(f"spike rate must be positive, got {self.spike_rate_hz} Hz")
        if self.size is not None and (self.size[0] <= 0 or self.size[1] <= 0):
            raise UserFacingError(f"frame size must be positive, got {self.size}")


def open_capture(source: str | int):
    """An opened ``cv2.VideoCapture`` on a file or camera index; UserFacingError when it cannot be opened."""
    import cv2

    if isinstance(source, int):
        # OpenCV logs each backend's failure to open a missing camera; the error below says it once.
        log_level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            capture = cv2.VideoCapture(source)
        finally:
            cv2.utils.logging.setLogLevel(log_level)
        if not capture.isOpened():
            capture.release()
            raise UserFacingError(f"camera {source} cannot be opened (is it connected, and free?)")
        return capture
    path = Path(source)
    if not path.is_file():
        raise FileFormatError(path, "no such video file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise FileFormatError(path, "OpenCV cannot open it as a video")
    return capture


def to_luminance(frame_bgr: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Luminance in [0, 1], float32 ``[H, W]``, of an 8-bit BGR (or grey) frame, resized to ``size``."""
    import cv2

    grey = frame_bgr if frame_bgr.ndim == 2 else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    if size is not None and (grey.shape[1], grey.shape[0]) != tuple(size):
        grey = cv2.resize(grey, tuple(size), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32) / np.float32(255.0)


def iter_video_frames(
    source: str | int, size: tuple[int, int] | None = None, loop: bool = False
) -> Iterator[tuple[int, np.ndarray]]:
    """``(t_us, luminance [H, W])`` for each frame of a file or camera (time stamps as in the module doc)."""
    import cv2

    capture = open_capture(source)
    try:
        if isinstance(source, int):
            clock_start = None
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                now = time.monotonic()
                clock_start = now if clock_start is None else clock_start
                yield round((now - clock_start) * 1e6), to_luminance(frame, size)
        fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        offset_us = 0
        while True:
            index = 0
            ok, frame = capture.read()
            if not ok:
                raise FileFormatError(source, "the video has no readable frame")
            while ok:
                yield offset_us + round(index * 1e6 / fps), to_luminance(frame, size)
                index += 1
                ok, frame = capture.read()
            if not loop:
                return
            offset_us += round(index * 1e6 / fps)
            capture.release()
            capture = open_capture(source)
    finally:
        capture.release()


class FrameEncoder:
    """Thin stateful wrapper: feed luminance frames one at a time, get the spikes since the last one.

    ``push(t_us, frame)`` returns ``("events", events)`` or ``("spikes", (frames [M, H, W], times [M]))``
    for the interval ``(t_prev, t_us]``; the first frame returns None (it starts the stream).
    """

    def __init__(
        self, encode: str, spike_rate_hz: float, seed: int, dvs: DVSParams, poisson_max_rate: float
    ) -> None:
        self.encode = encode
        self.spike_rate_hz = spike_rate_hz
        self.seed = seed
        self.poisson_max_rate = poisson_max_rate
        self.dvs_params = replace(dvs, seed=seed)
        self.spike_params = SpikeCameraParams(rate_hz=spike_rate_hz, seed=seed)
        self._dvs_state = None
        self._spike_state = None
        self._start_us: int | None = None
        self._emitted = 0
        self._index = 0

    def push(self, t_us: int, frame: np.ndarray) -> tuple[str, object] | None:
        """Encode ``frame`` (float32 ``[H, W]`` in [0, 1]) taken at ``t_us`` microseconds."""
        frames = frame[None]
        times = np.array([t_us], dtype=np.int64)
        first = self._start_us is None
        if first:
            self._start_us = t_us
        self._index += 1
        if self.encode == "dvs":
            events, self._dvs_state = emulate_dvs(frames, times, self.dvs_params, self._dvs_state)
            return None if first else ("events", events)
        if self.encode == "spike":
            spikes, spike_times, self._spike_state = emulate_spike_camera(
                frames, times, self.spike_params, self._spike_state
            )
            return None if first else ("spikes", (spikes, spike_times))
        if first:
            return None
        last = output_frames_until(self._start_us, self.spike_rate_hz, t_us)
        spike_times = output_frame_times(self._start_us, self.spike_rate_hz, self._emitted + 1, last + 1)
        self._emitted = last
        spikes = poisson_encode(frame, len(spike_times), self.seed + self._index - 1, self.poisson_max_rate)
        return "spikes", (spikes, spike_times)


def drive_video(config: VideoDriveConfig, *, progress: bool = False) -> DriveStats:
    """Encode ``config.source`` and publish it on ``config.endpoint`` (binds it); returns what was sent.

    Ctrl-C (KeyboardInterrupt) sends end-of-stream and returns what was sent, ``interrupted`` set.
    """
    kind = "events" if config.encode == "dvs" else "spikes"
    is_camera = isinstance(config.source, int)
    frames_iter = iter_video_frames(config.source, config.size, config.loop and not is_camera)
    first = next(frames_iter, None)
    if first is None:
        raise UserFacingError(f"camera {config.source} gave no frame")
    first_time, first_frame = first
    sensor_size = (first_frame.shape[1], first_frame.shape[0])
    encoder = FrameEncoder(
        config.encode, config.spike_rate_hz, config.seed, config.dvs, config.poisson_max_rate
    )
    encoder.push(first_time, first_frame)
    end_us = None if config.seconds is None else first_time + round(config.seconds * 1e6)
    speed = None if is_camera else config.speed
    frame_us = 1e6 / config.spike_rate_hz

    from streamdet import wire

    def outgoing() -> Iterator[Outgoing]:
        previous_us = first_time
        for t_us, frame in frames_iter:
            if end_us is not None and t_us > end_us:
                return
            output_kind, payload = encoder.push(t_us, frame)
            if output_kind == "events":
                message = wire.events_message(
                    config.stream, payload, sensor_size, t0_us=previous_us + 1, t1_us=t_us + 1
                )
                item = Outgoing(t_us, (message,), t_us + 1, events=len(payload))
            else:
                spikes, spike_times = payload
                messages = (
                    (wire.spikes_message(config.stream, spikes, int(spike_times[0]), frame_us),)
                    if len(spikes)
                    else ()
                )
                item = Outgoing(t_us, messages, t_us + 1, packets=len(messages), frames=len(spikes))
            previous_us = t_us
            yield item

    target = PublishTarget.of(config, speed, f"drive video {config.encode}", unit=" frames")
    try:
        tally = publish_paced(
            target,
            outgoing(),
            lambda end: [wire.eos_message(config.stream, kind, sensor_size, end)],
            start_us=first_time,
            end_us=first_time + 1,
            progress=progress,
        )
    finally:
        frames_iter.close()
    return DriveStats(tally.packets, tally.events, tally.frames, 0, tally.wall_s, tally.interrupted)
