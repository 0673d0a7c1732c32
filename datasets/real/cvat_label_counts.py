"""Count what "CVAT for video 1.1" annotation files hold, read by the importer's own reader
(``streamdet.importing.read_cvat_labels``): files, frames their ``<meta>`` states, boxes per label and
per visible fraction (JAAD's occlusion tags), files with no box. A file the importer would refuse stops
the count with the importer's error.

    python datasets/real/cvat_label_counts.py JAAD/annotations/video_*.xml
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from tqdm import tqdm

from streamdet.importing import read_cvat_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="annotation .xml files")
    args = parser.parse_args()
    labels: collections.Counter[str] = collections.Counter()
    visibility: collections.Counter[float] = collections.Counter()
    frames = empty = 0
    for path in tqdm(args.files, unit="file"):
        boxes, count, _ = read_cvat_labels(path)
        frames += count or 0
        empty += not boxes
        for rows in boxes.values():
            labels.update(box.class_key for box in rows)
            visibility.update(box.visibility for box in rows)
    print(f"{len(args.files)} files, {frames} frames stated, {empty} with no box")
    print("boxes by label: " + ", ".join(f"{name} {n}" for name, n in labels.most_common()))
    print("boxes by visible fraction: " + ", ".join(f"{v:g} {n}" for v, n in sorted(visibility.items())))


if __name__ == "__main__":
    main()
