"""Lay out the raw files of the real-scene sources (datasets/real/README.md) for ``streamdet dataset import``.

Three sources need a small, mechanical step before the importer reads them; this script does exactly
that and nothing else (no pixel or box is changed):

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

    python datasets/real/prepare.py --raw RAW --out PREPARED
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="folder holding the raw sources (README)")
    parser.add_argument("--out", type=Path, required=True, help="folder to lay the prepared sources out in")
    parser.add_argument("--ngsim-fps", type=float, default=10.0, help="frame rate of the NGSIM frames")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    prepare_ngsim(args.raw / "ngsim-us101", args.ngsim_fps)
    coco128 = args.raw / "coco128" / "datasets" / "coco128"
    prepare_coco128(coco128, args.out / "coco128", here / "coco128-splits.txt")
    prepare_robotx(
        args.raw / "robotx-buoys" / "dataset" / "labelled" / "1440_whitebuoy", args.out / "robotx-buoys"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
