"""Plot recall against a box property from the JSON files of ``experiments/recall_by_size.py``.

One panel per class, one line per file (model and split), recall on the y axis against the buckets of
``--key`` (``aspect_hw``, ``min_side_px``, ``events_in_box`` or ``motion_px``), each point labelled with
its number of objects when ``--counts`` is given (buckets of fewer than ``--min-objects`` left out):

    .venv/bin/python -m experiments.plot_recall out/recall/events-default-fresh-maritime.json \\
        out/recall/intensity-default-fresh-maritime.json --key aspect_hw --classes boat \\
        --out docs/recall-boats-aspect.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KEYS = ("aspect_hw", "min_side_px", "events_in_box", "motion_px")
AXIS_LABELS = {
    "aspect_hw": "box height / width",
    "min_side_px": "shorter side of the box (px)",
    "events_in_box": "events in the box (model window)",
    "motion_px": "motion over the 50 ms before the label (px)",
}


def bucket_label(lo: float, hi: float) -> str:
    """``0.25-0.35``; ``>= 64`` for the open last bucket."""
    return f">= {lo:g}" if hi >= 1e8 else f"{lo:g}-{hi:g}"


def recall_series(
    report: dict, key: str, name: str, min_objects: int = 1
) -> tuple[list[str], list[float], list[int]]:
    """The buckets of one class in one report that hold at least ``min_objects`` objects: labels,
    recall and object counts, in bucket order."""
    rows = sorted(
        (r for r in report[key] if r["class"] == name and r["objects"] >= min_objects),
        key=lambda r: r["from"],
    )
    return (
        [bucket_label(r["from"], r["to"]) for r in rows],
        [r["recall"] for r in rows],
        [r["objects"] for r in rows],
    )


def series_name(report: dict) -> str:
    """``events-default: fresh-maritime`` from the report's model and data fields."""
    data = Path(report["data"])
    split = data.parent.name if data.name in ("test", "val", "train") else data.name
    return f"{Path(report['model']).stem if report['model'].endswith('.pt') else report['model']}: {split}"


def plot(
    reports: list[dict], key: str, classes: list[str], out: Path, counts: bool, min_objects: int
) -> None:
    """Write the figure: one panel per class, one line per report over the union of the buckets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(classes), figsize=(6.0 * len(classes), 3.8), squeeze=False)
    for axis, name in zip(axes[0], classes, strict=True):
        order: dict[str, float] = {}
        for report in reports:
            for r in report[key]:
                if r["class"] == name and r["objects"] >= min_objects:
                    order.setdefault(bucket_label(r["from"], r["to"]), r["from"])
        labels = sorted(order, key=order.get)
        for index, report in enumerate(reports):
            buckets, recall, objects = recall_series(report, key, name, min_objects)
            xs = [labels.index(b) for b in buckets]
            axis.plot(xs, recall, marker="o", color=f"C{index}", label=series_name(report))
            if counts:
                for x, y, n in zip(xs, recall, objects, strict=True):
                    axis.annotate(
                        str(n),
                        (x, y),
                        textcoords="offset points",
                        xytext=(0, 5),
                        fontsize=7,
                        ha="center",
                        color=f"C{index}",
                    )
        axis.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        axis.set_ylim(0, 1.08)
        axis.set_xlabel(AXIS_LABELS[key])
        axis.set_ylabel("recall (IoU >= 0.5)")
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "reports", nargs="+", metavar="JSON", help="files of experiments/recall_by_size.py --json"
    )
    parser.add_argument("--key", choices=KEYS, default="aspect_hw")
    parser.add_argument("--classes", default=None, help="comma-separated classes (default: every class)")
    parser.add_argument("--counts", action="store_true", help="label each point with its number of objects")
    parser.add_argument(
        "--min-objects", type=int, default=10, metavar="N", help="leave out buckets of fewer objects (10)"
    )
    parser.add_argument("--out", required=True, metavar="PNG")
    args = parser.parse_args(argv)
    reports = []
    for path in map(Path, args.reports):
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(f"{path}: cannot read ({error})") from None
        if args.key not in report:
            raise SystemExit(f"{path}: no {args.key!r} table (a file of an older recall_by_size.py?)")
        reports.append(report)
    present = sorted({r["class"] for report in reports for r in report[args.key]})
    classes = args.classes.split(",") if args.classes else present
    missing = [c for c in classes if c not in present]
    if missing:
        raise SystemExit(
            f"--classes: {', '.join(missing)} in none of the files (they have {', '.join(present)})"
        )
    plot(reports, args.key, classes, Path(args.out), args.counts, args.min_objects)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
