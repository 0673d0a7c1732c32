"""``streamdet dataset build``: synthetic maritime/traffic sequences with events, spikes and COCO boxes;
``streamdet dataset import``: labelled real footage through the same emulators (docs/importing.md)."""

from __future__ import annotations

import argparse
import sys

from streamdet.cli.options import parse_size
from streamdet.errors import UserFacingError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dataset build`` to the ``streamdet`` parser."""
    dataset = subparsers.add_parser(
        "dataset", help="build synthetic datasets or import labelled footage (events, spikes, COCO boxes)"
    )
    actions = dataset.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="render scenes and write events, spike streams and annotations.json for one split",
        description="Render procedural scenes, emulate a DVS and a spike camera, and write one split "
        "(DIR/SPLIT/annotations.json and one folder per sequence).",
    )
    build.add_argument(
        "--preset",
        default="maritime",
        help="maritime, traffic, street, harbour, or a comma-separated mix (sequences alternate); "
        "default maritime",
    )
    build.add_argument("--sequences", type=int, default=4, help="number of sequences (default 4)")
    build.add_argument(
        "--seconds", type=float, default=10.0, help="length of each sequence in seconds (default 10)"
    )
    build.add_argument("--split", default="train", help="train, val or test (default train)")
    build.add_argument("--seed", type=int, default=0, help="root seed of the split (default 0)")
    build.add_argument("--out", required=True, help="dataset root directory; the split goes in OUT/SPLIT")
    build.add_argument(
        "--size",
        type=parse_size,
        default=(346, 260),
        help="sensor size WxH (default 346x260, DAVIS346; 400x250 Vidar, 304x240 Gen1)",
    )
    build.add_argument("--label-every-ms", type=float, default=100.0, help="label spacing, ms (default 100)")
    build.add_argument(
        "--window-us", type=int, default=50_000, help="input window, microseconds (default 50000)"
    )
    build.add_argument(
        "--spike-rate-hz",
        type=float,
        default=1000.0,
        help="spike-camera frame rate written to spikes.dat (default 1000)",
    )
    build.add_argument(
        "--render-fps",
        type=float,
        default=250.0,
        help="scene frames per second fed to the emulators (default 250)",
    )
    build.add_argument(
        "--fixed-sensor",
        action="store_true",
        help="use the default DVS parameters for every sequence instead of drawing them per sequence",
    )
    build.add_argument("--preview", action="store_true", help="also write preview.mp4 per sequence")
    build.add_argument("--workers", type=int, default=2, help="parallel processes over sequences (default 2)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing OUT/SPLIT")
    build.set_defaults(func=run_build)
    register_import(actions)


def run_build(args: argparse.Namespace) -> int:
    """Build one split; prints the path of annotations.json and a one-line summary."""
    from tqdm import tqdm

    from streamdet.dataset import BuildConfig, build_split

    presets = tuple(name.strip() for name in args.preset.split(",") if name.strip())
    if args.workers < 1:
        raise UserFacingError(f"--workers must be at least 1, got {args.workers}")
    config = BuildConfig(
        presets=presets,
        sequences=args.sequences,
        seconds=args.seconds,
        split=args.split,
        seed=args.seed,
        sensor_size=args.size,
        window_us=args.window_us,
        label_every_ms=args.label_every_ms,
        spike_rate_hz=args.spike_rate_hz,
        render_fps=args.render_fps,
        preview=args.preview,
        randomise_sensor=not args.fixed_sensor,
    )
    totals = {"events": 0, "images": 0, "boxes": 0}
    with tqdm(total=config.sequences, unit="seq", desc=f"{config.split} sequences", file=sys.stderr) as bar:

        def progress(result: dict) -> None:
            totals["events"] += result["events"]
            totals["images"] += len(result["images"])
            totals["boxes"] += len(result["annotations"])
            bar.update(1)

        path = build_split(
            config, args.out, workers=args.workers, overwrite=args.overwrite, progress=progress
        )
    print(
        f"{path}: {config.sequences} sequences, {totals['images']} images, {totals['boxes']} boxes, "
        f"{totals['events']} events"
    )
    return 0


def register_import(actions: argparse._SubParsersAction) -> None:
    """Add ``dataset import`` (labelled real footage -> one split) to the ``dataset`` actions."""
    from streamdet.importing import FITS, INTERPOLATIONS, LAYOUTS, STILL_MOTIONS

    importer = actions.add_parser(
        "import",
        help="turn labelled videos or stills (MOT gt.txt, COCO json, YOLO txt, CAVIAR, CVAT or Pascal VOC "
        "xml, single-object tracking x,y,w,h txt) into one split",
        description="Emulate a DVS and a spike camera over labelled real footage and write one split in "
        "the layout `dataset build` writes (DIR/SPLIT/annotations.json and one folder per sequence). "
        "See docs/importing.md.",
    )
    importer.add_argument("layout", choices=LAYOUTS, help="label layout")
    importer.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="mot: sequence folders (gt/gt.txt, img1/, seqinfo.ini) or video files; coco: annotation "
        "json files; yolo: image folders; caviar: frame folders (with their ground-truth .xml) or video "
        "files; cvat: 'CVAT for video 1.1' export folders (annotations.xml, images/) or video files; "
        "voc: VOC roots (JPEGImages/, Annotations/), image set files (ImageSets/Main/test.txt) or "
        "folders of images with their .xml beside them; sot: frame folders (OTB, UAV123, LaSOT, GOT-10k) "
        "or video files",
    )
    importer.add_argument(
        "--out", help="dataset root directory; the split goes in OUT/SPLIT (required but with --check)"
    )
    importer.add_argument("--split", default="train", help="train, val or test (default train)")
    importer.add_argument(
        "--labels",
        help="mot: the gt.txt of a video file (default <video stem>.txt); caviar: the ground-truth xml "
        "(default: the folder's one .xml, or <video stem>.xml); cvat: the annotations xml (default: "
        "annotations.xml in the folder, or <video stem>.xml); yolo: the labels folder "
        "(default: images/ -> labels/, else the images folder); voc: the folder of the .xml files (default: "
        "Annotations/ of a VOC root, else beside the images); sot: the x,y,w,h txt (default: "
        "groundtruth_rect.txt or groundtruth.txt in the folder, else <folder>.txt or <video stem>.txt "
        "beside it); one SOURCE only",
    )
    importer.add_argument(
        "--images", help="coco: folder the file_name of each image is under (default: the json's)"
    )
    importer.add_argument(
        "--names", help="yolo: data.yaml or a names file (default: data.yaml near the images, classes.txt)"
    )
    importer.add_argument(
        "--fps",
        type=float,
        help="frame rate where the source states none (overrides it); yolo, voc: read each folder as one "
        "video",
    )
    importer.add_argument(
        "--class",
        dest="class_name",
        help="sot (required there): the class of the one labelled object (e.g. boat, person), a key of the "
        "class map",
    )
    importer.add_argument(
        "--classes-map",
        default="",
        help="SOURCE=CLASS pairs, comma-separated, on top of the defaults (docs/importing.md); CLASS is "
        "boat, buoy, car or pedestrian, CLASS:ignore for an ignore region, '-' to drop",
    )
    importer.add_argument(
        "--drop-unmapped", action="store_true", help="drop boxes of unmapped classes instead of stopping"
    )
    importer.add_argument(
        "--size", type=parse_size, default=(346, 260), help="sensor size WxH (default 346x260)"
    )
    importer.add_argument(
        "--fit",
        choices=FITS,
        default="pad",
        help="keep the aspect ratio and pad (default) or crop the centre; stretch: like drive video --size",
    )
    importer.add_argument(
        "--interpolate",
        choices=INTERPOLATIONS,
        default="flow",
        help="frames between video frames further apart than 1/render-fps: optical-flow warping (default) "
        "or none (the frames as drive video feeds them)",
    )
    importer.add_argument(
        "--render-fps", type=float, default=250.0, help="least frame rate fed to the emulators (default 250)"
    )
    importer.add_argument("--still-motion", choices=STILL_MOTIONS, default="saccades", help="how stills move")
    importer.add_argument(
        "--saccade-px", type=float, default=4.0, help="saccade triangle side, px (default 4)"
    )
    importer.add_argument("--saccade-ms", type=float, default=100.0, help="one saccade, ms (default 100)")
    importer.add_argument("--pan-px-per-s", type=float, default=40.0, help="pan speed, px/s (default 40)")
    importer.add_argument(
        "--still-seconds", type=float, default=0.3, help="length of a still's sequence, s (default 0.3)"
    )
    importer.add_argument(
        "--label-every-ms", type=float, default=100.0, help="label spacing, ms (default 100)"
    )
    importer.add_argument(
        "--window-us", type=int, default=50_000, help="input window, microseconds (default 50000)"
    )
    importer.add_argument(
        "--spike-rate-hz", type=float, default=1000.0, help="spike-camera frame rate (default 1000)"
    )
    importer.add_argument(
        "--keep-empty-stills",
        action="store_true",
        help="also import stills with no box of a mapped class (negatives); skipped by default",
    )
    importer.add_argument(
        "--min-motion-px",
        type=float,
        default=0.3,
        help="boxes that moved less in the 50 ms before a label are ignored (default 0.3; 0 keeps them)",
    )
    importer.add_argument(
        "--fixed-sensor",
        action="store_true",
        help="default DVS parameters for every sequence (as drive video)",
    )
    importer.add_argument("--seed", type=int, default=0, help="root seed of the sensor emulators (default 0)")
    importer.add_argument(
        "--workers", type=int, default=2, help="parallel processes over sequences and stills (default 2)"
    )
    importer.add_argument("--overwrite", action="store_true", help="replace an existing OUT/SPLIT")
    importer.add_argument(
        "--check",
        action="store_true",
        help="read, class-map and check every label file against its frames, print what they hold, write "
        "nothing (--out is not needed)",
    )
    importer.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Import one split; prints the path of annotations.json and a one-line summary."""
    import json

    from tqdm import tqdm

    from streamdet.importing import (
        ImportConfig,
        StillMotion,
        checked_sources,
        default_class_map,
        import_split,
        label_summary,
        parse_class_map,
        read_sources,
        source_frame_count,
    )

    config = ImportConfig(
        split=args.split,
        seed=args.seed,
        sensor_size=args.size,
        fit=args.fit,
        window_us=args.window_us,
        label_every_ms=args.label_every_ms,
        spike_rate_hz=args.spike_rate_hz,
        render_fps=args.render_fps,
        interpolation=args.interpolate,
        still_motion=StillMotion(
            kind=args.still_motion,
            amplitude_px=args.saccade_px,
            saccade_ms=args.saccade_ms,
            pan_px_per_s=args.pan_px_per_s,
            seconds=args.still_seconds,
        ),
        class_map={**default_class_map(args.layout), **parse_class_map(args.classes_map)},
        drop_unmapped=args.drop_unmapped,
        min_motion_px=args.min_motion_px,
        randomise_sensor=not args.fixed_sensor,
        keep_empty_stills=args.keep_empty_stills,
    )
    if args.workers < 1:
        raise UserFacingError(f"--workers must be at least 1, got {args.workers}")
    sources = read_sources(
        args.layout, args.sources, args.labels, args.images, args.names, args.fps, args.class_name
    )
    if args.check:
        _, checked, skipped = checked_sources(sources, config, args.layout)
        print(label_summary(checked, len(skipped)))
        print("labels match their frames; nothing written (--check)")
        return 0
    if not args.out:
        raise UserFacingError("dataset import: --out is required (the dataset root the split goes in)")
    total = sum(source_frame_count(source) for source in sources) or None
    with tqdm(total=total, unit="frame", desc=f"import {config.split}", file=sys.stderr) as bar:
        path = import_split(
            sources,
            config,
            args.out,
            args.layout,
            overwrite=args.overwrite,
            progress=bar.update,
            workers=args.workers,
        )
    coco = json.loads(path.read_text())
    ignored = sum(1 for annotation in coco["annotations"] if annotation["ignore"])
    print(
        f"{path}: {len(coco['info']['sequences'])} sequences, {len(coco['images'])} images, "
        f"{len(coco['annotations'])} boxes ({ignored} ignored)"
    )
    return 0
