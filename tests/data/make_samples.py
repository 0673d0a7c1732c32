"""Regenerate the small committed samples in tests/data (deterministic; run from the repository root).

- ``dvxplorer_346x260.aedat4``: 3 000 events in 3 packets, written by dv-processing's own
  ``MonoCameraWriter`` (camera name ``DVXplorer_sample``, 346 x 260); ``dvxplorer_346x260.events.npy`` is
  the same events as a plain ``np.save`` of tonic-dtype records, the reference the reader is checked against.
- ``spikes_40x16.dat`` + ``spikes_40x16.json``: 12 spike-camera frames of 40 x 16 pixels, PKU layout
  (LSB first, rows bottom-up) packed here with numpy only; ``spikes_40x16.frames.npy`` holds the frames.
"""

from pathlib import Path

import dv_processing as dv
import numpy as np

DATA = Path(__file__).resolve().parent
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])


def make_aedat4() -> None:
    rng = np.random.default_rng(4)
    width, height = 346, 260
    events = np.zeros(3000, dtype=EVENT_DTYPE)
    events["t"] = 1_700_000_000_000_000 + np.cumsum(rng.integers(0, 40, size=len(events)))
    events["x"] = rng.integers(0, width, size=len(events))
    events["y"] = rng.integers(0, height, size=len(events))
    events["p"] = rng.integers(0, 2, size=len(events)).astype(bool)
    config = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_sample", (width, height))
    writer = dv.io.MonoCameraWriter(str(DATA / "dvxplorer_346x260.aedat4"), config)
    for packet in np.array_split(events, 3):
        store = dv.EventStore()
        for event in packet:
            store.push_back(int(event["t"]), int(event["x"]), int(event["y"]), bool(event["p"]))
        writer.writeEvents(store)
    del writer
    np.save(DATA / "dvxplorer_346x260.events.npy", events)


def make_spike_dat() -> None:
    rng = np.random.default_rng(5)
    width, height, count = 40, 16, 12
    frames = rng.random((count, height, width)) < 0.1
    bottom_up = frames[:, ::-1, :].reshape(count, height * width)
    packed = np.packbits(bottom_up, axis=1, bitorder="little")
    (DATA / "spikes_40x16.dat").write_bytes(packed.tobytes())
    (DATA / "spikes_40x16.json").write_text('{"width": 40, "height": 16, "rate_hz": 20000, "t0_us": 1000}\n')
    np.save(DATA / "spikes_40x16.frames.npy", frames)


if __name__ == "__main__":
    make_aedat4()
    make_spike_dat()
