"""Accuracy of the streaming detector on a built test split, against the ANN on the same time stamps.

The detector node's arithmetic without sockets or real time (``streamdet.detector.detect_events``, or
``detect_spikes`` for a spike-camera model on the split's spike streams, in packets of 200 frames: the
same binning into steps of ``dt``, one continuous simulation per sequence, a sliding window of ``W``
steps, nothing dropped). A window ending at a labelled time stamp ``t`` is scored against the labels at
``t`` (COCO mAP@0.5 with pycocotools, ignored objects as crowd regions); the ANN is scored on its own
input window (the model's ``window_us``) ending at the same ``t``. Labelled time stamps before the first
full window are left out for both, so the two columns are over the same images.

    .venv/bin/python bench/stream_accuracy.py --model events-default --data data/v3-maritime/test \
        --dt-us 50000,12500 --window-steps 4,8,16 --json out/stream_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from streamdet.snn import PRECISIONS


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _membrane_modes(text: str) -> list[str]:
    from streamdet.detector import MEMBRANE_MODES

    modes = [part.strip() for part in text.split(",") if part.strip()]
    if not modes or any(mode not in MEMBRANE_MODES for mode in modes):
        raise argparse.ArgumentTypeError(f"expected keep, fresh or keep,fresh, got {text!r}")
    return modes


def streamed_windows(
    snn,
    split,
    dt_us: int,
    window_steps: int,
    progress: bool,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    membranes: str = "keep",
    phase_us: int = 0,
) -> dict[str, list]:
    """Sequence -> every window the detector decodes over it (``publish_every = 1``), in step order; the
    stream's times are ``phase_us`` later than the split's (:func:`rows_at_labels` takes the same phase)."""
    from tqdm import tqdm

    from streamdet.detector import DetectorConfig, detect_events, detect_spikes

    config = DetectorConfig(
        dt_us=dt_us, window_steps=window_steps, publish_every=1, max_chunk_steps=8, membrane_bounds=bounds,
        membranes=membranes, compile=snn.compiled, precision=snn.precision,
    )  # fmt: skip
    sequences = sorted({image["sequence"] for image in split.images})

    def decoded(sequence: str) -> list:
        if snn.spec.modality == "intensity":  # the sequence's spike stream, in a spike driver's packets
            frames, t0_us, frame_us = split.sequence_spikes(sequence)
            return detect_spikes(snn, frames, t0_us + phase_us, frame_us, config)
        events = split.sequence_events(sequence)
        if phase_us:
            events = events.copy()
            events["t"] += phase_us
        return detect_events(snn, events, split.sensor_size, config)

    return {
        sequence: decoded(sequence)
        for sequence in tqdm(sequences, desc=f"dt={dt_us} W={window_steps}", disable=not progress)
    }


def rows_at_labels(
    windows: dict[str, list], split, lag_us: int = 0, phase_us: int = 0
) -> dict[int, np.ndarray]:
    """Image id -> rows of the window ending ``lag_us`` after the image's time stamp (images whose
    shifted time stamp is not a window end are absent). A lag above 0 scores later windows against
    earlier labels: if that scores higher, the stream's boxes trail the objects by about that lag.
    ``phase_us``: the stream's times are that much later than the split's (:func:`streamed_windows`)."""
    by_end = {sequence: {w.t1_us: w.rows for w in decoded} for sequence, decoded in windows.items()}
    detections: dict[int, np.ndarray] = {}
    for image in split.images:
        rows = by_end.get(image["sequence"], {}).get(int(image["t_us"]) + lag_us + phase_us)
        if rows is not None:
            detections[int(image["id"])] = rows
    return detections


def ann_detections(bundle, split, image_ids: set[int]) -> dict[int, np.ndarray]:
    """Image id -> the ANN's rows on the model window ending at the image's time stamp."""
    detections = {}
    for image in split.images:
        if int(image["id"]) not in image_ids:
            continue
        raw = split.input(image, bundle.spec.modality, bundle.spec.event_scale, bundle.spec.history_windows)
        rows = bundle.detect(torch.from_numpy(raw)[None])[0]
        detections[int(image["id"])] = rows.detach().cpu().numpy()
    return detections


def main(argv: list[str] | None = None) -> int:
    from streamdet.cli.run import parse_membrane_bounds

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="events-default")
    parser.add_argument(
        "--snn",
        default=None,
        help="a converted SNN file of --model (e.g. from `streamdet convert --bias-calibration-steps`); "
        "default: --model converted with its learned clips, as the detector node does",
    )
    parser.add_argument("--data", required=True, help="a built split (e.g. data/v3-maritime/test)")
    parser.add_argument("--dt-us", type=_int_list, default=[50_000, 12_500])
    parser.add_argument("--window-steps", type=_int_list, default=[4, 8, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--membrane-bounds",
        type=parse_membrane_bounds,
        default=(0.0, 1.0),
        help="IF membrane bounds of the detector, LO,HI or none (default 0,1, the detector's default)",
    )
    parser.add_argument(
        "--membranes",
        type=_membrane_modes,
        default=["keep"],
        help="keep: membranes kept from step to step (default); fresh: every step from the initial "
        "membrane (streamdet.detector.DetectorConfig.membranes); keep,fresh: both, in turn",
    )
    parser.add_argument(
        "--phase-us",
        type=int,
        default=0,
        help="shift the stream this much later than the split (default 0): the detector's steps end at "
        "multiples of dt, so a step as long as the model window scores labels at 50, 150, ... ms only "
        "with --phase-us 50000",
    )
    parser.add_argument(
        "--lags-ms",
        type=_int_list,
        default=[0],
        help="also score the window ending this many ms after each label (comma list; default 0): how far "
        "the stream's boxes trail the objects. Every lag is scored on the time stamps all lags have",
    )
    parser.add_argument(
        "--burst",
        choices=("on", "off"),
        default="off",
        help="convert --model with burst IF neurons (up to N spikes per step; default off: IF neurons)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="the SNN's spike-fed convolutions in float32, bfloat16 or int8 (streamdet.snn, precision)",
    )
    parser.add_argument(
        "--compile",
        choices=("on", "off"),
        default="off",
        help="run the SNN's steps compiled (streamdet.compiled; compiled before the first window)",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from streamdet.dataset import DatasetSplit
    from streamdet.evaluate import coco_from_dict, coco_metrics
    from streamdet.loading import load_snn
    from streamdet.model import load_detector

    bundle = load_detector(args.model)
    split = DatasetSplit(args.data, window_us=bundle.spec.window_us)
    snn = load_snn(args.snn or args.model, burst=args.burst == "on").with_precision(args.precision)
    if args.compile == "on":
        from streamdet.model import padded_length

        if args.membrane_bounds is not None:  # the detector's neuron, so that it keeps the compiled step
            snn = snn.with_neuron(snn.neuron.with_bounds(args.membrane_bounds))
        snn = snn.with_compilation(report=print)
        width, height = (padded_length(length) for length in split.sensor_size)
        if not snn.prepare_compiled(torch.zeros((1, 1, snn.in_channels, height, width))):
            raise SystemExit("stream_accuracy: --compile on: the compile failed")
    rows = []
    settings = [(m, d, w) for m in args.membranes for d in args.dt_us for w in args.window_steps]
    for membranes, dt_us, window_steps in settings:
        started = time.perf_counter()
        windows = streamed_windows(
            snn, split, dt_us, window_steps, progress=True, bounds=args.membrane_bounds,
            membranes=membranes, phase_us=args.phase_us,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        lags_us = tuple(1000 * lag for lag in args.lags_ms)
        by_lag = {lag: rows_at_labels(windows, split, lag, args.phase_us) for lag in lags_us}
        ids = sorted(set.intersection(*(set(rows) for rows in by_lag.values())))
        coco_gt = coco_from_dict(split.coco, ids)

        def map50(rows_by_id: dict[int, np.ndarray], coco_gt=coco_gt, ids=ids) -> float:
            return round(coco_metrics(coco_gt, {i: rows_by_id[i] for i in ids})["map50"], 4)

        snn_metrics = coco_metrics(coco_gt, {i: by_lag[lags_us[0]][i] for i in ids})
        ann_metrics = coco_metrics(coco_gt, ann_detections(bundle, split, set(ids)))
        lagged = {str(lag // 1000): map50(by_lag[lag]) for lag in lags_us}
        row = {
            "dt_us": dt_us,
            "window_steps": window_steps,
            "membrane_bounds": args.membrane_bounds,
            "membranes": membranes,
            "phase_us": args.phase_us,
            "integrated_ms": dt_us * window_steps / 1000,
            "images": len(ids),
            "snn_map50": round(snn_metrics["map50"], 4),
            "ann_map50": round(ann_metrics["map50"], 4),
            "ratio": round(snn_metrics["map50"] / max(ann_metrics["map50"], 1e-9), 3),
            "snn_ap50_per_class": {k: round(v, 4) for k, v in snn_metrics["ap50_per_class"].items()},
            "ann_ap50_per_class": {k: round(v, 4) for k, v in ann_metrics["ap50_per_class"].items()},
            "snn_map50_by_lag_ms": lagged,
            "wall_s": round(seconds, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "model": args.model,
        "snn": args.snn,
        "burst": args.burst == "on",
        "precision": args.precision,
        "compiled": args.compile == "on",
        "data": args.data,
        "threads": args.threads,
        "rows": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
