"""Procedural scenes: determinism, ground truth against the rendered pixels, ignore rules, motion."""

from __future__ import annotations

import numpy as np
import pytest

from streamdet import CLASS_NAMES
from streamdet.encoders import DVSParams, emulate_dvs
from streamdet.scenes import PRESET_CLASSES, PRESETS, SceneConfig, make_scene, render_frames


def _diff_box(frame: np.ndarray, without: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    changed = np.abs(frame - without) > 0.03
    if not changed.any():
        return changed, None
    ys, xs = np.nonzero(changed)
    return changed, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


@pytest.mark.parametrize("preset", PRESETS)
def test_render_is_deterministic_and_seed_dependent(preset: str) -> None:
    config = SceneConfig(preset, sensor_size=(346, 260), seed=7, duration_us=2_000_000)
    first, second = make_scene(config), make_scene(config)
    late, early = first.render(1_500_000), first.render(20_000)
    assert late.shape == (260, 346) and late.dtype == np.float32
    assert 0.0 <= late.min() and late.max() <= 1.0
    np.testing.assert_array_equal(second.render(20_000), early)
    np.testing.assert_array_equal(second.render(1_500_000), late)
    other = make_scene(SceneConfig(preset, seed=8, duration_us=2_000_000)).render(1_500_000)
    assert np.abs(other - late).mean() > 0.01


@pytest.mark.parametrize("preset", PRESETS)
def test_boxes_agree_with_rendered_pixels(preset: str) -> None:
    """Removing an object changes pixels only inside its box (+1 px of interpolation, +3 sigma of lens
    blur), and its box is close to the box of the changed pixels (for objects of clear contrast: a
    part that matches what is behind it changes nothing); the label map holds exactly the visible
    pixels."""
    ious = []
    for seed in range(6):
        scene = make_scene(SceneConfig(preset, seed=seed, duration_us=4_000_000))
        t_us = 1_000_000 + 700_000 * seed % 3_000_000
        frame, truths, labels = scene.render_with_truth(t_us)
        for truth in truths:
            assert truth.class_name in PRESET_CLASSES[preset]
            assert truth.visible_area_px == int((labels == truth.track_id).sum())
            ys, xs = np.nonzero(labels == truth.track_id)
            assert truth.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            changed, changed_box = _diff_box(frame, scene.render(t_us, exclude=frozenset({truth.track_id})))
            if changed_box is None:
                assert truth.ignore, f"seed {seed}: labelled object {truth.track_id} changes no pixel"
                continue
            x1, y1, x2, y2 = truth.box
            outside = changed.copy()
            spread = 1 + int(np.ceil(3 * scene.blur_sigma_px))  # bilinear warp, then the lens blur
            outside[max(y1 - spread, 0) : y2 + spread, max(x1 - spread, 0) : x2 + spread] = False
            # The bilinear warp blends in canvas pixels just beyond the sensor edge, which the
            # nearest-neighbour label map never shows: the outermost sensor pixels are not checked.
            outside[[0, -1], :] = False
            outside[:, [0, -1]] = False
            assert not outside.any(), f"seed {seed}: object {truth.track_id} changes pixels outside its box"
            if not truth.ignore and truth.visible_area_px >= 60 and truth.contrast >= 0.25:
                ious.append(_iou(changed_box, truth.box))
                assert ious[-1] > 0.3, (seed, truth, changed_box)
    assert len(ious) >= 10 and np.median(ious) > 0.8, ious


def test_occlusion_and_ignore_rules() -> None:
    """Occluded objects keep their visible part only (and regain the rest when the occluders are
    removed); small, hidden, faint or still ones are kept and marked ignore."""
    seen_partial = seen_ignored = 0
    for seed in range(6):
        config = SceneConfig("traffic", seed=seed, duration_us=6_000_000)
        scene = make_scene(config)
        for t_us in (1_000_000, 3_000_000, 5_000_000):
            truths = scene.ground_truth(t_us)
            for truth in truths:
                x1, y1, x2, y2 = truth.box
                small = min(x2 - x1, y2 - y1) < config.min_visible_side_px
                hidden = truth.visible_fraction < config.min_visible_fraction
                faint = truth.contrast < config.min_contrast
                still = truth.motion_px < config.min_motion_px
                assert truth.ignore == (small or hidden or faint or still)
                assert 0.0 < truth.visible_fraction <= 1.0
                seen_ignored += truth.ignore
                inside = 0 < x1 and x2 < scene.width and 0 < y1 and y2 < scene.height
                if truth.visible_fraction < 0.8 and inside:
                    others = frozenset(o.track_id for o in scene.objects if o.track_id != truth.track_id)
                    (alone,) = scene.ground_truth(t_us, exclude=others)
                    assert alone.track_id == truth.track_id
                    assert alone.visible_area_px >= truth.visible_area_px
                    bx1, by1, bx2, by2 = alone.box
                    assert bx1 <= x1 and by1 <= y1 and x2 <= bx2 and y2 <= by2
                    # Scenery (poles) still hides part of it; other objects no longer do.
                    grown = alone.visible_area_px > truth.visible_area_px
                    seen_partial += grown and alone.visible_fraction > 0.9
    assert seen_partial >= 1 and seen_ignored >= 1


def test_maritime_camera_moves_so_buoys_make_events() -> None:
    scene = make_scene(SceneConfig("maritime", seed=3, duration_us=1_000_000))
    assert not np.allclose(scene.camera_matrix(0), scene.camera_matrix(500_000))
    buoys = {t.track_id: t.box for t in scene.ground_truth(100_000) if t.class_name == "buoy"}
    later = {t.track_id: t.box for t in scene.ground_truth(900_000) if t.class_name == "buoy"}
    assert buoys and any(buoys[k] != later[k] for k in buoys.keys() & later.keys())


@pytest.mark.parametrize("preset", PRESETS)
def test_labelled_objects_produce_events(preset: str) -> None:
    """Everything labelled moves relative to the camera, so the DVS sees it in a 50 ms window."""
    scene = make_scene(SceneConfig(preset, seed=11, duration_us=1_000_000))
    times = np.arange(0, 500_001, 4_000, dtype=np.int64)
    events, _ = emulate_dvs(render_frames(scene, times), times, DVSParams(seed=1))
    window = events[events["t"] > 450_000]
    truths = [t for t in scene.ground_truth(500_000) if not t.ignore]
    assert truths
    for truth in truths:
        x1, y1, x2, y2 = truth.box
        inside = (window["x"] >= x1) & (window["x"] < x2) & (window["y"] >= y1) & (window["y"] < y2)
        assert inside.sum() >= 5, f"{truth} got {inside.sum()} events"


def test_presets_cover_all_classes_and_reject_bad_config() -> None:
    assert {c for classes in PRESET_CLASSES.values() for c in classes} == set(CLASS_NAMES)
    assert set(PRESET_CLASSES) == set(PRESETS)
    with pytest.raises(ValueError, match="unknown scene preset 'harbour'"):
        SceneConfig("harbour")
    with pytest.raises(ValueError, match="too small"):
        SceneConfig("traffic", sensor_size=(16, 16))


@pytest.mark.parametrize("size", [(400, 250), (304, 240), (128, 96)])
def test_other_sensor_sizes(size: tuple[int, int]) -> None:
    scene = make_scene(SceneConfig("maritime", sensor_size=size, seed=2))
    frame, truths, labels = scene.render_with_truth(500_000)
    assert frame.shape == labels.shape == (size[1], size[0])
    for truth in truths:
        x1, y1, x2, y2 = truth.box
        assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
