"""How a model holds up on another sensor or renderer: mAP@0.5 when each window's measurement is
changed the way a different camera would change it.

Each perturbation acts on the raw measurement of every window the model reads (its own and its history
windows), before it is scaled into the input, seeded per image (repeatable). For ``events`` models (the
OFF / ON event counts):

- ``scale:S``: a more or less sensitive sensor. Each event is kept ``floor(S)`` times plus once more with
  probability ``S - floor(S)`` (binomial thinning below 1: a higher contrast threshold drops events; 2:
  every edge fires twice as many, as a lower threshold does). Training saw counts x U(0.6, 1.6).
- ``noise:HZ``: background-activity noise, Poisson events at ``HZ`` per pixel and polarity per second
  (real DVS: about 0.1-1 Hz in daylight, more in the dark). The default recipe adds up to 0.5 Hz
  (0.05 per pixel and polarity in a 100 ms window).
- ``hot:F``: hot pixels, a fraction ``F`` of the pixels firing 100 Hz in one polarity (random pixels and
  polarity per image). The default recipe adds none.

For ``intensity`` models (the spike camera's firing rate, the fraction of frames a pixel fired):

- ``scale:S``: another gain or a brighter / darker scene, rate x S (clipped to 1 by the input).
  Training saw x U(0.6, 1.4).
- ``noise:R``: spurious spikes, a firing rate drawn per pixel from U(0, 2 R) (mean R) added. Training
  saw U(0, U(0, 0.05)).
- ``hot:F``: a fraction ``F`` of the pixels firing in every frame (rate 1).

``none`` (the recording as it is) is always scored first. Scores go through
``streamdet.evaluate.evaluate_split`` (pycocotools), like ``streamdet eval``.

    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.robustness --models events-default \\
        --data data/fresh-maritime/test data/fresh-traffic/test \\
        --perturb scale:0.25,0.5,2,3 noise:1,2,5 hot:0.0005,0.002 \\
        --json out/robustness/events-default.json --plot docs/robustness.png
    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.robustness --models intensity-default \\
        --data data/fresh-maritime/test data/fresh-traffic/test \\
        --perturb scale:0.5,0.75,1.5,2 noise:0.05,0.1,0.2 hot:0.0005,0.002 \\
        --json out/robustness/intensity-default.json --plot docs/robustness-intensity.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from streamdet.train import add_hot_pixels, add_poisson_noise, thin_events

HOT_PIXEL_HZ = 100.0
"""Rate of a hot pixel, events per second."""

KINDS = ("scale", "noise", "hot")

PLOT_LABELS = {
    "events": {
        "scale": "events x S (sensitivity)",
        "noise": "background noise, Hz per pixel and polarity",
        "hot": "hot pixels, fraction of the pixels",
    },
    "intensity": {
        "scale": "firing rate x S (gain, brightness)",
        "noise": "spurious firing rate, mean per pixel and frame",
        "hot": "hot pixels (always firing), fraction of the pixels",
    },
}
"""x-axis labels of the plot by modality and perturbation kind."""

TRAINING_RANGES = {
    "events": {
        "scale": (0.6, 1.6, "training: counts x U(0.6, 1.6)"),
        "noise": (0.0, 0.5, "training: added noise (default recipe)"),
    },
    "intensity": {
        "scale": (0.6, 1.4, "training: rate x U(0.6, 1.4)"),
        "noise": (0.0, 0.025, "training: mean added rate up to 0.025"),
    },
}
"""What the default training recipe's augmentation covers, shaded in the plot."""


def parse_perturbation(text: str) -> tuple[str, list[float]]:
    """``noise:1,2,5`` -> ``("noise", [1.0, 2.0, 5.0])``."""
    kind, _, levels = text.partition(":")
    if kind not in KINDS or not levels:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND:LEVEL[,LEVEL...] with KIND one of {KINDS}")
    try:
        values = [float(level) for level in levels.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: levels must be numbers") from None
    if any(value < 0 or not math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"{text!r}: levels must be finite and >= 0")
    return kind, values


def scale_counts(raw: Tensor, factor: float, generator: torch.Generator) -> Tensor:
    """Counts x ``factor`` in whole events: ``floor(factor)`` copies of each event and one more with
    probability ``factor - floor(factor)`` (``streamdet.train.thin_events``)."""
    whole = math.floor(factor)
    return raw * whole + thin_events(raw, factor - whole, generator)


def add_noise(raw: Tensor, rate_hz: float, window_us: int, generator: torch.Generator) -> Tensor:
    """Poisson background events at ``rate_hz`` per pixel and channel (one channel is one polarity of
    one window of ``window_us``)."""
    return add_poisson_noise(raw, rate_hz * window_us / 1e6, generator)


def perturb_rate(raw: Tensor, kind: str, level: float, generator: torch.Generator) -> Tensor:
    """A spike camera's firing rate ``raw`` (``[C, H, W]``, fraction of frames fired) under one
    perturbation (see the module text)."""
    if kind == "scale":
        return raw * level
    if kind == "noise":
        return raw + torch.rand(raw.shape, generator=generator) * (2 * level)
    out = raw.clone()
    out[..., torch.rand(raw.shape[-2:], generator=generator) < level] = 1.0
    return out


def make_perturbation(kind: str, level: float, window_us: int, modality: str = "events"):
    """The ``streamdet.samples.Augment`` of one perturbation (the target is left as it is)."""

    def perturb(raw: Tensor, target: dict, rng: np.random.Generator) -> tuple[Tensor, dict]:
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        if modality == "intensity":
            return perturb_rate(raw, kind, level, generator), target
        if kind == "scale":
            return scale_counts(raw, level, generator), target
        if kind == "noise":
            return add_noise(raw, level, window_us, generator), target
        return add_hot_pixels(raw, level, HOT_PIXEL_HZ * window_us / 1e6, generator), target

    return perturb


def sweep(models: list[str], splits: list[str], perturbations: list[tuple[str, list[float]]], limit):
    """One row per (model, split, perturbation level), ``none`` first."""
    from tqdm import tqdm

    from streamdet.evaluate import evaluate_split
    from streamdet.model import load_detector

    cases = [("none", 0.0)] + [(kind, level) for kind, levels in perturbations for level in levels]
    rows = []
    bar = tqdm(total=len(models) * len(splits) * len(cases), desc="robustness", unit="run")
    for model in models:
        bundle = load_detector(model)
        for split in splits:
            for kind, level in cases:
                started = time.perf_counter()
                with torch.no_grad():
                    metrics = evaluate_split(
                        bundle.detect,
                        split,
                        bundle.spec,
                        limit=limit,
                        progress=False,
                        perturb=None
                        if kind == "none"
                        else make_perturbation(kind, level, bundle.spec.window_us, bundle.spec.modality),
                    )
                row = {
                    "model": model,
                    "modality": bundle.spec.modality,
                    "data": split,
                    "perturbation": kind,
                    "level": level,
                    "images": metrics["images"],
                    "map50": round(metrics["map50"], 4),
                    "map": round(metrics["map"], 4),
                    "ap50_per_class": {k: round(v, 4) for k, v in metrics["ap50_per_class"].items()},
                    "wall_s": round(time.perf_counter() - started, 1),
                }
                rows.append(row)
                bar.write(json.dumps(row))
                bar.update()
    bar.close()
    return rows


def plot_rows(rows: list[dict], path: str) -> None:
    """One panel per perturbation kind: mAP@0.5 against the level, one line per (model, split), the
    unperturbed score drawn at scale 1 / noise 0 / hot 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [kind for kind in KINDS if any(row["perturbation"] == kind for row in rows)]
    figure, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False)
    baseline = {"scale": 1.0, "noise": 0.0, "hot": 0.0}
    modality = rows[0].get("modality", "events")
    labels = PLOT_LABELS[modality]
    keys = list(dict.fromkeys((row["model"], row["data"]) for row in rows))
    models = list(dict.fromkeys(model for model, _ in keys))
    splits = list(dict.fromkeys(split for _, split in keys))
    styles = ["-", "--", ":", "-."]
    for axis, kind in zip(axes[0], kinds, strict=True):
        for model, split in keys:
            points = {
                (baseline[kind] if row["perturbation"] == "none" else row["level"]): row["map50"]
                for row in rows
                if (row["model"], row["data"]) == (model, split) and row["perturbation"] in ("none", kind)
            }
            xs = sorted(points)
            name = Path(split).parent.name if Path(split).name in ("test", "val") else Path(split).name
            axis.plot(
                xs,
                [points[x] for x in xs],
                marker="o",
                color=f"C{splits.index(split)}",
                linestyle=styles[models.index(model) % len(styles)],
                label=name if len(models) == 1 else f"{model}: {name}",
            )
        if kind == "scale":
            axis.set_xscale("log", base=2)
        elif kind == "hot":
            axis.set_xscale("symlog", linthresh=1e-4)
        if kind in TRAINING_RANGES[modality]:
            low, high, text = TRAINING_RANGES[modality][kind]
            axis.axvspan(low, high, color="0.9", zorder=0, label=text)
        axis.axhline(0.8, color="0.5", linestyle="--", linewidth=0.8)
        axis.set_xlabel(labels[kind])
        axis.set_ylabel("mAP@0.5")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    for axis in axes[0][:2]:
        axis.legend(fontsize=6, loc="lower left")
    measured = "events" if modality == "events" else "spike rates"
    figure.suptitle(f"mAP@0.5 with the {measured} perturbed: {', '.join(models)}", fontsize=10)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["events-default"])
    parser.add_argument("--data", nargs="+", default=None, help="built splits, e.g. data/fresh-maritime/test")
    parser.add_argument(
        "--perturb",
        nargs="+",
        type=parse_perturbation,
        default=[
            parse_perturbation(text) for text in ("scale:0.25,0.5,2,3", "noise:1,2,5", "hot:0.0005,0.002")
        ],
        metavar="KIND:LEVELS",
        help="scale:S,..  noise:HZ,..  hot:FRACTION,..",
    )
    parser.add_argument("--from-json", default=None, help="plot the rows of an earlier --json instead")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, metavar="PNG")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text())["rows"]
    elif args.data:
        try:
            rows = sweep(args.models, args.data, args.perturb, args.limit)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    else:
        parser.error("give --data (evaluate) or --from-json (plot earlier rows)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        report = {"threads": args.threads, "hot_pixel_hz": HOT_PIXEL_HZ, "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot_rows(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
