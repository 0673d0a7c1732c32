"""Import labelled real footage into a split, through streamdet's own sensor emulators.

``streamdet dataset import`` (user guide: ``docs/importing.md``) reads videos or stills with boxes in
one of seven label layouts and writes a split in the layout of ``docs/architecture.md`` ("Datasets on
disk"), so ``streamdet train`` and ``streamdet eval`` read it like a built one:

- ``mot``: a MOT-challenge sequence folder (``gt/gt.txt``, ``img1/``, ``seqinfo.ini``) or a video file
  with a ``gt.txt``-style file; rows ``frame, id, x, y, w, h, conf, class, visibility`` (frames from 1).
- ``coco``: a COCO json; images with a ``video_id`` are frames of videos, the others stills.
- ``yolo``: a folder of images with one ``.txt`` per image (``class cx cy w h``, normalised), class
  names from ``data.yaml`` or a names file; stills, or one video per folder with ``--fps``.
- ``caviar``: a folder of video frames (or a video file) with a CAVIAR ground-truth XML (``<frame
  number>`` from 0, ``<object id>`` with ``<box xc yc w h>``; every object a person).
- ``cvat``: a "CVAT for video 1.1" export (``annotations.xml``: ``<track label>`` of ``<box frame
  outside xtl ytl xbr ybr>``, frames from 0) with its frames (``images/``) or a video file.
- ``voc``: Pascal VOC XML, one file per image (``<size>``, ``<object>`` with ``<name>``, ``<difficult>``
  and ``<bndbox>`` ``xmin ymin xmax ymax``, 1-based pixels): a VOC root (``JPEGImages/``,
  ``Annotations/``), an image set of one (``ImageSets/Main/test.txt``), or a folder of images with
  their XML beside them; stills, or one video per folder with ``--fps``.
- ``sot``: single-object tracking ground truth (OTB-100, UAV123, LaSOT, GOT-10k): a folder of frames (or
  a video file) and a text file with one ``x,y,w,h`` box per frame (1-based pixels; ``NaN`` or zeros:
  absent), every box of the one class given with ``--class`` and of one track.

Pipeline of one sequence:

1. Frames become luminance as in ``streamdet drive video``: ``Y = (0.299 R + 0.587 G + 0.114 B) / 255``
   (OpenCV ``COLOR_BGR2GRAY``), scaled with area interpolation and placed on the sensor
   (:class:`FitMapping`: ``x' = s_x x + o_x``, ``y' = s_y y + o_y``); boxes map the same way.
2. Video frame ``k`` is at ``t_k = round((k - k_0) 1e6 / fps)`` microseconds. Where
   ``t_{k+1} - t_k`` exceeds ``1e6 / render_fps``, ``n = ceil((t_{k+1} - t_k) render_fps / 1e6) - 1``
   frames are interpolated at ``t_k + round(j (t_{k+1} - t_k) / (n + 1))`` by optical-flow warping
   (:func:`flow_interpolate`), so a moving edge sweeps over the pixels between its two positions as
   it would before a real event camera, rather than fading out at one place and in at the other.
3. Stills are moved under the sensor (:class:`StillMotion`): three saccades along a triangle, as the
   N-MNIST and N-Caltech101 recordings did, or a slow pan; boxes move with the picture.
4. The frames feed :func:`streamdet.encoders.emulate_dvs` and
   :func:`streamdet.encoders.emulate_spike_camera` in chunks, with their state carried over, and the
   streams are written like the builder's (``events.h5``, ``spikes.dat`` + ``spikes.json``).
5. Label time stamps are frame times: the first labelled frame at or after each
   ``window_us + m * label_every_us``. A box is kept with ``iscrowd = ignore = 1`` (the dataset card's
   rules, thresholds of :class:`streamdet.scenes.SceneConfig`) when its visible box on the sensor has a
   side under 6 px, its visible fraction (the source's visibility times the part left after cropping
   by the sensor) is under 0.2, it moved less than 0.3 px in the 50 ms before the label (the largest
   displacement of a box corner, from the boxes of its track, or the still's motion), or the source or
   the class map marks it ignore. Boxes with no part on the sensor are not listed.

Errors a user can act on (:class:`streamdet.errors.FileFormatError`, naming the file and the reason): a
label file naming a frame beyond its video, a box outside the image, an image whose size is not the one
the labels state, a class the class map does not map, an unreadable image or video.
"""

from __future__ import annotations

import ast
import configparser
import functools
import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from streamdet import CLASS_NAMES
from streamdet.dataset import (
    ANNOTATIONS_VERSION,
    SPLIT_CODES,
    SPLITS,
    check_split_sensor_size,
    coco_categories,
    merge_sequence_records,
    randomised_dvs_params,
    renderer_versions,
    sequence_seeds,
)
from streamdet.encoders import DVSParams, SpikeCameraParams, emulate_dvs, emulate_spike_camera
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.events import DEFAULT_WINDOW_US
from streamdet.scenes import SceneConfig

LAYOUTS: tuple[str, ...] = ("mot", "coco", "yolo", "caviar", "cvat", "voc", "sot")
"""Label layouts ``streamdet dataset import`` reads."""

FITS: tuple[str, ...] = ("pad", "crop", "stretch")
"""How a frame is fitted to the sensor: scale to fit and pad, scale to fill and crop the centre, or
scale each axis to the sensor (``streamdet drive video --size``)."""

INTERPOLATIONS: tuple[str, ...] = ("flow", "none")
"""How frames are added between video frames further apart than ``1 / render_fps``."""

STILL_MOTIONS: tuple[str, ...] = ("saccades", "pan")
"""How a still image is moved under the sensor."""

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File suffixes read as images (case-insensitive)."""

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
"""File suffixes read as videos (case-insensitive)."""

IMPORTED_PRESET = "imported"
"""``preset`` of the image records of an imported split (built splits say ``maritime`` / ``traffic``)."""

MOT_CLASS_MAP: dict[str, str] = {
    "1": "pedestrian",
    "2": "pedestrian:ignore",
    "3": "car",
    "4": "-",
    "5": "-",
    "6": "-",
    "7": "pedestrian:ignore",
    "8": "pedestrian:ignore",
    "9": "-",
    "10": "-",
    "11": "-",
    "12": "pedestrian:ignore",
    "13": "pedestrian:ignore",
}
"""Default class map of MOT class ids (MOT16/17/20 ``gt.txt``): 1 pedestrian, 3 car; 2 person on a
vehicle, 7 static person, 8 distractor, 12 reflection and 13 crowd are ignore regions (MOT's own
evaluation neither rewards nor punishes them); 4 bicycle, 5 motorbike, 6 non-motorised vehicle and the
occluders 9-11 are dropped."""

NAME_CLASS_MAP: dict[str, str] = {
    "person": "pedestrian",
    "pedestrian": "pedestrian",
    "people": "pedestrian",
    "car": "car",
    "bus": "car",
    "truck": "car",
    "van": "car",
    "boat": "boat",
    "ship": "boat",
    "buoy": "buoy",
}
"""Default class map of class names (COCO json, YOLO names, CVAT and VOC labels): COCO's and VOC's
person, car, bus, truck and boat, and the names of our own four classes. Any other class must be mapped
or dropped (``--classes-map``, ``--drop-unmapped``)."""


# --------------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class ClassTarget:
    """What a source class becomes: one of ``CLASS_NAMES`` (``name``), kept as an ignore region
    (``ignore``), or dropped (``name`` None)."""

    name: str | None
    ignore: bool = False

    def __post_init__(self) -> None:
        if self.name is not None and self.name not in CLASS_NAMES:
            raise UserFacingError(
                f"class map target {self.name!r} is not one of {', '.join(CLASS_NAMES)} (or '-' to drop)"
            )


def parse_class_target(text: str) -> ClassTarget:
    """``"car"`` -> car, ``"pedestrian:ignore"`` -> an ignore region of class pedestrian, ``"-"`` -> drop."""
    text = text.strip().lower()
    if text == "-":
        return ClassTarget(None)
    name, _, flag = text.partition(":")
    if flag not in ("", "ignore"):
        raise UserFacingError(f"class map target {text!r}: the only flag is ':ignore'")
    return ClassTarget(name.strip(), ignore=flag == "ignore")


def parse_class_map(text: str) -> dict[str, ClassTarget]:
    """``"person=pedestrian,ship=boat,4=-,7=pedestrian:ignore"`` -> ``{source key: ClassTarget}``.

    Keys are source class names (COCO, YOLO) or MOT class ids, compared in lower case.
    """
    mapping: dict[str, ClassTarget] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, equals, target = item.partition("=")
        if not equals or not key.strip():
            raise UserFacingError(f"--classes-map entry {item.strip()!r}: expected SOURCE=TARGET")
        mapping[key.strip().lower()] = parse_class_target(target)
    return mapping


def default_class_map(layout: str) -> dict[str, ClassTarget]:
    """The built-in class map of a layout: :data:`MOT_CLASS_MAP` for ``mot``, :data:`NAME_CLASS_MAP`
    otherwise."""
    table = MOT_CLASS_MAP if layout == "mot" else NAME_CLASS_MAP
    return {key: parse_class_target(target) for key, target in table.items()}


@dataclass(frozen=True)
class StillMotion:
    """How a still image moves under the sensor (the picture moves, the sensor stays).

    ``saccades``: the picture's offset runs at constant speed around an equilateral triangle of side
    ``amplitude_px`` (vertices ``(0, 0)``, ``(A, 0)``, ``(A/2, A sqrt(3)/2)``, centred on its centroid),
    one side per ``saccade_ms``: three saccades per cycle, like N-MNIST's three microsaccades. The
    speed is ``A / saccade_ms``, 2 px per 50 ms at the defaults, above the 0.3 px the ignore rule asks.
    ``pan``: ``offset_x(t) = v (t - T / 2)``, ``v = pan_px_per_s``, over the still's ``seconds`` ``T``.

    Attributes:
        kind: ``saccades`` or ``pan``.
        amplitude_px: saccade triangle side, sensor pixels.
        saccade_ms: duration of one saccade, milliseconds.
        pan_px_per_s: pan speed, sensor pixels per second.
        seconds: length of the sequence made of one still, seconds.
    """

    kind: str = "saccades"
    amplitude_px: float = 4.0
    saccade_ms: float = 100.0
    pan_px_per_s: float = 40.0
    seconds: float = 0.3

    def __post_init__(self) -> None:
        if self.kind not in STILL_MOTIONS:
            raise UserFacingError(f"--still-motion {self.kind!r}: choose one of {', '.join(STILL_MOTIONS)}")
        if not (self.amplitude_px >= 0 and self.saccade_ms > 0 and self.seconds > 0):
            raise UserFacingError(
                f"still motion: need --saccade-px >= 0, --saccade-ms > 0 and --still-seconds > 0, got "
                f"{self.amplitude_px}, {self.saccade_ms}, {self.seconds}"
            )


@dataclass(frozen=True)
class ImportConfig:
    """How to turn labelled footage into one split.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        seed: the split's root seed; sequence ``i`` gets the builder's sensor seed of ``(split, i)``.
        sensor_size: ``(width, height)`` of both emulated sensors, pixels.
        fit: ``pad``, ``crop`` or ``stretch`` (:data:`FITS`).
        window_us: detector input window, microseconds; the first label is at or after it.
        label_every_ms: spacing of the label time stamps, milliseconds.
        spike_rate_hz: spike-camera frame rate written to ``spikes.dat``.
        render_fps: least frame rate fed to the emulators; slower videos are interpolated.
        interpolation: ``flow`` or ``none`` (:data:`INTERPOLATIONS`).
        still_motion: how stills move.
        class_map: source class key (lower case) -> target; keys absent are unmapped; None: the layout's
            :func:`default_class_map`.
        drop_unmapped: drop boxes of unmapped classes instead of stopping with an error.
        min_side_px: visible boxes with a shorter side are marked ignore.
        min_visible_fraction: boxes less visible than this are marked ignore.
        min_motion_px: boxes that moved less than this in ``motion_window_us`` are marked ignore
            (0 keeps still objects, e.g. for a split only intensity models read).
        motion_window_us: the window before a label over which motion is measured, microseconds.
        chunk_frames: frames per emulator call.
        dvs: DVS emulator parameters; the seed is replaced per sequence.
        randomise_sensor: draw each sequence's DVS parameters around ``dvs`` like the builder.
        keep_empty_stills: import stills left without a box after the class map too (negatives);
            by default they are skipped.
    """

    split: str = "train"
    seed: int = 0
    sensor_size: tuple[int, int] = (346, 260)
    fit: str = "pad"
    window_us: int = DEFAULT_WINDOW_US
    label_every_ms: float = 100.0
    spike_rate_hz: float = 1000.0
    render_fps: float = 250.0
    interpolation: str = "flow"
    still_motion: StillMotion = field(default_factory=StillMotion)
    class_map: dict[str, ClassTarget] | None = None
    drop_unmapped: bool = False
    min_side_px: float = SceneConfig.min_visible_side_px
    min_visible_fraction: float = SceneConfig.min_visible_fraction
    min_motion_px: float = SceneConfig.min_motion_px
    motion_window_us: int = SceneConfig.motion_window_us
    chunk_frames: int = 125
    dvs: DVSParams = field(default_factory=DVSParams)
    randomise_sensor: bool = True
    keep_empty_stills: bool = False

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise UserFacingError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}")
        if self.fit not in FITS:
            raise UserFacingError(f"--fit {self.fit!r}: choose one of {', '.join(FITS)}")
        if self.interpolation not in INTERPOLATIONS:
            raise UserFacingError(
                f"--interpolate {self.interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}"
            )
        check_split_sensor_size(self.sensor_size)
        if min(self.label_every_ms, self.spike_rate_hz, self.render_fps, self.window_us) <= 0:
            raise UserFacingError(
                "--label-every-ms, --spike-rate-hz, --render-fps and --window-us must be positive"
            )
        if self.min_motion_px < 0 or self.min_side_px < 0 or self.min_visible_fraction < 0:
            raise UserFacingError(
                f"ignore thresholds must be >= 0: --min-motion-px {self.min_motion_px}, min_side_px "
                f"{self.min_side_px}, min_visible_fraction {self.min_visible_fraction}"
            )
        if self.still_motion.seconds * 1e6 < self.window_us:
            raise UserFacingError(
                f"--still-seconds {self.still_motion.seconds} is shorter than one input window "
                f"({self.window_us / 1e6} s): a still would give no label"
            )
        if self.chunk_frames < 1:
            raise UserFacingError(f"chunk_frames must be at least 1, got {self.chunk_frames}")

    @property
    def label_every_us(self) -> int:
        """Label spacing, microseconds."""
        return int(round(self.label_every_ms * 1000))

    @property
    def render_interval_us(self) -> float:
        """Longest interval between two frames fed to the emulators, microseconds."""
        return 1e6 / self.render_fps


# --------------------------------------------------------------------------------------------------
# sources


@dataclass(frozen=True)
class SourceBox:
    """One labelled box as the source states it.

    Attributes:
        class_key: source class (MOT class id, COCO or YOLO name), lower case; after
            :func:`map_classes`, one of ``CLASS_NAMES``.
        box: ``(x1, y1, x2, y2)`` in source image pixels (edges: ``x2 - x1`` is the width).
        where: where it was read, for error messages (``gt.txt line 12``).
        track_id: the object's track id, -1 where the source has none.
        visibility: visible fraction the source states (MOT), 1.0 where it states none.
        ignore: the source marks it as not to be scored (MOT ``conf = 0``, COCO ``iscrowd``).
    """

    class_key: str
    box: tuple[float, float, float, float]
    where: str
    track_id: int = -1
    visibility: float = 1.0
    ignore: bool = False


@dataclass(frozen=True)
class VideoSource:
    """A labelled video: image files or one video file, and boxes per frame index.

    Attributes:
        name: sequence name in the split.
        label_file: the file the boxes came from.
        fps: frame rate; frame ``k`` is at ``(k - first frame) 1e6 / fps`` microseconds.
        size: ``(width, height)`` of the frames the labels refer to, pixels.
        frame_files: ``(frame index, image file)`` in order, or empty for a video file.
        video: the video file, or None for image files.
        frame_count: frames the source holds (0 where a video file does not say).
        boxes: frame index -> boxes.
        labelled: frame indices whose boxes are complete (label images are taken among them); None:
            every frame (a frame without boxes shows none).
    """

    name: str
    label_file: Path
    fps: float
    size: tuple[int, int]
    frame_files: tuple[tuple[int, Path], ...] = ()
    video: Path | None = None
    frame_count: int = 0
    boxes: dict[int, tuple[SourceBox, ...]] = field(default_factory=dict)
    labelled: frozenset[int] | None = None


@dataclass(frozen=True)
class StillSource:
    """A labelled still image."""

    name: str
    label_file: Path
    image: Path
    size: tuple[int, int]
    boxes: tuple[SourceBox, ...] = ()


Source = VideoSource | StillSource


def _image_files(folder: Path, natural: bool = False) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; with ``natural``, numbers in the names compared
    as numbers (``f2.jpg`` before ``f10.jpg``, for frames numbered without leading zeros)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not natural:
        return sorted(files)
    return sorted(
        files, key=lambda p: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", p.name)]
    )


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header; FileFormatError when it is no image."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileFormatError(path, "no such image file")
    try:
        with Image.open(path) as image:
            return int(image.width), int(image.height)
    except (UnidentifiedImageError, OSError) as error:
        raise FileFormatError(path, f"cannot be read as an image ({error})") from None


def video_properties(path: Path) -> tuple[float, tuple[int, int], int]:
    """``(fps, (width, height), frame count)`` a video file states (0 where it states none)."""
    from streamdet.drivers.video import open_capture

    capture = open_capture(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
    finally:
        capture.release()
    if size[0] <= 0 or size[1] <= 0:
        raise FileFormatError(path, "OpenCV reads no frame size from it: not a readable video")
    return fps, size, count


def sequence_name(text: str) -> str:
    """A folder name for a sequence: characters other than letters, digits, ``.``, ``_`` and ``-`` become
    ``_``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "sequence"


def _float_fields(line: str, path: Path, number: int, least: int) -> list[float]:
    parts = [part for part in re.split(r"[,\s]+", line.strip()) if part]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise FileFormatError(path, f"line {number}: expected numbers, got {line.strip()!r}") from None
    if len(values) < least:
        raise FileFormatError(path, f"line {number}: expected at least {least} values, got {len(values)}")
    return values


def read_mot_labels(path: Path) -> dict[int, tuple[SourceBox, ...]]:
    """Boxes of a MOT ``gt.txt`` by 0-based frame index (MOT counts frames from 1).

    Rows ``frame, id, x, y, w, h[, conf[, class[, visibility]]]`` (MOT16/17/20 ground truth; extra
    columns are ignored). ``conf = 0`` marks a box not to be scored. Without a class column (or in the
    10-column results layout, whose last three columns are -1) the class is 1 (pedestrian).
    """
    if not path.is_file():
        raise FileFormatError(path, "no such label file")
    boxes: dict[int, list[SourceBox]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        values = _float_fields(line, path, number, 6)
        frame, track, x, y, w, h = values[:6]
        if frame < 1 or frame != int(frame):
            raise FileFormatError(path, f"line {number}: frame {frame:g} is not a frame number (from 1)")
        if w <= 0 or h <= 0:
            raise FileFormatError(path, f"line {number}: box width {w:g} / height {h:g} must be positive")
        results_layout = len(values) == 10 and values[7:10] == [-1.0, -1.0, -1.0]
        has_class = len(values) >= 8 and not results_layout
        boxes.setdefault(int(frame) - 1, []).append(
            SourceBox(
                class_key=str(int(values[7])) if has_class else "1",
                box=(x, y, x + w, y + h),
                where=f"{path} line {number}",
                track_id=int(track),
                visibility=float(np.clip(values[8], 0.0, 1.0)) if has_class and len(values) >= 9 else 1.0,
                ignore=has_class and values[6] == 0,
            )
        )
    return {frame: tuple(rows) for frame, rows in boxes.items()}


def _read_seqinfo(path: Path) -> dict[str, str]:
    """The ``[Sequence]`` section of a MOT ``seqinfo.ini`` (keys lower case), empty when absent."""
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error as error:
        raise FileFormatError(path, f"not a seqinfo.ini: {error}") from None
    info = {key.lower(): value for key, value in parser["Sequence"].items()} if "Sequence" in parser else {}
    for key in ("seqlength", "imwidth", "imheight", "framerate"):
        try:
            if key in info and float(info[key]) <= 0:
                raise ValueError
        except ValueError:
            raise FileFormatError(path, f"{key} = {info[key]!r} is not a positive number") from None
    return info


def video_rate_size_count(video: Path, fps: float | None) -> tuple[float, tuple[int, int], int]:
    """``(frame rate, (width, height), frames)`` of a labelled video file: ``fps`` where given, else the
    file's own rate (UserFacingError when it states none)."""
    stated_fps, size, count = video_properties(video)
    rate = fps or stated_fps
    if not rate:
        raise UserFacingError(f"{video}: the video states no frame rate; pass --fps")
    return rate, size, count


def video_file_source(
    video: Path,
    label_file: Path,
    fps: float | None,
    read_labels: Callable[[Path], tuple[dict[int, tuple[SourceBox, ...]], frozenset[int] | None]],
) -> VideoSource:
    """A labelled video file: its rate, size and frame count (:func:`video_rate_size_count`, read first,
    so an unreadable video is the error named), then its boxes and labelled frames from ``label_file``
    (``read_labels``)."""
    rate, size, count = video_rate_size_count(video, fps)
    boxes, labelled = read_labels(label_file)
    return VideoSource(
        name=sequence_name(video.stem),
        label_file=label_file,
        fps=rate,
        size=size,
        video=video,
        frame_count=count,
        boxes=boxes,
        labelled=labelled,
    )


def read_mot(source: str | Path, labels: str | Path | None = None, fps: float | None = None) -> VideoSource:
    """A MOT sequence: a folder (``gt/gt.txt``, frames in ``img1/`` or seqinfo's ``imDir``,
    ``seqinfo.ini`` with ``frameRate``, ``seqLength``, ``imWidth``, ``imHeight``) or a video file (labels
    in ``labels``, default ``<video stem>.txt`` beside it). ``fps`` overrides the stated frame rate."""
    source = Path(source)
    if source.is_dir():
        info = _read_seqinfo(source / "seqinfo.ini")
        label_file = Path(labels) if labels else source / "gt" / "gt.txt"
        frame_dir = source / info.get("imdir", "img1")
        if not frame_dir.is_dir():
            raise FileFormatError(
                source, f"no frame folder {frame_dir.name}/ (a MOT sequence keeps its frames in img1/)"
            )
        files = _image_files(frame_dir)
        if not files:
            raise FileFormatError(frame_dir, "holds no image files")
        if "seqlength" in info and int(float(info["seqlength"])) != len(files):
            raise FileFormatError(
                source / "seqinfo.ini",
                f"seqLength {info['seqlength']} but {frame_dir} holds {len(files)} frames",
            )
        actual = image_size(files[0])
        if "imwidth" in info and "imheight" in info:
            stated = (int(float(info["imwidth"])), int(float(info["imheight"])))
            if stated != actual:
                raise FileFormatError(
                    files[0], f"is {actual[0]}x{actual[1]} but seqinfo.ini states {stated[0]}x{stated[1]}"
                )
        rate = fps or (float(info["framerate"]) if "framerate" in info else None)
        if not rate:
            raise UserFacingError(f"{source}: no seqinfo.ini frameRate; pass --fps")
        return VideoSource(
            name=sequence_name(info.get("name", source.name)),
            label_file=label_file,
            fps=rate,
            size=actual,
            frame_files=tuple(enumerate(files)),
            frame_count=len(files),
            boxes=read_mot_labels(label_file),
        )
    if not source.is_file():
        raise FileFormatError(source, "no such MOT sequence folder or video file")
    label_file = Path(labels) if labels else source.with_suffix(".txt")
    return video_file_source(source, label_file, fps, lambda path: (read_mot_labels(path), None))


CAVIAR_FPS = 25.0
"""Frame rate of the CAVIAR sequences (their pages: 384 x 288 pixels, 25 frames per second), taken for a
folder of frames without ``--fps``."""

CAVIAR_CLASS = "person"
"""Class key of every CAVIAR object (the ground truth labels people only; ``--classes-map`` changes it)."""


def _xml_root(path: Path) -> ET.Element:
    """The root element of an XML label file (FileFormatError when missing or not XML)."""
    if not path.is_file():
        raise FileFormatError(path, "no such label file")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as error:
        raise FileFormatError(path, f"not an XML file ({error})") from None


def _finite_number(text: str | None) -> float | None:
    """``text`` as a finite number, or None when it is missing or not one."""
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _xml_number(element: ET.Element, name: str, where: str, path: Path) -> float:
    text = element.get(name)
    value = _finite_number(text)
    if value is None:
        raise FileFormatError(path, f"{where}: <{element.tag}> {name}={text!r} is not a number")
    return value


def read_caviar_labels(path: Path) -> tuple[dict[int, tuple[SourceBox, ...]], frozenset[int]]:
    """Boxes of a CAVIAR ground-truth XML by 0-based frame number, and the frames it labels.

    Each ``<frame number="n">`` lists ``<objectlist><object id="i"><box xc yc w h/>`` (centre and size,
    pixels); every object is a person (:data:`CAVIAR_CLASS`). A frame listed with no object shows
    none. The ``<grouplist>`` boxes (several people taken together) are not objects and are left out.
    """
    root = _xml_root(path)
    frames = root.findall("frame")
    if not frames:
        raise FileFormatError(path, "holds no <frame> element: not a CAVIAR ground-truth file")
    boxes: dict[int, tuple[SourceBox, ...]] = {}
    for frame in frames:
        number = frame.get("number", "")
        if not number.isdigit():
            raise FileFormatError(path, f"<frame number={number!r}>: not a frame number (from 0)")
        index = int(number)
        if index in boxes:
            raise FileFormatError(path, f"frame {index} is listed twice")
        rows = []
        for obj in frame.findall("objectlist/object"):
            where = f"frame {index}, object {obj.get('id', '?')}"
            box = obj.find("box")
            if box is None:
                raise FileFormatError(path, f"{where}: no <box>")
            xc, yc, w, h = (_xml_number(box, name, where, path) for name in ("xc", "yc", "w", "h"))
            if w <= 0 or h <= 0:
                raise FileFormatError(path, f"{where}: box width {w:g} / height {h:g} must be positive")
            track = obj.get("id", "")
            rows.append(
                SourceBox(
                    class_key=CAVIAR_CLASS,
                    box=(xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2),
                    where=f"{path} {where}",
                    track_id=int(track) if track.isdigit() else -1,
                )
            )
        boxes[index] = tuple(rows)
    return boxes, frozenset(boxes)


def read_caviar(
    source: str | Path, labels: str | Path | None = None, fps: float | None = None
) -> VideoSource:
    """A CAVIAR sequence: a folder of its frames in natural name order (``f2`` before ``f10``; labels:
    ``labels``, else the one ``.xml`` file in the folder; ``fps`` default :data:`CAVIAR_FPS`) or a video
    file (labels default ``<video stem>.xml`` beside it; ``fps`` default the video's own)."""
    source = Path(source)
    if source.is_dir():
        if labels is None:
            found = sorted(source.glob("*.xml"))
            if len(found) != 1:
                raise FileFormatError(
                    source, f"holds {len(found)} .xml files; name the ground truth with --labels"
                )
            labels = found[0]
        files = _image_files(source, natural=True)
        if not files:
            raise FileFormatError(source, "holds no image files")
        boxes, labelled = read_caviar_labels(Path(labels))
        return VideoSource(
            name=sequence_name(source.name),
            label_file=Path(labels),
            fps=float(fps or CAVIAR_FPS),
            size=image_size(files[0]),
            frame_files=tuple(enumerate(files)),
            frame_count=len(files),
            boxes=boxes,
            labelled=labelled,
        )
    if not source.is_file():
        raise FileFormatError(source, "no such CAVIAR frame folder or video file")
    label_file = Path(labels) if labels else source.with_suffix(".xml")
    return video_file_source(source, label_file, fps, read_caviar_labels)


OCCLUSION_VISIBILITY: dict[str, float] = {
    "none": 1.0,
    "0": 1.0,
    "part": 0.5,
    "partial": 0.5,
    "1": 0.5,
    "full": 0.125,
    "2": 0.125,
}
"""Visible fraction of a box by its occlusion tag (JAAD: ``part`` hides 25-75 %, ``full`` over 75 %):
the middle of each range, so a fully occluded box falls under the card's 0.2 (an ignore region,
``hidden``) and a partly occluded one is scored."""


def read_cvat_labels(
    path: Path,
) -> tuple[dict[int, tuple[SourceBox, ...]], int | None, tuple[int, int] | None]:
    """Boxes of a "CVAT for video 1.1" XML by 0-based frame, and what its ``<meta>`` states: the frame
    count (``<size>``) and ``(width, height)`` (``<original_size>``), each None where absent.

    Each ``<track id label>`` holds ``<box frame outside occluded xtl ytl xbr ybr>``, one per frame
    (CVAT writes the frames it interpolated between keyframes too); ``outside="1"`` marks a frame the
    object has left, and frames a track does not list show none of it. The class key is the track's
    label, lower case; a track without ``id`` (JAAD's files) is numbered by its place in the file, and an
    export of a task with no track (a clip with nobody labelled) has no box. A box
    ``<attribute name="occlusion">`` (JAAD's tag: ``none``, ``part`` for 25-75 % hidden, ``full`` for
    over 75 %; or ``0``, ``1``, ``2``) sets its visible fraction (:data:`OCCLUSION_VISIBILITY`). Shapes
    other than boxes (polygons, points) are left out.
    """
    root = _xml_root(path)
    tracks = root.findall("track")
    meta = root.find("meta")
    if root.tag != "annotations" or root.find("image") is not None or not (tracks or meta is not None):
        what = "an export of images, not of a video" if root.find("image") is not None else "no <track>"
        raise FileFormatError(path, f"not a 'CVAT for video 1.1' export ({what})")
    count = size = None
    if meta is not None:
        frames = meta.findtext("task/size") or meta.findtext("job/size")
        width = meta.findtext(".//original_size/width")
        height = meta.findtext(".//original_size/height")
        try:
            count = int(frames) if frames else None
            size = (int(width), int(height)) if width and height else None
        except ValueError:
            raise FileFormatError(
                path, f"<meta>: size {frames!r} / {width!r}x{height!r} are not numbers"
            ) from None
    boxes: dict[int, list[SourceBox]] = {}
    for position, track in enumerate(tracks):
        label, track_id = track.get("label", ""), track.get("id", str(position))
        if not label:
            raise FileFormatError(path, f"<track id={track_id!r}> has no label")
        for box in track.findall("box"):
            frame = box.get("frame", "")
            where = f"track {track_id} ({label}), frame {frame}"
            if not frame.isdigit():
                raise FileFormatError(path, f"{where}: not a frame number (from 0)")
            if box.get("outside", "0") == "1":
                continue
            x1, y1, x2, y2 = (_xml_number(box, name, where, path) for name in ("xtl", "ytl", "xbr", "ybr"))
            if x2 <= x1 or y2 <= y1:
                raise FileFormatError(path, f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has no area")
            occlusion = box.find("attribute[@name='occlusion']")
            visibility = 1.0
            if occlusion is not None:
                tag = (occlusion.text or "").strip().lower()
                if tag not in OCCLUSION_VISIBILITY:
                    raise FileFormatError(
                        path,
                        f"{where}: occlusion {tag!r} is not one of {', '.join(OCCLUSION_VISIBILITY)}",
                    )
                visibility = OCCLUSION_VISIBILITY[tag]
            boxes.setdefault(int(frame), []).append(
                SourceBox(
                    class_key=label.strip().lower(),
                    box=(x1, y1, x2, y2),
                    where=f"{path} {where}",
                    track_id=int(track_id) if track_id.isdigit() else -1,
                    visibility=visibility,
                )
            )
    return {frame: tuple(rows) for frame, rows in boxes.items()}, count, size


def frames_or_video(
    source: Path, frames_subdir: str, fps: float | None, no_rate: str, missing: str, natural: bool = False
) -> tuple[float, tuple[int, int], int, Path | None, tuple[tuple[int, Path], ...]]:
    """``(rate, size, frame count, video file or None, (index, frame file) pairs)`` of a sequence given
    as a folder of frames (in ``frames_subdir`` where the folder has one, else in the folder; name
    order, ``natural`` for unpadded numbers) at ``fps`` (required: ``no_rate`` says why), or as a video
    file at its own rate or ``fps``; FileFormatError ``missing`` when ``source`` is neither."""
    if source.is_dir():
        frame_dir = source / frames_subdir if (source / frames_subdir).is_dir() else source
        files = _image_files(frame_dir, natural=natural)
        if not files:
            raise FileFormatError(frame_dir, "holds no image files")
        if not fps:
            raise UserFacingError(f"{source}: {no_rate}; pass --fps")
        return float(fps), image_size(files[0]), len(files), None, tuple(enumerate(files))
    if source.is_file():
        rate, size, count = video_rate_size_count(source, fps)
        return rate, size, count, source, ()
    raise FileFormatError(source, missing)


def read_cvat(source: str | Path, labels: str | Path | None = None, fps: float | None = None) -> VideoSource:
    """A "CVAT for video 1.1" export: a folder with ``annotations.xml`` (or ``labels``) and its frames in
    ``images/`` (else in the folder itself), in name order, at ``fps`` (required: CVAT stores no frame
    rate); or a video file with ``labels`` (default ``<video stem>.xml`` beside it) at its own rate. The
    ``<meta>``'s frame count and size are checked against the frames."""
    source = Path(source)
    rate, size, count, video, frame_files = frames_or_video(
        source, "images", fps, "CVAT stores no frame rate", "no such CVAT export folder or video file"
    )
    if labels:
        label_file = Path(labels)
    else:
        label_file = source.with_suffix(".xml") if video else source / "annotations.xml"
    boxes, stated_count, stated_size = read_cvat_labels(label_file)
    if stated_count is not None and count and stated_count != count:
        raise FileFormatError(label_file, f"<meta> states {stated_count} frames but {source} holds {count}")
    if stated_size is not None and stated_size != size:
        raise FileFormatError(
            label_file,
            f"<meta> states {stated_size[0]}x{stated_size[1]} frames but {source}'s are {size[0]}x{size[1]}",
        )
    return VideoSource(
        name=sequence_name(source.stem if video else source.name),
        label_file=label_file,
        fps=rate,
        size=size,
        frame_files=frame_files,
        video=video,
        frame_count=count,
        boxes=boxes,
    )


SOT_TRACK_ID = 1
"""Track id of every box of a single-object-tracking label file (it follows one object)."""

SOT_LABEL_NAMES: tuple[str, ...] = ("groundtruth_rect.txt", "groundtruth.txt")
"""Label files looked for inside a single-object-tracking sequence folder (OTB-100; LaSOT and GOT-10k),
before ``<folder>.txt`` beside it (UAV123's ``anno/`` files, named after the sequence)."""


def read_sot_labels(path: Path, class_key: str) -> tuple[dict[int, tuple[SourceBox, ...]], int]:
    """Boxes of a single-object-tracking ground-truth file by 0-based frame, and its number of lines.

    Line ``k`` (from 1) labels frame ``k - 1`` of the sequence (its ``k``-th frame in name order):
    ``x, y, w, h``, separated by commas, tabs or spaces, as OTB-100, UAV123, LaSOT and GOT-10k write
    them. ``x, y`` is the top-left pixel in 1-based pixel indices (OTB's and UAV123's MATLAB toolkits
    read the box as columns ``x .. x + w - 1``), so the box's edges are ``(x - 1, y - 1, x - 1 + w,
    y - 1 + h)``, as :func:`read_voc_labels` reads VOC's. A line of four ``NaN`` (UAV123) or four zeros
    (some LaSOT and GOT-10k releases) says the target is absent: that frame shows no box. Every box is
    ``class_key`` (the file names no class) with track id :data:`SOT_TRACK_ID`. Empty lines are allowed
    only at the end of the file (an empty line elsewhere would shift every frame after it).
    """
    if not path.is_file():
        raise FileFormatError(path, "no such label file")
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    boxes: dict[int, tuple[SourceBox, ...]] = {}
    for number, line in enumerate(lines, start=1):
        parts = [part for part in re.split(r"[,\s]+", line.strip()) if part]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            raise FileFormatError(
                path, f"line {number}: expected x,y,w,h numbers, got {line.strip()!r}"
            ) from None
        if len(values) != 4:
            raise FileFormatError(
                path, f"line {number}: expected 4 values x,y,w,h (one box per frame), got {len(values)}"
            )
        if all(math.isnan(value) for value in values) or all(value == 0 for value in values):
            continue
        x, y, w, h = values
        if not all(math.isfinite(value) for value in values) or w <= 0 or h <= 0:
            raise FileFormatError(
                path,
                f"line {number}: box {line.strip()!r} is neither a box with positive width and height nor "
                "absent (four NaN or four zeros)",
            )
        boxes[number - 1] = (
            SourceBox(
                class_key=class_key.strip().lower(),
                box=(x - 1, y - 1, x - 1 + w, y - 1 + h),
                where=f"{path} line {number}",
                track_id=SOT_TRACK_ID,
            ),
        )
    return boxes, len(lines)


def sot_label_file(folder: Path) -> Path:
    """The label file of a single-object-tracking frame folder: :data:`SOT_LABEL_NAMES` inside it, else
    ``<folder>.txt`` beside it (FileFormatError naming where it looked when none is there)."""
    candidates = [folder / name for name in SOT_LABEL_NAMES] + [folder.with_name(folder.name + ".txt")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileFormatError(
        folder, f"no label file ({', '.join(str(c) for c in candidates)}); name it with --labels"
    )


def read_sot(
    source: str | Path,
    labels: str | Path | None = None,
    fps: float | None = None,
    class_name: str | None = None,
) -> VideoSource:
    """A single-object-tracking sequence: a folder of frames (in ``img/`` where the folder has one, as
    OTB-100 and LaSOT, else in the folder, as UAV123 and GOT-10k; natural name order) at ``fps``
    (required), or a video file at its own rate or ``fps``; labels :func:`read_sot_labels` from
    ``labels``, else :func:`sot_label_file` (a video: ``<video stem>.txt`` beside it). Every box is
    ``class_name`` (required: the file names no class). The file must give exactly one line per frame:
    more lines than frames, or fewer, is a FileFormatError naming the file and both counts (for a
    video file that states its frame count; otherwise a box beyond the last frame read stops the
    import as in the other layouts)."""
    source = Path(source)
    if not class_name:
        raise UserFacingError(
            f"{source}: single-object-tracking labels name no class; pass --class (e.g. --class boat)"
        )
    rate, size, count, video, frame_files = frames_or_video(
        source, "img", fps, "a folder of frames states no frame rate", "no such frame folder or video file",
        natural=True,
    )  # fmt: skip
    if labels:
        label_file = Path(labels)
    else:
        label_file = source.with_suffix(".txt") if video else sot_label_file(source)
    boxes, lines = read_sot_labels(label_file, class_name)
    if count and lines != count:
        more = "more" if lines > count else "fewer"
        raise FileFormatError(
            label_file,
            f"{lines} lines (one box per frame) but {source} holds {count} frames: {more} labels than "
            "frames (labels of another sequence, or of a part of it: give only the frames it labels)",
        )
    return VideoSource(
        name=sequence_name(source.stem if video else source.name),
        label_file=label_file,
        fps=rate,
        size=size,
        frame_files=frame_files,
        video=video,
        frame_count=count,
        boxes=boxes,
        labelled=frozenset(range(lines)),
    )


def _coco_track_id(annotation: dict) -> int:
    for key in ("track_id", "instance_id"):
        if annotation.get(key) is not None:
            return int(annotation[key])
    attributes = annotation.get("attributes") or {}
    return int(attributes["track_id"]) if attributes.get("track_id") is not None else -1


def _coco_frame_index(image: dict, position: int) -> int:
    for key in ("frame_id", "frame_index", "frame_idx", "frame"):
        if isinstance(image.get(key), int | float):
            return int(image[key])
    return position


def _load_coco(path: Path) -> tuple[dict, dict[int, str], dict[int, dict], dict[int, list[dict]]]:
    """The json, category id -> name, image id -> image, image id -> its annotations."""
    if not path.is_file():
        raise FileFormatError(path, "no such COCO annotation file")
    try:
        coco = json.loads(path.read_text())
        names = {int(c["id"]): str(c["name"]).strip().lower() for c in coco["categories"]}
        images = {int(image["id"]): image for image in coco["images"]}
        annotations = coco.get("annotations", [])
    except (ValueError, KeyError, TypeError) as error:
        raise FileFormatError(path, f"not a COCO annotation file: {error!r}") from None
    by_image: dict[int, list[dict]] = {image_id: [] for image_id in images}
    for annotation in annotations:
        image_id = annotation.get("image_id")
        if image_id not in by_image:
            raise FileFormatError(
                path, f"annotation {annotation.get('id')} names image_id {image_id}, which no image has"
            )
        if annotation.get("category_id") not in names:
            raise FileFormatError(
                path,
                f"annotation {annotation.get('id')} names category_id {annotation.get('category_id')}, "
                "which no category has",
            )
        by_image[image_id].append(annotation)
    return coco, names, images, by_image


def _coco_boxes(path: Path, names: dict[int, str], annotations: list[dict]) -> tuple[SourceBox, ...]:
    boxes = []
    for annotation in annotations:
        try:
            x, y, w, h = (float(v) for v in annotation["bbox"])
        except (KeyError, TypeError, ValueError):
            raise FileFormatError(path, f"annotation {annotation.get('id')}: no bbox [x, y, w, h]") from None
        if w <= 0 or h <= 0:
            continue
        boxes.append(
            SourceBox(
                class_key=names[annotation["category_id"]],
                box=(x, y, x + w, y + h),
                where=f"{path} annotation {annotation.get('id')}",
                track_id=_coco_track_id(annotation),
                ignore=bool(annotation.get("iscrowd", 0) or annotation.get("ignore", 0)),
            )
        )
    return tuple(boxes)


def _coco_size(path: Path, image: dict) -> tuple[int, int]:
    try:
        return int(image["width"]), int(image["height"])
    except (KeyError, TypeError, ValueError):
        raise FileFormatError(path, f"image {image.get('id')} states no width and height") from None


def read_coco(
    path: str | Path, images_dir: str | Path | None = None, fps: float | None = None
) -> list[Source]:
    """Sequences and stills of a COCO json; image files are ``images_dir / file_name`` (default: the
    json's folder).

    Images with a ``video_id`` are frames of that video, ordered by ``frame_id`` (or ``frame_index``,
    else their order in the file); the frame rate is the video record's ``fps``, else ``fps``. Track ids
    come from ``track_id``, ``instance_id`` or ``attributes.track_id``. Other images are stills.
    """
    path = Path(path)
    root = Path(images_dir) if images_dir is not None else path.parent
    coco, names, images, by_image = _load_coco(path)
    videos = {int(v["id"]): v for v in coco.get("videos", []) if "id" in v}
    frames_of: dict[int, list[dict]] = {}
    sources: list[Source] = []
    for image in images.values():
        if image.get("video_id") is None:
            sources.append(
                StillSource(
                    name=sequence_name(Path(str(image.get("file_name", image["id"]))).stem),
                    label_file=path,
                    image=root / str(image.get("file_name", "")),
                    size=_coco_size(path, image),
                    boxes=_coco_boxes(path, names, by_image[int(image["id"])]),
                )
            )
        else:
            frames_of.setdefault(int(image["video_id"]), []).append(image)
    for video_id, frames in frames_of.items():
        video = videos.get(video_id, {})
        indexed = sorted(
            ((_coco_frame_index(image, position), image) for position, image in enumerate(frames)),
            key=lambda item: item[0],
        )
        rate = fps or video.get("fps")
        if not rate:
            raise UserFacingError(f"{path}: video {video_id} states no fps; pass --fps")
        sizes = {_coco_size(path, image) for _, image in indexed}
        if len(sizes) > 1:
            raise FileFormatError(path, f"video {video_id}: frames of different sizes {sorted(sizes)}")
        length = int(video.get("length") or 0)
        first_file = Path(str(indexed[0][1].get("file_name", "")))
        default_name = first_file.parent.name or f"video{video_id}"
        sources.append(
            VideoSource(
                name=sequence_name(str(video.get("name") or video.get("file_name") or default_name)),
                label_file=path,
                fps=float(rate),
                size=sizes.pop(),
                frame_files=tuple(
                    (index, root / str(image.get("file_name", ""))) for index, image in indexed
                ),
                frame_count=length or indexed[-1][0] + 1,
                boxes={
                    index: _coco_boxes(path, names, by_image[int(image["id"])]) for index, image in indexed
                },
                labelled=frozenset(index for index, _ in indexed),
            )
        )
    return sources


def read_names(path: str | Path) -> list[str]:
    """Class names of a YOLO ``data.yaml`` (``names:`` as a list, ``[a, b]`` or ``{0: a, 1: b}``, or a
    block of ``- a`` / ``0: a`` lines) or of a names file (one name per line: ``classes.txt``,
    ``obj.names``)."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such class names file")
    lines = path.read_text().splitlines()
    if path.suffix.lower() not in (".yaml", ".yml"):
        return [line.strip() for line in lines if line.strip()]
    for number, line in enumerate(lines):
        match = re.match(r"^names\s*:\s*(.*)$", line)
        if not match:
            continue
        inline = match.group(1).split("#")[0].strip()
        if inline:
            entries = [e.strip() for e in inline.strip("[]{}").split(",") if e.strip()]
        else:
            entries = []
            for item in lines[number + 1 :]:
                if item.strip() and not item[0].isspace() and not item.startswith("-"):
                    break
                if item.strip():
                    entries.append(item.strip().removeprefix("-").strip())
        names = []
        for entry in entries:
            key, colon, value = entry.partition(":")
            text = value if colon and key.strip().isdigit() else entry
            text = text.strip()
            try:
                text = str(ast.literal_eval(text)) if text[:1] in "'\"" else text
            except (ValueError, SyntaxError):
                pass
            names.append(text)
        if names:
            return names
    raise FileFormatError(path, "has no names: list")


def find_yolo_names(images_dir: Path, labels_dir: Path) -> Path | None:
    """A names file near a YOLO folder: ``data.yaml`` / ``dataset.yaml`` in the images folder or up to two
    folders above it, or ``classes.txt`` / ``obj.names`` in the labels folder."""
    for folder in (images_dir, images_dir.parent, images_dir.parent.parent):
        for name in ("data.yaml", "dataset.yaml"):
            if (folder / name).is_file():
                return folder / name
    for name in ("classes.txt", "obj.names"):
        if (labels_dir / name).is_file():
            return labels_dir / name
    return None


def yolo_labels_dir(images_dir: Path) -> Path:
    """Where YOLO keeps the labels of ``images_dir``: the same path with its last ``images`` component
    replaced by ``labels`` (Ultralytics), else the images folder itself (darknet)."""
    parts = list(images_dir.parts)
    for position in range(len(parts) - 1, -1, -1):
        if parts[position] == "images":
            parts[position] = "labels"
            return Path(*parts)
    return images_dir


def read_yolo_labels(path: Path, size: tuple[int, int], names: list[str] | None) -> tuple[SourceBox, ...]:
    """Boxes of one YOLO ``.txt``: ``class cx cy w h`` normalised to the image (a polygon ``class x1 y1
    x2 y2 ...`` gives its bounding box); values beyond [0, 1] mean the file is not this image's."""
    width, height = size
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        values = _float_fields(line, path, number, 5)
        index = values[0]
        if index != int(index) or index < 0 or (names is not None and index >= len(names)):
            known = f" (the names list has {len(names)})" if names is not None else ""
            raise FileFormatError(path, f"line {number}: class {index:g} is not a class index{known}")
        if len(values) in (5, 6):
            cx, cy, w, h = values[1:5]
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            xs, ys = values[1::2], values[2::2]
            x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        if min(x1, y1) < -0.01 or max(x2, y2) > 1.01:
            raise FileFormatError(
                path,
                f"line {number}: box ({x1:.3f}, {y1:.3f}, {x2:.3f}, {y2:.3f}) lies beyond the image "
                "(YOLO coordinates are fractions of the image, 0 to 1)",
            )
        boxes.append(
            SourceBox(
                class_key=names[int(index)].lower() if names is not None else str(int(index)),
                box=(x1 * width, y1 * height, x2 * width, y2 * height),
                where=f"{path} line {number}",
            )
        )
    return tuple(boxes)


def read_yolo(
    images_dir: str | Path,
    labels_dir: str | Path | None = None,
    names_file: str | Path | None = None,
    fps: float | None = None,
) -> list[Source]:
    """Stills of a YOLO folder (one per image), or with ``fps`` one video of its images in name order.

    Labels: ``labels_dir / <image stem>.txt`` (default :func:`yolo_labels_dir`); an image without one
    shows no object; a label file without an image is an error. Class names: ``names_file``, else
    :func:`find_yolo_names`, else class keys are the indices (``0``, ``1``, ...).
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileFormatError(images_dir, "no such images folder")
    labels_dir = Path(labels_dir) if labels_dir is not None else yolo_labels_dir(images_dir)
    names_path = Path(names_file) if names_file is not None else find_yolo_names(images_dir, labels_dir)
    names = read_names(names_path) if names_path is not None else None
    stills = []
    for image, label in labelled_images(images_dir, labels_dir, ".txt", also_there=("classes.txt",)):
        size = image_size(image)
        boxes = read_yolo_labels(label, size, names) if label.is_file() else ()
        stills.append(StillSource(sequence_name(image.stem), label, image, size, boxes))
    if not fps:
        return list(stills)
    name = images_dir.name if images_dir.name != "images" else images_dir.parent.name
    return [stills_as_video(stills, name, labels_dir, fps, images_dir)]


def labelled_images(
    images_dir: Path, labels_dir: Path, suffix: str, also_there: tuple[str, ...] = ()
) -> list[tuple[Path, Path]]:
    """``(image, label file)`` of every image in ``images_dir`` in name order, the label file being
    ``labels_dir / <image stem><suffix>`` (present or not: an image without one shows no object). A
    label file without its image is an error (names in ``also_there`` are not label files)."""
    images = _image_files(images_dir)
    if not images:
        raise FileFormatError(images_dir, "holds no image files")
    stems = {image.stem for image in images}
    if labels_dir.is_dir():
        for label in sorted(labels_dir.glob(f"*{suffix}")):
            if label.stem not in stems and label.name not in also_there:
                raise FileFormatError(
                    label, f"labels an image {label.stem}.* that {images_dir} does not hold"
                )
    return [(image, labels_dir / f"{image.stem}{suffix}") for image in images]


def stills_as_video(
    stills: list[StillSource], name: str, label_file: Path, fps: float, where: Path
) -> VideoSource:
    """The stills of one folder as the frames of one video at ``fps``, in their order (``--fps``); they
    must share a size (FileFormatError naming ``where`` otherwise)."""
    sizes = {still.size for still in stills}
    if len(sizes) > 1:
        raise FileFormatError(
            where, f"as one video (--fps) its images must share a size, got {sorted(sizes)}"
        )
    return VideoSource(
        name=sequence_name(name),
        label_file=label_file,
        fps=float(fps),
        size=sizes.pop(),
        frame_files=tuple(enumerate(still.image for still in stills)),
        frame_count=len(stills),
        boxes={index: still.boxes for index, still in enumerate(stills)},
    )


def _voc_text(element: ET.Element, name: str) -> str | None:
    child = element.find(name)
    return None if child is None or child.text is None else child.text.strip()


def _voc_number(element: ET.Element, name: str, where: str, path: Path) -> float:
    text = _voc_text(element, name)
    value = _finite_number(text)
    if value is None:
        raise FileFormatError(path, f"{where}: <{name}> {text!r} is not a number")
    return value


def read_voc_labels(path: Path) -> tuple[tuple[int, int] | None, tuple[SourceBox, ...]]:
    """The image size a Pascal VOC XML states (None where ``<size>`` is missing or zero, as some tools
    write it) and its boxes.

    ``<bndbox>`` holds VOC's 1-based pixel indices, ``xmax`` and ``ymax`` included, so the box's edges are
    ``(xmin - 1, ymin - 1, xmax, ymax)`` (the convention of the VOC development kit); an object marked
    ``<difficult>1`` is an ignore region, as VOC's own evaluation treats it.
    """
    root = _xml_root(path)
    if root.tag != "annotation":
        raise FileFormatError(path, f"root element <{root.tag}>, not <annotation>: not a Pascal VOC file")
    size = None
    size_element = root.find("size")
    if size_element is not None:
        width, height = (_voc_number(size_element, name, "<size>", path) for name in ("width", "height"))
        if width > 0 and height > 0:
            size = (int(width), int(height))
    boxes = []
    for number, obj in enumerate(root.findall("object"), start=1):
        where = f"object {number}"
        name = _voc_text(obj, "name")
        if not name:
            raise FileFormatError(path, f"{where}: no <name>")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise FileFormatError(path, f"{where} ({name}): no <bndbox>")
        xmin, ymin, xmax, ymax = (
            _voc_number(bndbox, edge, f"{where} ({name})", path) for edge in ("xmin", "ymin", "xmax", "ymax")
        )
        if xmax < xmin or ymax < ymin:
            raise FileFormatError(
                path,
                f"{where} ({name}): xmax {xmax:g} / ymax {ymax:g} lie before xmin {xmin:g} / ymin {ymin:g}",
            )
        difficult = (_voc_text(obj, "difficult") or "0").lower()
        boxes.append(
            SourceBox(
                class_key=name.lower(),
                box=(xmin - 1, ymin - 1, xmax, ymax),
                where=f"{path} {where}",
                ignore=difficult not in ("0", "false"),
            )
        )
    return size, tuple(boxes)


def voc_image_pairs(source: Path, labels: Path | None = None) -> list[tuple[Path, Path]]:
    """``(image, label file)`` of a VOC source in name order (:func:`labelled_images`: an image whose
    label file is absent shows no object).

    ``source`` is a VOC root (``JPEGImages/`` and ``Annotations/``), an image set file of one (ids one per
    line, e.g. ``ImageSets/Main/test.txt``; the root two folders above it) or a folder of images with
    their ``.xml`` beside them; ``labels`` names the folder of the XML files instead. A label file without
    its image, or an id of an image set with no image, is an error.
    """
    if source.is_file():
        root = source.parent.parent.parent
        images_dir, labels_dir = root / "JPEGImages", labels or root / "Annotations"
        ids = [line.split()[0] for line in source.read_text().splitlines() if line.strip()]
        if not ids:
            raise FileFormatError(source, "lists no image id")
        by_stem = {image.stem: image for image in _image_files(images_dir)} if images_dir.is_dir() else {}
        missing = next((image_id for image_id in ids if image_id not in by_stem), None)
        if missing is not None:
            raise FileFormatError(source, f"lists {missing!r} but {images_dir} holds no such image")
        return [(by_stem[image_id], labels_dir / f"{image_id}.xml") for image_id in ids]
    if not source.is_dir():
        raise FileFormatError(source, "no such VOC folder or image set file")
    if (source / "JPEGImages").is_dir():
        return labelled_images(source / "JPEGImages", labels or source / "Annotations", ".xml")
    return labelled_images(source, labels or source, ".xml")


def read_voc(source: str | Path, labels: str | Path | None = None, fps: float | None = None) -> list[Source]:
    """Stills of a Pascal VOC source (:func:`voc_image_pairs`; boxes :func:`read_voc_labels`), one per
    image, or with ``fps`` one video of its images in name order (they must share a size)."""
    source = Path(source)
    stills = []
    for image, label in voc_image_pairs(source, Path(labels) if labels is not None else None):
        size, boxes = read_voc_labels(label) if label.is_file() else (None, ())
        stills.append(StillSource(sequence_name(image.stem), label, image, size or image_size(image), boxes))
    if not fps:
        return list(stills)
    if source.is_file():
        name = source.stem
    else:
        name = source.name if source.name != "JPEGImages" else source.parent.name
    return [stills_as_video(stills, name, stills[0].label_file.parent, fps, source)]


def read_sources(
    layout: str,
    paths: list[str | Path],
    labels: str | Path | None = None,
    images_dir: str | Path | None = None,
    names_file: str | Path | None = None,
    fps: float | None = None,
    class_name: str | None = None,
) -> list[Source]:
    """Every sequence and still of ``paths`` in ``layout`` (see :func:`read_mot`, :func:`read_coco`,
    :func:`read_yolo`, :func:`read_caviar`, :func:`read_cvat`, :func:`read_voc`, :func:`read_sot`), with
    unique names. ``class_name`` is the class of every box of ``sot`` labels (required there, refused
    elsewhere: the other layouts name their classes)."""
    if layout not in LAYOUTS:
        raise UserFacingError(f"unknown label layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if class_name and layout != "sot":
        raise UserFacingError(
            f"--class {class_name!r} is for the sot layout only: {layout} labels name their classes"
        )
    if not paths:
        raise UserFacingError("name at least one source")
    if labels is not None and len(paths) > 1:
        raise UserFacingError("--labels names the labels of one source; give one source with it")
    sources: list[Source] = []
    for path in paths:
        if layout == "mot":
            sources.append(read_mot(path, labels, fps))
        elif layout == "caviar":
            sources.append(read_caviar(path, labels, fps))
        elif layout == "cvat":
            sources.append(read_cvat(path, labels, fps))
        elif layout == "coco":
            sources.extend(read_coco(path, images_dir, fps))
        elif layout == "voc":
            sources.extend(read_voc(path, labels, fps))
        elif layout == "sot":
            sources.append(read_sot(path, labels, fps, class_name))
        else:
            sources.extend(read_yolo(path, labels, names_file, fps))
    return unique_names(sources)


def unique_names(sources: list[Source]) -> list[Source]:
    """Sources renamed ``<name>-<n>`` (n = 2, 3, ...) where names repeat."""
    seen: dict[str, int] = {}
    renamed = []
    for source in sources:
        count = seen.get(source.name, 0) + 1
        seen[source.name] = count
        renamed.append(source if count == 1 else replace(source, name=f"{source.name}-{count}"))
    return renamed


# --------------------------------------------------------------------------------------------------
# checks and class mapping


def map_classes(
    sources: list[Source], class_map: dict[str, ClassTarget], drop_unmapped: bool = False
) -> list[Source]:
    """Sources whose boxes carry one of ``CLASS_NAMES`` as ``class_key``: mapped by ``class_map``
    (targets marked ignore set ``ignore``), dropped where the target is ``-``; an unmapped class stops
    with a FileFormatError naming it and the file, unless ``drop_unmapped``."""

    def mapped(boxes: tuple[SourceBox, ...]) -> tuple[SourceBox, ...]:
        kept = []
        for box in boxes:
            target = class_map.get(box.class_key.lower())
            if target is None:
                if drop_unmapped:
                    continue
                raise FileFormatError(
                    box.where,
                    f"class {box.class_key!r} is not mapped to one of {', '.join(CLASS_NAMES)}; map it with "
                    f'--classes-map "{box.class_key}=CLASS" (or {box.class_key}=- to drop it), or pass '
                    "--drop-unmapped",
                )
            if target.name is not None:
                kept.append(replace(box, class_key=target.name, ignore=box.ignore or target.ignore))
        return tuple(kept)

    result: list[Source] = []
    for source in sources:
        if isinstance(source, StillSource):
            result.append(replace(source, boxes=mapped(source.boxes)))
        else:
            result.append(replace(source, boxes={k: mapped(v) for k, v in source.boxes.items()}))
    return result


def check_box(box: SourceBox, size: tuple[int, int]) -> None:
    """FileFormatError when a box lies wholly outside its ``(width, height)`` image (labels of another
    video, or of another size); a box partly outside is clipped later, as MOT labels people half in view."""
    x1, y1, x2, y2 = box.box
    width, height = size
    if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
        raise FileFormatError(
            box.where,
            f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {width}x{height} image it labels",
        )


def check_source(source: Source) -> None:
    """Labels against their frames: frame indices within the frame count, boxes inside the image, image
    files present with the size the labels state (read from the first frame for videos)."""
    if isinstance(source, StillSource):
        actual = image_size(source.image)
        if actual != source.size:
            raise FileFormatError(
                source.image,
                f"is {actual[0]}x{actual[1]} but {source.label_file} labels it as "
                f"{source.size[0]}x{source.size[1]}",
            )
        for box in source.boxes:
            check_box(box, source.size)
        return
    for index, boxes in sorted(source.boxes.items()):
        if boxes and source.frame_count and index >= source.frame_count:
            raise FileFormatError(
                boxes[0].where,
                f"labels frame {index + 1} (counting from 1) but the video has {source.frame_count} frames",
            )
        for box in boxes:
            check_box(box, source.size)
    for _, path in source.frame_files:
        if not path.is_file():
            raise FileFormatError(path, f"no such frame file (named by {source.label_file})")
    if source.frame_files:
        actual = image_size(source.frame_files[0][1])
        if actual != source.size:
            raise FileFormatError(
                source.frame_files[0][1],
                f"is {actual[0]}x{actual[1]} but {source.label_file} labels "
                f"{source.size[0]}x{source.size[1]} frames",
            )


# --------------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class FitMapping:
    """Source image -> sensor: ``x' = s_x x + o_x``, ``y' = s_y y + o_y`` with
    ``s = scaled_size / source_size`` per axis and ``o = offset`` (pixels; negative when cropping).

    ``pad``: ``s = min(W / w, H / h)`` (rounded to whole scaled pixels), centred, black around;
    ``crop``: ``s = max(W / w, H / h)``, centred, the overhang cut; ``stretch``: each axis to the sensor.
    """

    fit: str
    source_size: tuple[int, int]
    scaled_size: tuple[int, int]
    offset: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """``(s_x, s_y)``."""
        return (self.scaled_size[0] / self.source_size[0], self.scaled_size[1] / self.source_size[1])

    def map_box(self, box: tuple[float, float, float, float], shift: tuple[float, float] = (0.0, 0.0)):
        """A source box on the sensor (unclipped), moved by ``shift`` sensor pixels."""
        sx, sy = self.scale
        ox, oy = self.offset[0] + shift[0], self.offset[1] + shift[1]
        return (box[0] * sx + ox, box[1] * sy + oy, box[2] * sx + ox, box[3] * sy + oy)

    def as_record(self) -> dict:
        """The mapping as written to ``info.sequences[i].mapping``."""
        return {**asdict(self), "scale": list(self.scale)}


def fit_mapping(source_size: tuple[int, int], sensor_size: tuple[int, int], fit: str) -> FitMapping:
    """The :class:`FitMapping` of a ``source_size`` image onto a ``sensor_size`` sensor."""
    width, height = source_size
    sensor_w, sensor_h = sensor_size
    if fit == "stretch":
        return FitMapping(fit, source_size, sensor_size, (0, 0))
    choose = min if fit == "pad" else max
    scale = choose(sensor_w / width, sensor_h / height)
    scaled = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    offset = ((sensor_w - scaled[0]) // 2, (sensor_h - scaled[1]) // 2)
    return FitMapping(fit, source_size, scaled, offset)


def to_grey(frame: np.ndarray) -> np.ndarray:
    """8-bit grey of an 8-bit BGR (or grey) frame: OpenCV ``COLOR_BGR2GRAY``, as ``drive video``."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def scale_luminance(grey: np.ndarray, mapping: FitMapping) -> np.ndarray:
    """Luminance in [0, 1], float32 ``[h', w']`` at ``mapping.scaled_size`` (area interpolation, as
    ``drive video --size``)."""
    if (grey.shape[1], grey.shape[0]) != mapping.source_size:
        raise UserFacingError(
            f"frame of {grey.shape[1]}x{grey.shape[0]} in a sequence of "
            f"{mapping.source_size[0]}x{mapping.source_size[1]} frames"
        )
    if mapping.scaled_size != mapping.source_size:
        grey = cv2.resize(grey, mapping.scaled_size, interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32) / np.float32(255.0)


def place_on_sensor(
    scaled: np.ndarray,
    mapping: FitMapping,
    sensor_size: tuple[int, int],
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """The sensor frame float32 ``[H, W]``: ``scaled`` put at ``mapping.offset + shift`` (bilinear for a
    sub-pixel shift, a plain copy for a whole-pixel one), black where it does not reach."""
    x0, y0 = mapping.offset[0] + shift[0], mapping.offset[1] + shift[1]
    if x0 != int(x0) or y0 != int(y0):
        matrix = np.float32([[1, 0, x0], [0, 1, y0]])
        return cv2.warpAffine(
            scaled, matrix, sensor_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
    width, height = sensor_size
    x0, y0 = int(x0), int(y0)
    frame = np.zeros((height, width), dtype=np.float32)
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + scaled.shape[1], width), min(y0 + scaled.shape[0], height)
    if right > left and bottom > top:
        frame[top:bottom, left:right] = scaled[top - y0 : bottom - y0, left - x0 : right - x0]
    return frame


@functools.lru_cache(maxsize=1)
def _dis_flow():
    """One DIS optical-flow object per process (building it allocates its pyramids)."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def dense_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense optical flow float32 ``[H, W, 2]`` (pixels, x then y) from 8-bit ``first`` to ``second``:
    OpenCV's DIS flow, preset ``MEDIUM`` (chosen over Farneback: closer events to the truth in
    ``docs/importing.md``'s measurement, and faster)."""
    return _dis_flow().calc(first, second, None)


def flow_interpolate(previous: np.ndarray, current: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Frames between two luminance frames ``[H, W]`` at ``fractions`` ``tau`` in (0, 1), float32
    ``[K, H, W]``, by optical-flow warping.

    Dense flow ``F`` from ``previous`` to ``current``: OpenCV's DIS optical flow (Kroeger et al. 2016,
    preset ``MEDIUM``) on the 8-bit frames (:func:`dense_flow`). A point at ``x`` at time
    ``tau`` was at ``x - tau F`` in ``previous`` and is at ``x + (1 - tau) F`` in ``current`` (the flow read
    at ``x`` instead of at the point's own position: exact for smooth motion, wrong by up to the motion at
    the edge of a moving object), so
    ``I_tau(x) = (1 - tau) I_0(x - tau F(x)) + tau I_1(x + (1 - tau) F(x))``, bilinear, edges replicated.
    """
    first = np.clip(previous * 255.0 + 0.5, 0, 255).astype(np.uint8)
    second = np.clip(current * 255.0 + 0.5, 0, 255).astype(np.uint8)
    flow = dense_flow(first, second)
    height, width = previous.shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    out = np.empty((len(fractions), height, width), dtype=np.float32)
    for k, tau in enumerate(np.asarray(fractions, dtype=np.float32)):
        from_previous = cv2.remap(
            previous,
            grid_x - tau * flow[..., 0],
            grid_y - tau * flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        from_current = cv2.remap(
            current,
            grid_x + (1 - tau) * flow[..., 0],
            grid_y + (1 - tau) * flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        np.multiply(from_previous, 1 - tau, out=out[k])
        out[k] += tau * from_current
    return np.clip(out, 0.0, 1.0, out=out)


def in_between_times(t0_us: int, t1_us: int, render_fps: float) -> np.ndarray:
    """Times of the frames to interpolate in ``(t0, t1)``: ``t0 + round(j (t1 - t0) / (n + 1))``,
    ``j = 1..n``, ``n = ceil((t1 - t0) render_fps / 1e6) - 1`` (none when the gap is short enough)."""
    gap = t1_us - t0_us
    count = max(int(math.ceil(gap * render_fps / 1e6 - 1e-9)) - 1, 0)
    steps = np.arange(1, count + 1, dtype=np.float64)
    return t0_us + np.round(steps * gap / (count + 1)).astype(np.int64)


def still_offsets(times_us: np.ndarray, motion: StillMotion) -> np.ndarray:
    """The still's offset ``(dx, dy)`` in sensor pixels at each time, float64 ``[N, 2]`` (see
    :class:`StillMotion`)."""
    t = np.asarray(times_us, dtype=np.float64)
    if motion.kind == "pan":
        dx = motion.pan_px_per_s * (t * 1e-6 - motion.seconds / 2)
        return np.stack([dx, np.zeros_like(dx)], axis=1)
    side = motion.amplitude_px
    vertices = np.array([[0.0, 0.0], [side, 0.0], [side / 2, side * math.sqrt(3) / 2]])
    vertices -= vertices.mean(axis=0)
    phase = (t / (motion.saccade_ms * 1000.0)) % 3.0
    leg = np.floor(phase).astype(np.int64)
    fraction = (phase - leg)[:, None]
    return vertices[leg] * (1 - fraction) + vertices[(leg + 1) % 3] * fraction


# --------------------------------------------------------------------------------------------------
# frames of a sequence


def iter_source_frames(source: VideoSource) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame index, 8-bit grey frame)`` of a video source in order; FileFormatError on a frame that
    cannot be read, and when labels name frames beyond the last one read."""
    last = -1
    if source.frame_files:
        for index, path in source.frame_files:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise FileFormatError(path, "cannot be read as an image")
            yield index, to_grey(frame)
        return
    from streamdet.drivers.video import open_capture

    capture = open_capture(source.video)
    try:
        ok, frame = capture.read()
        if not ok:
            raise FileFormatError(source.video, "the video has no readable frame")
        while ok:
            last += 1
            yield last, to_grey(frame)
            ok, frame = capture.read()
    finally:
        capture.release()
    beyond = [index for index, boxes in source.boxes.items() if boxes and index > last]
    if beyond:
        raise FileFormatError(
            source.label_file,
            f"labels frame {min(beyond) + 1} (counting from 1) but {source.video} has {last + 1} "
            "readable frames",
        )


def video_sensor_frames(
    source: VideoSource, mapping: FitMapping, config: ImportConfig
) -> Iterator[tuple[int, np.ndarray, int | None]]:
    """``(t_us, sensor frame, source frame index or None for an interpolated one)`` in time order: each
    source frame at ``round((k - k_0) 1e6 / fps)`` and, with ``flow``, the frames in between."""
    previous: tuple[int, np.ndarray] | None = None
    first_index: int | None = None
    for index, grey in iter_source_frames(source):
        first_index = index if first_index is None else first_index
        t_us = int(round((index - first_index) * 1e6 / source.fps))
        frame = place_on_sensor(scale_luminance(grey, mapping), mapping, config.sensor_size)
        if previous is not None and config.interpolation == "flow":
            times = in_between_times(previous[0], t_us, config.render_fps)
            if len(times):
                fractions = (times - previous[0]) / (t_us - previous[0])
                yield from zip(
                    times.tolist(),
                    flow_interpolate(previous[1], frame, fractions),
                    [None] * len(times),
                    strict=True,
                )
        yield t_us, frame, index
        previous = (t_us, frame)


def still_sensor_frames(
    source: StillSource, mapping: FitMapping, config: ImportConfig
) -> Iterator[tuple[int, np.ndarray, int | None]]:
    """``(t_us, sensor frame, 0 for the first frame else None)`` of a still moved by
    :func:`still_offsets` at ``render_fps`` from 0 to ``still_motion.seconds``."""
    image = cv2.imread(str(source.image), cv2.IMREAD_COLOR)
    if image is None:
        raise FileFormatError(source.image, "cannot be read as an image")
    scaled = scale_luminance(to_grey(image), mapping)
    times = still_times_us(config)
    for t_us, (dx, dy) in zip(times.tolist(), still_offsets(times, config.still_motion), strict=True):
        yield t_us, place_on_sensor(scaled, mapping, config.sensor_size, (dx, dy)), 0 if t_us == 0 else None


def still_times_us(config: ImportConfig) -> np.ndarray:
    """Frame times of a still's sequence, ``round(k 1e6 / render_fps)`` up to and including its end."""
    end = int(round(config.still_motion.seconds * 1e6))
    times = np.round(np.arange(0, end, 1e6 / config.render_fps)).astype(np.int64)
    return np.unique(np.append(times, end))


# --------------------------------------------------------------------------------------------------
# labels


def choose_label_frames(
    frame_times: dict[int, int], labelled: frozenset[int] | None, window_us: int, every_us: int
) -> list[int]:
    """Frame indices to label: for each ``g_m = window_us + m every_us``, the first labelled frame with
    ``t >= g_m``, each frame once."""
    candidates = sorted(
        (t, index)
        for index, t in frame_times.items()
        if t >= window_us and (labelled is None or index in labelled)
    )
    chosen: list[int] = []
    grid = window_us
    for t_us, index in candidates:
        if t_us >= grid:
            chosen.append(index)
            grid += every_us * max(1, int((t_us - grid) // every_us) + 1)
    return chosen


def corner_motion_px(box_now: np.ndarray, boxes_before: list[np.ndarray | None]) -> float | None:
    """Largest displacement of a corner of ``box_now`` (x1 y1 x2 y2) from the same box at earlier times;
    None when one of them is unknown (the object entered within the window)."""
    largest = 0.0
    corners = np.array([[0, 1], [2, 1], [0, 3], [2, 3]])
    for before in boxes_before:
        if before is None:
            return None
        moved = np.hypot(*(box_now[corners] - before[corners]).T)
        largest = max(largest, float(moved.max()))
    return largest


def track_box_at(times: np.ndarray, boxes: np.ndarray, t_us: float) -> np.ndarray | None:
    """A track's box at ``t_us``, linear between its labelled times; None before its first."""
    if len(times) == 0 or t_us < times[0] or t_us > times[-1]:
        return None
    after = int(np.searchsorted(times, t_us, side="left"))
    if times[after] == t_us:
        return boxes[after]
    weight = (t_us - times[after - 1]) / (times[after] - times[after - 1])
    return boxes[after - 1] * (1 - weight) + boxes[after] * weight


def annotation_record(
    class_name: str,
    box: tuple[float, float, float, float],
    source_box: SourceBox,
    motion_px: float | None,
    config: ImportConfig,
) -> dict | None:
    """The COCO annotation of one box on the sensor (image id left to the caller), or None when no part of
    it is on the sensor. ``ignore_reasons`` lists why it is ignored: ``source`` (the labels or the class
    map), ``small``, ``hidden``, ``still``."""
    width, height = config.sensor_size
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    full = (x2 - x1) * (y2 - y1)
    visible = source_box.visibility * (cx2 - cx1) * (cy2 - cy1) / full
    reasons = []
    if source_box.ignore:
        reasons.append("source")
    if min(cx2 - cx1, cy2 - cy1) < config.min_side_px:
        reasons.append("small")
    if visible < config.min_visible_fraction:
        reasons.append("hidden")
    if motion_px is not None and motion_px < config.min_motion_px:
        reasons.append("still")
    ignore = int(bool(reasons))
    return {
        "category_id": CLASS_NAMES.index(class_name) + 1,
        "bbox": [round(cx1, 2), round(cy1, 2), round(cx2 - cx1, 2), round(cy2 - cy1, 2)],
        "area": round((cx2 - cx1) * (cy2 - cy1), 2),
        "iscrowd": ignore,
        "ignore": ignore,
        "ignore_reasons": reasons,
        "track_id": source_box.track_id,
        "visible_fraction": round(visible, 4),
        "motion_px": None if motion_px is None else round(motion_px, 3),
    }


def video_label_records(
    source: VideoSource, mapping: FitMapping, frame_times: dict[int, int], config: ImportConfig
) -> tuple[list[dict], list[dict]]:
    """Image and annotation records (ids local to the sequence, from 0) of a video's label frames.

    Motion of a box: :func:`corner_motion_px` against its track's boxes (linear between labelled frames)
    at ``t - k motion_window_us / 4``, ``k = 1..4``; None for boxes without a track.
    """
    tracks: dict[int, tuple[list[int], list[np.ndarray]]] = {}
    for index in sorted(source.boxes):
        if index not in frame_times:
            continue
        for box in source.boxes[index]:
            if box.track_id >= 0:
                times, boxes = tracks.setdefault(box.track_id, ([], []))
                times.append(frame_times[index])
                boxes.append(np.array(mapping.map_box(box.box)))
    track_arrays = {key: (np.array(times), np.array(boxes)) for key, (times, boxes) in tracks.items()}
    images: list[dict] = []
    annotations: list[dict] = []
    for index in choose_label_frames(frame_times, source.labelled, config.window_us, config.label_every_us):
        t_us = frame_times[index]
        image_id = len(images)
        images.append(image_record(image_id, source.name, t_us, config, index))
        for box in source.boxes.get(index, ()):
            on_sensor = mapping.map_box(box.box)
            motion = None
            if box.track_id in track_arrays:
                times, boxes = track_arrays[box.track_id]
                before = [
                    track_box_at(times, boxes, t_us - k * config.motion_window_us / 4) for k in range(1, 5)
                ]
                motion = corner_motion_px(np.array(on_sensor), before)
            record = annotation_record(box.class_key, on_sensor, box, motion, config)
            if record is not None:
                annotations.append({"id": len(annotations), "image_id": image_id, **record})
    return images, annotations


def still_label_records(
    source: StillSource, mapping: FitMapping, config: ImportConfig
) -> tuple[list[dict], list[dict]]:
    """Image and annotation records of a still's sequence at ``window_us + m label_every_us``; boxes
    moved by the still's offset, motion the largest offset change over the window before the label."""
    end = int(round(config.still_motion.seconds * 1e6))
    images: list[dict] = []
    annotations: list[dict] = []
    for t_us in range(config.window_us, end + 1, config.label_every_us):
        image_id = len(images)
        images.append(image_record(image_id, source.name, t_us, config, 0))
        earlier = [max(t_us - k * config.motion_window_us / 4, 0.0) for k in range(5)]
        offsets = still_offsets(np.array(earlier), config.still_motion)
        motion = float(np.hypot(*(offsets[1:] - offsets[0]).T).max())
        for box in source.boxes:
            on_sensor = mapping.map_box(box.box, (float(offsets[0, 0]), float(offsets[0, 1])))
            record = annotation_record(box.class_key, on_sensor, box, motion, config)
            if record is not None:
                annotations.append({"id": len(annotations), "image_id": image_id, **record})
    return images, annotations


def image_record(image_id: int, sequence: str, t_us: int, config: ImportConfig, source_frame: int) -> dict:
    """A COCO image record of a split: a time stamp of a sequence, with the source frame it shows."""
    width, height = config.sensor_size
    return {
        "id": image_id,
        "file_name": sequence,
        "sequence": sequence,
        "t_us": int(t_us),
        "width": width,
        "height": height,
        "preset": IMPORTED_PRESET,
        "source_frame": int(source_frame),
    }


# --------------------------------------------------------------------------------------------------
# writing


def encode_sequence(
    frames: Iterator[tuple[int, np.ndarray, int | None]],
    out_dir: Path,
    config: ImportConfig,
    dvs_params: DVSParams,
    spike_params: SpikeCameraParams,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Feed sensor frames to both emulators in chunks of ``chunk_frames`` (state carried over) and write
    ``events.h5``, ``spikes.dat`` and ``spikes.json`` in ``out_dir``, as the builder does.

    Returns:
        ``{"events", "spike_frames", "frame_times": {source frame index: t_us}, "end_us"}``.
    """
    from streamdet.formats import EventFileWriter, SpikeDatLayout, encode_spike_frames, write_spike_sidecar

    out_dir.mkdir(parents=True, exist_ok=True)
    frame_times: dict[int, int] = {}
    dvs_state = spike_state = None
    spike_t0_us = None
    spike_count = 0
    chunk_frames: list[np.ndarray] = []
    chunk_times: list[int] = []
    last_us = 0

    def flush() -> None:
        nonlocal dvs_state, spike_state, spike_t0_us, spike_count
        stack, times = np.stack(chunk_frames), np.array(chunk_times, dtype=np.int64)
        events, dvs_state = emulate_dvs(stack, times, dvs_params, dvs_state)
        spikes, spike_times, spike_state = emulate_spike_camera(stack, times, spike_params, spike_state)
        events_file.append(events)
        if len(spikes):
            spike_t0_us = int(spike_times[0]) if spike_t0_us is None else spike_t0_us
            spikes_file.write(encode_spike_frames(spikes))
            spike_count += len(spikes)
        chunk_frames.clear()
        chunk_times.clear()

    with (
        EventFileWriter(out_dir / "events.h5", config.sensor_size) as events_file,
        (out_dir / "spikes.dat").open("wb") as spikes_file,
    ):
        for t_us, frame, source_index in frames:
            chunk_frames.append(frame)
            chunk_times.append(t_us)
            last_us = t_us
            if source_index is not None:
                frame_times[source_index] = t_us
                if progress is not None:
                    progress(1)
            if len(chunk_frames) >= config.chunk_frames:
                flush()
        if chunk_frames:
            flush()
        event_count = events_file.count
    layout = SpikeDatLayout(
        sensor_size=config.sensor_size,
        frame_us=1e6 / config.spike_rate_hz,
        t0_us=int(spike_t0_us if spike_t0_us is not None else 0),
    )
    write_spike_sidecar(out_dir / "spikes.dat", layout)
    return {"events": event_count, "spike_frames": spike_count, "frame_times": frame_times, "end_us": last_us}


def sequence_dvs(config: ImportConfig, sensor_seed: int) -> DVSParams:
    """The DVS parameters of a sequence: drawn around ``config.dvs`` like the builder's, or fixed."""
    if config.randomise_sensor:
        return randomised_dvs_params(config.dvs, sensor_seed)
    return replace(config.dvs, seed=sensor_seed)


def import_sequence(
    source: Source,
    index: int,
    config: ImportConfig,
    split_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Emulate both sensors over one source and write its folder; returns its records (ids from 0) and
    its ``info.sequences`` entry."""
    _, sensor_seed = sequence_seeds(config.seed, config.split, index)
    dvs_params = sequence_dvs(config, sensor_seed)
    spike_params = SpikeCameraParams(rate_hz=config.spike_rate_hz, seed=sensor_seed)
    mapping = fit_mapping(source.size, config.sensor_size, config.fit)
    out_dir = split_dir / source.name
    if isinstance(source, StillSource):
        frames = still_sensor_frames(source, mapping, config)
    else:
        frames = video_sensor_frames(source, mapping, config)
    written = encode_sequence(frames, out_dir, config, dvs_params, spike_params, progress)
    if isinstance(source, StillSource):
        images, annotations = still_label_records(source, mapping, config)
        origin = {"kind": "still", "image": str(source.image)}
    else:
        images, annotations = video_label_records(source, mapping, written["frame_times"], config)
        origin = {
            "kind": "video",
            "frames": str(source.video) if source.video is not None else str(source.frame_files[0][1].parent),
            "fps": source.fps,
            "source_frames": len(written["frame_times"]),
        }
    entry = {
        "name": source.name,
        "index": index,
        "source": {**origin, "labels": str(source.label_file), "size": list(source.size)},
        "mapping": mapping.as_record(),
        "sensor_seed": sensor_seed,
        "seconds": written["end_us"] / 1e6,
        "events": written["events"],
        "spike_frames": written["spike_frames"],
        "dvs": asdict(dvs_params),
    }
    return {"images": images, "annotations": annotations, "sequence": entry}


def checked_sources(
    sources: list[Source], config: ImportConfig, layout: str
) -> tuple[ImportConfig, list[Source], list[StillSource]]:
    """What :func:`import_split` checks before it writes anything: ``(config with its class map,
    the sources to import, class-mapped and each checked against its frames, the stills set aside for
    holding no box of a mapped class)``. FileFormatError / UserFacingError as the import would stop."""
    if not sources:
        raise UserFacingError("no sequence or still to import")
    if config.class_map is None:
        config = replace(config, class_map=default_class_map(layout))
    sources = map_classes(sources, config.class_map, config.drop_unmapped)
    empty = [
        s for s in sources if isinstance(s, StillSource) and not s.boxes and not config.keep_empty_stills
    ]
    sources = [source for source in sources if not any(source is skipped for skipped in empty)]
    if not sources:
        raise UserFacingError(
            f"no sequence to import: all {len(empty)} stills are without a box of a mapped class "
            "(--keep-empty-stills imports them)"
        )
    for source in sources:
        check_source(source)
    return config, sources, empty


def label_summary(sources: list[Source], skipped_stills: int = 0) -> str:
    """Lines saying what checked ``sources`` hold as the labels state them (``dataset import --check``):
    one per video (frames, labelled frames, boxes by class), then the totals; the card's ignore rules
    (too small, hidden, not moving on the sensor) are applied by the import itself and are not counted."""
    lines = []
    totals: dict[str, int] = {}
    flagged = frames = stills = 0
    for source in sources:
        boxes = (
            source.boxes if isinstance(source, StillSource) else [b for r in source.boxes.values() for b in r]
        )
        counts: dict[str, int] = {}
        for box in boxes:
            counts[box.class_key] = counts.get(box.class_key, 0) + 1
            flagged += box.ignore
        for name, count in counts.items():
            totals[name] = totals.get(name, 0) + count
        listed = ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "no box"
        if isinstance(source, StillSource):
            stills += 1
            continue
        frames += source_frame_count(source)
        labelled = len(source.labelled) if source.labelled is not None else source_frame_count(source)
        lines.append(
            f"{source.name}: video, {source_frame_count(source)} frames at {source.fps:g} fps, "
            f"{labelled} labelled, {source.size[0]}x{source.size[1]}; boxes: {listed}"
        )
    listed = ", ".join(f"{name} {count}" for name, count in sorted(totals.items())) or "no box"
    videos = len(sources) - stills
    lines.append(
        f"total: {videos} video{'s' * (videos != 1)} ({frames} frames), {stills} still{'s' * (stills != 1)}"
        + (f" ({skipped_stills} more without a box of a mapped class, left out)" if skipped_stills else "")
        + f"; boxes: {listed} ({flagged} marked ignore by the labels or the class map)"
    )
    return "\n".join(lines)


def import_split(
    sources: list[Source],
    config: ImportConfig,
    out_dir: str | Path,
    layout: str,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> Path:
    """Write ``out_dir/<split>``: each source's folder, then ``annotations.json`` (last, atomically: a split
    interrupted before it is not a split :class:`streamdet.dataset.DatasetSplit` opens).

    Sources are class-mapped (:func:`map_classes`) and checked (:func:`check_source`) before anything is
    written; stills without a box are skipped unless ``keep_empty_stills``. ``progress`` is called with
    the number of source frames (1 per still) done: per frame in this process, per finished source with
    ``workers > 1`` processes (one source each at a time), the skipped stills at once. The output does
    not depend on ``workers``.

    Returns:
        Path of the written ``annotations.json``.
    """
    config, sources, empty = checked_sources(sources, config, layout)
    split_dir = Path(out_dir) / config.split
    if split_dir.exists() and any(split_dir.iterdir()):
        if not overwrite:
            raise UserFacingError(f"{split_dir} exists and is not empty (pass --overwrite to replace it)")
        shutil.rmtree(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    if empty and progress is not None:
        progress(len(empty))
    if workers <= 1 or len(sources) == 1:
        results = [
            import_sequence(source, index, config, split_dir, progress)
            for index, source in enumerate(sources)
        ]
    else:
        results = _import_in_workers(sources, config, split_dir, workers, progress)
    return write_import_annotations(config, split_dir, results, layout, skipped=len(empty))


def _import_one(arguments: tuple[Source, int, ImportConfig, Path]) -> dict:
    return import_sequence(*arguments)


def _import_in_workers(
    sources: list[Source],
    config: ImportConfig,
    split_dir: Path,
    workers: int,
    progress: Callable[[int], None] | None,
) -> list[dict]:
    """:func:`import_sequence` of every source in a pool of processes, results in source order; Ctrl-C
    in the parent terminates the workers (they ignore it).

    Workers come from a fork server that imported this module and nothing else: a plain fork of this
    process can copy OpenCV's or a video backend's thread pool in a locked state and hang the worker (it
    did in tests, after the parent had run OpenCV), and a fresh interpreter per worker re-imports torch.
    """
    import multiprocessing

    from streamdet.dataset import _ignore_interrupts_in_worker

    jobs = [(source, index, config, split_dir) for index, source in enumerate(sources)]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pool = context.Pool(min(workers, len(sources)), initializer=_ignore_interrupts_in_worker)
    results = []
    try:
        for result in pool.imap(_import_one, jobs):
            results.append(result)
            if progress is not None:
                progress(result["sequence"]["source"].get("source_frames", 1))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results


def write_import_annotations(
    config: ImportConfig, split_dir: Path, results: list[dict], layout: str, skipped: int = 0
) -> Path:
    """Merge per-sequence records into ``split_dir/annotations.json`` with split-wide ids (from 1);
    ``skipped``: stills left out for want of a box."""
    images, annotations = merge_sequence_records(results)
    info = {
        "format": ANNOTATIONS_VERSION,
        "description": "labelled footage imported through streamdet's DVS and spike-camera emulators",
        "presets": [IMPORTED_PRESET],
        "preset": IMPORTED_PRESET,
        "seed": config.seed,
        "split": config.split,
        "window_us": config.window_us,
        "sensor": list(config.sensor_size),
        "spike_rate_hz": config.spike_rate_hz,
        "label_every_ms": config.label_every_ms,
        "render_fps": config.render_fps,
        "seed_rule": "SeedSequence(entropy=seed, spawn_key=(split_code, index)).generate_state(2, uint64)[1]",
        "split_codes": SPLIT_CODES,
        "dvs": asdict(config.dvs),
        "randomise_sensor": config.randomise_sensor,
        "import": {
            "layout": layout,
            "fit": config.fit,
            "interpolation": config.interpolation,
            "still_motion": asdict(config.still_motion),
            "class_map": {key: asdict(target) for key, target in sorted((config.class_map or {}).items())},
            "drop_unmapped": config.drop_unmapped,
            "keep_empty_stills": config.keep_empty_stills,
            "skipped_empty_stills": skipped,
            "min_side_px": config.min_side_px,
            "min_visible_fraction": config.min_visible_fraction,
            "min_motion_px": config.min_motion_px,
            "motion_window_us": config.motion_window_us,
        },
        "built_with": renderer_versions(),
        "sequences": [result["sequence"] for result in results],
    }
    coco = {"info": info, "images": images, "annotations": annotations, "categories": coco_categories()}
    path = split_dir / "annotations.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(coco))
    partial.replace(path)
    return path


def source_frame_count(source: Source) -> int:
    """Frames a progress bar counts for a source: its frames (1 for a still; 0 where a video file does
    not say)."""
    if isinstance(source, StillSource):
        return 1
    return len(source.frame_files) or source.frame_count
