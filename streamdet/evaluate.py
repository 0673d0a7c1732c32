"""COCO evaluation with pycocotools: mAP@0.5, mAP@[.5:.95] and AP@0.5 per class.

``evaluate_split`` runs any ``predict`` function (the ANN's ``DetectorBundle.detect``, or an SNN
wrapped to the same signature) over the images of a built split and scores it against the split's
``annotations.json``. Ground truth marked ``iscrowd`` / ``ignore`` (objects too small or too occluded)
neither counts as a miss nor makes a detection on it a false positive (pycocotools' crowd rule).
Classes with no ground truth in the evaluated images are left out of the mean and of the per-class
table (pycocotools gives them AP -1).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from streamdet.model import DetectorBundle
    from streamdet.prophesee_boxes import ClassMap, Letterbox
    from streamdet.samples import Augment

Predict = Callable[[Tensor], list[Tensor]]
"""``inputs [B, C, H, W] -> per image [D, 6]`` rows ``x1, y1, x2, y2, score, class`` (pixels)."""


def coco_from_dict(dataset: dict[str, Any], image_ids: list[int] | None = None):
    """A ``pycocotools.coco.COCO`` index of ``dataset`` (annotations.json content), restricted to
    ``image_ids`` when given; pycocotools' console output is swallowed."""
    from pycocotools.coco import COCO

    if image_ids is not None:
        wanted = set(image_ids)
        dataset = {
            **dataset,
            "images": [image for image in dataset["images"] if image["id"] in wanted],
            "annotations": [a for a in dataset["annotations"] if a["image_id"] in wanted],
        }
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def detections_to_coco(detections_by_image: dict[int, Tensor | np.ndarray]) -> list[dict[str, Any]]:
    """COCO result records ``{image_id, category_id = class + 1, bbox [x, y, w, h], score}`` from rows
    ``x1, y1, x2, y2, score, class``."""
    records = []
    for image_id, rows in detections_by_image.items():
        rows = rows.detach().cpu().numpy() if isinstance(rows, Tensor) else np.asarray(rows)
        for x1, y1, x2, y2, score, label in rows.reshape(-1, 6).tolist():
            records.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": score,
                }
            )
    return records


def coco_metrics(coco_gt, detections_by_image: dict[int, Tensor | np.ndarray]) -> dict[str, Any]:
    """COCO box metrics of detections against ``coco_gt`` (a pycocotools ``COCO``).

    ``AP_c(t)`` is the area under the 101-point interpolated precision/recall curve of class ``c`` at IoU
    threshold ``t`` over the images of ``detections_by_image`` (all areas, at most 100 detections per
    image); ``map50 = mean_c AP_c(0.5)``, ``map = mean_c mean_{t in 0.5:0.05:0.95} AP_c(t)``, means over
    the classes with ground truth.

    Args:
        coco_gt: ground truth; ``iscrowd`` boxes are regions where detections are neither counted nor
            penalised.
        detections_by_image: image id -> rows ``x1, y1, x2, y2, score, class`` (class = category id - 1);
            every evaluated image must be a key (an empty array when nothing was detected).

    Returns:
        ``{"map50", "map", "ap50_per_class": {name: AP}, "ap_per_class": {name: AP}}``.
    """
    from pycocotools.cocoeval import COCOeval

    image_ids = sorted(int(i) for i in detections_by_image)
    records = detections_to_coco(detections_by_image)
    names = {c["id"]: c["name"] for c in coco_gt.dataset["categories"]}
    present = sorted(
        {
            a["category_id"]
            for a in coco_gt.dataset["annotations"]
            if a["image_id"] in set(image_ids) and not a.get("iscrowd", 0)
        }
    )
    if not records:
        zeros = {names[c]: 0.0 for c in present}
        return {"map50": 0.0, "map": 0.0, "ap50_per_class": zeros, "ap_per_class": dict(zeros)}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(records)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"]  # [T IoUs, R recalls, K classes, A areas, M max-dets]
    ap50, ap = {}, {}
    for k, category_id in enumerate(evaluator.params.catIds):
        if category_id not in present:
            continue
        all_iou = precision[:, :, k, 0, -1]
        at_50 = precision[0, :, k, 0, -1]
        ap50[names[category_id]] = float(np.mean(at_50[at_50 > -1])) if np.any(at_50 > -1) else 0.0
        ap[names[category_id]] = float(np.mean(all_iou[all_iou > -1])) if np.any(all_iou > -1) else 0.0
    return {
        "map50": float(np.mean(list(ap50.values()))) if ap50 else 0.0,
        "map": float(np.mean(list(ap.values()))) if ap else 0.0,
        "ap50_per_class": ap50,
        "ap_per_class": ap,
    }


def evaluate_split(
    predict: Predict,
    split_dir: str | Path,
    modality: str,
    window_us: int,
    event_scale: float,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    history_windows: int = 0,
    perturb: Augment | None = None,
    keep_detections: bool = False,
) -> dict[str, Any]:
    """Run ``predict`` on the images of a split (in file order, the first ``limit`` ones) and score it.

    Args:
        predict: batch of model inputs ``[B, C, H, W]`` -> detections per image (see :data:`Predict`).
        split_dir: a built split (``annotations.json`` + sequences).
        modality: ``events`` or ``intensity``: which input is built from the window.
        window_us: the model's input window, microseconds, ending at each image's time stamp (it may
            differ from the window the split was built with).
        event_scale: events per pixel that saturate the events input.
        limit: evaluate only the first ``limit`` images.
        batch_size: images per ``predict`` call.
        progress: tqdm bar on stderr.
        history_windows: earlier windows the model reads as extra channels (``streamdet.samples``).
        perturb: a transform of each image's raw measurement before it becomes the model input (a
            ``streamdet.samples.Augment``, seeded per image, so a run is repeatable), e.g. the sensor
            changes of ``experiments/robustness.py``; ``None`` scores the recording as it is.
        keep_detections: also return ``"detections"``: image id -> ``predict``'s rows, in the order
            the images were predicted.

    Returns:
        ``{"images": N, "map50", "map", "ap50_per_class", "ap_per_class", "presets": [...],
        "window_us": window_us}``.
    """
    from tqdm import tqdm

    from streamdet.errors import UserFacingError
    from streamdet.samples import DetectionSamples

    samples = DetectionSamples(
        [split_dir],
        modality,
        event_scale,
        window_us=window_us,
        history_windows=history_windows,
        augment=perturb,
    )
    count = len(samples) if limit is None else max(0, min(int(limit), len(samples)))
    if count == 0:
        raise UserFacingError(f"{split_dir}: no images to evaluate (--limit {limit})")
    detections: dict[int, Tensor] = {}
    with tqdm(total=count, desc="eval", unit="img", disable=not progress) as bar:
        for start in range(0, count, batch_size):
            indices = range(start, min(start + batch_size, count))
            inputs = torch.stack([samples[i][0] for i in indices])
            for i, rows in zip(indices, predict(inputs), strict=True):
                detections[int(samples.image(i)["id"])] = rows.detach().cpu()
            bar.update(len(indices))
    coco_gt = coco_from_dict(samples.splits[0].coco, list(detections))
    metrics = coco_metrics(coco_gt, detections)
    presets = sorted({samples.image(i).get("preset", "") for i in range(count)})
    result = {"images": count, **metrics, "presets": presets, "window_us": samples.window_us}
    return {**result, "detections": detections} if keep_detections else result


def evaluate_prophesee_folder(
    bundle: DetectorBundle,
    folder: str | Path,
    class_map: ClassMap | str,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    keep_detections: bool = False,
) -> dict[str, Any]:
    """Score an events detector on a folder of Prophesee recordings (``<stem>_bbox.npy`` beside
    ``<stem>_td.dat`` / ``.raw`` / ``.h5``; ``streamdet.prophesee_boxes``).

    Each distinct box time ``t`` of a recording is one image; its input is built as :func:`evaluate_split`
    builds a split's: the events of ``(t - k window_us - window_us, t - k window_us]`` for
    ``k = 0..history_windows``, binned by :func:`streamdet.events.events_to_input`. A sensor other than
    the model's is first letterboxed into it (``prophesee_boxes.letterbox``: scaled down by
    ``s = min(1, W_m / W_s, H_m / H_s)``, centred, counts area-pooled with ``event_scale / s**2``), and
    the detections are mapped back, so boxes are scored in the recording's own pixels.

    Args:
        bundle: an ``events`` detector (``streamdet.model.load_detector``).
        folder: the folder of recordings.
        class_map: ``prophesee_boxes.ClassMap`` or its text (``gen1``, ``1mpx``, ``0=car,1=pedestrian``).
        limit: score only the first ``limit`` images (recordings by name, times increasing).
        batch_size: images per ``bundle.detect`` call.
        progress: tqdm bar on stderr.
        keep_detections: also return ``"detections"``: image id -> rows in sensor pixels.

    Returns:
        ``{"images", "map50", "map", "ap50_per_class", "ap_per_class", "window_us", "recordings":
        [{"name", "sensor", "scale", "images"}]}`` (plus ``"detections"``, ``"ground_truth"`` (the COCO
        dict) when ``keep_detections``).
    """
    from tqdm import tqdm

    from streamdet import formats
    from streamdet import prophesee_boxes as boxes
    from streamdet.errors import UserFacingError

    if bundle.modality != "events":
        raise UserFacingError(f"Prophesee recordings hold events; the model takes {bundle.modality} input")
    if isinstance(class_map, str):
        class_map = boxes.parse_class_map(class_map)
    recordings = boxes.find_recordings(folder)
    sensor_sizes = {r.name: boxes.recording_sensor_size(r.events_path) for r in recordings}
    coco, order = boxes.folder_ground_truth(folder, class_map, bundle.class_names, sensor_sizes)
    count = len(order) if limit is None else max(0, min(int(limit), len(order)))
    if count == 0:
        raise UserFacingError(f"{folder}: no images to evaluate (--limit {limit})")
    detections: dict[int, np.ndarray] = {}
    summary = []
    with tqdm(total=count, desc="eval", unit="img", disable=not progress) as bar:
        for recording in recordings:
            ids_times = [
                (coco["images"][i]["id"], t_us)
                for i, (rec, t_us) in enumerate(order[:count])
                if rec.name == recording.name
            ]
            if not ids_times:
                continue
            read = formats.read_events(recording.events_path, sensor_size=sensor_sizes[recording.name])
            events = read.events
            fit = boxes.letterbox(read.sensor_size, bundle.sensor_size)
            event_scale = boxes.letterbox_event_scale(bundle.event_scale, fit)
            summary.append(
                {
                    "name": recording.name,
                    "sensor": list(read.sensor_size),
                    "scale": fit.scale,
                    "images": len(ids_times),
                }
            )
            for start in range(0, len(ids_times), batch_size):
                batch = ids_times[start : start + batch_size]
                inputs = torch.from_numpy(
                    np.stack(
                        [_letterboxed_input(bundle, events, t_us, fit, event_scale) for _, t_us in batch]
                    )
                )
                for (image_id, _), rows in zip(batch, bundle.detect(inputs), strict=True):
                    detections[image_id] = boxes.boxes_to_sensor(rows.detach().cpu().numpy(), fit)
                bar.update(len(batch))
    metrics = coco_metrics(coco_from_dict(coco, list(detections)), detections)
    result = {"images": count, **metrics, "window_us": bundle.window_us, "recordings": summary}
    return {**result, "detections": detections, "ground_truth": coco} if keep_detections else result


def _letterboxed_input(
    bundle: DetectorBundle, events: np.ndarray, t_us: int, fit: Letterbox, event_scale: float
) -> np.ndarray:
    """The model input of the image at ``t_us`` of a recording: for ``k = 0..history_windows`` the
    events of ``(t_us - (k + 1) window_us, t_us - k window_us]`` (``events`` sorted by time), moved into
    the model's pixels by ``fit`` and binned with ``event_scale``; ``[C, H, W]`` float32."""
    from streamdet.events import events_to_input
    from streamdet.prophesee_boxes import letterbox_events

    windows = []
    for k in range(1 + bundle.history_windows):
        end = t_us - k * bundle.window_us
        lo, hi = np.searchsorted(events["t"], [end - bundle.window_us, end], side="right")
        windows.append(events_to_input(letterbox_events(events[lo:hi], fit), bundle.sensor_size, event_scale))
    return np.concatenate(windows)
