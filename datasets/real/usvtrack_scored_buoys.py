"""Copy USVTrack sequences (SnowPye/USVTrack, MOT layout) with their buoys made scored boxes.

USVTrack's ``gt/gt.txt`` rows are ``frame, id, x, y, w, h, active, class, visibility``. Its tracking
benchmark scores boats only, so every buoy row (class 9) carries ``active = 0``, which
``streamdet dataset import mot`` reads as an ignore region. This writes, for each sequence folder
given, ``OUT/<name>/`` with ``img1`` linked to the original frames, ``seqinfo.ini`` copied and
``gt/gt.txt`` the original rows with ``active = 1`` on the buoy rows; every other row, and every other
column, is unchanged. Nothing is written over: an existing ``OUT/<name>`` stops it.

    python datasets/real/usvtrack_scored_buoys.py RAW/usvtrack/USVTrack/*/sequence_* --out RAW/usvtrack/scored
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

BUOY_CLASS = "9"


def score_buoy_rows(text: str, source: str) -> tuple[str, int]:
    """``gt.txt`` text -> (the same rows with ``active = 1`` on buoy rows, how many rows changed)."""
    rows, changed = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        if len(fields) < 8:
            raise SystemExit(f"{source}:{number}: {len(fields)} columns, expected at least 8 (MOT gt.txt)")
        if fields[7].strip() == BUOY_CLASS and fields[6].strip() != "1":
            fields[6] = "1"
            line = ",".join(fields)
            changed += 1
        rows.append(line)  # every other row as it was
    return "\n".join(rows) + "\n", changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequences", nargs="+", type=Path, help="USVTrack sequence folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for the copies")
    args = parser.parse_args()
    for sequence in args.sequences:
        gt = sequence / "gt" / "gt.txt"
        if not gt.is_file() or not (sequence / "img1").is_dir():
            sys.exit(f"{sequence}: not a MOT sequence folder (needs img1/ and gt/gt.txt)")
        target = args.out / sequence.name
        if target.exists():
            sys.exit(f"{target}: exists; remove it first")
        text, changed = score_buoy_rows(gt.read_text(), str(gt))
        (target / "gt").mkdir(parents=True)
        (target / "gt" / "gt.txt").write_text(text)
        (target / "img1").symlink_to((sequence / "img1").resolve())
        if (sequence / "seqinfo.ini").is_file():
            shutil.copyfile(sequence / "seqinfo.ini", target / "seqinfo.ini")
        print(f"{target}: {changed} buoy rows made scored")


if __name__ == "__main__":
    main()
