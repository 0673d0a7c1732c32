"""Figures and pictures of docs/real-scenes.md: per-source tables from ``streamdet eval`` JSON, and boxes
drawn over the input of one test image.

``table``: each JSON is what ``streamdet eval --model M --data S1 --data S2 ... --json OUT`` writes (one
entry per split under ``splits``); prints one markdown row per model and source with mAP@0.5,
mAP@[.5:.95] and AP@0.5 per class, then the plain mean over the sources.

    python bench/real_scenes_eval.py table out/before/events-default.json out/after/events.json

``draw``: runs a detector on image ``--index`` of a split and writes a PNG: the model's newest input
window (the first channels, window ``k = 0`` of ``streamdet.samples``: events ON minus OFF,
grey = none; intensity: the spike rate), ground truth in green
(ignore regions dashed), detections with score >= ``--min-score`` in red with class and score.

    python bench/real_scenes_eval.py draw --model events-default --data data/real/coco128/test \\
        --index 4 --out docs/real-scenes/coco128-events-default.png

``by-sequence``: one split view per sequence of a split, so that ``streamdet eval`` scores each
sequence as a source of its own (fixed against moving camera, say): ``OUT/<sequence>/<split>/`` holds
that sequence's part of ``annotations.json`` and a link to its folder; nothing is copied.

    python bench/real_scenes_eval.py by-sequence --data data/real/mot17/test --out data/real

``by-time``: a split view of one sequence's labelled times in ``[--from-s, --to-s)``, seconds from
its start, so that the first seconds of a camera can train and its later ones test
(docs/real-scenes.md, "Seconds of your own camera"): ``OUT/<split name>/`` as above.

    python bench/real_scenes_eval.py by-time --data data/real/mot17/train --sequence mot17-04 \\
        --from-s 0 --to-s 6 --out data/real/mot17-04-first6s

``curve``: mAP@0.5 of each source against a number given per JSON (``X=FILE``; seconds of footage a
fine-tune saw, say), one line per source and one panel per ``--panel NAME=X1=FILE1,X2=FILE2,...``:

    python bench/real_scenes_eval.py curve --panel "events=0=out/k0.json,3=out/k3.json" \\
        --xlabel "seconds labelled per camera" --out docs/real-scenes/own-camera.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def split_rows(path: Path) -> list[tuple[str, str, dict]]:
    """``(model, source, metrics)`` of every split in one ``streamdet eval`` JSON; the source is the
    split directory's parent folder name (``data/real/<source>/test``)."""
    summary = json.loads(path.read_text(encoding="utf-8"))
    entries = summary.get("splits", [summary])
    return [(str(summary["model"]), Path(entry["data"]).parent.name, entry) for entry in entries]


def markdown_table(paths: list[Path], classes: tuple[str, ...]) -> str:
    """One row per (model, source) and one mean row per model, mAP figures to three decimals; a class
    the source does not hold is left blank."""
    header = "| model | source | images | mAP@0.5 | mAP@[.5:.95] | " + " | ".join(
        f"AP@0.5 {name}" for name in classes
    )
    lines = [header + " |", "|" + "---|" * (5 + len(classes))]
    for path in paths:
        rows = split_rows(path)
        for model, source, metrics in rows:
            per_class = [
                f"{metrics['ap50_per_class'][name]:.3f}" if name in metrics["ap50_per_class"] else ""
                for name in classes
            ]
            lines.append(
                f"| {model} | {source} | {metrics['images']} | {metrics['map50']:.3f} | "
                f"{metrics['map']:.3f} | " + " | ".join(per_class) + " |"
            )
        mean50 = sum(m["map50"] for _, _, m in rows) / len(rows)
        mean = sum(m["map"] for _, _, m in rows) / len(rows)
        lines.append(
            f"| {rows[0][0]} | **mean of {len(rows)}** | | {mean50:.3f} | {mean:.3f} |" + " |" * len(classes)
        )
    return "\n".join(lines)


def write_view(split_dir: Path, annotations: dict, sequence: dict, images: list[dict], view: Path) -> Path:
    """Write ``view`` (an ``annotations.json`` of ``images``, all of ``sequence`` in ``split_dir`` whose
    ``annotations`` these are, and a link to the sequence's folder) and return it.

    Raises:
        FileExistsError: the view's link already exists and is not ``split_dir``'s sequence folder.
    """
    name = sequence["name"]
    ids = {image["id"] for image in images}
    link = view / name
    if link.exists() and link.resolve() != (split_dir / name).resolve():
        raise FileExistsError(f"{link}: exists and is not {split_dir / name}")
    view.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to((split_dir / name).resolve())
    part = {
        **annotations,
        "info": {**annotations["info"], "sequences": [sequence], "view_of": str(split_dir)},
        "images": images,
        "annotations": [a for a in annotations["annotations"] if a["image_id"] in ids],
    }
    (view / "annotations.json").write_text(json.dumps(part), encoding="utf-8")
    print(f"{view}: {len(images)} images of {split_dir}")
    return view


def sequence_views(split_dir: Path, out: Path) -> list[Path]:
    """Write ``out/<sequence>/<split name>/`` for each sequence of ``split_dir`` (module docstring) and
    return their paths."""
    annotations = json.loads((split_dir / "annotations.json").read_text(encoding="utf-8"))
    return [
        write_view(
            split_dir,
            annotations,
            sequence,
            [image for image in annotations["images"] if image["sequence"] == sequence["name"]],
            out / sequence["name"] / split_dir.name,
        )
        for sequence in annotations["info"]["sequences"]
    ]


def time_view(split_dir: Path, name: str, from_s: float, to_s: float, out: Path) -> Path:
    """Write ``out/<split name>/``: the labelled times of sequence ``name`` in ``[from_s, to_s)`` seconds
    (module docstring).

    Raises:
        ValueError: ``split_dir`` has no sequence ``name``, or none of its labelled times is in the range.
    """
    annotations = json.loads((split_dir / "annotations.json").read_text(encoding="utf-8"))
    sequences = {sequence["name"]: sequence for sequence in annotations["info"]["sequences"]}
    if name not in sequences:
        raise ValueError(f"{split_dir}: no sequence {name!r} (it has {', '.join(sorted(sequences))})")
    images = [
        image
        for image in annotations["images"]
        if image["sequence"] == name and from_s * 1e6 <= image["t_us"] < to_s * 1e6
    ]
    if not images:
        raise ValueError(f"{split_dir}: no labelled time of {name} in [{from_s}, {to_s}) s")
    return write_view(split_dir, annotations, sequences[name], images, out / split_dir.name)


def curve(panels: list[tuple[str, list[tuple[float, Path]]]], xlabel: str, out: Path) -> None:
    """Write a PNG: per panel, mAP@0.5 of every source of its JSON files against their numbers, each
    point labelled with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False, sharey=True)
    for axis, (title, points) in zip(axes[0], panels, strict=True):
        series: dict[str, list[tuple[float, float]]] = {}
        for x, path in sorted(points):
            for _, source, metrics in split_rows(path):
                series.setdefault(source, []).append((x, metrics["map50"]))
        for source, values in series.items():
            xs, ys = zip(*values, strict=True)
            axis.plot(xs, ys, marker="o", label=source)
            for x, y in values:
                axis.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 5), ha="center",
                              fontsize=7)  # fmt: skip
        axis.set_title(title)
        axis.set_xlabel(xlabel)
        axis.set_xticks(sorted({x for x, _ in points}))
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("mAP@0.5")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    print(f"{out}: {len(panels)} panel(s)")


def parse_panel(text: str) -> tuple[str, list[tuple[float, Path]]]:
    """``NAME=X1=FILE1,X2=FILE2`` -> ``(NAME, [(X1, FILE1), ...])`` (``--panel`` of ``curve``)."""
    name, _, rest = text.partition("=")
    points = []
    for item in rest.split(","):
        x, _, path = item.partition("=")
        if not path:
            raise argparse.ArgumentTypeError(f"--panel {text!r}: {item!r} is not X=FILE")
        points.append((float(x), Path(path)))
    return name, points


def draw(model: str, split_dir: Path, index: int, out: Path, min_score: float) -> None:
    """Write a PNG of image ``index`` of ``split_dir``: the model's newest input window with ground truth
    (green) and detections (red) drawn over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from streamdet.dataset import DatasetSplit
    from streamdet.model import load_detector
    from streamdet.samples import DetectionSamples

    bundle = load_detector(model)
    spec = bundle.spec
    samples = DetectionSamples(
        [split_dir],
        spec.modality,
        spec.event_scale,
        window_us=spec.window_us,
        history_windows=spec.history_windows,
    )
    inputs, _ = samples[index]
    record = samples.image(index)
    with torch.no_grad():
        rows = bundle.detect(inputs[None])[0].cpu().numpy()
    picture = inputs.numpy()
    newest = picture[:2] if spec.modality == "events" else picture[:1]  # window k = 0 comes first
    frame = newest[0] - newest[1] if spec.modality == "events" else newest[0]
    split = DatasetSplit(split_dir, cache_events=False)
    truths = [a for a in split.coco["annotations"] if a["image_id"] == record["id"]]
    figure, axes = plt.subplots(figsize=(6.92, 5.2), dpi=100)
    limit = float(np.abs(frame).max()) or 1.0
    if spec.modality == "events":
        axes.imshow(frame, cmap="gray", vmin=-limit, vmax=limit)
    else:
        axes.imshow(frame, cmap="gray", vmin=0.0, vmax=limit)
    for truth in truths:
        x, y, w, h = truth["bbox"]
        style = "--" if truth.get("ignore", 0) else "-"
        axes.add_patch(plt.Rectangle((x, y), w, h, fill=False, color="lime", linestyle=style, linewidth=1.2))
    names = bundle.class_names
    for x1, y1, x2, y2, score, label in rows:
        if score < min_score:
            continue
        axes.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="red", linewidth=1.2))
        axes.text(x1, y1 - 1, f"{names[int(label)]} {score:.2f}", color="red", fontsize=7, va="bottom")
    axes.set_title(
        f"{model} on {split_dir} image {record['id']} ({record['sequence']}, t={record['t_us']} us)",
        fontsize=7,
    )
    axes.set_axis_off()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, bbox_inches="tight")
    plt.close(figure)
    print(
        f"{out}: {len(truths)} ground-truth boxes, "
        f"{int((rows[:, 4] >= min_score).sum())} detections >= {min_score}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    table = commands.add_parser("table", help="markdown table of streamdet eval JSON files")
    table.add_argument("json", nargs="+", type=Path)
    table.add_argument("--classes", default="boat,buoy,car,pedestrian")
    picture = commands.add_parser("draw", help="boxes over one image's input")
    picture.add_argument("--model", required=True)
    picture.add_argument("--data", required=True, type=Path, help="split directory")
    picture.add_argument("--index", type=int, default=0, help="image index in the split's order")
    picture.add_argument("--min-score", type=float, default=0.3)
    picture.add_argument("--out", required=True, type=Path)
    views = commands.add_parser("by-sequence", help="one split view per sequence of a split")
    views.add_argument("--data", required=True, type=Path, help="split directory")
    views.add_argument("--out", required=True, type=Path, help="folder to write OUT/<sequence>/<split> in")
    span = commands.add_parser("by-time", help="a split view of one sequence's labelled times in a range")
    span.add_argument("--data", required=True, type=Path, help="split directory")
    span.add_argument("--sequence", required=True, help="sequence name (the split's info.sequences)")
    span.add_argument("--from-s", type=float, default=0.0, help="seconds from which labelled times are kept")
    span.add_argument("--to-s", type=float, required=True, help="seconds up to which labelled times are kept")
    span.add_argument("--out", required=True, type=Path, help="folder to write OUT/<split> in")
    plot = commands.add_parser("curve", help="mAP@0.5 per source against a number per JSON, as a PNG")
    plot.add_argument("--panel", action="append", required=True, type=parse_panel, help="NAME=X1=FILE1,...")
    plot.add_argument("--xlabel", default="x")
    plot.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "table":
        print(markdown_table(args.json, tuple(args.classes.split(","))))
    elif args.command == "by-sequence":
        sequence_views(args.data, args.out)
    elif args.command == "curve":
        curve(args.panel, args.xlabel, args.out)
    elif args.command == "by-time":
        time_view(args.data, args.sequence, args.from_s, args.to_s, args.out)
    else:
        draw(args.model, args.data, args.index, args.out, args.min_score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
