"""Prophesee box files: round trips through the public layouts, errors, a folder of recordings through
``evaluate_prophesee_folder`` and ``streamdet eval``, and ``streamdet record`` exporting detections over
a real ZeroMQ socket."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import recfunctions

from streamdet import CLASS_NAMES
from streamdet import prophesee_boxes as pb
from streamdet.cli import main
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.events import EVENT_DTYPE
from streamdet.formats import read_events, write_events

pytestmark = pytest.mark.usefixtures("single_thread")

# The layouts as the public sources spell them (docs/formats.md, "Prophesee box files"):
# prophesee-ai/prophesee-automotive-dataset-toolbox, src/io/box_loading.py, BBOX_DTYPE ...
TOOLBOX_BBOX_DTYPE = np.dtype(
    {
        "names": ["t", "x", "y", "w", "h", "class_id", "track_id", "class_confidence"],
        "formats": ["<i8", "<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "<f4"],
        "offsets": [0, 8, 12, 16, 20, 24, 28, 32],
        "itemsize": 40,
    }
)
# ... and the dataset files (Gen1: 'ts' and 'confidence'; 1 Mpx: 't' and 'class_confidence').
GEN1_FILE_DTYPE = [
    ("ts", "<u8"),
    ("x", "<f4"),
    ("y", "<f4"),
    ("w", "<f4"),
    ("h", "<f4"),
    ("class_id", "u1"),
    ("confidence", "<f4"),
    ("track_id", "<u4"),
]
MPX_FILE_DTYPE = [("t", "<u8"), *GEN1_FILE_DTYPE[1:6], ("class_confidence", "<f4"), ("track_id", "<u4")]


def sample_records(dtype) -> np.ndarray:
    """Five boxes at three times, exact in float32, with a 13-digit microsecond stamp (above 2**32)."""
    records = np.zeros(5, dtype=dtype)
    time_field = "ts" if "ts" in records.dtype.names else "t"
    confidence = "confidence" if "confidence" in records.dtype.names else "class_confidence"
    records[time_field] = [49_999, 49_999, 99_999, 5_000_000_049_999, 5_000_000_049_999]
    records["x"] = [10.5, 200.0, 0.0, 1279.0, 3.25]
    records["y"] = [20.0, 100.75, 0.0, 700.0, 4.0]
    records["w"] = [30.0, 12.5, 0.0, 1.0, 640.0]
    records["h"] = [40.0, 8.0, 0.0, 20.0, 360.0]
    records["class_id"] = [0, 1, 0, 6, 2]
    records[confidence] = [1.0, 0.5, 0.25, 1.0, 0.125]
    records["track_id"] = [7, 8, 7, 4_000_000_000, 0]
    return records


@pytest.mark.parametrize(
    "dtype", [TOOLBOX_BBOX_DTYPE, GEN1_FILE_DTYPE, MPX_FILE_DTYPE], ids=["toolbox", "gen1-ts", "1mpx-t"]
)
def test_box_files_in_each_public_layout_read_back_exactly(tmp_path: Path, dtype) -> None:
    written = sample_records(dtype)
    path = tmp_path / "17-04-13_rec_bbox.npy"
    np.save(path, written)
    boxes = pb.read_bbox_file(path)
    assert boxes.dtype == pb.BBOX_DTYPE == TOOLBOX_BBOX_DTYPE
    names = written.dtype.names
    assert list(boxes["t"]) == list(written["ts" if "ts" in names else "t"])
    assert list(boxes["class_confidence"]) == list(
        written["confidence" if "confidence" in names else "class_confidence"]
    )
    for name in ("x", "y", "w", "h", "class_id", "track_id"):
        assert np.array_equal(boxes[name], written[name]), name


@pytest.mark.parametrize("layout", ["toolbox", "gen1", "1mpx"])
def test_written_files_have_the_public_dtype_and_round_trip(tmp_path: Path, layout: str) -> None:
    boxes = pb.boxes_from_array(sample_records(TOOLBOX_BBOX_DTYPE))
    path = pb.write_bbox_file(tmp_path / "out_bbox.npy", boxes, layout=layout)
    raw = np.load(path)
    expected = {
        "toolbox": TOOLBOX_BBOX_DTYPE,
        "gen1": np.dtype(GEN1_FILE_DTYPE),
        "1mpx": np.dtype(MPX_FILE_DTYPE),
    }
    assert raw.dtype == expected[layout]
    assert np.array_equal(pb.read_bbox_file(path), boxes)


def _without(records: np.ndarray, field: str) -> np.ndarray:
    names = [name for name in records.dtype.names if name != field]
    return recfunctions.repack_fields(records[names])


def _broken(kind: str) -> np.ndarray:
    records = sample_records(MPX_FILE_DTYPE)
    if kind == "float time":
        changed = np.zeros(len(records), dtype=[("t", "<f8"), *MPX_FILE_DTYPE[1:]])
        for name in records.dtype.names:
            changed[name] = records[name]
        return changed
    if kind == "text class":
        changed = np.zeros(
            len(records), dtype=[*MPX_FILE_DTYPE[:5], ("class_id", "<U8"), *MPX_FILE_DTYPE[6:]]
        )
        for name in records.dtype.names:
            changed[name] = records[name]
        return changed
    if kind == "missing x":
        return _without(records, "x")
    if kind == "missing time":
        return _without(records, "t")
    if kind == "t and ts":
        both = np.zeros(len(records), dtype=[("ts", "<u8"), *MPX_FILE_DTYPE])
        for name in records.dtype.names:
            both[name] = records[name]
        return both
    if kind == "unsorted":
        records["t"][2] = 10
        return records
    if kind == "negative width":
        records["w"][3] = -2.0
        return records
    if kind == "nan height":
        records["h"][1] = np.nan
        return records
    if kind == "plain matrix":
        return np.zeros((5, 8), dtype=np.float32)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("float time", "field 't' is float64; expected integer microseconds"),
        ("text class", "field 'class_id' is <U8; expected an unsigned integer class index"),
        ("missing x", "missing field 'x'"),
        ("missing time", "missing field 't' or 'ts'"),
        ("t and ts", "has both fields 't' and 'ts'"),
        ("unsorted", "times are not sorted: box 2 at 10 us follows box 1 at 49999 us"),
        ("negative width", "negative size: w = -2.0 at box 3 (t = 5000000049999 us)"),
        ("nan height", "field 'h' of box 1 is nan"),
        ("plain matrix", "not a 1-D structured array of boxes"),
    ],
)
def test_broken_box_files_are_refused_naming_file_and_reason(tmp_path: Path, kind: str, reason: str) -> None:
    path = tmp_path / "broken_bbox.npy"
    np.save(path, _broken(kind))
    with pytest.raises(FileFormatError) as caught:
        pb.read_bbox_file(path)
    assert caught.value.path == path and reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}: ")


def test_unreadable_or_missing_box_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="no such file"):
        pb.read_bbox_file(tmp_path / "absent_bbox.npy")
    cut = tmp_path / "cut_bbox.npy"
    np.save(cut, sample_records(MPX_FILE_DTYPE))
    cut.write_bytes(cut.read_bytes()[:150])
    with pytest.raises(FileFormatError, match="not a readable .npy array"):
        pb.read_bbox_file(cut)


def test_detection_rows_become_box_records() -> None:
    rows = np.array([[10, 20, 40, 60, 0.75, 3], [0, 0, 5, 5, 0.25, 2]], dtype=np.float32)
    boxes = pb.detections_to_bbox(rows, 5_000_000_049_999)
    assert boxes.dtype == pb.BBOX_DTYPE
    assert list(boxes["t"]) == [5_000_000_049_999] * 2
    assert list(boxes["x"]) == [10, 0] and list(boxes["w"]) == [30, 5] and list(boxes["h"]) == [40, 5]
    assert list(boxes["class_id"]) == [3, 2] and list(boxes["track_id"]) == [0, 0]
    assert list(boxes["class_confidence"]) == [0.75, 0.25]
    # our car (2) and pedestrian (3) as 1 Mpx class ids (car 2, pedestrian 0)
    assert list(pb.detections_to_bbox(rows, 0, class_ids=[-1, -1, 2, 0])["class_id"]) == [0, 2]
    with pytest.raises(UserFacingError, match="class index 3 has no Prophesee class_id"):
        pb.detections_to_bbox(rows, 0, class_ids=[0, 1, 2])


def test_class_maps_presets_and_text() -> None:
    assert pb.DATASET_CLASSES["gen1"] == ("car", "pedestrian")
    assert pb.DATASET_CLASSES["1mpx"][0] == "pedestrian" and pb.DATASET_CLASSES["1mpx"][2] == "car"
    assert pb.parse_class_map("GEN1") == pb.ClassMap(mapped=((0, "car"), (1, "pedestrian")))
    assert pb.parse_class_map("0=pedestrian, 2=car, 3=ignore:car") == pb.ClassMap(
        mapped=((0, "pedestrian"), (2, "car")), ignored=((3, "car"),)
    )
    for text, message in [
        ("car", "expected ID=NAME"),
        ("0=car,0=pedestrian", "class_id 0 twice"),
        ("3=ignore:car", "maps no class_id"),
    ]:
        with pytest.raises(UserFacingError, match=message):
            pb.parse_class_map(text)


def test_folder_ground_truth_has_one_image_per_box_time(tmp_path: Path) -> None:
    records = sample_records(MPX_FILE_DTYPE)
    np.save(tmp_path / "a_bbox.npy", records)
    write_events(tmp_path / "a.h5", np.zeros(0, EVENT_DTYPE), (1280, 720))
    class_map = pb.parse_class_map("0=pedestrian,2=car,6=ignore:car")
    coco, order = pb.folder_ground_truth(tmp_path, class_map, CLASS_NAMES)
    assert [image["t_us"] for image in coco["images"]] == [49_999, 99_999, 5_000_000_049_999]
    assert [(rec.name, t) for rec, t in order] == [("a", 49_999), ("a", 99_999), ("a", 5_000_000_049_999)]
    assert all((image["width"], image["height"]) == (1280, 720) for image in coco["images"])
    by_image = [(a["image_id"], a["category_id"], a["bbox"], a["iscrowd"]) for a in coco["annotations"]]
    # box 1 is class 1 (two wheeler, not mapped); box 2 has no area; box 3 (traffic light) is cut to
    # the sensor and ignored as car; box 4 (car) reaches past the right edge and is cut
    assert by_image == [
        (1, CLASS_NAMES.index("pedestrian") + 1, [10.5, 20.0, 30.0, 40.0], 0),
        (3, CLASS_NAMES.index("car") + 1, [1279.0, 700.0, 1.0, 20.0], 1),
        (3, CLASS_NAMES.index("car") + 1, [3.25, 4.0, 640.0, 360.0], 0),
    ]
    with pytest.raises(UserFacingError, match=r"class map names \['bicycle'\]"):
        pb.folder_ground_truth(tmp_path, pb.parse_class_map("0=bicycle"), CLASS_NAMES)
    np.save(tmp_path / "orphan_bbox.npy", records)
    with pytest.raises(FileFormatError, match="orphan_td.dat, orphan_td.raw"):
        pb.folder_ground_truth(tmp_path, class_map, CLASS_NAMES)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserFacingError, match=r"no \*_bbox.npy box files"):
        pb.find_recordings(empty)


def write_gen1_td_dat(path: Path, events: np.ndarray, sensor_size: tuple[int, int]) -> None:
    """A Gen1 ``_td.dat`` as the toolbox's ``dat_events_tools.write_header`` / ``write_event_buffer``
    write it: ``%`` header lines with Height and Width, event type 0 and size 8, then records of
    ``t`` (u4 us) and ``x | y << 14 | p << 28`` (i4)."""
    width, height = sensor_size
    header = (
        "% Data file containing Event2D events.\n% Version 2\n% Date 2019-04-13 10:00:00\n"
        f"% Height {height}\n% Width {width}\n"
    ).encode()
    records = np.zeros(len(events), dtype=[("t", "<u4"), ("_", "<i4")])
    records["t"] = events["t"]
    records["_"] = (
        events["x"].astype("i4") | (events["y"].astype("i4") << 14) | (events["p"].astype("i4") << 28)
    )
    path.write_bytes(header + bytes([0, 8]) + records.tobytes())


def split_as_prophesee_folder(split: Path, folder: Path, zoom: int) -> None:
    """The one sequence of a built split as a Prophesee recording in ``folder``: ``zoom`` 1 gives a Gen1
    ``toy_td.dat`` with Gen1-layout boxes (``ts``); ``zoom`` 2 a sensor twice as large, ``toy.h5`` with
    each event repeated on the 2x2 pixels it covers and 1 Mpx-layout boxes (``t``) twice as large."""
    coco = json.loads((split / "annotations.json").read_text())
    recording = read_events(split / "toy-0000" / "events.h5")
    width, height = recording.sensor_size
    folder.mkdir()
    time_of = {image["id"]: image["t_us"] for image in coco["images"]}
    annotations = sorted(coco["annotations"], key=lambda a: time_of[a["image_id"]])
    layout = GEN1_FILE_DTYPE if zoom == 1 else MPX_FILE_DTYPE
    boxes = np.zeros(len(annotations), dtype=layout)
    boxes[layout[0][0]] = [time_of[a["image_id"]] for a in annotations]
    for k, name in enumerate(("x", "y", "w", "h")):
        boxes[name] = [zoom * a["bbox"][k] for a in annotations]
    boxes["class_id"] = [a["category_id"] - 1 for a in annotations]
    boxes[layout[6][0]] = 1.0
    np.save(folder / "toy_bbox.npy", boxes)
    if zoom == 1:
        write_gen1_td_dat(folder / "toy_td.dat", recording.events, (width, height))
        return
    events = np.repeat(recording.events, 4)
    events["x"] = 2 * events["x"] + np.tile([0, 1, 0, 1], len(recording.events))
    events["y"] = 2 * events["y"] + np.tile([0, 0, 1, 1], len(recording.events))
    write_events(folder / "toy.h5", events, (2 * width, 2 * height))


def test_eval_on_a_folder_of_recordings_scores_as_the_split_does(
    tiny_root: Path, overfit_checkpoint: Path, tmp_path: Path
) -> None:
    """The same recording as a Gen1 folder (same sensor) and as a 2x sensor: the inputs (the 2x sensor
    scaled by 0.5, ``streamdet.binning``) equal the split's, so the scores equal ``evaluate_split``'s
    and the boxes come back 2x."""
    from streamdet.evaluate import evaluate_prophesee_folder, evaluate_split
    from streamdet.model import load_detector

    split = tiny_root / "train"
    bundle = load_detector(str(overfit_checkpoint), device="cpu")
    expected = evaluate_split(bundle.detect, split, bundle.spec, progress=False)
    assert expected["map50"] > 0.8
    results = {}
    for zoom in (1, 2):
        folder = tmp_path / f"zoom{zoom}"
        split_as_prophesee_folder(split, folder, zoom)
        results[zoom] = evaluate_prophesee_folder(
            bundle, folder, "0=boat,1=buoy", batch_size=3, progress=False, keep_detections=True
        )
    gen1, large = results[1], results[2]
    assert gen1["images"] == large["images"] == expected["images"] == 8
    assert gen1["recordings"] == [
        {
            "name": "toy",
            "sensor": [64, 64],
            "geometry": "64x64 -> scale 1 to 64x64 (region 0,0,64x64)",
            "images": 8,
        }
    ]
    assert large["recordings"][0]["geometry"] == "128x128 -> scale 0.5 to 64x64 (region 0,0,128x128)"
    for result in (gen1, large):
        assert result["map50"] == pytest.approx(expected["map50"], abs=1e-6)
        assert result["map"] == pytest.approx(expected["map"], abs=1e-3)
        assert result["ap50_per_class"] == pytest.approx(expected["ap50_per_class"], abs=1e-6)
    for image_id, rows in gen1["detections"].items():
        twice = large["detections"][image_id]
        assert twice.shape == rows.shape and len(rows) > 0
        assert np.allclose(twice[:, :4], 2 * rows[:, :4], atol=1e-2)
        assert twice[:, :4].max() <= 128


def test_eval_command_on_a_prophesee_folder(
    tiny_root: Path, overfit_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "gen1"
    split_as_prophesee_folder(tiny_root / "train", folder, 1)
    out = tmp_path / "metrics.json"
    argv = ["eval", "--model", str(overfit_checkpoint), "--data", str(folder), "--device", "cpu"]
    assert main([*argv, "--format", "prophesee", "--class-map", "0=boat,1=buoy", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["images"] == 8 and metrics["map50"] > 0.8
    assert f"{folder}: 8 images (50 ms windows)  mAP@0.5={metrics['map50']:.3f}" in capsys.readouterr().out
    assert main([*argv, "--format", "prophesee"]) == 2
    assert "--format prophesee needs --class-map" in capsys.readouterr().err
    assert main([*argv, "--format", "prophesee", "--class-map", "0=truck"]) == 2
    assert "class map names ['truck'], which the model does not have" in capsys.readouterr().err


def test_record_exports_detections_as_a_prophesee_box_file(tmp_path: Path) -> None:
    """A real publisher on an ipc socket sends events (not recorded in a box file), three detections
    messages and end-of-stream; ``record`` to ``*_bbox.npy`` writes the box records and the names."""
    import uuid

    from streamdet import bus, wire
    from streamdet.recorder import RecordConfig, record

    endpoint = f"ipc:///tmp/streamdet-test-{uuid.uuid4().hex[:12]}"
    out = tmp_path / "live_bbox.npy"
    names = ["boat", "buoy", "car", "pedestrian"]
    batches = [
        (np.array([[10, 20, 40, 60, 0.9, 2]], np.float32), 5_000_000_050_000),
        (np.zeros((0, 6), np.float32), 5_000_000_100_000),
        (np.array([[1, 2, 3, 4, 0.5, 3], [100, 50, 300, 250, 0.25, 0]], np.float32), 5_000_000_150_000),
    ]
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(stats=record(RecordConfig((endpoint,), out, idle_timeout_s=30))),
        daemon=True,
    )
    with bus.Publisher(endpoint, lossless=True) as publisher:
        thread.start()
        assert publisher.wait_for_subscribers(1, timeout_s=30)
        publisher.send(wire.events_message("cam", np.zeros(3, EVENT_DTYPE), (346, 260)))
        for rows, t1_us in batches:
            publisher.send(wire.detections_message("cam", rows, names, (346, 260), t1_us - 50_000, t1_us))
        publisher.send(wire.eos_message("cam", "detections", (346, 260)))
        thread.join(timeout=60)
    stats = result["stats"]
    assert stats.ended and stats.messages == 3 and stats.boxes == {"detections": 3} and stats.events == 0
    boxes = pb.read_bbox_file(out)
    assert np.load(out).dtype == TOOLBOX_BBOX_DTYPE
    expected = np.concatenate([pb.detections_to_bbox(rows, t1_us) for rows, t1_us in batches])
    assert np.array_equal(boxes, expected)
    assert list(boxes["t"]) == [5_000_000_050_000, 5_000_000_150_000, 5_000_000_150_000]
    assert list(boxes["w"]) == [30, 2, 200] and list(boxes["class_id"]) == [2, 3, 0]
    assert json.loads((tmp_path / "live_bbox.json").read_text()) == {"class_names": names}


def test_a_built_split_exported_as_a_prophesee_folder_keeps_its_ground_truth(
    tiny_root: Path, tmp_path: Path
) -> None:
    split = tiny_root / "train"
    coco = json.loads((split / "annotations.json").read_text())
    coco["annotations"][0]["iscrowd"] = coco["annotations"][0]["ignore"] = 1
    edited = tmp_path / "split"
    (edited / "toy-0000").mkdir(parents=True)
    (edited / "annotations.json").write_text(json.dumps(coco))
    (edited / "toy-0000" / "events.h5").write_bytes((split / "toy-0000" / "events.h5").read_bytes())
    recordings = pb.split_to_prophesee_folder(edited, tmp_path / "folder", ["boat", "buoy"], layout="gen1")
    assert [(r.name, r.events_path.name, r.bbox_path.name) for r in recordings] == [
        ("toy-0000", "toy-0000.h5", "toy-0000_bbox.npy")
    ]
    assert np.load(recordings[0].bbox_path).dtype == np.dtype(GEN1_FILE_DTYPE)
    class_map = pb.parse_class_map("0=boat,1=buoy,2=ignore:boat,3=ignore:buoy")
    exported, _ = pb.folder_ground_truth(tmp_path / "folder", class_map, CLASS_NAMES)
    assert [i["t_us"] for i in exported["images"]] == [i["t_us"] for i in coco["images"]]

    def boxes(dataset: dict) -> list:
        time_of = {image["id"]: image["t_us"] for image in dataset["images"]}
        return sorted(
            (time_of[a["image_id"]], a["category_id"], a["iscrowd"], *a["bbox"])
            for a in dataset["annotations"]
        )

    assert boxes(exported) == boxes(coco) and sum(a["iscrowd"] for a in exported["annotations"]) == 1
