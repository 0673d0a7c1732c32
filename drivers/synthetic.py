"""Publish a never-ending synthetic scene, as an emulated DVS or spike camera, with its ground truth.

The scene (:mod:`streamdet.scenes`) is rendered every ``1e6 / render_fps`` microseconds from time 0 and
fed to the sensor emulator (:mod:`streamdet.encoders`), whose state runs across the whole stream. The
output is cut into packets ``[t0_us, t1_us)`` of ``packet_us`` microseconds: a DVS packet holds the
events with ``t0_us <= t < t1_us`` (``events/<stream>``), a spike packet the spike frames whose time
stamps fall in it (``spikes/<stream>``). Packet ``k`` is published once the wall clock has passed its end,
``(t1_us - 0) / (1e6 * speed)`` seconds after the start (:func:`streamdet.drivers.publishing.packet_due_s`).

Ground truth goes out on ``truth/<stream>`` every ``truth_every_us``: the visible boxes at label time
``t_label`` (a multiple of ``truth_every_us``), as float32 rows ``x1, y1, x2, y2, score, class`` with
``class`` an index into ``streamdet.CLASS_NAMES`` and ``score`` 1.0 for a labelled object, 0.0 for one the
scene marks ignore (too small, mostly hidden, faint or still): scorers treat those as crowd regions, as
the dataset builder's COCO ``iscrowd``, so a detector that finds them is neither rewarded nor punished.

A scene has a finite cast of objects, so the stream is a sequence of episodes of ``episode_s`` seconds:
episode ``e`` is the scene of seed ``seed + e`` and covers ``[e E, (e + 1) E)``; the sensor keeps its
state across the cut, as a camera would when panning to a new view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from streamdet import CLASS_NAMES
from streamdet.encoders import DVSParams, SpikeCameraParams, emulate_dvs, emulate_spike_camera
from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE
from streamdet.scenes import PRESETS, Scene, SceneConfig, make_scene

from .publishing import Outgoing, PublishTarget, publish_paced

SENSORS: tuple[str, ...] = ("dvs", "spike")
"""Emulated sensors of the synthetic driver."""


if TYPE_CHECKING:
    from streamdet.bus import CurveServerKeys


@dataclass(frozen=True)
class SyntheticDriveConfig:
    """What the synthetic driver publishes.

    Attributes:
        preset: scene preset (one of ``streamdet.scenes.PRESETS``: maritime, traffic, street, harbour).
        endpoint: ZeroMQ endpoint to bind.
        sensor: ``dvs`` (events) or ``spike`` (spike-camera frames).
        stream: stream name; topics ``events/NAME`` or ``spikes/NAME`` and ``truth/NAME``.
        sensor_size: ``(width, height)`` in pixels.
        seed: seed of the first episode's scene and of the sensor.
        render_fps: scene frames per second fed to the emulator.
        packet_us: duration of one message, microseconds.
        truth_every_us: spacing of the ground-truth messages, microseconds.
        seconds: stream length in seconds of scene time; None = forever.
        speed: multiple of real time; None = as fast as possible.
        episode_s: length of one scene episode, seconds.
        spike_rate_hz: spike-camera frame rate (``sensor = spike``).
        dvs: DVS emulator parameters (their ``seed`` is replaced by ``seed``).
        wait_subscribers: wait for that many subscribers before the first message.
        wait_timeout_s: how long to wait for them, seconds.
        lossless: block instead of dropping when a subscriber lags.
        curve: CURVE server keys of the bound endpoint (`streamdet.bus.CurveServerKeys`), or None.
    """

    preset: str
    endpoint: str
    sensor: str = "dvs"
    stream: str = "synthetic"
    sensor_size: tuple[int, int] = (346, 260)
    seed: int = 0
    render_fps: float = 100.0
    packet_us: int = 10_000
    truth_every_us: int = 100_000
    seconds: float | None = None
    speed: float | None = 1.0
    episode_s: float = 60.0
    spike_rate_hz: float = 1000.0
    dvs: DVSParams = field(default_factory=DVSParams)
    wait_subscribers: int = 0
    wait_timeout_s: float = 10.0
    lossless: bool = False
    curve: CurveServerKeys | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise UserFacingError(f"unknown scene preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.sensor not in SENSORS:
            raise UserFacingError(f"unknown sensor {self.sensor!r}; choose one of {', '.join(SENSORS)}")
        for name in ("render_fps", "packet_us", "truth_every_us", "episode_s", "spike_rate_hz"):
            if not getattr(self, name) > 0:
                raise UserFacingError(f"{name} must be positive, got {getattr(self, name)}")
        if self.seconds is not None and not self.seconds > 0:
            raise UserFacingError(f"seconds must be positive, got {self.seconds}")


@dataclass(frozen=True)
class SyntheticPacket:
    """One packet of the synthetic stream: ``[t0_us, t1_us)`` with ``events`` (DVS) or spike ``frames``
    ``[n, H, W]`` at ``frame_times_us``, and the ground truth rows ``[K, 6]`` at ``truth_us`` when due."""

    t0_us: int
    t1_us: int
    events: np.ndarray | None = None
    frames: np.ndarray | None = None
    frame_times_us: np.ndarray | None = None
    truth: np.ndarray | None = None
    truth_us: int | None = None


def truth_rows(scene: Scene, t_us: int) -> np.ndarray:
    """Ground truth of ``scene`` at ``t_us`` as float32 rows ``x1, y1, x2, y2, score, class`` ``[K, 6]``
    (class: index into ``streamdet.CLASS_NAMES``; score 1.0, or 0.0 for an object marked ignore)."""
    rows = [
        (*truth.box, 0.0 if truth.ignore else 1.0, CLASS_NAMES.index(truth.class_name))
        for truth in scene.ground_truth(t_us)
    ]
    return np.array(rows, dtype=np.float32).reshape(-1, 6)


class _EpisodicScene:
    """The stream's scene: episode ``t // episode_us`` is the scene of seed ``seed + episode``."""

    def __init__(self, config: SyntheticDriveConfig) -> None:
        self.config = config
        self.episode_us = round(config.episode_s * 1e6)
        self._episode = -1
        self._scene: Scene | None = None

    def scene_at(self, t_us: int) -> tuple[Scene, int]:
        """The scene showing at stream time ``t_us`` and the scene's own time at that instant."""
        episode = t_us // self.episode_us
        if episode != self._episode or self._scene is None:
            self._scene = make_scene(
                SceneConfig(
                    preset=self.config.preset,
                    sensor_size=self.config.sensor_size,
                    seed=self.config.seed + episode,
                    duration_us=self.episode_us,
                )
            )
            self._episode = episode
        return self._scene, t_us - episode * self.episode_us

    def render(self, t_us: int) -> np.ndarray:
        scene, scene_us = self.scene_at(t_us)
        return scene.render(scene_us)

    def truth(self, t_us: int) -> np.ndarray:
        scene, scene_us = self.scene_at(t_us)
        return truth_rows(scene, scene_us)


def iter_synthetic_packets(config: SyntheticDriveConfig) -> Iterator[SyntheticPacket]:
    """The synthetic stream as packets (no sockets, no pacing), forever or for ``config.seconds``."""
    scene = _EpisodicScene(config)
    frame_us = max(1, round(1e6 / config.render_fps))
    dvs_params = replace(config.dvs, seed=config.seed)
    spike_params = SpikeCameraParams(rate_hz=config.spike_rate_hz, seed=config.seed)
    end_us = None if config.seconds is None else round(config.seconds * 1e6)
    dvs_state = None
    spike_state = None
    pending_events = np.zeros(0, dtype=EVENT_DTYPE)
    width, height = config.sensor_size
    pending_frames = np.zeros((0, height, width), dtype=bool)
    pending_times = np.zeros(0, dtype=np.int64)
    next_frame_us = 0
    t0_us = 0
    while end_us is None or t0_us < end_us:
        t1_us = t0_us + config.packet_us if end_us is None else min(t0_us + config.packet_us, end_us)
        render_times = []
        while next_frame_us < t1_us + frame_us:
            render_times.append(next_frame_us)
            next_frame_us += frame_us
        if render_times:
            times = np.array(render_times, dtype=np.int64)
            frames = np.stack([scene.render(int(t)) for t in times])
            if config.sensor == "dvs":
                events, dvs_state = emulate_dvs(frames, times, dvs_params, dvs_state)
                pending_events = np.concatenate([pending_events, events])
            else:
                spikes, spike_times, spike_state = emulate_spike_camera(
                    frames, times, spike_params, spike_state
                )
                pending_frames = np.concatenate([pending_frames, spikes])
                pending_times = np.concatenate([pending_times, spike_times])
        truth = truth_us = None
        if t1_us // config.truth_every_us > t0_us // config.truth_every_us:
            truth_us = t1_us // config.truth_every_us * config.truth_every_us
            truth = scene.truth(truth_us)
        if config.sensor == "dvs":
            split = int(np.searchsorted(pending_events["t"], t1_us, side="left"))
            packet = SyntheticPacket(
                t0_us, t1_us, events=pending_events[:split], truth=truth, truth_us=truth_us
            )
            pending_events = pending_events[split:]
        else:
            split = int(np.searchsorted(pending_times, t1_us, side="left"))
            packet = SyntheticPacket(
                t0_us,
                t1_us,
                frames=pending_frames[:split],
                frame_times_us=pending_times[:split],
                truth=truth,
                truth_us=truth_us,
            )
            pending_frames = pending_frames[split:]
            pending_times = pending_times[split:]
        yield packet
        t0_us = t1_us


@dataclass(frozen=True)
class DriveStats:
    """What a driver sent: packets, events, spike frames, truth messages, wall time (s), and whether
    Ctrl-C stopped it (end-of-stream was still sent; the command reports, then exits 130)."""

    packets: int
    events: int
    frames: int
    truths: int
    wall_s: float
    interrupted: bool = False


def drive_synthetic(config: SyntheticDriveConfig, *, progress: bool = False) -> DriveStats:
    """Publish the synthetic stream on ``config.endpoint`` (binds it), paced to the wall clock.

    Runs forever unless ``config.seconds`` is set; Ctrl-C (KeyboardInterrupt) sends end-of-stream on the
    data and truth topics and returns what was sent, ``interrupted`` set.
    """
    from streamdet import wire

    kind = "events" if config.sensor == "dvs" else "spikes"
    frame_us = 1e6 / config.spike_rate_hz

    def outgoing() -> Iterator[Outgoing]:
        for packet in iter_synthetic_packets(config):
            messages, events, frames, truths = [], 0, 0, 0
            if packet.events is not None:
                messages.append(
                    wire.events_message(
                        config.stream,
                        packet.events,
                        config.sensor_size,
                        t0_us=packet.t0_us,
                        t1_us=packet.t1_us,
                    )
                )
                events = len(packet.events)
            elif packet.frames is not None and len(packet.frames):
                messages.append(
                    wire.spikes_message(config.stream, packet.frames, int(packet.frame_times_us[0]), frame_us)
                )
                frames = len(packet.frames)
            if packet.truth is not None:
                messages.append(
                    wire.truth_message(
                        config.stream,
                        packet.truth,
                        CLASS_NAMES,
                        config.sensor_size,
                        packet.truth_us,
                        packet.truth_us,
                    )
                )
                truths = 1
            yield Outgoing(packet.t1_us, tuple(messages), packet.t1_us, 1, events, frames, truths)

    def end_of_stream(end_us: int) -> list:
        return [
            wire.eos_message(config.stream, kind, config.sensor_size, end_us),
            wire.eos_message(config.stream, "truth", config.sensor_size, end_us),
        ]

    target = PublishTarget.of(config, config.speed, f"drive {config.preset} {config.sensor}")
    tally = publish_paced(target, outgoing(), end_of_stream, start_us=0, progress=progress)
    return DriveStats(
        tally.packets, tally.events, tally.frames, tally.truths, tally.wall_s, tally.interrupted
    )
