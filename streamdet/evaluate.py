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

from streamdet.contract import Geometry, InputSpec

if TYPE_CHECKING:
    from streamdet.binning import SensorMapping
    from streamdet.model import DetectorBundle
    from streamdet.prophesee_boxes import ClassMap
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


OPERATING_SCORES: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""Score thresholds at which :func:`operating_points` reports precision, recall and F1."""


def operating_points(
    coco_gt, detections_by_image: dict[int, Tensor | np.ndarray], scores: tuple[float, ...] = OPERATING_SCORES
) -> list[dict[str, float]]:
    """Precision, recall and F1 at IoU 0.5 of the boxes scoring at least each threshold: what a live
    subscriber sees at that publishing threshold (``detect --min-score``).

    Per image and class, boxes in decreasing score take the unmatched ground-truth box of highest IoU
    >= 0.5 (a true positive); a box matching nothing but an ignored box (``iscrowd``) is neither a true
    nor a false positive; any other box is a false positive. Recall is over the boxes not ignored.

    Returns:
        ``[{"score", "precision", "recall", "f1", "detections"}]`` for each threshold.
    """
    from torchvision.ops import box_iou

    true_positive: list[np.ndarray] = []
    counted: list[np.ndarray] = []
    kept_scores: list[np.ndarray] = []
    positives = 0
    for image_id, rows in detections_by_image.items():
        rows = rows.detach().cpu().numpy() if isinstance(rows, Tensor) else np.asarray(rows)
        rows = rows.reshape(-1, 6)
        annotations = coco_gt.imgToAnns.get(int(image_id), [])
        for label in set(int(a["category_id"]) - 1 for a in annotations) | set(rows[:, 5].astype(int)):
            truth = [a for a in annotations if int(a["category_id"]) - 1 == label]
            boxes = np.array([a["bbox"] for a in truth], dtype=np.float64).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            ignored = np.array([bool(a.get("iscrowd", 0) or a.get("ignore", 0)) for a in truth], dtype=bool)
            positives += int(np.count_nonzero(~ignored))
            found = rows[rows[:, 5].astype(int) == label]
            found = found[np.argsort(-found[:, 4], kind="stable")]
            iou = box_iou(torch.from_numpy(found[:, :4]).double(), torch.from_numpy(boxes)).numpy()
            taken = np.zeros(len(truth), dtype=bool)
            for k in range(len(found)):
                candidates = np.where(~taken & ~ignored & (iou[k] >= 0.5))[0]
                if len(candidates):
                    taken[candidates[np.argmax(iou[k, candidates])]] = True
                    true_positive.append(np.array([True]))
                    counted.append(np.array([True]))
                else:
                    true_positive.append(np.array([False]))
                    counted.append(np.array([not bool(np.any(ignored & (iou[k] >= 0.5)))]))
                kept_scores.append(found[k : k + 1, 4])
    hits = np.concatenate(true_positive) if true_positive else np.zeros(0, bool)
    real = np.concatenate(counted) if counted else np.zeros(0, bool)
    score_of = np.concatenate(kept_scores) if kept_scores else np.zeros(0)
    points = []
    for threshold in scores:
        above = score_of >= threshold
        tp = int(np.count_nonzero(hits & above))
        fp = int(np.count_nonzero(~hits & real & above))
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        points.append(
            {
                "score": threshold,
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
                "detections": int(np.count_nonzero(above)),
            }
        )
    return points


def evaluate_split(
    predict: Predict,
    split_dir: str | Path,
    spec: InputSpec,
    geometry: Geometry | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    perturb: Augment | None = None,
    keep_detections: bool = False,
) -> dict[str, Any]:
    """Run ``predict`` on the images of a split (in file order, the first ``limit`` ones) and score it.

    Args:
        predict: batch of model inputs ``[B, C, H, W]`` -> detections per image (see :data:`Predict`), in
            input pixels.
        split_dir: a built split (``annotations.json`` + sequences).
        spec: what the model reads (modality, window ending at each image's time stamp, event scale,
            history windows; the window may differ from the one the split was built with).
        geometry: how the split's sensor is brought to the model's input (``None``: as it is, the split
            must then be at the model's size or the model run natively); boxes are scored in the
            split's own pixels.
        limit: evaluate only the first ``limit`` images.
        batch_size: images per ``predict`` call.
        progress: tqdm bar on stderr.
        perturb: a transform of each image's raw measurement before it becomes the model input (a
            ``streamdet.samples.Augment``, seeded per image, so a run is repeatable), e.g. the sensor
            changes of ``experiments/robustness.py``; ``None`` scores the recording as it is.
        keep_detections: also return ``"detections"``: image id -> rows in the split's pixels, in the
            order the images were predicted.

    Returns:
        ``{"images": N, "map50", "map", "ap50_per_class", "ap_per_class", "presets": [...],
        "window_us": window_us, "geometry": ...}``.
    """
    from tqdm import tqdm

    from streamdet.binning import boxes_to_sensor
    from streamdet.errors import UserFacingError
    from streamdet.samples import DetectionSamples

    samples = DetectionSamples.for_model([split_dir], spec, geometry, augment=perturb)
    count = len(samples) if limit is None else max(0, min(int(limit), len(samples)))
    if count == 0:
        raise UserFacingError(f"{split_dir}: no images to evaluate (--limit {limit})")
    detections: dict[int, Tensor] = {}
    with tqdm(total=count, desc="eval", unit="img", disable=not progress) as bar:
        for start in range(0, count, batch_size):
            indices = range(start, min(start + batch_size, count))
            inputs = torch.stack([samples[i][0] for i in indices])
            for i, rows in zip(indices, predict(inputs), strict=True):
                in_sensor = boxes_to_sensor(rows.detach().cpu().numpy(), samples.mapping)
                detections[int(samples.image(i)["id"])] = torch.from_numpy(in_sensor)
            bar.update(len(indices))
    coco_gt = coco_from_dict(samples.splits[0].coco, list(detections))
    metrics = coco_metrics(coco_gt, detections)
    metrics["operating_points"] = operating_points(coco_gt, detections)
    presets = sorted({samples.image(i).get("preset", "") for i in range(count)})
    result = {
        "images": count,
        **metrics,
        "presets": presets,
        "window_us": samples.window_us,
        "geometry": samples.mapping.describe(),
    }
    return {**result, "detections": detections} if keep_detections else result


def evaluate_prophesee_folder(
    bundle: DetectorBundle,
    folder: str | Path,
    class_map: ClassMap | str,
    geometry: Geometry | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    keep_detections: bool = False,
) -> dict[str, Any]:
    """Score an events detector on a folder of Prophesee recordings (``<stem>_bbox.npy`` beside
    ``<stem>_td.dat`` / ``.raw`` / ``.h5``; ``streamdet.prophesee_boxes``).

    Each distinct box time ``t`` of a recording is one image; its input is built as :func:`evaluate_split`
    builds a split's: the events of ``(t - k window_us - window_us, t - k window_us]`` for
    ``k = 0..history_windows``, brought to the model's input by ``geometry`` (default ``scale``,
    ``streamdet.binning.sensor_mapping``), and the detections are mapped back, so boxes are scored in
    the recording's own pixels.

    Args:
        bundle: an ``events`` detector (``streamdet.model.load_detector``).
        folder: the folder of recordings.
        class_map: ``prophesee_boxes.ClassMap`` or its text (``gen1``, ``1mpx``, ``0=car,1=pedestrian``).
        geometry: sensor -> model input (``streamdet.contract.Geometry``).
        limit: score only the first ``limit`` images (recordings by name, times increasing).
        batch_size: images per ``bundle.detect`` call.
        progress: tqdm bar on stderr.
        keep_detections: also return ``"detections"``: image id -> rows in sensor pixels.

    Returns:
        ``{"images", "map50", "map", "ap50_per_class", "ap_per_class", "window_us", "recordings":
        [{"name", "sensor", "geometry", "images"}]}`` (plus ``"detections"``, ``"ground_truth"`` (the COCO
        dict) when ``keep_detections``).
    """
    from tqdm import tqdm

    from streamdet import formats
    from streamdet import prophesee_boxes as boxes
    from streamdet.binning import boxes_to_sensor, sensor_mapping
    from streamdet.contract import Geometry
    from streamdet.errors import UserFacingError

    spec = bundle.spec
    if spec.modality != "events":
        raise UserFacingError(f"Prophesee recordings hold events; the model takes {spec.modality} input")
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
            mapping = sensor_mapping(read.sensor_size, spec, geometry or Geometry())
            summary.append(
                {
                    "name": recording.name,
                    "sensor": list(read.sensor_size),
                    "geometry": mapping.describe(),
                    "images": len(ids_times),
                }
            )
            for start in range(0, len(ids_times), batch_size):
                batch = ids_times[start : start + batch_size]
                inputs = torch.from_numpy(
                    np.stack([_recording_input(spec, read.events, t_us, mapping) for _, t_us in batch])
                )
                for (image_id, _), rows in zip(batch, bundle.detect(inputs), strict=True):
                    detections[image_id] = boxes_to_sensor(rows.detach().cpu().numpy(), mapping)
                bar.update(len(batch))
    metrics = coco_metrics(coco_from_dict(coco, list(detections)), detections)
    result = {"images": count, **metrics, "window_us": spec.window_us, "recordings": summary}
    return {**result, "detections": detections, "ground_truth": coco} if keep_detections else result


def _recording_input(spec: InputSpec, events: np.ndarray, t_us: int, mapping: SensorMapping) -> np.ndarray:
    """The model input of the image at ``t_us`` of a recording: for ``k = 0..history_windows`` the
    events of ``(t_us - (k + 1) window_us, t_us - k window_us]`` (``events`` sorted by time) binned into
    the model's input by ``mapping``; ``[C, H, W]`` float32."""
    from streamdet.binning import events_to_input

    windows = []
    for k in range(1 + spec.history_windows):
        end = t_us - k * spec.window_us
        lo, hi = np.searchsorted(events["t"], [end - spec.window_us, end], side="right")
        windows.append(events_to_input(events[lo:hi], mapping.sensor_size, spec.event_scale, mapping))
    return np.concatenate(windows)
