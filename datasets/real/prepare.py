"""Lay out the raw files of the real-scene sources (datasets/real/README.md) for ``streamdet dataset import``.

Five sources need a small, mechanical step before the importer reads them; this script does exactly
that and nothing else (no pixel is changed, and no box of the source):

- ``ngsim``: each ``SequenceN/annotations/GT.json`` of the NGSIM US-101 annotations is a COCO file
  whose images are consecutive frames of one fixed-camera video, but it states no ``video_id``, so the
  importer would read every frame as a separate still. ``SequenceN/images/test/video.json`` is written
  beside the frames: the same file with a ``videos`` record (``fps``, default 10) and, on each image,
  ``video_id = 1`` and ``frame_id`` = the number in its file name.
- ``coco128``: the images holding a person, car or boat are split into train / val / test by
  ``datasets/real/coco128-splits.txt``; ``OUT/coco128/<split>/images`` and ``labels`` get symbolic
  links to the raw files.
- ``robotx``: the 96 labelled frames of ``1440_whitebuoy`` are split in time blocks (frames 0-63
  train, 64-75 val, 76-95 test) into ``OUT/robotx-buoys/<split>``; label lines holding only ``7``
  (the source's "Background" class with no box) are left out, the other lines are copied as they are.
- ``meva``: each of the three MEVA clips (``scenarios/real-video-v2/<clip>/ground_truth.jsonl``, JPEG
  frames in ``scenario-catalog/media/real-video-v2/<clip>/frames``) becomes a MOT-layout sequence
  ``OUT/meva/<clip>``: ``img1/000001.jpg`` ... (links to the frames), ``seqinfo.ini`` (30 fps) and
  ``gt/gt.txt`` (``person`` class 1, ``vehicle`` class 3, one track id per ``target_id``), plus one
  ignore row (conf 0, class 3) per frame for each parked vehicle of ``datasets/real/meva-parked.csv``,
  which the clips' labels leave unboxed (they box only what moves or takes part in an activity).
- ``motchallenge``: each MOT17 / MOT20 sequence CVBench ships as a small video
  (``scenarios/motchallenge-v1/public/<seq>.mp4``, 480x270) with its ground truth
  (``<seq>-ground-truth.jsonl.gz``, boxes in the 1920x1080 pixels of the original frames, sizes and
  rates in ``scenarios/motchallenge-v1/ingest-manifest.json``) becomes ``OUT/motchallenge/<seq>.mp4`` (a
  link) and ``<seq>.txt``, a MOT ``gt.txt`` in the video's pixels: ``person-*`` targets class 1, and
  each ``ignore-cKK-*`` target its MOT class ``KK`` (the number CVBench keeps in the id) with ``conf = 0``,
  but for cars (class 3), which MOT boxes in every frame and leaves out of its pedestrian score only:
  they are scored here (``conf = 1``), since the detector has a car class.

    python datasets/real/prepare.py --raw RAW --out PREPARED

A source whose folder ``RAW/<source>`` is absent is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
from pathlib import Path

ROBOTX_BLOCKS: tuple[tuple[str, int, int], ...] = (("train", 0, 63), ("val", 64, 75), ("test", 76, 95))
"""``(split, first frame, last frame)`` of the RobotX buoy frames ``buoy_0000<n>``."""


def as_video(coco: dict, name: str, fps: float) -> dict:
    """A copy of ``coco`` whose images are frames of one video: ``video_id`` 1, ``frame_id`` from the
    file name's stem (``"17.jpg"`` -> 17), and a ``videos`` record ``{"id": 1, "name", "fps"}``.

    Raises:
        ValueError: a non-positive ``fps``, a file name whose stem is not an integer, or two images
            with one frame number.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = []
    seen: dict[int, str] = {}
    for image in coco["images"]:
        file_name = str(image["file_name"])
        stem = Path(file_name).stem
        if not stem.isdigit():
            raise ValueError(f"image {image['id']}: file name {file_name!r} is not <frame number>.<ext>")
        frame = int(stem)
        if frame in seen:
            raise ValueError(f"frame {frame} is named twice: {seen[frame]!r} and {file_name!r}")
        seen[frame] = file_name
        images.append({**image, "video_id": 1, "frame_id": frame})
    return {**coco, "images": images, "videos": [{"id": 1, "name": name, "fps": fps}]}


def prepare_ngsim(raw: Path, fps: float) -> None:
    """Write ``SequenceN/images/test/video.json`` for each ``SequenceN/annotations/GT.json`` in ``raw``."""
    for gt in sorted(raw.glob("Sequence*/annotations/GT.json")):
        sequence = gt.parent.parent
        name = f"ngsim-us101-seq{sequence.name.removeprefix('Sequence')}"
        coco = json.loads(gt.read_text(encoding="utf-8"))
        out = sequence / "images" / "test" / "video.json"
        out.write_text(json.dumps(as_video(coco, name, fps)), encoding="utf-8")
        print(f"{out}: {len(coco['images'])} frames of {name} at {fps} fps")


def prepare_coco128(raw: Path, out: Path, splits_file: Path) -> None:
    """Link the coco128 images and labels listed in ``splits_file`` (``<stem> <split>`` lines) into
    ``out/<split>/images`` and ``out/<split>/labels``."""
    for line in splits_file.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        stem, split = line.split()
        for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):
            source = raw / kind / "train" / f"{stem}{suffix}"
            if not source.is_file():
                raise FileNotFoundError(f"{splits_file}: {stem} is listed but {source} is missing")
            target = out / split / kind / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            target.symlink_to(source.resolve())
    print(f"{out}: coco128 split by {splits_file}")


def prepare_robotx(raw: Path, out: Path) -> None:
    """Copy the RobotX frames into ``out/<split>`` by :data:`ROBOTX_BLOCKS`, with ``classes.txt``;
    label lines that are only ``7`` (Background, no box) are left out."""
    for split, first, last in ROBOTX_BLOCKS:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(raw / "classes.txt", folder / "classes.txt")
        for frame in range(first, last + 1):
            image = raw / f"buoy_0000{frame}.png"
            if not image.is_file():
                continue
            shutil.copy2(image, folder / image.name)
            label = image.with_suffix(".txt")
            if label.is_file():
                rows = label.read_text(encoding="utf-8").split("\n")
                lines = [row for row in rows if row.strip() not in ("", "7")]
                (folder / label.name).write_text("".join(f"{row}\n" for row in lines), encoding="utf-8")
    print(f"{out}: RobotX frames in blocks {ROBOTX_BLOCKS}")


MEVA_CLASSES: dict[str, int] = {"person": 1, "vehicle": 3}
"""MEVA class -> MOT class id (1 pedestrian, 3 car in the importer's MOT mapping)."""

MEVA_FPS = 30
"""The MEVA clips' frame rate (each frame's ``source_timestamp_ns`` is a multiple of 1/30 s)."""


def parked_regions(table: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """The ignore regions of ``meva-parked.csv`` (``clip,x0,y0,x1,y1`` rows, ``#`` comments) by clip."""
    lines = [line for line in table.read_text(encoding="utf-8").split("\n") if line and line[0] != "#"]
    regions: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in csv.DictReader(lines):
        box = (float(row["x0"]), float(row["y0"]), float(row["x1"]), float(row["y1"]))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{table}: clip {row['clip']}: empty region {box}")
        regions.setdefault(row["clip"], []).append(box)
    return regions


def meva_mot_rows(
    labels: list[dict], frame_count: int, parked: list[tuple[float, float, float, float]]
) -> list[str]:
    """MOT ``gt.txt`` lines (``frame,id,x,y,w,h,conf,class,visibility``, frames from 1) of one MEVA
    clip: its label rows (``bbox_xyxy``, ``class_id``, ``target_id``, ``source_timestamp_ns``; frame k
    at k/30 s) and, on every frame, one ignore row per ``parked`` region (ids after the clip's tracks).

    Raises:
        ValueError: a class outside :data:`MEVA_CLASSES`, or a label time that is not a frame of the clip.
    """
    track_ids: dict[str, int] = {}
    rows: list[tuple[int, int, str]] = []
    for label in labels:
        if label["class_id"] not in MEVA_CLASSES:
            raise ValueError(f"unmapped MEVA class {label['class_id']!r} (known: {sorted(MEVA_CLASSES)})")
        frame = round(label["source_timestamp_ns"] * MEVA_FPS / 1e9)
        if not 0 <= frame < frame_count:
            raise ValueError(f"label at {label['source_timestamp_ns']} ns is not one of {frame_count} frames")
        track = track_ids.setdefault(label["target_id"], len(track_ids) + 1)
        x0, y0, x1, y1 = label["bbox_xyxy"]
        cls = MEVA_CLASSES[label["class_id"]]
        rows.append((frame + 1, track, f"{x0:.3f},{y0:.3f},{x1 - x0:.3f},{y1 - y0:.3f},1,{cls},1"))
    for k, (x0, y0, x1, y1) in enumerate(parked):
        track = len(track_ids) + 1 + k
        for frame in range(frame_count):
            rows.append((frame + 1, track, f"{x0:g},{y0:g},{x1 - x0:g},{y1 - y0:g},0,3,1"))
    return [f"{frame},{track},{rest}" for frame, track, rest in sorted(rows)]


def prepare_meva(raw: Path, out: Path, parked_table: Path) -> None:
    """Write each MEVA clip of ``raw`` as a MOT sequence ``out/<clip>`` (module docstring)."""
    parked = parked_regions(parked_table)
    for labels_file in sorted(raw.glob("scenarios/real-video-v2/*/ground_truth.jsonl")):
        clip = labels_file.parent.name
        frame_dir = raw / "scenario-catalog" / "media" / "real-video-v2" / clip / "frames"
        frames = sorted(frame_dir.glob("*.jpg"))
        if not frames:
            raise FileNotFoundError(f"{labels_file}: no frames of {clip} in {frame_dir}")
        height, width = _jpeg_size(frames[0])
        sequence = out / clip
        (sequence / "img1").mkdir(parents=True, exist_ok=True)
        (sequence / "gt").mkdir(exist_ok=True)
        for index, frame in enumerate(frames, start=1):
            link = sequence / "img1" / f"{index:06d}.jpg"
            link.unlink(missing_ok=True)
            link.symlink_to(frame.resolve())
        labels = [json.loads(line) for line in labels_file.read_text(encoding="utf-8").split("\n") if line]
        rows = meva_mot_rows(labels, len(frames), parked.get(clip, []))
        (sequence / "gt" / "gt.txt").write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")
        (sequence / "seqinfo.ini").write_text(
            f"[Sequence]\nname={clip}\nimDir=img1\nframeRate={MEVA_FPS}\nseqLength={len(frames)}\n"
            f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n",
            encoding="utf-8",
        )
        print(f"{sequence}: {len(frames)} frames, {len(labels)} boxes, {len(parked.get(clip, []))} parked")


MOTCHALLENGE_PERSON = "person-"
"""Target id prefix of the pedestrians MOT scores (class 1); the others are ``ignore-cKK-<n>``."""


def motchallenge_class(target_id: str) -> tuple[int, int]:
    """``(MOT class, conf)`` of a CVBench MOTChallenge target id: ``person-<n>`` is ``(1, 1)``,
    ``ignore-cKK-<n>`` is ``(KK, 0)``, but cars ``(3, 1)`` (module docstring).

    Raises:
        ValueError: an id of neither form.
    """
    if target_id.startswith(MOTCHALLENGE_PERSON):
        return 1, 1
    parts = target_id.split("-")
    if len(parts) == 3 and parts[0] == "ignore" and parts[1][:1] == "c" and parts[1][1:].isdigit():
        cls = int(parts[1][1:])
        return cls, int(cls == 3)
    raise ValueError(f"target id {target_id!r} is neither person-<n> nor ignore-c<class>-<n>")


def motchallenge_mot_rows(labels: list[dict], fps: float, frame_count: int, scale: float) -> list[str]:
    """MOT ``gt.txt`` lines (``frame,id,x,y,w,h,conf,class,visibility``, frames from 1) of one sequence:
    its label rows (``bbox_xyxy`` times ``scale``, ``target_id``, ``visibility_fraction``,
    ``source_timestamp_ns`` = (frame - 1) / ``fps``); rows with no box (off screen) are left out.

    Raises:
        ValueError: a target id of neither form, or a label time that is not a frame of the sequence.
    """
    track_ids: dict[str, int] = {}
    rows: list[tuple[int, int, str]] = []
    for label in labels:
        if "bbox_xyxy" not in label:
            continue
        cls, conf = motchallenge_class(label["target_id"])
        frame = round(label["source_timestamp_ns"] * fps / 1e9)
        if not 0 <= frame < frame_count:
            raise ValueError(f"label at {label['source_timestamp_ns']} ns is not one of {frame_count} frames")
        track = track_ids.setdefault(label["target_id"], len(track_ids) + 1)
        x0, y0, x1, y1 = (scale * value for value in label["bbox_xyxy"])
        visibility = float(label.get("visibility_fraction", 1.0))
        rows.append(
            (frame + 1, track, f"{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{conf},{cls},{visibility:g}")
        )
    return [f"{frame},{track},{rest}" for frame, track, rest in sorted(rows)]


def prepare_motchallenge(raw: Path, out: Path) -> None:
    """Write each MOTChallenge sequence of ``raw`` as a video and its MOT labels in ``out`` (module
    docstring)."""
    root = raw / "scenarios" / "motchallenge-v1"
    manifest = json.loads((root / "ingest-manifest.json").read_text(encoding="utf-8"))["sequence_results"]
    out.mkdir(parents=True, exist_ok=True)
    for video in sorted((root / "public").glob("*.mp4")):
        sequence = video.stem
        labels_file = root / "public" / f"{sequence}-ground-truth.jsonl.gz"
        if sequence not in manifest or not labels_file.is_file():
            raise FileNotFoundError(f"{video}: no ground truth {labels_file.name} or manifest entry")
        info = manifest[sequence]
        width, height, count = _video_size_and_count(video)
        scale = width / info["width"]
        if abs(height / info["height"] - scale) > 1e-3 or count != info["frame_count"]:
            raise ValueError(
                f"{video}: {width}x{height}, {count} frames, but the manifest states "
                f"{info['width']}x{info['height']} (scaled alike) and {info['frame_count']} frames"
            )
        with gzip.open(labels_file, "rt", encoding="utf-8") as lines:
            labels = [json.loads(line) for line in lines if line.strip()]
        rows = motchallenge_mot_rows(labels, info["fps"], count, scale)
        link = out / video.name
        link.unlink(missing_ok=True)
        link.symlink_to(video.resolve())
        (out / f"{sequence}.txt").write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")
        print(f"{link}: {count} frames at {info['fps']:g} fps, {len(rows)} boxes")


def _video_size_and_count(path: Path) -> tuple[int, int, int]:
    """``(width, height, frame count)`` a video file states, read with OpenCV."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"{path}: not a readable video")
        props = (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FRAME_COUNT)
        width, height, count = (int(capture.get(prop)) for prop in props)
        return width, height, count
    finally:
        capture.release()


def _jpeg_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read with OpenCV."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return int(image.shape[0]), int(image.shape[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="folder holding the raw sources (README)")
    parser.add_argument("--out", type=Path, required=True, help="folder to lay the prepared sources out in")
    parser.add_argument("--ngsim-fps", type=float, default=10.0, help="frame rate of the NGSIM frames")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    steps = (
        ("ngsim-us101", lambda raw: prepare_ngsim(raw, args.ngsim_fps)),
        (
            "coco128",
            lambda raw: prepare_coco128(
                raw / "datasets" / "coco128", args.out / "coco128", here / "coco128-splits.txt"
            ),
        ),
        (
            "robotx-buoys",
            lambda raw: prepare_robotx(
                raw / "dataset" / "labelled" / "1440_whitebuoy", args.out / "robotx-buoys"
            ),
        ),
        ("meva", lambda raw: prepare_meva(raw, args.out / "meva", here / "meva-parked.csv")),
        ("motchallenge", lambda raw: prepare_motchallenge(raw, args.out / "motchallenge")),
    )
    for source, prepare in steps:
        if (args.raw / source).is_dir():
            prepare(args.raw / source)
        else:
            print(f"{args.raw / source}: absent, {source} not prepared")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
