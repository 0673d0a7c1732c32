"""Box files of Prophesee's automotive datasets (Gen1 Automotive, 1 Mpx / Gen4 Automotive): read, write,
turn into COCO ground truth, and export detections to them.

A box file ``<recording>_bbox.npy`` is a 1-D numpy structured array saved with ``np.save``, one record
per box, sorted by time: ``t`` (microseconds on the clock of the recording's events), ``x``, ``y`` (top
left corner, pixels), ``w``, ``h`` (pixels), ``class_id`` (index into the dataset's class list),
``class_confidence`` (1 for labels, the score for detections) and ``track_id``. Three layouts exist:

- :data:`BBOX_DTYPE`, the layout Prophesee's toolbox defines (``src/io/box_loading.py``) and converts
  every file to; it is Metavision's ``EventBbox``: ``t <i8, x, y, w, h <f4, class_id <u4, track_id <u4,
  class_confidence <f4``, 4 bytes of padding, 40 bytes a record. :func:`write_bbox_file` writes it.
- :data:`GEN1_FILE_DTYPE`, the Gen1 files (older naming): ``ts <u8, x, y, w, h <f4, class_id u1,
  confidence <f4, track_id <u4``, packed, 29 bytes a record.
- :data:`MPX_FILE_DTYPE`, the 1 Mpx files: the same with ``t`` and ``class_confidence``.

:func:`read_bbox_file` reads any of them (and any other integer / float widths of the same fields), renames
``ts`` -> ``t`` and ``confidence`` -> ``class_confidence`` as the toolbox's ``reformat_boxes`` does, and
returns :data:`BBOX_DTYPE`. docs/formats.md ("Prophesee box files") says which public source each field
was checked against.

Evaluation (:func:`folder_ground_truth`, used by ``streamdet.evaluate.evaluate_prophesee_folder``): every
distinct box time ``t`` of a recording is one COCO image; its model input is the window
``(t - window_us, t]`` of the recording's events, as for a built split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamdet.errors import FileFormatError, UserFacingError

BBOX_DTYPE = np.dtype(
    {
        "names": ["t", "x", "y", "w", "h", "class_id", "track_id", "class_confidence"],
        "formats": ["<i8", "<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "<f4"],
        "offsets": [0, 8, 12, 16, 20, 24, 28, 32],
        "itemsize": 40,
    }
)
"""Prophesee's toolbox ``BBOX_DTYPE`` (= Metavision ``EventBbox``): what the reader returns and the writer
writes by default."""

GEN1_FILE_DTYPE = np.dtype(
    [
        ("ts", "<u8"),
        ("x", "<f4"),
        ("y", "<f4"),
        ("w", "<f4"),
        ("h", "<f4"),
        ("class_id", "u1"),
        ("confidence", "<f4"),
        ("track_id", "<u4"),
    ]
)
"""The layout of the Gen1 Automotive ``_bbox.npy`` files (older field names ``ts``, ``confidence``)."""

MPX_FILE_DTYPE = np.dtype(
    [
        ("t", "<u8"),
        ("x", "<f4"),
        ("y", "<f4"),
        ("w", "<f4"),
        ("h", "<f4"),
        ("class_id", "u1"),
        ("class_confidence", "<f4"),
        ("track_id", "<u4"),
    ]
)
"""The layout of the 1 Mpx Automotive ``_bbox.npy`` files."""

FILE_LAYOUTS = {"toolbox": BBOX_DTYPE, "gen1": GEN1_FILE_DTYPE, "1mpx": MPX_FILE_DTYPE}
"""Layouts :func:`write_bbox_file` can write, by name."""

DATASET_CLASSES = {
    "gen1": ("car", "pedestrian"),
    "1mpx": ("pedestrian", "two wheeler", "car", "truck", "bus", "traffic sign", "traffic light"),
}
"""Class names by ``class_id`` of each dataset (the toolbox's ``LABELMAP`` and ``LABELMAP_LARGE``)."""

BBOX_SUFFIX = "_bbox.npy"
"""File name ending of a box file; the recording is ``<stem>`` + one of :data:`RECORDING_SUFFIXES`."""

RECORDING_SUFFIXES = ("_td.dat", "_td.raw", "_td.h5", ".dat", ".raw", ".h5")
"""Endings of the events file that goes with ``<stem>_bbox.npy``, tried in this order."""

_TIME_FIELDS = ("t", "ts")
_CONFIDENCE_FIELDS = ("class_confidence", "confidence")
_FLOAT_FIELDS = ("x", "y", "w", "h")


# --------------------------------------------------------------------------------------------------
# reading and writing


def _one_of(path: Path, names: Sequence[str], candidates: Sequence[str], required: bool) -> str | None:
    present = [name for name in candidates if name in names]
    if len(present) > 1:
        raise FileFormatError(path, f"has both fields {present[0]!r} and {present[1]!r}; expected one")
    if not present and required:
        raise FileFormatError(
            path, f"missing field {' or '.join(repr(c) for c in candidates)} (fields: {', '.join(names)})"
        )
    return present[0] if present else None


def _check_kind(path: Path, array: np.ndarray, name: str, kinds: str, expected: str) -> None:
    dtype = array.dtype.fields[name][0]
    if dtype.kind not in kinds:
        raise FileFormatError(path, f"field {name!r} is {dtype}; expected {expected}")


def boxes_from_array(array: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Check a box array and return it as :data:`BBOX_DTYPE` (``ts`` -> ``t``, ``confidence`` ->
    ``class_confidence``; a missing ``class_confidence`` or ``track_id`` becomes 0, as in the toolbox's
    ``reformat_boxes``).

    Raises :class:`FileFormatError` naming ``path`` for: not a 1-D structured array; a missing field
    (``t``/``ts``, ``x``, ``y``, ``w``, ``h``, ``class_id``); a field of the wrong kind (times, class and
    track ids must be integers, coordinates and confidence numbers); a negative time; times that
    decrease; a negative or non-finite size or coordinate.
    """
    path = Path(path)
    names = array.dtype.names
    if names is None or array.ndim != 1:
        raise FileFormatError(
            path, f"not a 1-D structured array of boxes (shape {array.shape}, dtype {array.dtype})"
        )
    time_field = _one_of(path, names, _TIME_FIELDS, required=True)
    for name in (*_FLOAT_FIELDS, "class_id"):
        _one_of(path, names, (name,), required=True)
    confidence_field = _one_of(path, names, _CONFIDENCE_FIELDS, required=False)
    _check_kind(path, array, time_field, "iu", "integer microseconds (<u8 or <i8)")
    for name in _FLOAT_FIELDS:
        _check_kind(path, array, name, "fiu", "pixels (float32)")
    _check_kind(path, array, "class_id", "iu", "an unsigned integer class index")
    if "track_id" in names:
        _check_kind(path, array, "track_id", "iu", "an unsigned integer")
    if confidence_field is not None:
        _check_kind(path, array, confidence_field, "fiu", "a number (float32)")

    times = array[time_field].astype(np.int64)
    if len(times) and times.min() < 0:
        index = int(np.argmin(times))
        raise FileFormatError(path, f"negative time {times[index]} us at box {index}")
    decreasing = np.flatnonzero(np.diff(times) < 0)
    if len(decreasing):
        i = int(decreasing[0])
        raise FileFormatError(
            path, f"times are not sorted: box {i + 1} at {times[i + 1]} us follows box {i} at {times[i]} us"
        )
    for name in _FLOAT_FIELDS:
        values = array[name].astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise FileFormatError(path, f"field {name!r} of box {bad[0]} is {values[bad[0]]}")
    for name in ("w", "h"):
        negative = np.flatnonzero(array[name] < 0)
        if len(negative):
            i = int(negative[0])
            raise FileFormatError(
                path, f"negative size: {name} = {array[name][i]} at box {i} (t = {times[i]} us)"
            )
    if np.any(array["class_id"].astype(np.int64) < 0):
        i = int(np.flatnonzero(array["class_id"].astype(np.int64) < 0)[0])
        raise FileFormatError(path, f"negative class_id {array['class_id'][i]} at box {i}")

    boxes = np.zeros(len(array), dtype=BBOX_DTYPE)
    boxes["t"] = times
    for name in (*_FLOAT_FIELDS, "class_id"):
        boxes[name] = array[name]
    if confidence_field is not None:
        boxes["class_confidence"] = array[confidence_field]
    if "track_id" in names:
        boxes["track_id"] = array["track_id"]
    return boxes


def read_bbox_file(path: str | Path) -> np.ndarray:
    """Read a ``_bbox.npy`` box file (any layout of the module docstring) as :data:`BBOX_DTYPE`, checked
    by :func:`boxes_from_array`."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise FileFormatError(path, f"not a readable .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise FileFormatError(path, "holds several arrays (.npz); expected one structured array")
    return boxes_from_array(array, path)


def write_bbox_file(path: str | Path, boxes: np.ndarray, layout: str = "toolbox") -> Path:
    """Write boxes (any array :func:`boxes_from_array` accepts) with ``np.save`` in ``layout``:
    ``toolbox`` (:data:`BBOX_DTYPE`), ``gen1`` (:data:`GEN1_FILE_DTYPE`) or ``1mpx``
    (:data:`MPX_FILE_DTYPE`). Returns the path."""
    if layout not in FILE_LAYOUTS:
        raise UserFacingError(f"unknown box file layout {layout!r}; choose {', '.join(FILE_LAYOUTS)}")
    path = Path(path)
    checked = boxes_from_array(np.asarray(boxes), path)
    dtype = FILE_LAYOUTS[layout]
    out = np.zeros(len(checked), dtype=dtype)
    renamed = {"ts": "t", "confidence": "class_confidence"}
    for name in dtype.names:
        out[name] = checked[renamed.get(name, name)]
    np.save(path, out)
    return path


def detections_to_bbox(
    rows: np.ndarray, t_us: int, class_ids: Sequence[int] | None = None, track_id: int = 0
) -> np.ndarray:
    """Detection rows ``[N, 6]`` ``x1, y1, x2, y2, score, class`` (the wire's layout, class = index into
    the message's ``class_names``) of the window ending at ``t_us`` -> :data:`BBOX_DTYPE` records:
    ``t = t_us``, ``x = x1``, ``y = y1``, ``w = x2 - x1``, ``h = y2 - y1``, ``class_confidence = score``,
    ``class_id = class_ids[class]`` (``class`` itself when ``class_ids`` is ``None``), ``track_id``
    (0: streamdet does not track)."""
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    labels = np.round(rows[:, 5]).astype(np.int64)
    if class_ids is not None:
        lookup = np.asarray(class_ids, dtype=np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(lookup)):
            raise UserFacingError(
                f"class index {labels.max()} has no Prophesee class_id in {list(class_ids)}"
            )
        labels = lookup[labels]
    boxes = np.zeros(len(rows), dtype=BBOX_DTYPE)
    boxes["t"] = int(t_us)
    boxes["x"], boxes["y"] = rows[:, 0], rows[:, 1]
    boxes["w"], boxes["h"] = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    boxes["class_confidence"] = rows[:, 4]
    boxes["class_id"] = labels
    boxes["track_id"] = int(track_id)
    return boxes


# --------------------------------------------------------------------------------------------------
# class names


@dataclass(frozen=True)
class ClassMap:
    """Which Prophesee ``class_id`` is which of our class names.

    ``mapped``: ``(class_id, name)`` pairs scored as that class. ``ignored``: ``(class_id, name)`` pairs
    whose boxes become ignore regions (COCO ``iscrowd``) of that class: a detection of ``name`` on them
    is neither a hit nor a false positive (e.g. trucks for a car detector). Boxes of any other
    ``class_id`` are left out, so a detection on them counts as a false positive.
    """

    mapped: tuple[tuple[int, str], ...]
    ignored: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        ids = [class_id for class_id, _ in (*self.mapped, *self.ignored)]
        for class_id, name in (*self.mapped, *self.ignored):
            if int(class_id) < 0 or not str(name):
                raise UserFacingError(f"class map entry {class_id}={name!r}: need class_id >= 0 and a name")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise UserFacingError(f"class map names class_id {duplicates[0]} twice")
        if not self.mapped:
            raise UserFacingError("class map maps no class_id to a class to score")

    def names(self) -> set[str]:
        """Our class names this map refers to."""
        return {name for _, name in (*self.mapped, *self.ignored)}


CLASS_MAPS = {
    "gen1": ClassMap(mapped=((0, "car"), (1, "pedestrian"))),
    "1mpx": ClassMap(mapped=((0, "pedestrian"), (2, "car")), ignored=((3, "car"), (4, "car"))),
}
"""Presets: Gen1 car, pedestrian as they are; 1 Mpx pedestrian and car, with truck and bus as ignore
regions of car, two wheeler and traffic signs / lights left out."""


def parse_class_map(text: str) -> ClassMap:
    """``gen1``, ``1mpx`` (:data:`CLASS_MAPS`) or ``ID=NAME,...`` with ``ID=ignore:NAME`` for ignore
    regions, e.g. ``0=car,1=pedestrian`` or ``0=pedestrian,2=car,3=ignore:car``."""
    key = text.strip().lower()
    if key in CLASS_MAPS:
        return CLASS_MAPS[key]
    mapped, ignored = [], []
    for part in filter(None, (p.strip() for p in text.split(","))):
        class_id, sep, name = part.partition("=")
        if not sep or not class_id.strip().isdigit() or not name.strip():
            raise UserFacingError(
                f"class map entry {part!r}: expected ID=NAME or ID=ignore:NAME (or a preset: "
                f"{', '.join(CLASS_MAPS)})"
            )
        name = name.strip()
        if name.startswith("ignore:"):
            ignored.append((int(class_id), name.removeprefix("ignore:").strip()))
        else:
            mapped.append((int(class_id), name))
    return ClassMap(mapped=tuple(mapped), ignored=tuple(ignored))


# --------------------------------------------------------------------------------------------------
# a folder of recordings as COCO ground truth


@dataclass(frozen=True)
class PropheseeRecording:
    """One recording of a folder: its name (``<stem>``), events file and box file."""

    name: str
    events_path: Path
    bbox_path: Path


def find_recordings(folder: str | Path) -> list[PropheseeRecording]:
    """Every ``<stem>_bbox.npy`` in ``folder`` (not its subfolders), sorted by name, with its events file
    ``<stem>`` + the first of :data:`RECORDING_SUFFIXES` that exists."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserFacingError(f"{folder}: not a folder")
    recordings = []
    for bbox_path in sorted(folder.glob(f"*{BBOX_SUFFIX}")):
        stem = bbox_path.name[: -len(BBOX_SUFFIX)]
        candidates = [folder / f"{stem}{suffix}" for suffix in RECORDING_SUFFIXES]
        events_path = next((path for path in candidates if path.is_file()), None)
        if events_path is None:
            raise FileFormatError(
                bbox_path, f"no events file beside it ({', '.join(p.name for p in candidates)})"
            )
        recordings.append(PropheseeRecording(stem, events_path, bbox_path))
    if not recordings:
        raise UserFacingError(f"{folder}: no *{BBOX_SUFFIX} box files")
    return recordings


def recording_sensor_size(path: str | Path) -> tuple[int, int]:
    """``(W, H)`` of an events file: what its header or attributes state, else (one streamed pass) the
    smallest sensor holding every event (``streamdet.formats.recording_info``)."""
    from streamdet import formats

    size = formats.header_sensor_size(path)
    if size is None:
        info = formats.recording_info(path)
        size = (info.width, info.height)
    return int(size[0]), int(size[1])


def clip_boxes_to_sensor(boxes: np.ndarray, sensor_size: tuple[int, int]) -> np.ndarray:
    """Boxes cut to the sensor ``[0, W] x [0, H]`` (the datasets hold boxes reaching outside it); boxes
    left with no area are dropped."""
    width, height = sensor_size
    x1 = np.clip(boxes["x"], 0, width)
    y1 = np.clip(boxes["y"], 0, height)
    x2 = np.clip(boxes["x"] + boxes["w"], 0, width)
    y2 = np.clip(boxes["y"] + boxes["h"], 0, height)
    clipped = boxes.copy()
    clipped["x"], clipped["y"], clipped["w"], clipped["h"] = x1, y1, x2 - x1, y2 - y1
    return clipped[(clipped["w"] > 0) & (clipped["h"] > 0)]


def recording_ground_truth(
    boxes: np.ndarray,
    sequence: str,
    sensor_size: tuple[int, int],
    class_map: ClassMap,
    class_names: Sequence[str],
    first_image_id: int = 1,
    first_annotation_id: int = 1,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO ``images`` and ``annotations`` of one recording's boxes: one image per distinct time ``t``
    (``{id, file_name, sequence, t_us, width, height}``), one annotation per box whose ``class_id`` the
    map names (``category_id`` = index of the name in ``class_names`` + 1, ``iscrowd`` = ``ignore`` = 1
    for ignored classes). Boxes are clipped to the sensor first (:func:`clip_boxes_to_sensor`)."""
    category_of = {name: i + 1 for i, name in enumerate(class_names)}
    unknown = sorted(class_map.names() - set(category_of))
    if unknown:
        raise UserFacingError(
            f"class map names {unknown}, which the model does not have ({', '.join(class_names)})"
        )
    scored = dict(class_map.mapped)
    ignored = dict(class_map.ignored)
    width, height = sensor_size
    times = np.unique(boxes["t"])
    images = [
        {
            "id": first_image_id + k,
            "file_name": sequence,
            "sequence": sequence,
            "t_us": int(t),
            "width": int(width),
            "height": int(height),
        }
        for k, t in enumerate(times.tolist())
    ]
    image_of_time = {int(t): first_image_id + k for k, t in enumerate(times.tolist())}
    annotations = []
    for box in clip_boxes_to_sensor(boxes, sensor_size):
        class_id = int(box["class_id"])
        if class_id not in scored and class_id not in ignored:
            continue
        crowd = int(class_id not in scored)
        name = scored.get(class_id, ignored.get(class_id))
        w, h = float(box["w"]), float(box["h"])
        annotations.append(
            {
                "id": first_annotation_id + len(annotations),
                "image_id": image_of_time[int(box["t"])],
                "category_id": category_of[name],
                "bbox": [float(box["x"]), float(box["y"]), w, h],
                "area": w * h,
                "iscrowd": crowd,
                "ignore": crowd,
                "track_id": int(box["track_id"]),
            }
        )
    return images, annotations


def folder_ground_truth(
    folder: str | Path,
    class_map: ClassMap,
    class_names: Sequence[str],
    sensor_sizes: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[dict[str, Any], list[tuple[PropheseeRecording, int]]]:
    """The COCO ground truth of a folder of recordings and its images as ``(recording, t_us)``, in the
    order of the COCO ``images`` (recordings by name, times increasing).

    Args:
        folder: ``<stem>_bbox.npy`` files beside their events files (:func:`find_recordings`).
        class_map: which ``class_id`` is which class.
        class_names: the model's classes; category ids are their index + 1.
        sensor_sizes: ``(W, H)`` of each recording by name; ``None``: :func:`recording_sensor_size`.

    Returns:
        ``(coco, images)``; ``coco`` has ``info``, ``images``, ``annotations``, ``categories``.
    """
    recordings = find_recordings(folder)
    images, annotations, order = [], [], []
    for recording in recordings:
        boxes = read_bbox_file(recording.bbox_path)
        if sensor_sizes is None:
            sensor_size = recording_sensor_size(recording.events_path)
        elif recording.name in sensor_sizes:
            sensor_size = sensor_sizes[recording.name]
        else:
            raise UserFacingError(f"{recording.events_path}: no sensor size given for {recording.name!r}")
        rec_images, rec_annotations = recording_ground_truth(
            boxes,
            recording.name,
            sensor_size,
            class_map,
            class_names,
            first_image_id=len(images) + 1,
            first_annotation_id=len(annotations) + 1,
        )
        images += rec_images
        annotations += rec_annotations
        order += [(recording, image["t_us"]) for image in rec_images]
    coco = {
        "info": {"source": "prophesee", "folder": str(folder)},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(class_names)],
    }
    return coco, order


def split_to_prophesee_folder(
    split_dir: str | Path, out_dir: str | Path, classes: Sequence[str], layout: str = "toolbox"
) -> list[PropheseeRecording]:
    """Write a built split (``streamdet dataset build``) as a folder of Prophesee recordings: per
    sequence ``<sequence>.h5`` (a copy of its ``events.h5``) and ``<sequence>_bbox.npy``.

    A box of class ``classes[i]`` gets ``class_id = i``, or ``len(classes) + i`` when the split marks it
    ignored (``iscrowd``), so ``0=car,1=pedestrian,2=ignore:car,3=ignore:pedestrian`` scores the folder
    as the split is scored; boxes of other classes are left out. Times are the images' ``t_us``,
    ``class_confidence`` 1. Returns the recordings written.
    """
    import json
    import shutil

    split_dir, out_dir = Path(split_dir), Path(out_dir)
    annotations_path = split_dir / "annotations.json"
    if not annotations_path.is_file():
        raise UserFacingError(f"{split_dir}: no annotations.json (not a built split)")
    coco = json.loads(annotations_path.read_text())
    name_of = {category["id"]: category["name"] for category in coco["categories"]}
    images = {image["id"]: image for image in coco["images"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sequence in sorted({image["sequence"] for image in coco["images"]}):
        rows = sorted(
            (
                images[a["image_id"]]["t_us"],
                a["bbox"],
                list(classes).index(name_of[a["category_id"]]) + len(classes) * int(bool(a.get("iscrowd"))),
                int(a.get("track_id", 0)),
            )
            for a in coco["annotations"]
            if images[a["image_id"]]["sequence"] == sequence and name_of[a["category_id"]] in classes
        )
        boxes = np.zeros(len(rows), dtype=BBOX_DTYPE)
        boxes["t"] = [row[0] for row in rows]
        for k, name in enumerate(("x", "y", "w", "h")):
            boxes[name] = [row[1][k] for row in rows]
        boxes["class_id"] = [row[2] for row in rows]
        boxes["track_id"] = [row[3] for row in rows]
        boxes["class_confidence"] = 1.0
        events_path = out_dir / f"{sequence}.h5"
        shutil.copyfile(split_dir / sequence / "events.h5", events_path)
        bbox_path = write_bbox_file(out_dir / f"{sequence}{BBOX_SUFFIX}", boxes, layout=layout)
        written.append(PropheseeRecording(sequence, events_path, bbox_path))
    return written
