"""Draw event or spike-rate frames with boxes: an OpenCV window where there is a display, otherwise (or
with ``headless``) an ``.mp4`` per stream and PNG snapshots.

Frames: an event frame shows the events of the last ``accumulate_us`` microseconds, ON events warm
white, OFF events blue, brightness ``min(count / 2, 1)`` per pixel over a dark background; a spike
frame shows the per-pixel firing rate of the frames in that span (``rate = spikes / frames``) in grey.
Detections are drawn in their class's colour with ``name score``; ground truth (``truth/<stream>``) in
thin grey lines; a head-up display line on top says stream time, boxes and latency.

When detections arrive for a stream, one frame is drawn per detections message, showing the events of
the last ``accumulate_us`` of its window ``[t0_us, t1_us)`` (boxes and events line up). A stream without
detections gets one frame every ``1 / fps`` seconds of stream time.

OpenCV's GUI aborts the whole process when there is no display (exit 134, nothing written), so
:func:`has_display` checks, on Linux, that ``DISPLAY`` / ``WAYLAND_DISPLAY`` is set and that a server
answers there (a connection to its socket) before any window is opened.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamdet.errors import UserFacingError

if TYPE_CHECKING:
    from streamdet.bus import CurveClientKeys

CLASS_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "boat": (40, 170, 255),
    "buoy": (60, 60, 255),
    "car": (255, 200, 40),
    "pedestrian": (200, 90, 255),
}
"""Box colour of each class (BGR); other classes are drawn in :data:`OTHER_COLOUR_BGR`."""

RECENT_DATA_US = 5_000_000
"""Data kept per stream for drawing, microseconds: detections up to this late still find their events."""

OTHER_COLOUR_BGR = (80, 255, 80)
TRUTH_COLOUR_BGR = (170, 170, 170)
IGNORED_TRUTH_COLOUR_BGR = (90, 90, 90)
"""Truth rows with score 0 are objects the scene marks ignore (too small, hidden, faint or still)."""
BACKGROUND_BGR = (28, 22, 18)
ON_BGR = np.array([235, 245, 255], dtype=np.float32)
OFF_BGR = np.array([255, 150, 40], dtype=np.float32)


def has_display() -> bool:
    """True where an OpenCV window can open: on Linux only when ``DISPLAY`` or ``WAYLAND_DISPLAY`` names
    a server that accepts a connection (a variable left over from a closed session, or an SSH login
    without X forwarding, would make OpenCV abort the process)."""
    if not sys.platform.startswith("linux"):
        return True
    display, wayland = os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY")
    return bool(display and _x11_answers(display)) or bool(wayland and _wayland_answers(wayland))


def _connects(family: int, address: object) -> bool:
    import socket

    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(address)
        return True
    except OSError:
        return False


def _x11_answers(display: str) -> bool:
    """An X server answers at ``display`` (``[host]:N[.S]``): its unix socket (file or abstract) for a
    local display, TCP port ``6000 + N`` for a remote one."""
    import socket

    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        return _connects(socket.AF_UNIX, path) or _connects(socket.AF_UNIX, "\0" + path)
    return _connects(socket.AF_INET, (host, 6000 + int(number)))


def _wayland_answers(name: str) -> bool:
    """A Wayland compositor answers at ``name`` (absolute, or under ``XDG_RUNTIME_DIR``)."""
    import socket

    path = name if name.startswith("/") else os.path.join(os.environ.get("XDG_RUNTIME_DIR", ""), name)
    return _connects(socket.AF_UNIX, path)


def event_frame(events: np.ndarray, sensor_size: tuple[int, int]) -> np.ndarray:
    """BGR uint8 image ``[H, W, 3]`` of events: ``pixel = bg + (colour - bg) * min(count / 2, 1)`` with
    ON and OFF counts blended (ON drawn over OFF)."""
    from streamdet.binning import events_to_counts

    counts = events_to_counts(events, sensor_size)
    background = np.array(BACKGROUND_BGR, dtype=np.float32)
    image = np.broadcast_to(background, (*counts.shape[1:], 3)).copy()
    for channel, colour in ((0, OFF_BGR), (1, ON_BGR)):
        alpha = np.minimum(counts[channel] / 2.0, 1.0)[..., None]
        image = image * (1 - alpha) + colour * alpha
    return image.astype(np.uint8)


def spike_frame(frames: np.ndarray) -> np.ndarray:
    """BGR uint8 image of the per-pixel firing rate of spike frames ``[N, H, W]`` (N >= 1), grey levels."""
    if len(frames) == 0:
        raise ValueError("spike_frame needs at least one frame")
    rate = frames.mean(axis=0, dtype=np.float32)
    grey = (
        np.array(BACKGROUND_BGR, dtype=np.float32)[None, None] * (1 - rate[..., None]) + 255 * rate[..., None]
    )
    return grey.astype(np.uint8)


def class_colour(name: str) -> tuple[int, int, int]:
    return CLASS_COLOURS_BGR.get(name, OTHER_COLOUR_BGR)


def draw_boxes(
    image: np.ndarray,
    rows: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    scale: float = 1.0,
    truth: bool = False,
) -> np.ndarray:
    """Draw box rows ``[N, 6]`` (``x1, y1, x2, y2, score, class`` in sensor pixels) on ``image`` (in place,
    coordinates multiplied by ``scale``); detections with a ``name score`` label, truth in thin grey
    (darker for ignored objects)."""
    import cv2

    for x1, y1, x2, y2, score, label in np.asarray(rows, dtype=np.float32).reshape(-1, 6):
        corner1 = (int(round(x1 * scale)), int(round(y1 * scale)))
        corner2 = (int(round(x2 * scale)), int(round(y2 * scale)))
        if truth:
            colour = TRUTH_COLOUR_BGR if score > 0 else IGNORED_TRUTH_COLOUR_BGR
            cv2.rectangle(image, corner1, corner2, colour, 1, cv2.LINE_8)
            continue
        index = int(label)
        name = class_names[index] if 0 <= index < len(class_names) else str(index)
        colour = class_colour(name)
        cv2.rectangle(image, corner1, corner2, colour, 2, cv2.LINE_AA)
        text = f"{name} {score:.2f}"
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        top = max(corner1[1] - height - baseline - 2, 0)
        cv2.rectangle(
            image, (corner1[0], top), (corner1[0] + width + 4, top + height + baseline + 2), colour, -1
        )
        cv2.putText(
            image,
            text,
            (corner1[0] + 2, top + height + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (20, 20, 20),
            1,
            cv2.LINE_AA,
        )
    return image


def draw_hud(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Draw ``lines`` of text on a translucent dark band at the top of ``image`` (in place)."""
    import cv2

    if not lines:
        return image
    line_height = 18
    band = image[: line_height * len(lines) + 8]
    band[:] = (band * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            image,
            line,
            (8, 16 + i * line_height),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (240, 240, 240),
            1,
            cv2.LINE_AA,
        )
    return image


def annotated_frame(
    base: np.ndarray,
    detections: np.ndarray | None,
    class_names: tuple[str, ...] | list[str],
    truth: np.ndarray | None = None,
    hud: list[str] | None = None,
    scale: int = 2,
) -> np.ndarray:
    """``base`` (an event or spike frame) enlarged ``scale`` times, with truth, detections and a HUD."""
    import cv2

    image = cv2.resize(base, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    if truth is not None:
        draw_boxes(image, truth, class_names, scale, truth=True)
    if detections is not None:
        draw_boxes(image, detections, class_names, scale)
    return draw_hud(image, hud or [])


class VideoOutput:
    """An ``.mp4`` (OpenCV ``mp4v``) at ``fps`` plus a PNG snapshot every ``snapshot_every_s`` seconds of
    video; the frame size is fixed by the first frame."""

    def __init__(self, path: str | Path, fps: float, snapshot_every_s: float | None = None) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.snapshot_every_s = snapshot_every_s
        self.frames = 0
        self.snapshots: list[Path] = []
        self._writer = None

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height)
            )
            if not self._writer.isOpened():
                raise UserFacingError(f"{self.path}: OpenCV cannot write an mp4v video here")
        self._writer.write(image)
        if self.snapshot_every_s is not None:
            every = max(1, round(self.snapshot_every_s * self.fps))
            if self.frames % every == every // 2:
                snapshot = self.path.with_name(f"{self.path.stem}-{len(self.snapshots):04d}.png")
                cv2.imwrite(str(snapshot), image)
                self.snapshots.append(snapshot)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


@dataclass(frozen=True)
class ViewerConfig:
    """What ``streamdet view`` shows and where it writes.

    Attributes:
        endpoints: endpoints to connect to (driver: events/spikes/truth; detector: detections).
        out_dir: folder for ``<stream>.mp4`` and ``<stream>-NNNN.png`` (headless).
        headless: never open a window.
        fps: video frame rate; also the frame rate of a stream without detections (stream time).
        snapshot_every_s: a PNG every this many seconds of video (None: none).
        idle_timeout_s: stop after this long without any message (None: never).
        show_truth: draw ground truth boxes.
        accumulate_us: events (or spike frames) shown per frame, microseconds.
        scale: image enlargement.
        min_score: detections below this score are not drawn.
        curve: CURVE client keys (``streamdet.bus.CurveClientKeys``), or None.
        latest_only: when behind, draw only the newest message of each topic (``bus.Subscriber``).
    """

    endpoints: tuple[str, ...]
    out_dir: str = "out/view"
    headless: bool = False
    fps: float = 20.0
    snapshot_every_s: float | None = 5.0
    idle_timeout_s: float | None = None
    show_truth: bool = True
    accumulate_us: int = 50_000
    scale: int = 2
    min_score: float = 0.3
    curve: CurveClientKeys | None = None
    latest_only: bool = False


@dataclass
class ViewStats:
    """Frames drawn and messages seen per stream, the outputs written, and the receiver's counters."""

    frames: dict[str, int] = field(default_factory=dict)
    detections: int = 0
    videos: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    received: dict = field(default_factory=dict)
    interrupted: bool = False

    def summary(self) -> str:
        """One line: frames per stream, detection messages, outputs, how stale the messages arrived (the
        viewer fell behind where the last one was old), and whether Ctrl-C stopped it."""
        frames = ", ".join(f"{name}: {count}" for name, count in self.frames.items()) or "none"
        outputs = ", ".join(self.videos) or "no video"
        received = self.received.get("received", 0)
        line = f"view: frames {frames}; {received} messages, {self.detections} of them detections; {outputs}"
        last_age, max_age = self.received.get("last_age_ms"), self.received.get("max_age_ms")
        if last_age is not None and max_age is not None:
            line += f"; the last message arrived {last_age:.0f} ms after it was sent (at most {max_age:.0f})"
        return line + ("; stopped by Ctrl-C" if self.interrupted else "")


@dataclass
class _StreamView:
    sensor_size: tuple[int, int]
    kind: str
    recent: deque = field(default_factory=deque)
    truth: deque = field(default_factory=deque)
    class_names: tuple[str, ...] = ()
    has_detections: bool = False
    next_frame_us: int | None = None
    frames: int = 0


class FrameComposer:
    """Keeps the recent data, truth and detections of every stream and composes annotated frames.

    :meth:`add` takes any ``wire.Message`` and returns the ``(stream, image)`` frames it completes.
    """

    def __init__(self, config: ViewerConfig, class_names: tuple[str, ...] = ()) -> None:
        self.config = config
        self.default_class_names = tuple(class_names)
        self.streams: dict[str, _StreamView] = {}
        self.status_lines: list[str] = []
        """Extra HUD lines drawn on every frame (e.g. the demo's running score)."""

    def _stream(self, message) -> _StreamView:
        if message.stream not in self.streams:
            self.streams[message.stream] = _StreamView(tuple(message.sensor_size), "events")
        return self.streams[message.stream]

    def add(self, message) -> list[tuple[str, np.ndarray]]:
        view = self._stream(message)
        if message.kind in ("events", "spikes"):
            view.kind = message.kind
            view.recent.append(message)
            horizon = message.t1_us - self.config.accumulate_us - RECENT_DATA_US
            while view.recent and view.recent[0].t1_us < horizon:
                view.recent.popleft()
            if view.has_detections:
                return []
            return self._paced_frames(message.stream, view, message.t1_us)
        if message.kind == "truth":
            view.truth.append(message)
            while len(view.truth) > 64:
                view.truth.popleft()
            return []
        if message.kind == "detections":
            view.has_detections = True
            view.class_names = tuple(message.extra.get("class_names", ()))
            latency = message.extra.get("latency_ms")
            hud = [
                f"{message.stream}  t = {message.t1_us / 1e6:8.3f} s   boxes {message.count}"
                + (f"   latency {latency:.0f} ms" if latency is not None else "")
            ]
            return [(message.stream, self.compose(view, message.t1_us, message.payload, hud))]
        return []

    def _paced_frames(self, stream: str, view: _StreamView, t_us: int) -> list[tuple[str, np.ndarray]]:
        frame_us = round(1e6 / self.config.fps)
        if view.next_frame_us is None:
            view.next_frame_us = (t_us // frame_us + 1) * frame_us
        frames = []
        while view.next_frame_us <= t_us:
            hud = [f"{stream}  t = {view.next_frame_us / 1e6:8.3f} s   (no detections)"]
            frames.append((stream, self.compose(view, view.next_frame_us, None, hud)))
            view.next_frame_us += frame_us
        return frames

    def truth_at(self, view: _StreamView, t_us: int) -> np.ndarray | None:
        """The latest truth rows time-stamped at or before ``t_us``."""
        latest = None
        for message in view.truth:
            if message.t0_us <= t_us:
                latest = message
        return None if latest is None else latest.payload

    def compose(
        self, view: _StreamView, t_us: int, detections: np.ndarray | None, hud: list[str]
    ) -> np.ndarray:
        """Frame of ``view`` ending at stream time ``t_us``."""
        start = t_us - self.config.accumulate_us
        if view.kind == "spikes":
            frames = [m.payload[_frames_between(m, start, t_us)] for m in view.recent]
            stacked = np.concatenate(frames) if frames else np.zeros((0, *view.sensor_size[::-1]), bool)
            width, height = view.sensor_size
            base = (
                spike_frame(stacked)
                if len(stacked)
                else np.full((height, width, 3), BACKGROUND_BGR, np.uint8)
            )
        else:
            from streamdet.events import empty_events

            parts = [m.payload[(m.payload["t"] >= start) & (m.payload["t"] < t_us)] for m in view.recent]
            events = np.concatenate(parts) if parts else empty_events()
            base = event_frame(events, view.sensor_size)
        names = view.class_names or self.default_class_names
        truth = self.truth_at(view, t_us) if self.config.show_truth else None
        if detections is not None:
            detections = detections[detections[:, 4] >= self.config.min_score]
        view.frames += 1
        return annotated_frame(base, detections, names, truth, hud + self.status_lines, self.config.scale)


def _frames_between(message, start_us: int, end_us: int) -> np.ndarray:
    frame_us = float(message.extra["frame_us"])
    times = message.t0_us + np.arange(len(message.payload)) * frame_us
    return (times >= start_us) & (times < end_us)


def view(config: ViewerConfig, *, progress: bool = False) -> ViewStats:
    """Receive from ``config.endpoints`` and draw until every data stream has ended, the idle timeout,
    Ctrl-C, or ``q`` in the window (the last two set ``interrupted``; the video is closed either way)."""
    from tqdm import tqdm

    from streamdet import CLASS_NAMES, bus

    window = not config.headless and has_display()
    if not config.headless and not window:
        print(
            "view: no display (DISPLAY / WAYLAND_DISPLAY unset, or no server answers there); writing video "
            "instead",
            file=sys.stderr,
        )
    composer = FrameComposer(config, CLASS_NAMES)
    outputs: dict[str, VideoOutput] = {}
    stats = ViewStats()
    data_topics: set[str] = set()
    ended: set[str] = set()
    bar = tqdm(desc="view", unit=" frames", file=sys.stderr, disable=None if progress else True)
    subscriber = bus.Subscriber(
        list(config.endpoints), topics=("",), curve=config.curve, latest_only=config.latest_only
    )
    last_message = time.monotonic()
    try:
        while True:
            message = subscriber.receive(timeout_ms=200)
            if message is None:
                if (
                    config.idle_timeout_s is not None
                    and time.monotonic() - last_message > config.idle_timeout_s
                ):
                    break
                continue
            last_message = time.monotonic()
            if message.kind == "eos":
                ended.add(message.topic)
                if data_topics and data_topics <= ended:
                    break
                continue
            if message.kind in ("events", "spikes", "detections"):
                data_topics.add(message.topic)
            stats.detections += message.kind == "detections"
            for stream, image in composer.add(message):
                stats.frames[stream] = stats.frames.get(stream, 0) + 1
                bar.update(1)
                if window:
                    import cv2

                    cv2.imshow(f"streamdet {stream}", image)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        raise KeyboardInterrupt
                else:
                    if stream not in outputs:
                        outputs[stream] = VideoOutput(
                            Path(config.out_dir) / f"{stream}.mp4", config.fps, config.snapshot_every_s
                        )
                    outputs[stream].write(image)
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        bar.close()
        subscriber.close()
        for output in outputs.values():
            output.close()
            stats.videos.append(str(output.path))
            stats.snapshots.extend(str(p) for p in output.snapshots)
        stats.received = subscriber.stats.as_dict()
        if window:
            import cv2

            cv2.destroyAllWindows()
    return stats
