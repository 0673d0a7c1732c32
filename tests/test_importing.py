"""`streamdet dataset import` on the committed samples of each label layout (tests/data/import/, written by
make_import_samples.py there): the split it writes, loaded back with DatasetSplit, and its errors."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamdet.drivers.video import FrameEncoder, iter_video_frames

from streamdet import CLASS_NAMES
from streamdet.cli import main as cli_main
from streamdet.dataset import DatasetSplit, sequence_seeds
from streamdet.encoders import DVSParams
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.formats import read_spike_dat
from streamdet.importing import (
    ImportConfig,
    StillSource,
    VideoSource,
    default_class_map,
    fit_mapping,
    flow_interpolate,
    import_split,
    in_between_times,
    parse_class_map,
    read_coco,
    read_mot,
    read_names,
    read_sources,
    still_offsets,
)

SAMPLES = Path(__file__).parent / "data" / "import"
MOT_SEQUENCE = SAMPLES / "mot" / "SEQ-01"
MOT_VIDEO = SAMPLES / "mot" / "clip.avi"
COCO_JSON = SAMPLES / "coco" / "annotations.json"
YOLO_IMAGES = SAMPLES / "yolo" / "images"
CAVIAR_FOLDER = SAMPLES / "caviar" / "walk"
CVAT_FOLDER = SAMPLES / "cvat" / "walk"
VOC_ROOT = SAMPLES / "voc"
SMALL = ["--size", "64x48"]
PEDESTRIAN, CAR = CLASS_NAMES.index("pedestrian"), CLASS_NAMES.index("car")


def run_import(out: Path, *arguments: str, workers: int = 1) -> int:
    return cli_main(["dataset", "import", *arguments, "--out", str(out), *SMALL, "--workers", str(workers)])


def by_track(split: DatasetSplit, image: dict) -> dict[int, dict]:
    return {a["track_id"]: a for a in split.coco["annotations"] if a["image_id"] == image["id"]}


@pytest.fixture(scope="module")
def mot_split(tmp_path_factory: pytest.TempPathFactory) -> DatasetSplit:
    out = tmp_path_factory.mktemp("mot")
    assert run_import(out, "mot", str(MOT_SEQUENCE), "--split", "val") == 0
    return DatasetSplit(out / "val")


def test_mot_sequence_times_boxes_and_ignore_rules(mot_split: DatasetSplit) -> None:
    # 25 fps: labels at the first frame at or after 50, 150, 250, 350 ms
    assert [image["t_us"] for image in mot_split.images] == [80_000, 160_000, 280_000, 360_000]
    assert [image["source_frame"] for image in mot_split.images] == [2, 4, 7, 9]
    first, last = mot_split.images[0], mot_split.images[-1]
    targets = mot_split.targets(first)
    tracks = by_track(mot_split, first)
    # the walker of frame 3 (x = 4 + 3 * 2), the car, unscaled (64x48 on a 64x48 sensor)
    assert tracks[1]["bbox"] == [10.0, 12.0, 8.0, 20.0] and tracks[1]["category_id"] == PEDESTRIAN + 1
    assert tracks[2]["bbox"] == [44.0, 30.0, 12.0, 8.0] and tracks[2]["category_id"] == CAR + 1
    assert tracks[1]["motion_px"] == pytest.approx(3 * 50 / 40)  # 3 px per 40 ms frame, over 50 ms
    assert not tracks[1]["ignore"] and not tracks[2]["ignore"]
    assert tracks[3]["ignore_reasons"] == ["still"] and tracks[3]["iscrowd"] == 1
    assert tracks[4]["ignore_reasons"] == ["small"]  # 4 px
    assert "source" in tracks[5]["ignore_reasons"]  # class 8, distractor
    assert "source" in tracks[7]["ignore_reasons"]  # conf 0
    assert 6 not in tracks  # class 4, bicycle: dropped
    assert targets["ignore"].sum() == 4 and len(targets["boxes"]) == 6
    assert by_track(mot_split, last)[1]["ignore_reasons"] == ["hidden"]  # visibility 0.1
    sequence = mot_split.info["sequences"][0]
    assert sequence["mapping"] == {
        "fit": "pad",
        "source_size": [64, 48],
        "scaled_size": [64, 48],
        "offset": [0, 0],
        "scale": [1.0, 1.0],
    }
    assert sequence["source"]["fps"] == 25.0 and sequence["source"]["source_frames"] == 10


def test_mot_events_come_from_the_moving_objects(mot_split: DatasetSplit) -> None:
    image = mot_split.images[1]
    events = mot_split.events(image)
    counts = np.zeros((48, 64), dtype=np.int64)
    np.add.at(counts, (events["y"], events["x"]), 1)
    walker = counts[12:32, 8:28].sum()  # where the walker went in the window (x 12 to 24)
    static = counts[36:46, 0:10].sum() + counts[14:30, 34:54].sum()  # the standing person, empty ground
    assert walker > 10 * max(static, 1)
    spikes = mot_split.spike_frames(image)
    assert spikes.shape == (50, 48, 64)  # 50 ms at 1 kHz
    bright, ground = spikes[:, 14:30, 12:22].mean(), spikes[:, 16:28, 40:60].mean()
    assert bright > 1.5 * ground  # the walker (230) fires faster than the ground (about 90)


def test_caviar_people_are_the_mot_samples_pedestrians(tmp_path: Path, mot_split: DatasetSplit) -> None:
    (source,) = read_sources("caviar", [CAVIAR_FOLDER])
    assert source.fps == 25.0 and source.frame_count == 10 and source.labelled == frozenset(range(10))
    assert [box.track_id for box in source.boxes[2]] == [1, 3, 4]  # people only; the group is no object
    assert source.boxes[2][0].box == (10.0, 12.0, 18.0, 32.0)  # xc 14, yc 22, w 8, h 20
    assert run_import(tmp_path, "caviar", str(CAVIAR_FOLDER), "--split", "val") == 0
    split = DatasetSplit(tmp_path / "val")
    assert [image["t_us"] for image in split.images] == [image["t_us"] for image in mot_split.images]
    for image, mot_image in zip(split.images, mot_split.images, strict=True):
        people = by_track(split, image)
        assert sorted(people) == [1, 3, 4]
        for track, annotation in people.items():
            assert annotation["category_id"] == PEDESTRIAN + 1
            assert annotation["bbox"] == by_track(mot_split, mot_image)[track]["bbox"]
    assert split.info["sequences"][0]["source"]["fps"] == 25.0
    assert len(split.events(split.images[1])) > 0
    shutil.copy(MOT_VIDEO, tmp_path / "walk.avi")  # the same frames as a video, its labels beside it
    shutil.copy(CAVIAR_FOLDER / "walkgt.xml", tmp_path / "walk.xml")
    (video,) = read_sources("caviar", [tmp_path / "walk.avi"])
    assert video.video == tmp_path / "walk.avi" and video.frame_count == 10
    assert [[box.box for box in video.boxes[k]] for k in range(10)] == [
        [box.box for box in source.boxes[k]] for k in range(10)
    ]


def test_caviar_labels_that_do_not_fit(tmp_path: Path) -> None:
    folder = copy_sample("caviar", tmp_path) / "walk"
    xml = folder / "walkgt.xml"
    original = xml.read_text()
    config = ImportConfig(sensor_size=(64, 48))
    xml.write_text(original.replace('<frame number="9">', '<frame number="10">'))
    with pytest.raises(
        FileFormatError, match=r"frame 10, object 1: labels frame 11 .* the video has 10 frames"
    ):
        import_split(read_sources("caviar", [folder]), config, tmp_path / "out", "caviar")
    xml.write_text(
        original.replace('<box h="20" w="8" xc="14" yc="22"/>', '<box h="20" w="0" xc="14" yc="22"/>')
    )
    with pytest.raises(FileFormatError, match="walkgt.xml: frame 2, object 1: box width 0 / height 20"):
        read_sources("caviar", [folder])
    xml.write_text(original.replace('xc="14" yc="22"', 'xc="fourteen" yc="22"'))
    with pytest.raises(FileFormatError, match="frame 2, object 1: <box> xc='fourteen' is not a number"):
        read_sources("caviar", [folder])
    xml.write_text(original[: len(original) // 2])
    with pytest.raises(FileFormatError, match="walkgt.xml: not an XML file"):
        read_sources("caviar", [folder])
    xml.write_text("<dataset></dataset>")
    with pytest.raises(FileFormatError, match="holds no <frame> element"):
        read_sources("caviar", [folder])
    for k in range(10):  # frames numbered without leading zeros are read in natural order
        (folder / f"walk{k:04d}.jpg").rename(folder / f"walk{5 * k}.jpg")
    xml.write_text(original)
    (renamed,) = read_sources("caviar", [folder])
    assert [path.name for _, path in renamed.frame_files] == [f"walk{5 * k}.jpg" for k in range(10)]
    xml.unlink()
    with pytest.raises(
        FileFormatError, match="walk: holds 0 .xml files; name the ground truth with --labels"
    ):
        read_sources("caviar", [folder])
    assert not (tmp_path / "out").exists()


def test_cvat_video_export_tracks_and_outside(tmp_path: Path, mot_split: DatasetSplit) -> None:
    (source,) = read_sources("cvat", [CVAT_FOLDER], fps=25.0)
    assert source.frame_count == 10 and source.size == (64, 48) and source.labelled is None
    assert [(box.track_id, box.class_key) for box in source.boxes[2]] == [
        (1, "person"), (2, "car"), (3, "person"), (4, "person")
    ]  # fmt: skip
    assert source.boxes[2][1].box == (44.0, 30.0, 56.0, 38.0)
    assert [box.track_id for box in source.boxes[8]] == [1, 2, 3]  # track 4 is outside from frame 8
    assert [box.track_id for box in source.boxes[9]] == [1, 2, 3]  # and absent after it
    assert run_import(tmp_path, "cvat", str(CVAT_FOLDER), "--fps", "25", "--split", "val") == 0
    split = DatasetSplit(tmp_path / "val")
    assert [image["t_us"] for image in split.images] == [image["t_us"] for image in mot_split.images]
    for image, mot_image in zip(split.images, mot_split.images, strict=True):
        mot_tracks = by_track(mot_split, mot_image)
        for track, annotation in by_track(split, image).items():
            assert annotation["bbox"] == mot_tracks[track]["bbox"]
            assert annotation["category_id"] == mot_tracks[track]["category_id"]
    assert sorted(by_track(split, split.images[0])) == [1, 2, 3, 4]
    assert 4 not in by_track(split, split.images[-1])  # frame 9, after track 4 left


def test_cvat_reads_jaad_annotations(tmp_path: Path, mot_split: DatasetSplit) -> None:
    jaad = SAMPLES / "cvat" / "jaad_style.xml"
    (source,) = read_sources("cvat", [CVAT_FOLDER], labels=jaad, fps=25.0)
    assert [(box.track_id, box.class_key) for box in source.boxes[0]] == [
        (0, "pedestrian"), (1, "ped"), (2, "people")
    ]  # fmt: skip
    assert [source.boxes[k][0].visibility for k in (4, 5, 8)] == [1.0, 0.5, 0.125]
    people = "ped=pedestrian,people=pedestrian:ignore"
    arguments = ["--labels", str(jaad), "--fps", "25", "--classes-map", people, "--split", "val"]
    assert run_import(tmp_path, "cvat", str(CVAT_FOLDER), *arguments) == 0
    split = DatasetSplit(tmp_path / "val")
    assert [image["t_us"] for image in split.images] == [image["t_us"] for image in mot_split.images]
    for image, mot_image in zip(split.images, mot_split.images, strict=True):
        tracks, mot_tracks = by_track(split, image), by_track(mot_split, mot_image)
        for track, mot_track in ((0, 1), (1, 3), (2, 4)):
            assert tracks[track]["bbox"] == mot_tracks[mot_track]["bbox"]
            assert tracks[track]["category_id"] == PEDESTRIAN + 1
        assert "source" in tracks[2]["ignore_reasons"]  # people: a group, an ignore region
    walker = [by_track(split, image)[0] for image in split.images]  # frames 2, 4, 7, 9
    assert [a["visible_fraction"] for a in walker] == pytest.approx([1.0, 1.0, 0.5, 0.125], abs=0.01)
    assert [a["ignore"] for a in walker] == [0, 0, 0, 1] and walker[-1]["ignore_reasons"] == ["hidden"]
    nobody = tmp_path / "nobody.xml"  # a clip with no one labelled: its export has no <track>
    nobody.write_text(jaad.read_text().split("<track")[0] + "</annotations>\n")
    (empty,) = read_sources("cvat", [CVAT_FOLDER], labels=nobody, fps=25.0)
    assert empty.boxes == {} and empty.frame_count == 10
    nobody.write_text(jaad.read_text().replace("<occlusion>", "").replace(">part<", ">half<"))
    with pytest.raises(
        FileFormatError, match="nobody.xml: track 0 \\(pedestrian\\), frame 5: occlusion 'half'"
    ):
        read_sources("cvat", [CVAT_FOLDER], labels=nobody, fps=25.0)


def test_cvat_exports_that_do_not_fit(tmp_path: Path) -> None:
    folder = copy_sample("cvat", tmp_path) / "walk"
    xml = folder / "annotations.xml"
    original = xml.read_text()
    with pytest.raises(UserFacingError, match="CVAT stores no frame rate; pass --fps"):
        read_sources("cvat", [folder])
    xml.write_text(original.replace("<size>10</size>", "<size>12</size>"))
    with pytest.raises(FileFormatError, match="annotations.xml: <meta> states 12 frames but .* holds 10"):
        read_sources("cvat", [folder], fps=25.0)
    xml.write_text(original.replace("<width>64</width>", "<width>640</width>"))
    with pytest.raises(FileFormatError, match="<meta> states 640x48 frames but .* are 64x48"):
        read_sources("cvat", [folder], fps=25.0)
    xml.write_text(original.replace('xbr="18.00" ybr="32.00"', 'xbr="10.00" ybr="32.00"', 1))
    with pytest.raises(
        FileFormatError, match=r"track 1 \(person\), frame 2: box \(10, 12, 10, 32\) has no area"
    ):
        read_sources("cvat", [folder], fps=25.0)
    xml.write_text('<annotations><image id="0" name="a.png"><box label="car"/></image></annotations>')
    with pytest.raises(FileFormatError, match="not a 'CVAT for video 1.1' export \\(an export of images"):
        read_sources("cvat", [folder], fps=25.0)
    xml.write_text(original.replace('label="car"', 'label="tram"'))
    with pytest.raises(FileFormatError, match="class 'tram' is not mapped"):
        import_split(
            read_sources("cvat", [folder], fps=25.0),
            ImportConfig(sensor_size=(64, 48)),
            tmp_path / "o",
            "cvat",
        )
    xml.write_text(original)
    (folder / "images" / "frame_000009.png").unlink()
    with pytest.raises(FileFormatError, match="<meta> states 10 frames but .* holds 9"):
        read_sources("cvat", [folder], fps=25.0)
    assert not (tmp_path / "o").exists()


def test_voc_stills_are_the_yolo_stills(tmp_path: Path) -> None:
    harbour, street = read_sources("voc", [VOC_ROOT])
    assert (harbour.name, street.name, harbour.size) == ("harbour", "street", (80, 40))
    assert [(box.class_key, box.box) for box in harbour.boxes] == [
        ("boat", (10.0, 10.0, 30.0, 20.0)), ("buoy", (50.0, 22.0, 56.0, 30.0))
    ]  # fmt: skip
    assert [(box.class_key, box.ignore) for box in street.boxes] == [("person", False), ("boat", True)]
    assert run_import(tmp_path / "voc", "voc", str(VOC_ROOT), "--split", "val") == 0
    assert run_import(tmp_path / "yolo", "yolo", str(YOLO_IMAGES), "--split", "val") == 0
    voc, yolo = DatasetSplit(tmp_path / "voc" / "val"), DatasetSplit(tmp_path / "yolo" / "val")
    assert [image["t_us"] for image in voc.images] == [image["t_us"] for image in yolo.images]
    for voc_image, yolo_image in zip(voc.images, yolo.images, strict=True):
        voc_targets, yolo_targets = voc.targets(voc_image), yolo.targets(yolo_image)
        same = len(yolo_targets["boxes"])
        np.testing.assert_allclose(voc_targets["boxes"][:same], yolo_targets["boxes"], atol=1e-4)
        assert voc_targets["labels"][:same].tolist() == yolo_targets["labels"].tolist()
        assert voc_targets["ignore"][:same].tolist() == yolo_targets["ignore"].tolist()
        if voc_image["sequence"] == "street":  # the difficult boat: an ignore region
            assert voc_targets["labels"][same:].tolist() == [CLASS_NAMES.index("boat")]
            assert voc_targets["ignore"][same:].tolist() == [True]
    np.testing.assert_array_equal(voc.sequence_events("harbour"), yolo.sequence_events("harbour"))

    # an image set of the root, and the folder with the xml beside the images, read the same boxes
    def boxes(source: StillSource | VideoSource, frame: int = 0) -> list[tuple]:
        listed = source.boxes if isinstance(source, StillSource) else source.boxes[frame]
        return [(box.class_key, box.box, box.ignore) for box in listed]

    (listed,) = read_sources("voc", [VOC_ROOT / "ImageSets" / "Main" / "val.txt"])
    assert boxes(listed) == boxes(harbour) and listed.image == harbour.image
    flat = tmp_path / "flat"
    shutil.copytree(VOC_ROOT / "JPEGImages", flat)
    for xml in (VOC_ROOT / "Annotations").glob("*.xml"):
        shutil.copy(xml, flat)
    assert [(s.name, boxes(s)) for s in read_sources("voc", [flat])] == [
        ("harbour", boxes(harbour)), ("street", boxes(street))
    ]  # fmt: skip
    (video,) = read_sources("voc", [flat], fps=5.0)
    assert video.frame_count == 2 and boxes(video, 1) == boxes(street)


def test_voc_labels_that_do_not_fit(tmp_path: Path) -> None:
    root = copy_sample("voc", tmp_path)
    xml = root / "Annotations" / "harbour.xml"
    original = xml.read_text()
    config = ImportConfig(sensor_size=(64, 48))
    xml.write_text(original.replace("<width>80</width>", "<width>160</width>"))
    with pytest.raises(FileFormatError, match="harbour.png: is 80x40 but .*harbour.xml labels it as 160x40"):
        import_split(read_sources("voc", [root]), config, tmp_path / "out", "voc")
    xml.write_text(original.replace("<xmax>30</xmax>", "<xmax>8</xmax>"))
    with pytest.raises(
        FileFormatError, match=r"harbour.xml: object 1 \(boat\): xmax 8 / ymax 20 lie before xmin 11"
    ):
        read_sources("voc", [root])
    xml.write_text(original.replace("<ymin>11</ymin>", "<ymin>eleven</ymin>"))
    with pytest.raises(FileFormatError, match=r"object 1 \(boat\): <ymin> 'eleven' is not a number"):
        read_sources("voc", [root])
    xml.write_text(original.replace("<name>buoy</name>", "<name>kayak</name>"))
    with pytest.raises(FileFormatError, match="harbour.xml object 2: class 'kayak' is not mapped"):
        import_split(read_sources("voc", [root]), config, tmp_path / "out", "voc")
    xml.write_text("<dataset></dataset>")
    with pytest.raises(FileFormatError, match="root element <dataset>, not <annotation>"):
        read_sources("voc", [root])
    xml.write_text(
        original.replace("<width>80</width><height>40</height>", "<width>0</width><height>0</height>")
    )
    (harbour, _) = read_sources("voc", [root])
    assert harbour.size == (80, 40)  # a <size> of zeros, as some tools write it: the image's own size
    (root / "Annotations" / "lighthouse.xml").write_text(original)
    with pytest.raises(
        FileFormatError, match="lighthouse.xml: labels an image lighthouse.* that .* does not"
    ):
        read_sources("voc", [root])
    (root / "Annotations" / "lighthouse.xml").unlink()
    image_set = root / "ImageSets" / "Main" / "val.txt"
    image_set.write_text("harbour\nlighthouse\n")
    with pytest.raises(FileFormatError, match="val.txt: lists 'lighthouse' but .*JPEGImages holds no such"):
        read_sources("voc", [image_set])
    (root / "JPEGImages" / "street.png").write_bytes(b"not a png")
    with pytest.raises(FileFormatError, match="street.png"):
        import_split(read_sources("voc", [root]), config, tmp_path / "out", "voc")
    assert not (tmp_path / "out").exists()


def test_check_reads_and_checks_labels_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_main(["dataset", "import", "mot", str(MOT_SEQUENCE), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # tracks 1, 3, 4, the distractor and the conf = 0 rows (ignore regions) are pedestrians; no bicycle
    assert lines == [
        "SEQ-01: video, 10 frames at 25 fps, 10 labelled, 64x48; boxes: car 10, pedestrian 50",
        "total: 1 video (10 frames), 0 stills; boxes: car 10, pedestrian 50 (20 marked ignore by the labels "
        "or the class map)",
        "labels match their frames; nothing written (--check)",
    ]
    assert cli_main(["dataset", "import", "yolo", str(YOLO_IMAGES), "--check"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "total: 0 videos (0 frames), 2 stills; boxes: boat 1, buoy 1, pedestrian 1 (0 marked ignore by the "
        "labels or the class map)"
    )
    root = copy_sample("voc", tmp_path)  # a label stating another image size: found by the frame checks
    xml = root / "Annotations" / "harbour.xml"
    xml.write_text(xml.read_text().replace("<width>80</width>", "<width>160</width>"))
    assert cli_main(["dataset", "import", "voc", str(root), "--check"]) == 2
    assert "harbour.png: is 80x40 but" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]  # nothing written
    assert cli_main(["dataset", "import", "mot", str(MOT_SEQUENCE)]) == 2
    assert "--out is required" in capsys.readouterr().err


def test_video_file_import_is_what_drive_video_sees(tmp_path: Path) -> None:
    config = ImportConfig(
        split="test",
        seed=7,
        sensor_size=(64, 48),
        fit="stretch",
        interpolation="none",
        randomise_sensor=False,
    )
    sources = read_sources("mot", [MOT_VIDEO])
    import_split(sources, config, tmp_path, "mot")
    split = DatasetSplit(tmp_path / "test")
    sequence = split.info["sequences"][0]["name"]
    _, seed = sequence_seeds(7, "test", 0)
    frames = list(iter_video_frames(str(MOT_VIDEO), (64, 48)))
    for encode in ("dvs", "spike"):
        encoder = FrameEncoder(encode, 1000.0, seed=seed, dvs=DVSParams(), poisson_max_rate=1.0)
        outputs = [encoder.push(t, frame) for t, frame in frames][1:]
        if encode == "dvs":
            expected = np.concatenate([events for _, events in outputs])
            np.testing.assert_array_equal(split.sequence_events(sequence), expected)
        else:
            expected = np.concatenate([payload[0] for _, payload in outputs])
            written = read_spike_dat(tmp_path / "test" / sequence / "spikes.dat", (64, 48))
            np.testing.assert_array_equal(written, expected)
    assert len(split.images) == 4 and len(split.targets(split.images[0])["boxes"]) == 6


def test_flow_interpolation_moves_edges() -> None:
    np.testing.assert_array_equal(in_between_times(0, 40_000, 250.0), np.arange(1, 10) * 4_000)
    assert len(in_between_times(0, 4_000, 250.0)) == 0
    # a textured object moving 8 px right over a textured background
    rng = np.random.default_rng(0)
    ground = cv2.GaussianBlur(rng.random((64, 96), dtype=np.float32), (0, 0), 2) * 0.4 + 0.2
    thing = cv2.GaussianBlur(rng.random((24, 16), dtype=np.float32), (0, 0), 1) * 0.4 + 0.6

    def frame(x: int) -> np.ndarray:
        image = ground.copy()
        image[20:44, x : x + 16] = thing
        return image

    middle = flow_interpolate(frame(30), frame(38), np.array([0.5]))[0]
    blend_error = np.abs(0.5 * frame(30) + 0.5 * frame(38) - frame(34)).mean()
    assert np.abs(middle - frame(34)).mean() < 0.3 * blend_error  # measured: 0.0014 against 0.0132


def test_coco_video_and_stills(tmp_path: Path) -> None:
    assert run_import(tmp_path, "coco", str(COCO_JSON), "--split", "train", workers=2) == 0
    split = DatasetSplit(tmp_path / "train")
    sequences = {s["name"]: s for s in split.info["sequences"]}
    assert set(sequences) == {"walk", "harbour", "street"}
    walk = [image for image in split.images if image["sequence"] == "walk"]
    assert [image["t_us"] for image in walk] == [80_000, 160_000, 280_000, 360_000]
    assert by_track(split, walk[0])[1]["bbox"] == [10.0, 12.0, 8.0, 20.0]
    assert by_track(split, walk[0])[3]["ignore_reasons"] == ["still"]
    # stills 80x40 padded onto 64x48: scale 0.8, 8 px above and below, moved by the saccades
    mapping = sequences["harbour"]["mapping"]
    assert mapping["scale"] == [0.8, 0.8] and mapping["offset"] == [0, 8]
    harbour = [image for image in split.images if image["sequence"] == "harbour"]
    assert [image["t_us"] for image in harbour] == [50_000, 150_000, 250_000]
    offsets = still_offsets(np.array([image["t_us"] for image in harbour]), ImportConfig().still_motion)
    for image, (dx, dy) in zip(harbour, offsets, strict=True):
        targets = split.targets(image)
        boat, buoy = targets["boxes"]
        np.testing.assert_allclose(boat, [8 + dx, 16 + dy, 24 + dx, 24 + dy], atol=0.01)
        assert targets["labels"].tolist() == [CLASS_NAMES.index("boat"), CLASS_NAMES.index("buoy")]
        assert targets["ignore"].tolist() == [False, True]  # the buoy is 4.8 px wide
        assert split.input(image, "events")[:, 16:24, 8:24].sum() > 10
    stills = [a for a in split.coco["annotations"] if a["track_id"] == -1]
    assert all(a["motion_px"] == pytest.approx(2.0, abs=0.01) for a in stills)  # 4 px per 100 ms
    # the CLI ran 2 workers; one process writes the same split
    config = ImportConfig(split="train", sensor_size=(64, 48))
    import_split(read_sources("coco", [COCO_JSON]), config, tmp_path / "one", "coco", workers=1)
    alone = DatasetSplit(tmp_path / "one" / "train")
    assert alone.coco["annotations"] == split.coco["annotations"] and alone.images == split.images
    for name in sequences:
        np.testing.assert_array_equal(alone.sequence_events(name), split.sequence_events(name))


def test_yolo_stills_crop_and_pan(tmp_path: Path) -> None:
    arguments = ["yolo", str(YOLO_IMAGES), "--split", "val", "--fit", "crop", "--still-motion", "pan"]
    assert run_import(tmp_path, *arguments) == 0
    split = DatasetSplit(tmp_path / "val")
    # 80x40 filling 64x48: scale 1.2, 96x48 with 16 px cut on each side; pan 40 px/s centred on 0.15 s
    assert split.info["sequences"][0]["mapping"]["offset"] == [-16, 0]
    street = [image for image in split.images if image["sequence"] == "street"]
    for image in street:
        dx = 40.0 * (image["t_us"] / 1e6 - 0.15)
        (person,) = split.targets(image)["boxes"]
        np.testing.assert_allclose(person, [30 * 1.2 - 16 + dx, 7.2, 38 * 1.2 - 16 + dx, 36], atol=0.01)
    harbour = split.images[0]
    boat = next(a for a in split.coco["annotations"] if a["image_id"] == harbour["id"])
    assert boat["bbox"][0] == 0.0  # the boat's left part is cut: (12 - 16 - 4) px
    assert boat["visible_fraction"] == pytest.approx(16 / 24, abs=0.01)


def test_yolo_folder_as_video(tmp_path: Path) -> None:
    sources = read_sources("yolo", [YOLO_IMAGES], fps=5.0)
    assert len(sources) == 1 and sources[0].frame_count == 2
    config = ImportConfig(split="train", sensor_size=(64, 48), label_every_ms=200)
    import_split(sources, config, tmp_path, "yolo")
    split = DatasetSplit(tmp_path / "train")
    assert [image["t_us"] for image in split.images] == [200_000]  # frames at 0 and 200 ms
    assert split.info["sequences"][0]["source"]["source_frames"] == 2
    assert len(split.sequence_events(split.images[0]["sequence"])) > 0


def test_class_maps_and_names(tmp_path: Path) -> None:
    mapping = {**default_class_map("coco"), **parse_class_map("dog=pedestrian:ignore, bus=-")}
    assert mapping["person"].name == "pedestrian" and mapping["boat"].name == "boat"
    assert mapping["dog"].name == "pedestrian" and mapping["dog"].ignore and mapping["bus"].name is None
    assert default_class_map("mot")["3"].name == "car" and default_class_map("mot")["7"].ignore
    with pytest.raises(UserFacingError, match="'cat' is not one of boat, buoy, car, pedestrian"):
        parse_class_map("dog=cat")
    with pytest.raises(UserFacingError, match="expected SOURCE=TARGET"):
        parse_class_map("person")
    assert read_names(SAMPLES / "yolo" / "data.yaml") == ["person", "car", "boat", "buoy", "kite"]
    for text in (
        "names: ['person', \"car\"]\n",
        "names: {0: person, 1: car}\n",
        "nc: 2\nnames:\n- person\n- car\n",
    ):
        (tmp_path / "data.yaml").write_text(text)
        assert read_names(tmp_path / "data.yaml") == ["person", "car"], text
    (tmp_path / "obj.names").write_text("person\ncar\n\n")
    assert read_names(tmp_path / "obj.names") == ["person", "car"]
    with pytest.raises(UserFacingError, match="--min-motion-px -1"):
        ImportConfig(min_motion_px=-1)
    assert fit_mapping((1920, 1080), (346, 260), "pad").offset == (0, 32)  # 195 rows


def copy_sample(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(SAMPLES / name, target)
    return target


def test_unmapped_classes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    coco_dir = copy_sample("coco", tmp_path)
    coco = json.loads((coco_dir / "annotations.json").read_text())
    coco["annotations"].append(
        {"id": 999, "image_id": 11, "category_id": 6, "bbox": [40, 5, 10, 10], "area": 100, "iscrowd": 0}
    )
    # a still showing only a dog: empty once the dog is dropped
    shutil.copy(coco_dir / "stills" / "street.png", coco_dir / "stills" / "dog.png")
    coco["images"].append({"id": 13, "file_name": "stills/dog.png", "width": 80, "height": 40})
    coco["annotations"].append(
        {"id": 1000, "image_id": 13, "category_id": 6, "bbox": [40, 5, 10, 10], "area": 100, "iscrowd": 0}
    )
    (coco_dir / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    assert run_import(out, "coco", str(coco_dir / "annotations.json")) == 2
    error = capsys.readouterr().err
    assert "class 'dog' is not mapped" in error and "annotations.json annotation 999" in error
    assert not out.exists()
    assert run_import(out, "coco", str(coco_dir / "annotations.json"), "--drop-unmapped") == 0
    split = DatasetSplit(out / "train")
    assert {a["category_id"] for a in split.coco["annotations"]} == {1, 2, 3, 4}  # no dog
    assert split.info["import"]["skipped_empty_stills"] == 1
    assert {s["name"] for s in split.info["sequences"]} == {"walk", "harbour", "street"}
    arguments = ["coco", str(coco_dir / "annotations.json"), "--drop-unmapped", "--keep-empty-stills"]
    assert run_import(out, *arguments, "--overwrite") == 0
    split = DatasetSplit(out / "train")
    assert "dog" in {s["name"] for s in split.info["sequences"]}
    assert [split.targets(image)["boxes"].shape for image in split.images if image["sequence"] == "dog"] == [
        (0, 4)
    ] * 3

    yolo_dir = copy_sample("yolo", tmp_path)
    with (yolo_dir / "labels" / "street.txt").open("a") as labels:
        labels.write("4 0.5 0.5 0.1 0.1\n")
    assert run_import(tmp_path / "yolo-out", "yolo", str(yolo_dir / "images")) == 2
    assert "class 'kite' is not mapped" in capsys.readouterr().err
    assert run_import(tmp_path / "yolo-out", "yolo", str(yolo_dir / "images"), "--classes-map", "kite=-") == 0


def test_labels_that_do_not_match_their_video(tmp_path: Path) -> None:
    sequence = copy_sample("mot", tmp_path) / "SEQ-01"
    gt = sequence / "gt" / "gt.txt"
    original = gt.read_text()
    config = ImportConfig(sensor_size=(64, 48))
    gt.write_text(original + "11,1,10,12,8,20,1,1,1.0\n")
    with pytest.raises(FileFormatError, match=r"gt.txt line 71: labels frame 11 .* the video has 10 frames"):
        import_split([read_mot(sequence)], config, tmp_path / "out", "mot")
    gt.write_text(original + "10,1,70,12,8,20,1,1,1.0\n")
    with pytest.raises(FileFormatError, match="box .* lies outside the 64x48 image"):
        import_split([read_mot(sequence)], config, tmp_path / "out", "mot")
    gt.write_text(original)
    seqinfo = sequence / "seqinfo.ini"
    seqinfo.write_text(seqinfo.read_text().replace("imWidth=64", "imWidth=640"))
    with pytest.raises(FileFormatError, match="000001.png: is 64x48 but seqinfo.ini states 640x48"):
        read_mot(sequence)
    video_labels = tmp_path / "mot" / "clip.txt"
    video_labels.write_text(video_labels.read_text() + "30,1,10,12,8,20,1,1,1.0\n")
    with pytest.raises(FileFormatError, match="labels frame 30 .* the video has 10 frames"):
        import_split([read_mot(tmp_path / "mot" / "clip.avi")], config, tmp_path / "out", "mot")
    assert not (tmp_path / "out").exists()

    coco_dir = copy_sample("coco", tmp_path)
    coco = json.loads((coco_dir / "annotations.json").read_text())
    coco["images"][-1]["width"] = 160
    (coco_dir / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(FileFormatError, match="street.png: is 80x40 but .* labels it as 160x40"):
        import_split(read_coco(coco_dir / "annotations.json"), config, tmp_path / "out", "coco")

    yolo_dir = copy_sample("yolo", tmp_path)
    (yolo_dir / "labels" / "street.txt").write_text("0 0.5 0.5 1.5 0.2\n")
    with pytest.raises(FileFormatError, match="street.txt: line 1: box .* lies beyond the image"):
        read_sources("yolo", [yolo_dir / "images"])
    (yolo_dir / "labels" / "pier.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(FileFormatError, match="pier.txt: labels an image pier.* that"):
        read_sources("yolo", [yolo_dir / "images"])


def test_unreadable_video_and_image(tmp_path: Path) -> None:
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(FileFormatError, match="broken.avi: OpenCV cannot open it as a video"):
        read_mot(broken)
    sequence = copy_sample("mot", tmp_path) / "SEQ-01"
    (sequence / "img1" / "000004.png").write_bytes(b"garbage")
    config = ImportConfig(sensor_size=(64, 48))
    with pytest.raises(FileFormatError, match="000004.png: cannot be read as an image"):
        import_split([read_mot(sequence)], config, tmp_path / "out", "mot")
    assert not (tmp_path / "out" / "train" / "annotations.json").exists()


def test_interrupt_leaves_no_split(tmp_path: Path) -> None:
    seen = []

    def interrupt_at_third_frame(count: int) -> None:
        seen.append(count)
        if len(seen) == 3:
            raise KeyboardInterrupt

    config = ImportConfig(sensor_size=(64, 48))
    with pytest.raises(KeyboardInterrupt):
        import_split([read_mot(MOT_SEQUENCE)], config, tmp_path, "mot", progress=interrupt_at_third_frame)
    assert not (tmp_path / "train" / "annotations.json").exists()
    with pytest.raises(FileFormatError, match="no annotations.json"):
        DatasetSplit(tmp_path / "train")
    with pytest.raises(UserFacingError, match="exists and is not empty"):
        import_split([read_mot(MOT_SEQUENCE)], config, tmp_path, "mot")
    import_split([read_mot(MOT_SEQUENCE)], config, tmp_path, "mot", overwrite=True)
    assert len(DatasetSplit(tmp_path / "train")) == 4


def write_sot_sample(root: Path, frames: int = 12) -> tuple[Path, list[tuple[int, int] | None]]:
    """A UAV123-style sequence: ``seq/boat1/000001.jpg`` ... and ``seq/boat1.txt``, one ``x,y,w,h`` line per
    frame (1-based pixels), a bright 10x8 box moving 3 px per frame on a dark 64x48 picture, absent
    (``NaN`` line, then a line of zeros) in frames 5 and 6; separators comma, tab and space in turn.
    Returns the frame folder and each frame's 0-based top-left corner (None: absent)."""
    folder = root / "seq" / "boat1"
    folder.mkdir(parents=True)
    corners: list[tuple[int, int] | None] = [None if k in (5, 6) else (6 + 3 * k, 20) for k in range(frames)]
    lines = []
    for k, corner in enumerate(corners):
        picture = np.full((48, 64, 3), 40, np.uint8)
        if corner is None:
            lines.append("NaN,NaN,NaN,NaN" if k == 5 else "0 0 0 0")
        else:
            x, y = corner
            picture[y : y + 8, x : x + 10] = 220
            lines.append([",", "\t", " "][k % 3].join(str(v) for v in (x + 1, y + 1, 10, 8)))
        assert cv2.imwrite(str(folder / f"{k + 1:06d}.jpg"), picture)
    (root / "seq" / "boat1.txt").write_text("\n".join(lines) + "\n\n")
    return folder, corners


def test_sot_sequence_is_one_track_of_the_class_given(tmp_path: Path) -> None:
    folder, corners = write_sot_sample(tmp_path)
    (source,) = read_sources("sot", [folder], fps=10.0, class_name="boat")
    assert source.label_file == tmp_path / "seq" / "boat1.txt" and source.frame_count == 12
    assert source.labelled == frozenset(range(12)) and sorted(source.boxes) == [*range(5), *range(7, 12)]
    assert source.boxes[2][0].box == (12.0, 20.0, 22.0, 28.0)  # line "13 21 10 8": 1-based top-left
    out = tmp_path / "out"
    assert run_import(out, "sot", str(folder), "--class", "boat", "--fps", "10", "--split", "test") == 0
    split = DatasetSplit(out / "test")
    # 10 fps: the first frame at or after 50, 150, ... ms is frame 1, 2, ...
    assert [image["source_frame"] for image in split.images] == list(range(1, 12))
    assert split.info["sequences"][0]["source"]["fps"] == 10.0
    for image in split.images:
        annotations = [a for a in split.coco["annotations"] if a["image_id"] == image["id"]]
        corner = corners[image["source_frame"]]
        if corner is None:  # absent: no box
            assert annotations == []
            continue
        (annotation,) = annotations
        assert annotation["bbox"] == [float(corner[0]), 20.0, 10.0, 8.0]
        assert annotation["category_id"] == CLASS_NAMES.index("boat") + 1 and annotation["track_id"] == 1
        assert not annotation["ignore"]
    assert len(split.events(split.images[2])) > 0
    # a person's sequence: the class goes through the class map like any other class key
    (walker,) = read_sources("sot", [folder], fps=10.0, class_name="person")
    config = ImportConfig(sensor_size=(64, 48), class_map=default_class_map("sot"))
    path = import_split([walker], config, tmp_path / "walker", "sot")
    categories = {a["category_id"] for a in DatasetSplit(path.parent).coco["annotations"]}
    assert categories == {PEDESTRIAN + 1}


def test_sot_labels_that_do_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder, _ = write_sot_sample(tmp_path)
    labels = tmp_path / "seq" / "boat1.txt"
    original = labels.read_text()
    out = tmp_path / "out"
    assert run_import(out, "sot", str(folder), "--fps", "10") == 2
    assert "labels name no class; pass --class" in capsys.readouterr().err
    assert run_import(out, "mot", str(MOT_SEQUENCE), "--class", "boat") == 2
    assert "--class 'boat' is for the sot layout only" in capsys.readouterr().err
    with pytest.raises(UserFacingError, match="a folder of frames states no frame rate; pass --fps"):
        read_sources("sot", [folder], class_name="boat")
    labels.write_text(original.rstrip("\n") + "\n40,21,10,8\n")
    with pytest.raises(FileFormatError, match=r"boat1.txt: 13 lines .* but .*boat1 holds 12 frames: more"):
        read_sources("sot", [folder], fps=10.0, class_name="boat")
    (folder / "000012.jpg").unlink()
    labels.write_text(original)
    with pytest.raises(FileFormatError, match=r"boat1.txt: 12 lines .* but .*boat1 holds 11 frames: more"):
        read_sources("sot", [folder], fps=10.0, class_name="boat")
    labels.write_text("\n".join(original.splitlines()[:9]))
    with pytest.raises(FileFormatError, match=r"boat1.txt: 9 lines .* but .*boat1 holds 11 frames: fewer"):
        read_sources("sot", [folder], fps=10.0, class_name="boat")
    lines = original.splitlines()
    for bad, message in (
        ("7,21,ten,8", r"boat1.txt: line 4: expected x,y,w,h numbers, got '7,21,ten,8'"),
        ("7,21,10", "boat1.txt: line 4: expected 4 values x,y,w,h"),
        ("7,21,0,8", "boat1.txt: line 4: box '7,21,0,8' is neither a box with positive width"),
        ("NaN,21,10,8", "boat1.txt: line 4: box 'NaN,21,10,8' is neither"),
        ("", "boat1.txt: line 4: expected 4 values"),  # an empty line would shift the frames after it
    ):
        labels.write_text("\n".join([*lines[:3], bad, *lines[4:11]]) + "\n")
        with pytest.raises(FileFormatError, match=message):
            read_sources("sot", [folder], fps=10.0, class_name="boat")
    assert run_import(out, "sot", str(folder), "--fps", "10", "--class", "boat", "--check") == 2
    assert "boat1.txt: line 4: expected 4 values" in capsys.readouterr().err
    assert not out.exists()


def test_usvtrack_script_scores_buoy_rows_and_import_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datasets/real/usvtrack_scored_buoys.py (the data card's USVTrack step), run as a user runs it: the
    buoy rows (class 9, active 0) become scored boxes, nothing else changes, and the import reads them."""
    sequence = tmp_path / "raw" / "sequence_1"
    shutil.copytree(MOT_SEQUENCE, sequence)
    rows = (sequence / "gt" / "gt.txt").read_text().splitlines()
    buoys = [f"{frame},9,30,20,6,6,0,9,1.0" for frame in range(1, 11)]
    (sequence / "gt" / "gt.txt").write_text("\n".join(rows + buoys) + "\n")
    script = Path(__file__).parents[1] / "datasets" / "real" / "usvtrack_scored_buoys.py"
    out = tmp_path / "scored"
    done = subprocess.run(
        [sys.executable, str(script), str(sequence), "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{out / 'sequence_1'}: 10 buoy rows made scored"
    written = (out / "sequence_1" / "gt" / "gt.txt").read_text().splitlines()
    assert written[: len(rows)] == rows
    assert written[len(rows) :] == [row.replace(",0,9,", ",1,9,") for row in buoys]
    assert (out / "sequence_1" / "seqinfo.ini").read_text() == (MOT_SEQUENCE / "seqinfo.ini").read_text()
    monkeypatch.chdir(tmp_path)
    for directory, ignored in ((sequence, 30), (out / "sequence_1", 20)):
        command = ["dataset", "import", "mot", str(directory), "--classes-map", "9=buoy", "--check"]
        assert cli_main(command) == 0
        total = capsys.readouterr().out.splitlines()[1]
        assert total == (
            f"total: 1 video (10 frames), 0 stills; boxes: buoy 10, car 10, pedestrian 50 ({ignored} marked "
            "ignore by the labels or the class map)"
        )
    again = subprocess.run(
        [sys.executable, str(script), str(sequence), "--out", str(out)], capture_output=True, text=True
    )
    assert again.returncode != 0 and "exists; remove it first" in again.stderr


def test_prepare_meva_writes_mot_sequences_with_parked_ignore_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datasets/real/prepare.py's MEVA step (data card, "MEVA"), run as a user runs it on a raw tree with
    only that source: each clip becomes a MOT sequence (frames linked, labels at 30 fps, person -> 1,
    vehicle -> 3), the parked vehicles of meva-parked.csv become ignore rows on every frame, and the
    importer reads the result; a class outside the mapping is a clear error."""
    raw = tmp_path / "raw"
    clip = "rvmot-c4f6"  # a clip meva-parked.csv lists (14 regions)
    frames = raw / "meva" / "scenario-catalog" / "media" / "real-video-v2" / clip / "frames"
    frames.mkdir(parents=True)
    for k in range(4):
        cv2.imwrite(str(frames / f"frame-{k:04d}.jpg"), np.full((500, 896, 3), 40 + 20 * k, np.uint8))
    labels = raw / "meva" / "scenarios" / "real-video-v2" / clip / "ground_truth.jsonl"
    labels.parent.mkdir(parents=True)
    rows = [
        {
            "bbox_xyxy": [100.0 + 8 * k, 200.0, 140.0 + 8 * k, 300.0],
            "class_id": "person",
            "target_id": "p-001",
            "source_timestamp_ns": round(k * 1e9 / 30),
        }
        for k in range(4)
    ] + [
        {
            "bbox_xyxy": [700.0, 100.0, 800.0, 150.0],
            "class_id": "vehicle",
            "target_id": "v-001",
            "source_timestamp_ns": 33333333,
        }
    ]
    labels.write_text("".join(json.dumps(row) + "\n" for row in rows))
    script = Path(__file__).parents[1] / "datasets" / "real" / "prepare.py"
    out = tmp_path / "prepared"
    done = subprocess.run(
        [sys.executable, str(script), "--raw", str(raw), "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"{raw / 'coco128'}: absent, coco128 not prepared" in done.stdout
    assert f"{out / 'meva' / clip}: 4 frames, 5 boxes, 14 parked" in done.stdout
    sequence = out / "meva" / clip
    assert sorted(p.name for p in (sequence / "img1").iterdir()) == [f"{k:06d}.jpg" for k in range(1, 5)]
    assert (sequence / "img1" / "000003.jpg").resolve() == (frames / "frame-0002.jpg").resolve()
    assert "frameRate=30\nseqLength=4\nimWidth=896\nimHeight=500\n" in (sequence / "seqinfo.ini").read_text()
    gt = (sequence / "gt" / "gt.txt").read_text().splitlines()
    assert gt[:3] == [
        "1,1,100.000,200.000,40.000,100.000,1,1,1",
        "1,3,0,367,38,63,0,3,1",
        "1,4,70,390,41,43,0,3,1",
    ]
    assert "2,2,700.000,100.000,100.000,50.000,1,3,1" in gt
    assert len(gt) == 5 + 4 * 14 and sum(row.split(",")[6] == "0" for row in gt) == 4 * 14
    monkeypatch.chdir(tmp_path)
    assert cli_main(["dataset", "import", "mot", str(sequence), "--check"]) == 0
    assert "4 frames at 30 fps" in capsys.readouterr().out
    labels.write_text(labels.read_text().replace('"vehicle"', '"dog"'))
    failed = subprocess.run(
        [sys.executable, str(script), "--raw", str(raw), "--out", str(out)], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "unmapped MEVA class 'dog'" in failed.stderr


def test_prepare_motchallenge_writes_videos_with_mot_labels_in_their_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datasets/real/prepare.py's MOTChallenge step (data card, "MOT17"): CVBench's small videos get a
    MOT gt.txt beside them in the video's own pixels (the ground truth is in the original frame's), the
    class from the target id (person -> 1; ignore-cKK -> KK, conf 0, but cars scored), rows off screen
    left out, and the importer reads the pair; a target id of another form is a clear error."""
    root = tmp_path / "raw" / "motchallenge" / "scenarios" / "motchallenge-v1"
    (root / "public").mkdir(parents=True)
    video = root / "public" / "mot17-77.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (96, 54))
    for k in range(4):
        writer.write(np.full((54, 96, 3), 40 + 30 * k, np.uint8))
    writer.release()
    manifest = {"sequence_results": {"mot17-77": {"width": 384, "height": 216, "fps": 25, "frame_count": 4}}}
    (root / "ingest-manifest.json").write_text(json.dumps(manifest))
    rows = [
        {
            "bbox_xyxy": [40 + 8 * k, 80, 80 + 8 * k, 200],
            "target_id": "person-0001",
            "visibility_fraction": 0.5,
            "source_timestamp_ns": k * 40_000_000,
        }
        for k in range(4)
    ] + [
        {
            "bbox_xyxy": [200, 100, 300, 160],
            "target_id": "ignore-c03-0002",
            "source_timestamp_ns": 40_000_000,
        },
        {"bbox_xyxy": [300, 20, 340, 120], "target_id": "ignore-c07-0003", "source_timestamp_ns": 0},
        {"target_id": "ignore-c10-0004", "on_screen": False, "source_timestamp_ns": 0},
    ]
    labels = root / "public" / "mot17-77-ground-truth.jsonl.gz"
    with gzip.open(labels, "wt") as out_file:
        out_file.write("".join(json.dumps(row) + "\n" for row in rows))
    script = Path(__file__).parents[1] / "datasets" / "real" / "prepare.py"
    out = tmp_path / "prepared"
    command = [sys.executable, str(script), "--raw", str(tmp_path / "raw"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    prepared = out / "motchallenge" / "mot17-77.mp4"
    assert f"{prepared}: 4 frames at 25 fps, 6 boxes" in done.stdout
    assert prepared.resolve() == video.resolve()
    gt = (out / "motchallenge" / "mot17-77.txt").read_text().splitlines()
    assert gt[:2] == ["1,1,10.00,20.00,10.00,30.00,1,1,0.5", "1,3,75.00,5.00,10.00,25.00,0,7,1"]
    assert "2,2,50.00,25.00,25.00,15.00,1,3,1" in gt and len(gt) == 6
    monkeypatch.chdir(tmp_path)
    assert cli_main(["dataset", "import", "mot", str(prepared), "--check"]) == 0
    assert "4 frames at 25 fps" in capsys.readouterr().out
    with gzip.open(labels, "at") as out_file:
        out_file.write(
            json.dumps({"bbox_xyxy": [0, 0, 8, 8], "target_id": "dog-1", "source_timestamp_ns": 0})
        )
    failed = subprocess.run(command, capture_output=True, text=True)
    assert failed.returncode != 0 and "target id 'dog-1' is neither person-<n>" in failed.stderr
