"""Write the tiny labelled samples of tests/test_importing.py (committed; rerun to regenerate them).

    python tests/data/import/make_import_samples.py

- ``mot/SEQ-01/``: a MOT-challenge sequence folder: ``seqinfo.ini``, ``img1/000001.png`` ...
  ``000010.png`` (64 x 48, 25 fps), ``gt/gt.txt``; ``mot/clip.avi`` (the same frames, MJPG) with
  ``mot/clip.txt`` (the same labels).
- ``coco/annotations.json``: the same ten frames as a video (``coco/video/``) plus two stills
  (``coco/stills/``, 80 x 40) with a boat, a buoy and a person.
- ``yolo/``: the two stills as ``images/*.png`` with ``labels/*.txt`` and ``data.yaml``.
- ``caviar/walk/``: the ten frames as ``walk0000.jpg`` ... with ``walkgt.xml``, CAVIAR's ground-truth
  layout (``<frame number>`` from 0, ``<object id>``, ``<box xc yc w h>``): the people of the video
  (tracks 1, 3 and 4; CAVIAR labels people only), and in each frame a ``<group>`` of tracks 1 and 3,
  which is not an object.
- ``cvat/walk/``: the ten frames as ``images/frame_000000.png`` ... with ``annotations.xml`` in the
  "CVAT for video 1.1" layout: tracks 1-4 of the video (labels ``person`` and ``car``, a box in every
  frame as CVAT writes them), track 4 marked ``outside`` from frame 8 on (and absent in frame 9), and a
  polygon track, which is not a box.
- ``cvat/jaad_style.xml``: tracks 1, 3 and 4 of the same video as JAAD writes its annotations (a
  ``<task>`` meta, tracks without ``id``, labels ``pedestrian``, ``ped`` and ``people``, a per-box
  ``occlusion`` attribute): track 1 is ``none`` in frames 0-4, ``part`` in 5-7 and ``full`` in 8-9.
- ``voc/``: the two stills as a Pascal VOC root: ``JPEGImages/*.png``, ``Annotations/*.xml`` (1-based
  ``bndbox``, ``xmax`` included) with one more object in ``street.xml``, a boat marked ``difficult``, and
  ``ImageSets/Main/val.txt`` listing ``harbour``.

Scene of the video: on a textured grey background, a bright pedestrian (track 1) walks right 3 px per
frame, a dark car (track 2) drives left 3 px per frame, a person (track 3) stands still and a 4 px
person (track 4) moves 1 px per frame. Label-only rows: a distractor (class 8, track 5), a bicycle
(class 4, track 6) and a person with ``conf = 0`` (track 7); track 1 is 10 % visible in frame 10.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SIZE = (64, 48)
FRAMES = 10
FPS = 25


def moving_boxes(k: int) -> list[tuple[int, int, int, int, int, int, int]]:
    """``(track, class, x, y, w, h, luminance)`` drawn in frame ``k`` (from 0)."""
    return [
        (1, 1, 4 + 3 * k, 12, 8, 20, 230),
        (2, 3, 50 - 3 * k, 30, 12, 8, 15),
        (3, 1, 2, 36, 6, 10, 190),
        (4, 1, 40 + k, 2, 4, 4, 240),
    ]


def background(size: tuple[int, int], seed: int) -> np.ndarray:
    """A textured grey background (blurred noise around 90), 8-bit ``[H, W]``."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(90, 25, (size[1], size[0])).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.0), 0, 255).astype(np.uint8)


def video_frames() -> list[np.ndarray]:
    frames = []
    base = background(SIZE, 0)
    for k in range(FRAMES):
        frame = base.copy()
        for _, _, x, y, w, h, luminance in moving_boxes(k):
            frame[y : y + h, x : x + w] = luminance
        frames.append(frame)
    return frames


def gt_lines() -> list[str]:
    lines = []
    for k in range(FRAMES):
        for track, cls, x, y, w, h, _ in moving_boxes(k):
            visibility = 0.1 if (track == 1 and k == FRAMES - 1) else 1.0
            lines.append(f"{k + 1},{track},{x},{y},{w},{h},1,{cls},{visibility}")
        lines.append(f"{k + 1},5,20,2,6,8,1,8,1.0")
        lines.append(f"{k + 1},6,10,38,10,6,1,4,1.0")
        lines.append(f"{k + 1},7,54,12,6,8,0,1,1.0")
    return lines


def write_mot(frames: list[np.ndarray]) -> None:
    sequence = HERE / "mot" / "SEQ-01"
    shutil.rmtree(HERE / "mot", ignore_errors=True)
    (sequence / "img1").mkdir(parents=True)
    (sequence / "gt").mkdir()
    for k, frame in enumerate(frames):
        cv2.imwrite(str(sequence / "img1" / f"{k + 1:06d}.png"), frame)
    (sequence / "gt" / "gt.txt").write_text("\n".join(gt_lines()) + "\n")
    (sequence / "seqinfo.ini").write_text(
        "[Sequence]\nname=SEQ-01\nimDir=img1\nframeRate=25\nseqLength=10\nimWidth=64\nimHeight=48\n"
        "imExt=.png\n"
    )
    writer = cv2.VideoWriter(str(HERE / "mot" / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    (HERE / "mot" / "clip.txt").write_text("\n".join(gt_lines()) + "\n")


STILLS = {
    "harbour": [("boat", 10, 10, 20, 10, 230), ("buoy", 50, 22, 6, 8, 20)],
    "street": [("person", 30, 6, 8, 24, 220)],
}
"""Still name -> ``(class, x, y, w, h, luminance)`` on an 80 x 40 image."""


def still_image(name: str) -> np.ndarray:
    image = background((80, 40), 1 + len(name))
    for _, x, y, w, h, luminance in STILLS[name]:
        image[y : y + h, x : x + w] = luminance
    return image


def write_coco(frames: list[np.ndarray]) -> None:
    root = HERE / "coco"
    shutil.rmtree(root, ignore_errors=True)
    (root / "video").mkdir(parents=True)
    (root / "stills").mkdir()
    names = ["person", "bicycle", "car", "boat", "buoy", "dog"]
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]
    images, annotations = [], []
    for k, frame in enumerate(frames):
        cv2.imwrite(str(root / "video" / f"{k:04d}.png"), frame)
        images.append(
            {
                "id": k + 1,
                "file_name": f"video/{k:04d}.png",
                "width": 64,
                "height": 48,
                "video_id": 1,
                "frame_id": k,
            }
        )
        for track, cls, x, y, w, h, _ in moving_boxes(k):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": 1 if cls == 1 else 3,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "track_id": track,
                }
            )
    for name, boxes in STILLS.items():
        cv2.imwrite(str(root / "stills" / f"{name}.png"), still_image(name))
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": f"stills/{name}.png", "width": 80, "height": 40})
        for cls, x, y, w, h, _ in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": names.index(cls) + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    coco = {
        "videos": [{"id": 1, "name": "walk", "fps": FPS}],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (root / "annotations.json").write_text(json.dumps(coco, indent=1) + "\n")


def write_yolo() -> None:
    root = HERE / "yolo"
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    names = ["person", "car", "boat", "buoy", "kite"]
    (root / "data.yaml").write_text(
        "path: .\ntrain: images\nval: images\nnames:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    )
    for name, boxes in STILLS.items():
        cv2.imwrite(str(root / "images" / f"{name}.png"), still_image(name))
        rows = [
            f"{names.index(cls)} {(x + w / 2) / 80:.6f} {(y + h / 2) / 40:.6f} {w / 80:.6f} {h / 40:.6f}"
            for cls, x, y, w, h, _ in boxes
        ]
        (root / "labels" / f"{name}.txt").write_text("\n".join(rows) + "\n")


def caviar_xml() -> str:
    """The people of :func:`moving_boxes` in CAVIAR's ground-truth layout (centre and size)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<dataset name="walk">']
    for k in range(FRAMES):
        lines += [f'<frame number="{k}">', "<objectlist>"]
        for track, cls, x, y, w, h, _ in moving_boxes(k):
            if cls != 1:
                continue
            lines += [
                f'<object id="{track}">',
                "<orientation>90</orientation>",
                f'<box h="{h}" w="{w}" xc="{x + w / 2:g}" yc="{y + h / 2:g}"/>',
                "<appearance>visible</appearance>",
                "<hypothesislist>",
                '<hypothesis evaluation="1.0" id="1" prev="1.0">',
                '<movement evaluation="1.0">walking</movement>',
                '<role evaluation="1.0">walker</role>',
                "</hypothesis>",
                "</hypothesislist>",
                "</object>",
            ]
        lines += ["</objectlist>", "<grouplist>", '<group id="0">', '<box h="40" w="40" xc="20" yc="24"/>']
        lines += ["<members>1,3</members>", "</group>", "</grouplist>", "</frame>"]
    return "\n".join(lines + ["</dataset>"]) + "\n"


def write_caviar(frames: list[np.ndarray]) -> None:
    folder = HERE / "caviar" / "walk"
    shutil.rmtree(HERE / "caviar", ignore_errors=True)
    folder.mkdir(parents=True)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"walk{k:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (folder / "walkgt.xml").write_text(caviar_xml())


def cvat_xml() -> str:
    """The tracks of :func:`moving_boxes` as a "CVAT for video 1.1" export."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>"]
    lines += ["  <meta>", f"    <job><id>1</id><size>{FRAMES}</size><mode>interpolation</mode></job>"]
    lines += [
        f"    <original_size><width>{SIZE[0]}</width><height>{SIZE[1]}</height></original_size>",
        "  </meta>",
    ]
    for track in (1, 2, 3, 4):
        label = "car" if track == 2 else "person"
        lines.append(f'  <track id="{track}" label="{label}" source="manual">')
        for k in range(FRAMES if track != 4 else 9):
            _, _, x, y, w, h, _ = moving_boxes(k)[track - 1]
            outside = int(track == 4 and k == 8)
            lines.append(
                f'    <box frame="{k}" keyframe="{int(k in (0, 8))}" outside="{outside}" occluded="0" '
                f'xtl="{x:.2f}" ytl="{y:.2f}" xbr="{x + w:.2f}" ybr="{y + h:.2f}" z_order="0">\n    </box>'
            )
        lines.append("  </track>")
    lines += ['  <track id="5" label="person" source="manual">']
    lines += [
        '    <polygon frame="0" keyframe="1" outside="0" occluded="0" points="1,1;5,1;5,5" z_order="0"/>'
    ]
    lines += ["  </track>", "</annotations>"]
    return "\n".join(lines) + "\n"


def jaad_xml() -> str:
    """Tracks 1, 3 and 4 of :func:`moving_boxes` in the layout of JAAD's annotation files."""
    lines = ["<annotations><version>1.1</version><meta><task><id>1</id><name>walk</name>"]
    lines += [f"<size>{FRAMES}</size><mode>interpolation</mode>"]
    lines += [f"<original_size><width>{SIZE[0]}</width><height>{SIZE[1]}</height></original_size>"]
    lines += ["</task></meta>"]
    for track, label in ((1, "pedestrian"), (3, "ped"), (4, "people")):
        lines.append(f'<track label="{label}">')
        for k in range(FRAMES):
            _, _, x, y, w, h, _ = moving_boxes(k)[track - 1]
            occlusion = "none" if track != 1 or k < 5 else ("part" if k < 8 else "full")
            lines.append(
                f'<box frame="{k}" keyframe="1" occluded="0" outside="0" xbr="{x + w}.0" xtl="{x}.0" '
                f'ybr="{y + h}.0" ytl="{y}.0"><attribute name="id">0_1_{track}</attribute>'
                f'<attribute name="occlusion">{occlusion}</attribute></box>'
            )
        lines.append("</track>")
    return "\n".join(lines + ["</annotations>"]) + "\n"


def write_cvat(frames: list[np.ndarray]) -> None:
    folder = HERE / "cvat" / "walk"
    shutil.rmtree(HERE / "cvat", ignore_errors=True)
    (folder / "images").mkdir(parents=True)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(folder / "images" / f"frame_{k:06d}.png"), frame)
    (folder / "annotations.xml").write_text(cvat_xml())
    (HERE / "cvat" / "jaad_style.xml").write_text(jaad_xml())


VOC_DIFFICULT = ("boat", 60, 4, 12, 10)
"""An object only ``voc/Annotations/street.xml`` holds, marked ``difficult``: ``(class, x, y, w, h)``."""


def voc_xml(name: str) -> str:
    """The boxes of still ``name`` as a Pascal VOC annotation (VOC's 1-based, inclusive pixel indices)."""
    boxes = [(cls, x, y, w, h, 0) for cls, x, y, w, h, _ in STILLS[name]]
    if name == "street":
        boxes.append((*VOC_DIFFICULT, 1))
    lines = ["<annotation>", "  <folder>JPEGImages</folder>", f"  <filename>{name}.png</filename>"]
    lines += ["  <size><width>80</width><height>40</height><depth>1</depth></size>"]
    for cls, x, y, w, h, difficult in boxes:
        lines += [
            "  <object>",
            f"    <name>{cls}</name><pose>Unspecified</pose><truncated>0</truncated>",
            f"    <difficult>{difficult}</difficult>",
            f"    <bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin>"
            f"<xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox>",
            "  </object>",
        ]
    return "\n".join(lines + ["</annotation>"]) + "\n"


def write_voc() -> None:
    root = HERE / "voc"
    shutil.rmtree(root, ignore_errors=True)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for name in STILLS:
        cv2.imwrite(str(root / "JPEGImages" / f"{name}.png"), still_image(name))
        (root / "Annotations" / f"{name}.xml").write_text(voc_xml(name))
    (root / "ImageSets" / "Main" / "val.txt").write_text("harbour\n")


def main() -> None:
    frames = video_frames()
    write_mot(frames)
    write_coco(frames)
    write_yolo()
    write_caviar(frames)
    write_cvat(frames)
    write_voc()


if __name__ == "__main__":
    main()
