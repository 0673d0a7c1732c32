"""Event file formats: real Prophesee recordings, dv-processing AEDAT4, PKU spike .dat, npy/HDF5 writers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from streamdet import formats
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.events import EVENT_DTYPE

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "fixtures" / "real"
DATA = Path(__file__).resolve().parent / "data"

# What expelliarmus itself reads from the two Prophesee test recordings of its repository (docs/formats.md).
REAL_FILES = {
    "prophesee_evt2_640x480.raw": dict(
        format="evt2",
        events=539_481,
        t_first_us=1_317_888,
        t_last_us=1_367_888,
        width=640,
        height=480,
        x_max=599,
        y_max=475,
    ),
    "prophesee_evt3_1280x720.raw": dict(
        format="evt3",
        events=219_596,
        t_first_us=11_718_656,
        t_last_us=11_772_513,
        width=1280,
        height=720,
        x_max=1279,
        y_max=719,
    ),
}


def random_events(count: int, sensor_size: tuple[int, int], seed: int = 0, t_start: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    events = np.zeros(count, dtype=EVENT_DTYPE)
    events["t"] = t_start + np.cumsum(rng.integers(0, 30, size=count))
    events["x"] = rng.integers(0, sensor_size[0], size=count)
    events["y"] = rng.integers(0, sensor_size[1], size=count)
    events["p"] = rng.integers(0, 2, size=count).astype(bool)
    return events


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_prophesee_recordings_match_the_reference_table(name: str) -> None:
    expected = REAL_FILES[name]
    info = formats.recording_info(REAL / name)
    for key, value in expected.items():
        assert getattr(info, key) == value, key
    recording = formats.read_events(REAL / name)
    assert recording.format == expected["format"]
    assert recording.events.dtype == EVENT_DTYPE
    assert len(recording.events) == expected["events"]
    assert recording.sensor_size == (expected["width"], expected["height"])
    assert set(np.unique(recording.events["p"])) == {False, True}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_time_windows_partition_the_recording(name: str) -> None:
    whole = formats.read_events(REAL / name).events
    window_us = 7_000
    windows = list(formats.iter_event_windows(REAL / name, window_us))
    assert np.array_equal(np.concatenate(windows), whole)
    t0 = int(whole["t"][0])
    for index, window in enumerate(windows):
        if len(window):
            assert window["t"].min() >= t0 + index * window_us
            assert window["t"].max() < t0 + (index + 1) * window_us
    assert len(windows) == (int(whole["t"][-1]) - t0) // window_us + 1


def test_time_windows_keep_empty_gaps_and_reject_bad_window() -> None:
    chunks = [random_events(50, (10, 10), seed=1), random_events(50, (10, 10), seed=2, t_start=100_000)]
    windows = list(formats.split_time_windows(iter(chunks), 10_000))
    assert sum(len(window) for window in windows) == 100
    assert any(len(window) == 0 for window in windows)
    with pytest.raises(UserFacingError):
        list(formats.split_time_windows(iter(chunks), 0))


def test_prophesee_dat_with_size_in_header(tmp_path: Path) -> None:
    from expelliarmus import Wizard

    events = random_events(5_000, (304, 240), seed=3)
    plain = tmp_path / "plain.dat"
    Wizard(encoding="dat").save(
        plain, events[["t", "x", "y", "p"]].astype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    )
    data = plain.read_bytes()
    first_binary = data.index(b"% Version 2 \n") + len(b"% Version 2 \n")
    gen1 = tmp_path / "gen1_style.dat"
    gen1.write_bytes(data[:first_binary] + b"% Height 240\n% Width 304\n" + data[first_binary:])
    assert formats.detect_format(gen1) == "dat"
    recording = formats.read_events(gen1)
    assert recording.sensor_size == (304, 240)
    assert np.array_equal(recording.events, events)
    assert formats.read_events(plain).sensor_size == (int(events["x"].max()) + 1, int(events["y"].max()) + 1)


def test_aedat4_written_by_dv_processing_reads_back_the_same_events() -> None:
    sample = DATA / "dvxplorer_346x260.aedat4"
    reference = np.load(DATA / "dvxplorer_346x260.events.npy")
    recording = formats.read_events(sample)
    assert recording.format == "aedat4"
    assert recording.sensor_size == (346, 260)
    assert np.array_equal(recording.events, reference)
    windows = list(formats.iter_event_windows(sample, 5_000))
    assert len(windows) > 3
    assert np.array_equal(np.concatenate(windows), reference)


def test_aedat4_matches_the_independent_aedat_decoder(tmp_path: Path) -> None:
    import aedat
    import dv_processing as dv

    events = random_events(400, (640, 480), seed=6, t_start=5_000_000)
    path = tmp_path / "fresh.aedat4"
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("cam", (640, 480)))
    store = dv.EventStore()
    for event in events:
        store.push_back(int(event["t"]), int(event["x"]), int(event["y"]), bool(event["p"]))
    writer.writeEvents(store)
    del writer
    decoded = np.concatenate([packet["events"] for packet in aedat.Decoder(path) if "events" in packet])
    ours = formats.read_events(path)
    assert ours.sensor_size == (640, 480)
    assert np.array_equal(ours.events, events)
    assert np.array_equal(ours.events["t"], decoded["t"].astype(np.int64))
    assert np.array_equal(ours.events["x"], decoded["x"].astype(np.int16))
    assert np.array_equal(ours.events["p"], decoded["on"])


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_event_writers_round_trip(tmp_path: Path, suffix: str) -> None:
    events = random_events(10_000, (320, 240), seed=7)
    path = tmp_path / f"events{suffix}"
    formats.write_events(path, events, (320, 240))
    recording = formats.read_events(path)
    assert recording.format == suffix[1:]
    assert recording.sensor_size == (320, 240)
    assert np.array_equal(recording.events, events)
    assert recording.events.dtype == EVENT_DTYPE
    # the files are plain numpy / HDF5 that other tools read without us
    if suffix == ".npy":
        assert np.array_equal(np.load(path), events)
        assert json.loads((tmp_path / "events.npy.json").read_text()) == {"width": 320, "height": 240}
    else:
        with h5py.File(path) as file:
            assert file["events"].maxshape == (None,)
            assert file["events"].chunks is not None
            assert (file.attrs["width"], file.attrs["height"]) == (320, 240)
            assert np.array_equal(file["events"][:], events)


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_appending_writer_in_pieces(tmp_path: Path, suffix: str) -> None:
    events = random_events(3_000, (64, 48), seed=8)
    path = tmp_path / f"appended{suffix}"
    pieces = np.array_split(events, 7)
    with formats.EventFileWriter(path) as writer:
        for index, piece in enumerate(pieces):
            writer.append(piece)
            if index == 2 and suffix == ".npy":
                writer.flush()
                assert np.array_equal(np.load(path), np.concatenate(pieces[:3]))
        writer.sensor_size = (64, 48)
    recording = formats.read_events(path)
    assert recording.sensor_size == (64, 48)
    assert np.array_equal(recording.events, events)


def test_h5_group_of_columns_and_size_from_events(tmp_path: Path) -> None:
    events = random_events(500, (100, 90), seed=9)
    path = tmp_path / "columns.hdf5"
    with h5py.File(path, "w") as file:
        for name in ("x", "y", "t", "p"):
            file.create_dataset(f"events/{name}", data=events[name])
    recording = formats.read_events(path)
    assert np.array_equal(recording.events, events)
    assert recording.sensor_size == (int(events["x"].max()) + 1, int(events["y"].max()) + 1)
    assert formats.read_events(path, sensor_size=(128, 128)).sensor_size == (128, 128)


def test_spike_dat_bit_layout_is_lsb_first_rows_bottom_up(tmp_path: Path) -> None:
    width, height = 16, 4
    frames = np.zeros((2, height, width), dtype=bool)
    frames[0, 0, 1] = True  # top row, second column
    frames[1, height - 1, 8] = True  # bottom row, ninth column
    path = tmp_path / "layout.dat"
    formats.write_spike_dat(path, frames)
    data = path.read_bytes()
    assert len(data) == 2 * width * height // 8
    frame0, frame1 = data[:8], data[8:]
    # frame 0: the top row is stored last, pixel 1 is bit 1 (LSB first) of its first byte
    assert frame0 == bytes(6) + b"\x02\x00"
    # frame 1: the bottom row is stored first, pixel 8 is bit 0 of its second byte
    assert frame1 == b"\x00\x01" + bytes(6)
    assert np.array_equal(formats.read_spike_dat(path, (width, height)), frames)


def test_spike_dat_round_trip_default_camera_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    frames = rng.random((25, 250, 400)) < 0.05
    path = tmp_path / "camera.dat"
    formats.write_spike_dat(path, frames)
    assert path.stat().st_size == 25 * 400 * 250 // 8
    assert formats.detect_format(path) == "spike-dat"
    assert np.array_equal(formats.read_spike_dat(path), frames)
    chunks = list(formats.iter_spike_dat(path, frames_per_chunk=7))
    assert [len(chunk) for chunk in chunks] == [7, 7, 7, 4]
    assert np.array_equal(np.concatenate(chunks), frames)
    recording = formats.read_events(path)
    assert recording.sensor_size == (400, 250)
    assert len(recording.events) == int(frames.sum())
    assert np.all(recording.events["p"])


def test_spike_dat_events_streamed_in_small_chunks_keep_frame_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(13)
    frames = rng.random((30, 16, 24)) < 0.2
    path = tmp_path / "spikes.dat"
    formats.write_spike_dat(path, frames)
    formats.write_spike_sidecar(path, formats.SpikeDatLayout((24, 16), frame_us=25.0, t0_us=500))
    monkeypatch.setattr(formats, "SPIKE_CHUNK_PIXELS", 24 * 16 * 4)
    assert len(list(formats.iter_event_chunks(path))) == 8
    expected = formats.spike_frames_to_events(frames, frame_us=25.0, t0_us=500)
    assert np.array_equal(formats.read_events(path).events, expected)
    windows = list(formats.iter_event_windows(path, 100))
    assert np.array_equal(np.concatenate(windows), expected)
    assert all(len(np.unique(window["t"] // 100 - 5)) <= 1 for window in windows if len(window))


def test_spike_dat_sidecar_sets_size_rate_and_start() -> None:
    frames = np.load(DATA / "spikes_40x16.frames.npy")
    path = DATA / "spikes_40x16.dat"
    assert np.array_equal(formats.read_spike_dat(path), frames)
    recording = formats.read_events(path)
    assert recording.format == "spike-dat"
    assert recording.sensor_size == (40, 16)
    expected = formats.spike_frames_to_events(frames, frame_us=50, t0_us=1000)
    assert np.array_equal(recording.events, expected)
    frame_index, y, x = np.nonzero(frames)
    assert np.array_equal(recording.events["t"], 1000 + 50 * frame_index)
    assert np.array_equal(recording.events["x"], x) and np.array_equal(recording.events["y"], y)
    info = formats.recording_info(path)
    assert (info.frames, info.frame_us, info.events) == (12, 50.0, int(frames.sum()))


def test_format_detected_from_content_not_extension(tmp_path: Path) -> None:
    events = random_events(100, (32, 32), seed=11)
    misnamed = tmp_path / "events.bin"
    formats.write_events(tmp_path / "events.h5", events, (32, 32))
    shutil.copy(tmp_path / "events.h5", misnamed)
    assert formats.detect_format(misnamed) == "h5"
    assert np.array_equal(formats.read_events(misnamed).events, events)


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad inputs and a phrase the one-line error must contain."""
    rng = np.random.default_rng(12)
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.raw"
    truncated.write_bytes((REAL / "prophesee_evt2_640x480.raw").read_bytes()[:100_003])
    cases = {
        "empty": (empty, "empty"),
        "truncated": (truncated, "truncated"),
        "unknown extension": (tmp_path / "notes.txt", "unknown format"),
        "missing": (tmp_path / "missing.raw", "no such file"),
    }
    (tmp_path / "notes.txt").write_text("hello\n")
    for suffix in (".raw", ".aedat4", ".npy", ".h5", ".dat"):
        noise = tmp_path / f"noise{suffix}"
        noise.write_bytes(rng.integers(0, 256, size=10_001, dtype=np.uint8).tobytes())
        cases[f"random bytes {suffix}"] = (noise, "not a")
    truncated_aedat4 = tmp_path / "truncated.aedat4"
    truncated_aedat4.write_bytes((DATA / "dvxplorer_346x260.aedat4").read_bytes()[:200])
    cases["truncated aedat4"] = (truncated_aedat4, "truncated")
    truncated_npy = tmp_path / "truncated.npy"
    np.save(truncated_npy, random_events(1000, (10, 10)))
    truncated_npy.write_bytes(truncated_npy.read_bytes()[:5000])
    cases["truncated npy"] = (truncated_npy, "truncated")
    return cases


def test_bad_input_raises_file_format_error_naming_the_file(tmp_path: Path) -> None:
    for label, (path, phrase) in bad_files(tmp_path).items():
        with pytest.raises(FileFormatError) as caught:
            formats.read_events(path)
        assert caught.value.path == path, label
        assert phrase in str(caught.value), (label, str(caught.value))
        assert str(path) in str(caught.value)
        assert "\n" not in str(caught.value), label


def test_info_command_process_on_real_recordings_then_a_truncated_file(tmp_path: Path) -> None:
    """One real ``streamdet info --json`` process: a JSON line per good file, then a one-line error and
    exit status 2 at the truncated one, no traceback."""
    truncated, _ = bad_files(tmp_path)["truncated"]
    names = sorted(REAL_FILES)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamdet",
            "info",
            *(str(REAL / name) for name in names),
            str(truncated),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == len(names), result.stderr
    for name, report in zip(names, reports, strict=True):
        for key in ("events", "t_first_us", "t_last_us", "width", "height", "format"):
            assert report[key] == REAL_FILES[name][key], (name, key)
    assert result.returncode == 2
    reason = "truncated: the 99839-byte event data is not a whole number of 4-byte words"
    assert result.stderr.strip().splitlines() == [f"streamdet info: error: {truncated}: {reason}"]
