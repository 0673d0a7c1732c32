"""Throughput of the event-file readers and writers (events or frames per second, best of 3).

Run: ``.venv/bin/python bench/formats_throughput.py [--recordings DIR]``. The writers and readers of
``.npy``, ``.h5`` and spike ``.dat`` files are timed on synthetic arrays (2 M events at 640x480, 2000
spike frames at 400x250); the RAW readers on every ``*.raw`` file in ``--recordings`` (docs/formats.md
used the two real Prophesee recordings of the expelliarmus decoder's public test data: EVT 2.0 at
640x480, 539,481 events, and EVT 3.0 at 1280x720, 219,596 events). Without ``--recordings`` the RAW rows
are left out.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamdet import formats
from streamdet.events import EVENT_DTYPE


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """Shortest wall time of ``repeats`` runs of ``work``, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=Path, help="a folder of Prophesee .raw recordings to read")
    args = parser.parse_args(argv)
    if args.recordings is not None and not args.recordings.is_dir():
        parser.error(f"--recordings {args.recordings}: not a folder")
    raws = sorted(args.recordings.glob("*.raw")) if args.recordings is not None else []
    rows = []
    for path in raws:
        count = formats.recording_info(path).events
        seconds = best_of(3, lambda path=path: formats.read_events(path))
        rows.append((f"read_events {path.name}", count, seconds, "events"))
        seconds = best_of(3, lambda path=path: sum(1 for _ in formats.iter_event_windows(path, 10_000)))
        rows.append((f"iter_event_windows 10 ms {path.name}", count, seconds, "events"))
    rng = np.random.default_rng(0)
    events = np.zeros(2_000_000, dtype=EVENT_DTYPE)
    events["t"] = np.cumsum(rng.integers(0, 3, size=len(events)))
    events["x"] = rng.integers(0, 640, size=len(events))
    events["y"] = rng.integers(0, 480, size=len(events))
    events["p"] = rng.integers(0, 2, size=len(events)).astype(bool)
    frames = rng.random((2000, 250, 400)) < 0.05
    with tempfile.TemporaryDirectory() as directory:
        for suffix in (".npy", ".h5"):
            path = Path(directory) / f"events{suffix}"
            seconds = best_of(3, lambda path=path: formats.write_events(path, events, (640, 480)))
            rows.append((f"write_events {suffix}", len(events), seconds, "events"))
            seconds = best_of(3, lambda path=path: formats.read_events(path))
            rows.append((f"read_events {suffix}", len(events), seconds, "events"))
        path = Path(directory) / "spikes.dat"
        seconds = best_of(3, lambda: formats.write_spike_dat(path, frames))
        rows.append(("write_spike_dat 400x250", len(frames), seconds, "frames"))
        seconds = best_of(3, lambda: formats.read_spike_dat(path))
        rows.append(("read_spike_dat 400x250", len(frames), seconds, "frames"))
    print("| operation | items | seconds | items/s |\n|---|---|---|---|")
    for name, count, seconds, unit in rows:
        print(f"| {name} | {count:,} {unit} | {seconds:.3f} | {count / seconds:,.0f} {unit}/s |")


if __name__ == "__main__":
    main()
