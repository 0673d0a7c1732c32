"""Would moving streamed boxes along their tracks make up for the spiking network's lag? (No, so far.)

On a stream the spiking detector's boxes trail moving objects by about four steps
(``bench/stream_accuracy.py --lags-ms``, docs/streaming.md). This bench tries the obvious fix: match
every decoded box to the same-class box of the window ``--track-steps`` earlier (best IoU >= 0.3),
and shift it by its centre's velocity times ``--lead-steps`` (boxes slower than ``--min-speed``
pixels per step stay put). It streams a split once (``stream_accuracy.streamed_windows``: the
detector's arithmetic, every step decoded), then scores every combination with pycocotools against
the labels, beside no shift.

    OMP_NUM_THREADS=1 .venv/bin/python bench/lead_compensation.py --data data/v3/val \
        --json out/lead/val.json

The extrapolation lives here, not in the detector, because on the validation split it lowered
mAP@0.5 for every setting tried (docs/streaming.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def extrapolate_boxes(
    rows: np.ndarray,
    earlier: np.ndarray,
    steps_between: int,
    lead_steps: float,
    sensor_size: tuple[int, int] | None = None,
    min_iou: float = 0.3,
    min_speed: float = 0.0,
) -> np.ndarray:
    """Shift every box of ``rows`` along the motion of its match in ``earlier``.

    Args:
        rows: ``[N, 6]`` rows ``x1, y1, x2, y2, score, class`` of the current window.
        earlier: rows of a window ``steps_between`` steps before it.
        steps_between: steps from ``earlier`` to ``rows`` (at least 1).
        lead_steps: how many steps ahead to move the boxes (0 leaves them unchanged).
        sensor_size: ``(width, height)``; shifted boxes are clipped to it when given.
        min_iou: a box matches the same-class box of ``earlier`` with the highest IoU, if at least this.
        min_speed: boxes whose centre moved less than this many pixels per step stay put (the jitter
            of a still object's box is not motion).

    Returns:
        A new ``[N, 6]`` float32 array; scores and classes unchanged.
    """
    from torchvision.ops import box_iou

    if steps_between < 1:
        raise ValueError(f"steps_between must be at least 1, got {steps_between}")
    out = np.array(rows, dtype=np.float32, copy=True).reshape(-1, 6)
    earlier = np.asarray(earlier, dtype=np.float32).reshape(-1, 6)
    if lead_steps == 0 or len(out) == 0 or len(earlier) == 0:
        return out
    iou = box_iou(torch.from_numpy(out[:, :4]), torch.from_numpy(earlier[:, :4])).numpy()
    iou[out[:, 5][:, None] != earlier[:, 5][None, :]] = 0.0
    best = iou.argmax(axis=1)
    matched = iou[np.arange(len(out)), best] >= min_iou
    centre_now = (out[:, 0:2] + out[:, 2:4]) / 2
    centre_then = (earlier[best, 0:2] + earlier[best, 2:4]) / 2
    velocity = (centre_now - centre_then) / steps_between
    moving = matched & (np.linalg.norm(velocity, axis=1) >= min_speed)
    shift = velocity * lead_steps
    shift[~moving] = 0.0
    out[:, 0:2] += shift
    out[:, 2:4] += shift
    if sensor_size is not None:
        width, height = sensor_size
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


class BoxExtrapolator:
    """Per-stream history for :func:`extrapolate_boxes`: feed decoded windows in step order.

    The velocity of a box is measured against the newest earlier window at least ``track_steps`` steps
    back (decoded windows may be ``publish_every`` steps apart); the raw (unshifted) boxes are kept, so
    shifts never compound.
    """

    def __init__(
        self,
        lead_steps: float,
        track_steps: int = 2,
        sensor_size: tuple[int, int] | None = None,
        min_iou: float = 0.3,
        min_speed: float = 0.0,
    ) -> None:
        if lead_steps < 0:
            raise ValueError(f"lead_steps must be at least 0, got {lead_steps}")
        if track_steps < 1:
            raise ValueError(f"track_steps must be at least 1, got {track_steps}")
        self.lead_steps = float(lead_steps)
        self.track_steps = int(track_steps)
        self.sensor_size = sensor_size
        self.min_iou = min_iou
        self.min_speed = min_speed
        self._history: deque[tuple[int, np.ndarray]] = deque()

    def __call__(self, step: int, rows: np.ndarray) -> np.ndarray:
        """The rows of the window ending at ``step``, moved ``lead_steps`` ahead."""
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
        earlier = None
        for past_step, past_rows in reversed(self._history):
            if step - past_step >= self.track_steps:
                earlier = (past_step, past_rows)
                break
        self._history.append((step, rows))
        while len(self._history) > 1 and step - self._history[1][0] >= self.track_steps:
            self._history.popleft()
        if earlier is None or self.lead_steps == 0:
            return rows.copy()
        return extrapolate_boxes(
            rows,
            earlier[1],
            step - earlier[0],
            self.lead_steps,
            self.sensor_size,
            self.min_iou,
            self.min_speed,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--data", required=True, help="a built split (e.g. data/v3/val)")
    parser.add_argument("--dt-us", type=int, default=25_000)
    parser.add_argument("--window-steps", type=int, default=2)
    parser.add_argument("--lead-steps", default="2,3,4")
    parser.add_argument("--track-steps", default="2,4")
    parser.add_argument("--min-speed", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    from stream_accuracy import rows_at_labels, streamed_windows

    from streamdet.dataset import DatasetSplit
    from streamdet.evaluate import coco_from_dict, coco_metrics
    from streamdet.model import load_detector
    from streamdet.snn import load_snn

    bundle = load_detector(args.model)
    split = DatasetSplit(args.data, window_us=bundle.window_us)
    windows = streamed_windows(load_snn(args.model), split, args.dt_us, args.window_steps, progress=True)

    def at_labels(lead: float, track: int, min_speed: float) -> dict[int, np.ndarray]:
        shifted = {}
        for sequence, decoded in windows.items():
            extrapolator = BoxExtrapolator(lead, track, split.sensor_size, min_speed=min_speed)
            shifted[sequence] = [replace(w, rows=extrapolator(w.step, w.rows)) for w in decoded]
        return rows_at_labels(shifted, split)

    unshifted = at_labels(0.0, 1, 0.0)
    ids = sorted(unshifted)
    coco_gt = coco_from_dict(split.coco, ids)

    def scored(rows_by_id: dict[int, np.ndarray]) -> dict:
        metrics = coco_metrics(coco_gt, {i: rows_by_id[i] for i in ids})
        return {
            "map50": round(metrics["map50"], 4),
            "ap50_per_class": {k: round(v, 4) for k, v in metrics["ap50_per_class"].items()},
        }

    rows = [{"lead_steps": 0, **scored(unshifted)}]
    print(json.dumps(rows[0]), flush=True)
    parse = lambda text, kind: [kind(part) for part in text.split(",") if part.strip()]  # noqa: E731
    for track, min_speed, lead in itertools.product(
        parse(args.track_steps, int), parse(args.min_speed, float), parse(args.lead_steps, float)
    ):
        row = {"lead_steps": lead, "track_steps": track, "min_speed": min_speed}
        row.update(scored(at_labels(lead, track, min_speed)))
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "model": args.model,
        "data": args.data,
        "dt_us": args.dt_us,
        "window_steps": args.window_steps,
        "images": len(ids),
        "rows": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
