"""Dataset builder (synthetic scenes -> events, spike stream, COCO annotations) and split loading.

On disk (``docs/architecture.md``, "Datasets on disk")::

    DIR/<split>/annotations.json        COCO; images are time stamps of sequences
    DIR/<split>/<sequence>/events.h5    DVS events (EVENT_DTYPE), sensor size in attributes
    DIR/<split>/<sequence>/spikes.dat   spike-camera stream (PKU: bit-packed, LSB first, rows bottom-up)
    DIR/<split>/<sequence>/spikes.json  {"width", "height", "rate_hz", "t0_us"}
    DIR/<split>/<sequence>/preview.mp4  optional

Each sequence is a scene (:mod:`streamdet.scenes`) rendered every ``1e6 / render_fps`` microseconds
and fed, in chunks, to the DVS and spike-camera emulators (:mod:`streamdet.encoders`), whose state is
carried from chunk to chunk so the streams are continuous. Label time stamps are
``t_k = window_us + k * label_every_us`` for ``t_k <= duration``; image ``t_k`` stands for the input
window ``(t_k - window_us, t_k]`` and its boxes are the ground truth at exactly ``t_k``.

Seeds: sequence ``i`` of split ``s`` uses ``numpy.random.SeedSequence(entropy=seed,
spawn_key=(SPLIT_CODES[s], i)).generate_state(2, numpy.uint64)``: word 0 seeds the scene, word 1
the sensor emulators. Different ``(split, i)`` give independent streams, so splits built from one
``--seed`` never share a sequence or a seed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamdet import CLASS_NAMES
from streamdet.binning import events_to_input, spike_frames_to_input
from streamdet.encoders import DVSParams, SpikeCameraParams, emulate_dvs, emulate_spike_camera
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.events import DEFAULT_WINDOW_US, EVENT_DTYPE
from streamdet.scenes import PRESETS, Scene, SceneConfig, make_scene

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Split names."""

SPLIT_CODES: dict[str, int] = {name: code for code, name in enumerate(SPLITS)}
"""Split name -> the first word of its sequences' seed spawn keys."""

ANNOTATIONS_VERSION = "streamdet-dataset/1"
"""``info.format`` of the annotations written by this module."""


def check_split_sensor_size(sensor_size: tuple[int, int]) -> None:
    """UserFacingError unless a split's sensor is at least 32x32 with ``W * H`` a multiple of 8 (spike
    frames are stored bit-packed, 8 pixels a byte)."""
    width, height = sensor_size
    if width < 32 or height < 32 or (width * height) % 8:
        raise UserFacingError(f"sensor size {width}x{height}: need at least 32x32 and W*H a multiple of 8")


@dataclass(frozen=True)
class BuildConfig:
    """How to build one split.

    Attributes:
        presets: scene presets; sequence ``i`` uses ``presets[i % len(presets)]``.
        sequences: number of sequences.
        seconds: length of each sequence, seconds.
        split: ``train``, ``val`` or ``test``.
        seed: the split's root seed (see module docstring).
        sensor_size: ``(width, height)`` of both emulated sensors, pixels.
        window_us: detector input window, microseconds.
        label_every_ms: spacing of the label time stamps, milliseconds.
        spike_rate_hz: spike-camera frame rate written to ``spikes.dat``.
        render_fps: scene frames per second fed to the emulators (they interpolate in between).
        chunk_frames: rendered frames per emulator call.
        preview: also write ``preview.mp4`` (frame | event frame, ground-truth boxes).
        dvs: DVS emulator parameters; the seed is replaced per sequence.
        randomise_sensor: draw each sequence's DVS thresholds, bandwidth, refractory period and noise
            rates around ``dvs`` (:func:`randomised_dvs_params`) rather than using ``dvs`` as it is.
    """

    presets: tuple[str, ...] = ("maritime",)
    sequences: int = 1
    seconds: float = 10.0
    split: str = "train"
    seed: int = 0
    sensor_size: tuple[int, int] = (346, 260)
    window_us: int = DEFAULT_WINDOW_US
    label_every_ms: float = 100.0
    spike_rate_hz: float = 1000.0
    render_fps: float = 250.0
    chunk_frames: int = 125
    preview: bool = False
    dvs: DVSParams = field(default_factory=DVSParams)
    randomise_sensor: bool = True

    def __post_init__(self) -> None:
        unknown = [name for name in self.presets if name not in PRESETS]
        if not self.presets or unknown:
            raise UserFacingError(
                f"unknown preset(s) {unknown or '(none)'}; choose from {', '.join(PRESETS)}"
            )
        if self.split not in SPLITS:
            raise UserFacingError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}")
        if self.sequences < 1:
            raise UserFacingError(f"--sequences must be at least 1, got {self.sequences}")
        if self.duration_us < self.window_us:
            raise UserFacingError(
                f"--seconds {self.seconds} is shorter than one input window ({self.window_us / 1e6} s)"
            )
        check_split_sensor_size(self.sensor_size)
        if self.label_every_ms <= 0 or self.spike_rate_hz <= 0 or self.render_fps <= 0:
            raise UserFacingError("--label-every-ms, --spike-rate-hz and --render-fps must be positive")

    @property
    def duration_us(self) -> int:
        """Sequence length in microseconds."""
        return int(round(self.seconds * 1e6))

    def label_times_us(self) -> np.ndarray:
        """Label time stamps ``window_us + k * label_every_us <= duration_us``, int64 microseconds."""
        step = int(round(self.label_every_ms * 1000))
        return np.arange(self.window_us, self.duration_us + 1, step, dtype=np.int64)

    def render_times_us(self) -> np.ndarray:
        """Scene frame times ``round(k * 1e6 / render_fps)`` from 0 to ``duration_us``, int64 microseconds."""
        count = int(np.floor(self.duration_us * self.render_fps / 1e6)) + 1
        times = np.round(np.arange(count) * (1e6 / self.render_fps)).astype(np.int64)
        return np.unique(np.append(times[times < self.duration_us], self.duration_us))


@dataclass(frozen=True)
class SequenceJob:
    """One sequence to build: its index in the split, name, preset and the two seeds."""

    index: int
    name: str
    preset: str
    scene_seed: int
    sensor_seed: int


def sequence_seeds(seed: int, split: str, index: int) -> tuple[int, int]:
    """``(scene_seed, sensor_seed)`` of sequence ``index`` of ``split``: ``SeedSequence(seed, spawn_key=(split
    code, index)).generate_state(2, uint64)``."""
    words = np.random.SeedSequence(entropy=seed, spawn_key=(SPLIT_CODES[split], index)).generate_state(
        2, np.uint64
    )
    return int(words[0]), int(words[1])


def sequence_jobs(config: BuildConfig) -> list[SequenceJob]:
    """The sequences of a split: names ``<preset>-<index:04d>``, presets alternating, seeds per index."""
    jobs = []
    for index in range(config.sequences):
        preset = config.presets[index % len(config.presets)]
        scene_seed, sensor_seed = sequence_seeds(config.seed, config.split, index)
        jobs.append(SequenceJob(index, f"{preset}-{index:04d}", preset, scene_seed, sensor_seed))
    return jobs


def randomised_dvs_params(base: DVSParams, seed: int) -> DVSParams:
    """DVS parameters of one sequence, drawn from ``seed`` around ``base`` (domain randomisation).

    ON threshold ``theta_on = base * U(0.75, 1.75)`` (0.15-0.35 log units for v2e's 0.2), OFF threshold
    ``theta_on * U(0.8, 1.25)``, mismatch sigma ``U(0.01, 0.05)``, photoreceptor cut-off
    ``base * logU(0.3, 3)`` Hz, refractory period ``U(100, 1000)`` us, leak ``U(0.01, 0.5)`` Hz and
    shot noise ``logU(0.02, 2)`` Hz per pixel.
    """
    rng = np.random.default_rng(seed)
    positive = base.pos_threshold * float(rng.uniform(0.75, 1.75))
    return DVSParams(
        **{
            **asdict(base),
            "pos_threshold": positive,
            "neg_threshold": positive * float(rng.uniform(0.8, 1.25)),
            "threshold_sigma": float(rng.uniform(0.01, 0.05)),
            "cutoff_hz": base.cutoff_hz * float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))),
            "refractory_us": int(rng.integers(100, 1001)),
            "leak_rate_hz": float(rng.uniform(0.01, 0.5)),
            "shot_noise_rate_hz": float(np.exp(rng.uniform(np.log(0.02), np.log(2.0)))),
            "seed": seed,
        }
    )


def sequence_dvs_params(job: SequenceJob, config: BuildConfig) -> DVSParams:
    """The DVS parameters a sequence is built with: randomised or ``config.dvs``, seeded by the job."""
    if config.randomise_sensor:
        return randomised_dvs_params(config.dvs, job.sensor_seed)
    return DVSParams(**{**asdict(config.dvs), "seed": job.sensor_seed})


def coco_categories() -> list[dict]:
    """COCO categories: id ``i + 1`` for ``CLASS_NAMES[i]``, the same for every preset."""
    domain = {"boat": "maritime", "buoy": "maritime", "car": "traffic", "pedestrian": "traffic"}
    return [
        {"id": i + 1, "name": name, "supercategory": domain.get(name, "object")}
        for i, name in enumerate(CLASS_NAMES)
    ]


def _label_records(scene: Scene, job: SequenceJob, config: BuildConfig) -> tuple[list[dict], list[dict]]:
    """Image and annotation records (ids local to the sequence, from 0) for every label time."""
    images, annotations = [], []
    width, height = config.sensor_size
    for t_us in config.label_times_us().tolist():
        image_id = len(images)
        images.append(
            {
                "id": image_id,
                "file_name": job.name,
                "sequence": job.name,
                "t_us": int(t_us),
                "width": width,
                "height": height,
                "preset": job.preset,
            }
        )
        for truth in scene.ground_truth(int(t_us)):
            x1, y1, x2, y2 = truth.box
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": image_id,
                    "category_id": CLASS_NAMES.index(truth.class_name) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(truth.ignore),
                    "ignore": int(truth.ignore),
                    "track_id": truth.track_id,
                    "visible_fraction": round(truth.visible_fraction, 4),
                    "contrast": round(truth.contrast, 4),
                    "motion_px": round(truth.motion_px, 3) if math.isfinite(truth.motion_px) else None,
                }
            )
    return images, annotations


def _preview_writer(path: Path, config: BuildConfig):
    import cv2

    width, height = config.sensor_size
    return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (2 * width, height))


def _preview_frame(
    scene: Scene, frame: np.ndarray, events: np.ndarray, t_us: int, config: BuildConfig
) -> np.ndarray:
    """BGR uint8 ``[H, 2W, 3]``: luminance | events of ``(t - 40 ms, t]`` (ON white, OFF black), boxes."""
    import cv2

    width, height = config.sensor_size
    recent = events[events["t"] > t_us - 40_000]
    counts = events_to_input(recent, config.sensor_size, 2.0)
    event_image = (128 + 127 * (counts[1] - counts[0])).astype(np.uint8)
    canvas = np.concatenate([(frame * 255).astype(np.uint8), event_image], axis=1)
    canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    for truth in scene.ground_truth(t_us):
        x1, y1, x2, y2 = truth.box
        colour = (0, 0, 255) if truth.ignore else (0, 220, 0)
        for offset in (0, width):
            cv2.rectangle(canvas, (x1 + offset, y1), (x2 - 1 + offset, y2 - 1), colour, 1)
    return canvas


def build_sequence(job: SequenceJob, config: BuildConfig, split_dir: Path) -> dict:
    """Render one sequence and write its files; returns its records and counts.

    Returns:
        ``{"job", "images", "annotations", "events", "spike_frames"}``; image and annotation ids are
        local (from 0); :func:`build_split` renumbers them.
    """
    from streamdet.formats import EventFileWriter, SpikeDatLayout, encode_spike_frames, write_spike_sidecar
    from streamdet.scenes import render_frames

    scene = make_scene(SceneConfig(job.preset, config.sensor_size, job.scene_seed, config.duration_us))
    out_dir = split_dir / job.name
    out_dir.mkdir(parents=True, exist_ok=True)
    dvs_params = sequence_dvs_params(job, config)
    spike_params = SpikeCameraParams(rate_hz=config.spike_rate_hz, seed=job.sensor_seed)
    render_times = config.render_times_us()
    preview_every_us = 40_000
    preview = _preview_writer(out_dir / "preview.mp4", config) if config.preview else None
    next_preview_us = preview_every_us
    recent_events = np.zeros(0, dtype=EVENT_DTYPE)
    dvs_state = spike_state = None
    spike_t0_us = None
    spike_count = 0
    try:
        with (
            EventFileWriter(out_dir / "events.h5", config.sensor_size) as events_file,
            (out_dir / "spikes.dat").open("wb") as spikes_file,
        ):
            for start in range(0, len(render_times), config.chunk_frames):
                times = render_times[start : start + config.chunk_frames]
                frames = render_frames(scene, times)
                events, dvs_state = emulate_dvs(frames, times, dvs_params, dvs_state)
                spikes, spike_times, spike_state = emulate_spike_camera(
                    frames, times, spike_params, spike_state
                )
                events_file.append(events)
                if len(spikes):
                    spike_t0_us = int(spike_times[0]) if spike_t0_us is None else spike_t0_us
                    spikes_file.write(encode_spike_frames(spikes))
                    spike_count += len(spikes)
                if preview is not None:
                    recent_events = np.concatenate(
                        [recent_events[recent_events["t"] > times[0] - 40_000], events]
                    )
                    while next_preview_us <= times[-1]:
                        index = int(np.searchsorted(times, next_preview_us))
                        preview.write(
                            _preview_frame(
                                scene,
                                frames[index],
                                recent_events[recent_events["t"] <= times[index]],
                                int(times[index]),
                                config,
                            )
                        )
                        next_preview_us += preview_every_us
            event_count = events_file.count
    finally:
        if preview is not None:
            preview.release()
    layout = SpikeDatLayout(
        sensor_size=config.sensor_size,
        frame_us=1e6 / config.spike_rate_hz,
        t0_us=int(spike_t0_us if spike_t0_us is not None else 0),
    )
    write_spike_sidecar(out_dir / "spikes.dat", layout)
    images, annotations = _label_records(scene, job, config)
    return {
        "job": job,
        "images": images,
        "annotations": annotations,
        "events": event_count,
        "spike_frames": spike_count,
    }


def _ignore_interrupts_in_worker() -> None:
    """Workers leave Ctrl-C to the parent, which terminates them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)


def _build_one(arguments: tuple[SequenceJob, BuildConfig, Path]) -> dict:
    return build_sequence(*arguments)


def renderer_versions() -> dict[str, str]:
    """Versions of the code that decides a split's pixels: the same seeds give other events under another
    OpenCV (its warps and blur round differently) or numpy, so a split records them."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0], "numpy": np.__version__, "opencv": cv2.__version__}
    try:
        versions["streamdet"] = version("streamdet")
    except PackageNotFoundError:  # run from a checkout that is not installed
        versions["streamdet"] = "not installed"
    return versions


def build_split(
    config: BuildConfig,
    out_dir: str | Path,
    workers: int = 2,
    overwrite: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> Path:
    """Build ``out_dir/<split>``: every sequence's files, then ``annotations.json``.

    Args:
        config: what to build.
        out_dir: dataset root; the split goes in ``out_dir/<config.split>``.
        workers: processes building sequences in parallel (1: in this process).
        overwrite: delete an existing split directory first (otherwise refuse to touch it).
        progress: called with each finished sequence's result.

    Returns:
        Path of the written ``annotations.json``.
    """
    split_dir = Path(out_dir) / config.split
    if split_dir.exists() and any(split_dir.iterdir()):
        if not overwrite:
            raise UserFacingError(f"{split_dir} exists and is not empty (pass --overwrite to replace it)")
        shutil.rmtree(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    jobs = sequence_jobs(config)
    results: list[dict] = []
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            results.append(build_sequence(job, config, split_dir))
            if progress is not None:
                progress(results[-1])
    else:
        import multiprocessing

        context = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
        pool = context.Pool(min(workers, len(jobs)), initializer=_ignore_interrupts_in_worker)
        try:
            for result in pool.imap_unordered(_build_one, [(job, config, split_dir) for job in jobs]):
                results.append(result)
                if progress is not None:
                    progress(result)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    results.sort(key=lambda result: result["job"].index)
    return write_annotations(config, split_dir, results)


def merge_sequence_records(results: list[dict]) -> tuple[list[dict], list[dict]]:
    """COCO ``images`` and ``annotations`` of per-sequence records, renumbered split-wide from 1 (each
    annotation's ``image_id`` follows its image)."""
    images, annotations = [], []
    for result in results:
        image_ids = {}
        for image in result["images"]:
            image_ids[image["id"]] = len(images) + 1
            images.append({**image, "id": len(images) + 1})
        for annotation in result["annotations"]:
            annotations.append(
                {**annotation, "id": len(annotations) + 1, "image_id": image_ids[annotation["image_id"]]}
            )
    return images, annotations


def write_annotations(config: BuildConfig, split_dir: Path, results: list[dict]) -> Path:
    """Merge per-sequence records into ``split_dir/annotations.json`` with split-wide ids (from 1)."""
    images, annotations = merge_sequence_records(results)
    sequences = []
    for result in results:
        job: SequenceJob = result["job"]
        sequences.append(
            {
                "name": job.name,
                "preset": job.preset,
                "index": job.index,
                "scene_seed": job.scene_seed,
                "sensor_seed": job.sensor_seed,
                "events": result["events"],
                "spike_frames": result["spike_frames"],
                "dvs": asdict(sequence_dvs_params(job, config)),
            }
        )
    info = {
        "format": ANNOTATIONS_VERSION,
        "description": "streamdet synthetic scenes: DVS events, spike-camera streams, boxes per time stamp",
        "presets": list(config.presets),
        "preset": ",".join(config.presets),
        "seed": config.seed,
        "split": config.split,
        "window_us": config.window_us,
        "sensor": list(config.sensor_size),
        "spike_rate_hz": config.spike_rate_hz,
        "label_every_ms": config.label_every_ms,
        "render_fps": config.render_fps,
        "seconds": config.seconds,
        "seed_rule": "SeedSequence(entropy=seed, spawn_key=(split_code, index)).generate_state(2, uint64)",
        "split_codes": SPLIT_CODES,
        "dvs": asdict(config.dvs),
        "randomise_sensor": config.randomise_sensor,
        "built_with": renderer_versions(),
        "sequences": sequences,
    }
    coco = {"info": info, "images": images, "annotations": annotations, "categories": coco_categories()}
    path = split_dir / "annotations.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(coco))
    partial.replace(path)
    return path


# --------------------------------------------------------------------------------------------------
# loading


class DatasetSplit:
    """A built split: COCO records plus the model input of any image.

    ``split = DatasetSplit("data/train")``; ``split.images`` (COCO image records),
    ``split.targets(image)`` (boxes, labels, ignore flags), ``split.events(image)`` (the events of
    ``(t_us - window_us, t_us]``), ``split.spike_frames(image)`` (the spike frames of that window) and
    ``split.input(image, modality, event_scale)`` (``[2, H, W]`` or ``[1, H, W]`` float32 in [0, 1], more
    channels for a model that reads earlier windows too).
    Event files are read once per sequence and kept in memory (``cache_events``).

    ``window_us`` overrides the window the split was built with (``built_window_us``): the sequences are
    continuous recordings and the boxes are the ground truth at ``t_us``, so a model with a longer or
    shorter window reads its own window ending at ``t_us``. Windows that would start before the
    recording (``t_us < window_us``) hold only the events since its start, as at the start of a live
    stream.
    """

    def __init__(
        self, split_dir: str | Path, cache_events: bool = True, window_us: int | None = None
    ) -> None:
        self.split_dir = Path(split_dir)
        path = self.split_dir / "annotations.json"
        if not path.is_file():
            raise FileFormatError(path, "no annotations.json: not a split built by `streamdet dataset build`")
        try:
            self.coco = json.loads(path.read_text())
            self.info = self.coco["info"]
            self.images: list[dict] = self.coco["images"]
            self.built_window_us = int(self.info["window_us"])
            self.sensor_size = (int(self.info["sensor"][0]), int(self.info["sensor"][1]))
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise FileFormatError(path, f"not a streamdet dataset annotation file: {error!r}") from None
        if window_us is not None and int(window_us) <= 0:
            raise UserFacingError(f"{self.split_dir}: window_us must be positive, got {window_us}")
        self.window_us = int(window_us) if window_us is not None else self.built_window_us
        self._by_image: dict[int, list[dict]] = {image["id"]: [] for image in self.images}
        for annotation in self.coco["annotations"]:
            self._by_image[annotation["image_id"]].append(annotation)
        self.cache_events = cache_events
        self._events: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.images)

    def targets(self, image: dict) -> dict[str, np.ndarray]:
        """``{"boxes": float32 [K, 4] x1 y1 x2 y2 pixels, "labels": int64 [K] (index into CLASS_NAMES),
        "ignore": bool [K], "track_ids": int64 [K]}`` of one image."""
        annotations = self._by_image[image["id"]]
        boxes = np.array(
            [
                [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                for a in annotations
            ],
            dtype=np.float32,
        ).reshape(-1, 4)
        return {
            "boxes": boxes,
            "labels": np.array([a["category_id"] - 1 for a in annotations], dtype=np.int64),
            "ignore": np.array([bool(a.get("ignore", 0)) for a in annotations], dtype=bool),
            "track_ids": np.array([a.get("track_id", -1) for a in annotations], dtype=np.int64),
        }

    def sequence_events(self, sequence: str) -> np.ndarray:
        """All events of a sequence (``EVENT_DTYPE``, sorted by ``t``)."""
        if sequence in self._events:
            return self._events[sequence]
        from streamdet.formats import read_events

        events = read_events(self.split_dir / sequence / "events.h5").events
        if self.cache_events:
            self._events[sequence] = events
        return events

    def events(self, image: dict) -> np.ndarray:
        """Events of the image's window ``(t_us - window_us, t_us]``."""
        events = self.sequence_events(image["sequence"])
        t_us = int(image["t_us"])
        lo, hi = np.searchsorted(events["t"], [t_us - self.window_us, t_us], side="right")
        return events[lo:hi]

    def sequence_spikes(self, sequence: str) -> tuple[np.ndarray, float, float]:
        """All spike frames of a sequence, bool ``[N, H, W]`` (row 0 on top), with the time of frame 0
        and the frame interval in microseconds (``spikes.json``)."""
        from streamdet.formats import decode_spike_frames, read_spike_sidecar

        path = self.split_dir / sequence / "spikes.dat"
        layout = read_spike_sidecar(path)
        if layout is None:
            raise FileFormatError(path, "missing spikes.json sidecar")
        return decode_spike_frames(path.read_bytes(), layout.sensor_size), layout.t0_us, layout.frame_us

    def spike_frames(self, image: dict) -> np.ndarray:
        """Spike frames whose time lies in ``(t_us - window_us, t_us]``, bool ``[N, H, W]`` (row 0 on top).

        Frame ``n`` of ``spikes.dat`` is at ``t0_us + n * 1e6 / rate_hz`` (``spikes.json``).
        """
        from streamdet.formats import decode_spike_frames, read_spike_sidecar

        path = self.split_dir / image["sequence"] / "spikes.dat"
        layout = read_spike_sidecar(path)
        if layout is None:
            raise FileFormatError(path, "missing spikes.json sidecar")
        t_us = int(image["t_us"])
        first = int(np.floor((t_us - self.window_us - layout.t0_us) / layout.frame_us)) + 1
        last = int(np.floor((t_us - layout.t0_us) / layout.frame_us + 1e-9))
        first = max(first, 0)
        width, height = layout.sensor_size
        frame_bytes = width * height // 8
        with path.open("rb") as file:
            file.seek(first * frame_bytes)
            data = file.read(max(last - first + 1, 0) * frame_bytes)
        return decode_spike_frames(data, layout.sensor_size)

    def input(
        self, image: dict, modality: str, event_scale: float = 1.0, history_windows: int = 0
    ) -> np.ndarray:
        """Model input of one image: ``events`` -> ``[2, H, W]``, ``intensity`` -> ``[1, H, W]``, float32;
        with ``history_windows = N`` the ``N`` windows before it follow as more channels, newest first
        (``streamdet.samples``)."""
        if modality not in ("events", "intensity"):
            raise UserFacingError(f"unknown modality {modality!r} (events or intensity)")
        windows = []
        for k in range(1 + int(history_windows)):
            earlier = {**image, "t_us": int(image["t_us"]) - k * self.window_us}
            if modality == "events":
                windows.append(events_to_input(self.events(earlier), self.sensor_size, event_scale))
            elif earlier["t_us"] <= 0:
                windows.append(np.zeros((1, self.sensor_size[1], self.sensor_size[0]), dtype=np.float32))
            else:
                windows.append(spike_frames_to_input(self.spike_frames(earlier)))
        return np.concatenate(windows)
