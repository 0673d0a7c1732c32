"""RetinaNet parts: box coder, anchor layout, Quant-ReLU, focal loss, decoding, fx tracing, checkpoints."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
import torch.fx

from streamdet import CLASS_NAMES
from streamdet.contract import Decoding, InputSpec
from streamdet.errors import UserFacingError
from streamdet.model import (
    SHIPPED_MODELS,
    BoxCoder,
    LossConfig,
    QuantReLU,
    anchor_sizes,
    build_model,
    checkpoint_dict,
    config_for,
    decode_detections,
    detection_candidates,
    detection_loss,
    load_detector,
    make_anchors,
    pad_input,
    resolve_model_path,
    save_checkpoint,
    select_detections,
)
from streamdet.weight_surgery import (
    carry_over_anchors,
    carry_over_finest_level,
    carry_over_head_blocks,
    carry_over_stage_widths,
)

TINY = dict(size="tiny", input_size=(64, 64))


def test_box_coder_round_trip_and_known_deltas() -> None:
    coder = BoxCoder()
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 30.0, 60.0, 50.0]])
    boxes = torch.tensor([[5.0, 0.0, 15.0, 20.0], [18.0, 33.0, 70.0, 41.0]])
    deltas = coder.encode(boxes, anchors)
    assert deltas[0].tolist() == pytest.approx([0.5, 0.5, 0.0, math.log(2.0)])
    assert torch.allclose(coder.decode(deltas, anchors), boxes, atol=1e-4)
    generator = torch.Generator().manual_seed(0)
    random_deltas = torch.randn(100, 4, generator=generator)
    random_anchors = torch.rand(100, 2, generator=generator).repeat(1, 2) * 100 + torch.tensor([0, 0, 5, 8])
    round_trip = coder.encode(coder.decode(random_deltas, random_anchors), random_anchors)
    assert torch.allclose(round_trip, random_deltas, atol=1e-4)


def test_anchor_layout_matches_the_head_outputs() -> None:
    config = config_for("events", **TINY)
    anchors = make_anchors(config)
    per_location = config.anchors_per_location
    assert per_location == 9
    assert len(anchors) == (8 * 8 + 4 * 4 + 2 * 2) * per_location
    # P4 (stride 16), row 1, column 2, anchor 4 = size index 1 (side 10 * 2 ** (4 / 2) = 40), ratio 1
    index = 8 * 8 * 9 + (1 * 4 + 2) * 9 + 4
    assert anchors[index].tolist() == pytest.approx([40 - 20, 24 - 20, 40 + 20, 24 + 20])
    # ratio 0.5 (h / w) at the same place and size: w = 40 / sqrt(0.5), h = 40 * sqrt(0.5)
    assert anchors[index - 1, 2] - anchors[index - 1, 0] == pytest.approx(40 / math.sqrt(0.5))
    model = build_model(config).eval()
    with torch.no_grad():
        predictor = model.cls_head.predictor
        predictor.weight.zero_()
        predictor.bias.copy_(torch.arange(predictor.out_channels, dtype=torch.float32))
        cls_logits, box_deltas = model(torch.zeros(1, 2, 64, 64))
    assert cls_logits.shape == (1, len(anchors), 4) and box_deltas.shape == (1, len(anchors), 4)
    anchor_in_cell = torch.arange(len(anchors)) % per_location
    expected = anchor_in_cell[:, None] * 4 + torch.arange(4)[None]
    assert torch.equal(cls_logits[0], expected.float())


def test_carry_over_anchors_keeps_shared_ratios_and_seeds_new_ones_from_the_nearest() -> None:
    """Fine-tuning to other anchors: a ratio both configs have keeps its predictor rows exactly, so its
    outputs do not change; a new ratio (3) starts as the nearest old one (2)."""
    from dataclasses import replace

    torch.manual_seed(0)
    source = build_model(config_for("events", **TINY)).eval()
    target_config = replace(source.config, anchor_min_size=12.0, anchor_aspect_ratios=(0.5, 1.0, 2.0, 3.0))
    target = build_model(target_config).eval()
    target.load_state_dict(carry_over_anchors(source.state_dict(), source.config, target_config))
    x = torch.rand(1, 2, 64, 64)
    with torch.no_grad():
        (old_cls, old_box), (new_cls, new_box) = source(x), target(x)
    old_cls, old_box = old_cls.unflatten(1, (-1, 9)), old_box.unflatten(1, (-1, 9))
    new_cls, new_box = new_cls.unflatten(1, (-1, 12)), new_box.unflatten(1, (-1, 12))
    for size in range(3):
        for new_ratio, old_ratio in ((0, 0), (1, 1), (2, 2), (3, 2)):
            assert torch.equal(new_cls[:, :, 4 * size + new_ratio], old_cls[:, :, 3 * size + old_ratio])
            assert torch.equal(new_box[:, :, 4 * size + new_ratio], old_box[:, :, 3 * size + old_ratio])
    assert len(make_anchors(target_config)) == new_cls.shape[1] * 12
    with pytest.raises(UserFacingError, match="anchor_aspect_ratios"):
        replace(source.config, anchor_aspect_ratios=(1.0, 1.0))
    with pytest.raises(UserFacingError, match="anchor_min_size"):
        replace(source.config, anchor_min_size=0.0)


def test_stride_4_level_anchor_layout_and_sizes() -> None:
    """``finest_stride = 4`` puts P2 first: a 16 x 16 grid on a 64 px input, sides one octave below P3's."""
    config = config_for("events", **TINY, finest_stride=4)
    anchors = make_anchors(config)
    assert anchor_sizes(config)[0] == pytest.approx([5.0, 5 * math.sqrt(2), 10.0])
    assert anchor_sizes(config)[1:] == anchor_sizes(config_for("events", **TINY))
    assert len(anchors) == (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2) * 9
    # P2, row 2, column 3, anchor 4 = size index 1 (side 5 * sqrt(2)), ratio 1, centred at (14, 10)
    side = 5 * math.sqrt(2)
    assert anchors[(2 * 16 + 3) * 9 + 4].tolist() == pytest.approx(
        [14 - side / 2, 10 - side / 2, 14 + side / 2, 10 + side / 2]
    )
    with torch.no_grad():
        cls_logits, box_deltas = build_model(config).eval()(torch.zeros(1, 2, 64, 64))
    assert cls_logits.shape == (1, len(anchors), 4) and box_deltas.shape == (1, len(anchors), 4)
    with pytest.raises(UserFacingError, match="finest_stride must be 4 or 8"):
        config_for("events", **TINY, finest_stride=2)


def test_carry_over_finest_level_keeps_p3_to_p5_and_starts_p2_as_p3_upsampled() -> None:
    """A stride-8 model's weights in a stride-4 model: the P3..P5 outputs are exactly the old ones, and
    P2 is P3's output convolution on the upsampled ``M_3`` (the new lateral adds nothing yet)."""
    from dataclasses import replace

    torch.manual_seed(0)
    source = build_model(config_for("events", **TINY)).eval()
    target_config = replace(source.config, finest_stride=4)
    target = build_model(target_config)
    target.load_state_dict(carry_over_finest_level(source.state_dict(), source.config, target))
    target.eval()
    x = torch.rand(1, 2, 64, 64)
    with torch.no_grad():
        (old_cls, old_box), (new_cls, new_box) = source(x), target(x)
        fine = 16 * 16 * 9
        assert torch.equal(new_cls[:, fine:], old_cls) and torch.equal(new_box[:, fine:], old_box)
        c2, c3, c4, c5 = target.backbone(x)
        m4 = target.fpn.lateral[1](c4) + target.fpn.upsample[1](target.fpn.lateral[2](c5))
        m3 = target.fpn.lateral[0](c3) + target.fpn.upsample[0](m4)
        p2 = source.fpn.output[0](torch.nn.functional.interpolate(m3, scale_factor=2, mode="nearest"))
        assert torch.allclose(new_cls[:, :fine], source.cls_head(p2), atol=1e-6)
        # the new lateral outputs 0 but learns
        target.train()
        assert not target.fpn.lateral_fine(c2).any()
    target.cls_head(target.fpn(*target.backbone(x))[0]).sum().backward()
    assert target.fpn.lateral_fine[1].weight.grad.abs().sum() > 0
    # and back: a stride-8 target drops the P2 modules
    back = carry_over_finest_level(target.state_dict(), target_config, source)
    assert not [key for key in back if "_fine." in key]
    source.load_state_dict(back)


def test_carry_over_head_blocks_adds_identity_blocks_that_learn() -> None:
    """New head blocks pass their input through: the same outputs as the source in evaluation and in
    training mode (batch statistics), and the zeroed BN of each new block still gets a gradient."""
    from dataclasses import replace

    torch.manual_seed(0)
    source = build_model(config_for("events", **TINY))
    source.train()(torch.rand(4, 2, 64, 64))  # running statistics away from their initial values
    target_config = replace(source.config, head_blocks=2)
    target = build_model(target_config)
    target.load_state_dict(carry_over_head_blocks(source.state_dict(), source.config, target))
    x = torch.rand(2, 2, 64, 64)
    for mode in ("eval", "train"):
        getattr(source, mode)(), getattr(target, mode)()
        (old_cls, old_box), (new_cls, new_box) = source(x), target(x)
        assert torch.equal(new_cls, old_cls) and torch.equal(new_box, old_box), mode
    new_cls.sum().backward()
    assert target.cls_head.tower[1].body[1][1].weight.grad.abs().sum() > 0
    assert target.cls_head.tower[1].body[1][1].bias.grad.abs().sum() > 0
    assert len(target.cls_head.tower) == 3 and len(target.box_head.tower) == 3
    # fewer blocks drop the extra ones; other head depths are refused
    source.load_state_dict(carry_over_head_blocks(target.state_dict(), target_config, source))
    deeper = build_model(replace(source.config, head_convs=2))
    with pytest.raises(UserFacingError, match="head_convs differ"):
        carry_over_head_blocks(source.state_dict(), source.config, deeper)
    with pytest.raises(UserFacingError, match="head_blocks must be at least 0|at least 0"):
        replace(source.config, head_blocks=-1)


@pytest.mark.parametrize("finest_stride", [8, 4])
def test_carry_over_stage_widths_keeps_the_function_and_lets_copies_grow_apart(finest_stride: int) -> None:
    """Wider backbone stages (residual blocks included) compute what the narrower model did, in
    evaluation and with batch statistics; a copied channel and its original get different gradients;
    narrower stages are refused."""
    from dataclasses import replace

    torch.manual_seed(0)
    config = config_for(
        "events", **TINY, stage_blocks=(0, 1, 1, 1), activation="relu", finest_stride=finest_stride
    )
    source = build_model(config)
    source.train()(torch.rand(4, 2, 64, 64))  # running statistics away from their initial values
    target_config = replace(config, stage_channels=(8, 24, 20, 40))
    target = build_model(target_config)
    widened = carry_over_stage_widths(source.state_dict(), config, target_config)
    # the copies are the same each time (a fixed seed), so --init and average widen alike
    again = carry_over_stage_widths(source.state_dict(), config, target_config)
    assert all(torch.equal(again[key], value) for key, value in widened.items())
    target.load_state_dict(widened)
    assert target.backbone.stages[3][1].body[0][0].weight.shape == (40, 40, 3, 3)
    x = torch.rand(2, 2, 64, 64)
    for mode in ("eval", "train"):
        getattr(source, mode)(), getattr(target, mode)()
        (old_cls, old_box), (new_cls, new_box) = source(x), target(x)
        assert torch.allclose(new_cls, old_cls, atol=1e-5), mode
        assert torch.allclose(new_box, old_box, atol=1e-5), mode
    (new_cls.sum() + new_box.sum()).backward()
    strided = target.backbone.stages[3][0][0]
    copied_from = next(
        j for j in range(24) if torch.equal(strided.weight[24], strided.weight[j])
    )  # channel 24 is a copy of an old channel
    assert not torch.allclose(strided.weight.grad[24], strided.weight.grad[copied_from])
    # the same widths again change nothing; narrower ones are refused
    same = carry_over_stage_widths(source.state_dict(), config, config)
    assert all(torch.equal(same[key], value) for key, value in source.state_dict().items())
    with pytest.raises(UserFacingError, match="can only be widened"):
        carry_over_stage_widths(target.state_dict(), target_config, config)


def test_quant_relu_levels_and_straight_through_gradients() -> None:
    act = QuantReLU(levels=4, clip_init=2.0)
    x = torch.tensor([-1.0, 0.2, 0.3, 1.1, 5.0], requires_grad=True)
    y = act(x)
    assert y.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 2.0])
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx([0.0, 1.0, 1.0, 1.0, 0.0])
    # d y / d clip: 1 above the clip, the rounding residual q - x / clip inside it
    assert float(act.clip.grad) == pytest.approx(1.0 + (0 - 0.1) + (0.25 - 0.15) + (0.5 - 0.55))


def test_focal_loss_on_a_known_case() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    target = {"boxes": anchors[:1].clone(), "labels": torch.tensor([0]), "ignore_boxes": torch.zeros(0, 4)}
    logits = torch.zeros(1, 2, 1)
    deltas = torch.zeros(1, 2, 4)
    losses = detection_loss(logits, deltas, anchors, [target])
    # p = 0.5 everywhere: foreground alpha (1 - p)^2 log 2, background (1 - alpha) p^2 log 2, over 1 positive
    assert float(losses["cls"]) == pytest.approx((0.25 * 0.25 + 0.75 * 0.25) * math.log(2.0), rel=1e-5)
    assert float(losses["box"]) == pytest.approx(0.0)
    confident = torch.tensor([[[2.0], [-3.0]]])
    p_fg, p_bg = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(-3.0))
    expected = 0.25 * (1 - p_fg) ** 2 * -torch.log(p_fg) + 0.75 * p_bg**2 * -torch.log(1 - p_bg)
    assert float(detection_loss(confident, deltas, anchors, [target])["cls"]) == pytest.approx(
        float(expected)
    )
    ignored = {**target, "ignore_boxes": torch.tensor([[98.0, 98.0, 112.0, 112.0]])}
    only_fg = detection_loss(logits, deltas, anchors, [ignored], LossConfig())
    assert float(only_fg["cls"]) == pytest.approx(0.25 * 0.25 * math.log(2.0), rel=1e-5)


def test_giou_box_loss_on_a_known_case() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    target = {"boxes": anchors.clone(), "labels": torch.tensor([0]), "ignore_boxes": torch.zeros(0, 4)}
    logits = torch.zeros(1, 1, 1)
    giou = LossConfig(box_loss="giou")
    assert float(
        detection_loss(logits, torch.zeros(1, 1, 4), anchors, [target], giou)["box"]
    ) == pytest.approx(0.0, abs=1e-6)
    # delta x = 0.5 moves the box 5 px right: IoU 50 / 150, enclosing box = union, so GIoU loss = 2 / 3
    shifted = torch.tensor([[[0.5, 0.0, 0.0, 0.0]]])
    assert float(detection_loss(logits, shifted, anchors, [target], giou)["box"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="box_loss"):
        LossConfig(box_loss="l2")


def test_decode_detections_thresholds_nms_and_clipping() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 70.0, 70.0]])
    logits = torch.tensor([[[3.0, -9.0], [2.0, -9.0], [-9.0, 1.0]]])
    deltas = torch.zeros(1, 3, 4)
    deltas[0, 2] = torch.tensor([0.5, 0.0, 0.0, 0.0])  # shifts the third box right by 10 px
    (rows,) = decode_detections(logits, deltas, anchors, nms_thresh=0.5, image_size=(75, 80), vote_iou=None)
    assert rows.shape == (2, 6)
    assert rows[0].tolist() == pytest.approx([0, 0, 10, 10, float(torch.sigmoid(torch.tensor(3.0))), 0])
    assert rows[1].tolist() == pytest.approx([60, 50, 75, 70, float(torch.sigmoid(torch.tensor(1.0))), 1])
    # the default decoding votes: the first box moves towards the suppressed one by its share of the scores
    (voted,) = decode_detections(logits, deltas, anchors, image_size=(75, 80))
    share = float(torch.sigmoid(torch.tensor(2.0)) / torch.sigmoid(torch.tensor([3.0, 2.0])).sum())
    assert voted[0, :4].tolist() == pytest.approx([share, 0, 10 + share, 10])
    assert torch.equal(voted[:, 4:], rows[:, 4:]) and torch.allclose(voted[1], rows[1])
    (none,) = decode_detections(torch.full((1, 3, 2), -9.0), deltas, anchors)
    assert none.shape == (0, 6)


def test_candidates_take_deltas_only_at_their_anchors_when_given_a_function() -> None:
    generator = torch.Generator().manual_seed(0)
    anchors = make_anchors(config_for("events"), (64, 32))
    logits = torch.full((len(anchors), 4), -9.0)
    logits[[3, 40, 41, 200], [0, 2, 3, 1]] = torch.tensor([2.0, 0.5, -1.0, 4.0])
    deltas = 0.2 * torch.randn(len(anchors), 4, generator=generator)
    asked = []

    def deltas_at(anchor_index: torch.Tensor) -> torch.Tensor:
        asked.append(anchor_index)
        return deltas[anchor_index]

    expected = detection_candidates(logits, deltas, anchors, image_size=(64, 32))
    found = detection_candidates(logits, deltas_at, anchors, image_size=(64, 32))
    for got, want in zip(found, expected, strict=True):
        assert torch.equal(got, want)
    with_grad = detection_candidates(logits.clone().requires_grad_(), deltas, anchors, image_size=(64, 32))
    assert torch.equal(with_grad[0], expected[0])  # a decode inside a graph (training's validation) too
    (anchor_index,) = asked  # one call, for the candidates' anchors only
    _, scores, labels = expected
    assert anchor_index.tolist() == [3, 40, 41, 200]  # the four scoring above the threshold
    assert torch.equal(torch.sigmoid(logits)[anchor_index, labels], scores)


def test_box_voting_averages_overlapping_candidates_of_the_same_class_only() -> None:
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0], [1.0, 0.0, 11.0, 10.0], [40.0, 40.0, 50.0, 50.0]]
    )
    scores = torch.tensor([0.6, 0.2, 0.9, 0.5])
    labels = torch.tensor([0, 0, 1, 0])
    plain = select_detections(boxes, scores, labels, nms_thresh=0.5, vote_iou=None)
    # NMS alone: the second box is suppressed by the first (IoU 0.67); the class-1 box survives beside them
    assert plain[:, :4].tolist() == [[1, 0, 11, 10], [0, 0, 10, 10], [40, 40, 50, 50]]
    voted = select_detections(boxes, scores, labels, nms_thresh=0.5, vote_iou=0.6)
    # the class-0 box at x1 = 0 becomes (0.6 * 0 + 0.2 * 2) / 0.8 = 0.5 wide of it; the class-1 box, which
    # overlaps both, votes only with itself; scores, classes and order are unchanged
    assert voted[1, :4].tolist() == pytest.approx([0.5, 0.0, 10.5, 10.0])
    assert voted[0, :4].tolist() == [1, 0, 11, 10]
    assert voted[2, :4].tolist() == [40, 40, 50, 50]
    assert torch.equal(voted[:, 4:], plain[:, 4:])
    # a voting IoU above every overlap changes nothing
    assert torch.equal(select_detections(boxes, scores, labels, nms_thresh=0.5, vote_iou=0.7), plain)
    assert select_detections(boxes[:0], scores[:0], labels[:0], vote_iou=0.6).shape == (0, 6)


def test_model_traces_with_fx_and_matches_eager() -> None:
    model = build_model(config_for("intensity", **TINY)).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.rand(2, 1, 64, 64)
    for eager, graph in zip(model(x), traced(x), strict=True):
        assert torch.allclose(eager, graph)
    assert pad_input(torch.zeros(1, 2, 60, 33)).shape == (1, 2, 64, 64)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "QuantReLU" in kinds and not kinds & {"MaxPool2d", "GroupNorm", "ReLU6", "SiLU"}


def _tiny_checkpoint(path: Path, modality: str = "events") -> dict:
    model = build_model(config_for(modality, **TINY))
    spec = InputSpec(modality, (64, 64), 50_000, 3.0)
    checkpoint = checkpoint_dict(model, spec, CLASS_NAMES, train={"epochs": 0})
    save_checkpoint(path, checkpoint)
    return checkpoint


def test_load_detector_round_trip_and_clear_errors(tmp_path: Path) -> None:
    checkpoint = _tiny_checkpoint(tmp_path / "ok.pt")
    bundle = load_detector(tmp_path / "ok.pt")
    assert bundle.spec == InputSpec("events", (64, 64), 50_000, 3.0) and not bundle.model.training
    assert len(bundle.anchors) == 84 * 9
    (rows,) = bundle.detect(torch.rand(1, 2, 64, 64))
    assert rows.shape[1] == 6
    with pytest.raises(UserFacingError, match="modality mismatch"):
        bundle.detect(torch.rand(1, 1, 64, 64))
    with pytest.raises(UserFacingError, match="no such file"):
        load_detector(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello\n")
    with pytest.raises(UserFacingError, match="not a streamdet checkpoint"):
        load_detector(tmp_path / "text.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(UserFacingError, match="not a streamdet ANN checkpoint"):
        load_detector(tmp_path / "other.pt")
    wider = {**checkpoint, "config": {**checkpoint["config"], "fpn_channels": 32}}
    torch.save(wider, tmp_path / "mismatch.pt")
    with pytest.raises(UserFacingError, match="weights do not match the config"):
        load_detector(tmp_path / "mismatch.pt")

    def with_input(**change) -> dict:
        record = checkpoint["contract"]
        return {**checkpoint, "contract": {**record, "input": {**record["input"], **change}}}

    torch.save(with_input(modality="intensity"), tmp_path / "swapped.pt")
    with pytest.raises(UserFacingError, match="input channels"):
        load_detector(tmp_path / "swapped.pt")
    torch.save(with_input(history_windows=1), tmp_path / "history.pt")
    with pytest.raises(UserFacingError, match="2 window"):
        load_detector(tmp_path / "history.pt")
    torch.save(with_input(history_windows=-1), tmp_path / "history-negative.pt")
    with pytest.raises(UserFacingError, match="history windows must be 0 or more"):
        load_detector(tmp_path / "history-negative.pt")
    torch.save(with_input(colour=True), tmp_path / "unknown-field.pt")
    with pytest.raises(UserFacingError, match=r"unknown field\(s\) \['colour'\]"):
        load_detector(tmp_path / "unknown-field.pt")
    future = {**checkpoint, "contract": {**checkpoint["contract"], "format": "streamdet-contract/9"}}
    torch.save(future, tmp_path / "future.pt")
    with pytest.raises(UserFacingError, match="contract record has format 'streamdet-contract/9'"):
        load_detector(tmp_path / "future.pt")


def test_a_checkpoint_of_the_first_format_is_read_with_its_loose_fields_as_the_contract(
    tmp_path: Path,
) -> None:
    checkpoint = _tiny_checkpoint(tmp_path / "ok.pt")
    old = {key: value for key, value in checkpoint.items() if key != "contract"}
    old.update(
        format="streamdet-ann/1", modality="events", window_us=50_000, event_scale=3.0, sensor_size=[64, 64]
    )
    torch.save(old, tmp_path / "old.pt")
    bundle = load_detector(tmp_path / "old.pt")
    assert bundle.spec == InputSpec("events", (64, 64), 50_000, 3.0, 0) and bundle.decoding == Decoding()
    torch.save({**old, "history_windows": "one"}, tmp_path / "history-type.pt")
    with pytest.raises(UserFacingError, match="history-type.pt"):
        load_detector(tmp_path / "history-type.pt")


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_models_load_by_name_and_trace(name: str) -> None:
    bundle = load_detector(name)
    assert bundle.spec.modality == name.split("-")[0]
    assert bundle.class_names == CLASS_NAMES and bundle.config.activation == "quant"
    card = json.loads(resolve_model_path(name).with_suffix(".json").read_text())
    assert card["sha256"] == hashlib.sha256(resolve_model_path(name).read_bytes()).hexdigest(), (
        f"streamdet/weights/{name}.json describes other weights; regenerate it: python -m tools.weights_card"
    )
    assert (card["window_us"], card["event_scale"]) == (bundle.spec.window_us, bundle.spec.event_scale)
    assert card.get("history_windows", 0) == bundle.spec.history_windows
    assert card["config"]["quant_levels"] == bundle.config.quant_levels
    torch.fx.symbolic_trace(bundle.model)
    width, height = bundle.spec.sensor_size
    (rows,) = bundle.detect(torch.zeros(1, bundle.config.in_channels, height, width))
    assert rows.shape[1] == 6


def test_voting_and_candidates_match_their_reference_computations() -> None:
    from torchvision.ops import batched_nms, box_iou

    generator = torch.Generator().manual_seed(3)
    corners = 80 * torch.rand(300, 2, generator=generator)
    sizes = 20 * torch.rand(300, 2, generator=generator)
    sizes[:5] = 0.0  # boxes with no area (IoU 0/0 with themselves)
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(300, generator=generator)
    labels = torch.randint(0, 3, (300,), generator=generator)
    # box voting as torchvision's box_iou gives it: the same rows to the bit
    keep = batched_nms(boxes, scores, labels, 0.4)[:100]
    voters = (box_iou(boxes[keep], boxes) >= 0.5) & (labels[keep, None] == labels[None, :])
    voters[torch.arange(len(keep)), keep] = True
    weights = scores[None, :].double() * voters
    voted = (weights @ boxes.double() / weights.sum(dim=1, keepdim=True)).float()
    expected_rows = torch.cat([voted, scores[keep, None], labels[keep, None].float()], dim=1)
    assert torch.equal(select_detections(boxes, scores, labels, nms_thresh=0.4, vote_iou=0.5), expected_rows)

    anchors = make_anchors(config_for("events"), (64, 32))
    logits = 3.0 * torch.randn(len(anchors), 4, generator=generator) - 4.0
    deltas = 0.2 * torch.randn(len(anchors), 4, generator=generator)
    for score_thresh, topk in ((0.05, 1000), (0.05, 20), (0.5, 1000), (0.0, 50), (1.0, 10)):
        boxes, scores, labels = detection_candidates(logits, deltas, anchors, score_thresh, topk)
        sigmoid = torch.sigmoid(logits).flatten()
        passing = torch.nonzero(sigmoid > score_thresh).squeeze(1)
        expected = passing[sigmoid[passing].topk(topk).indices] if len(passing) > topk else passing
        assert torch.equal(labels, expected % 4)
        assert torch.equal(boxes, BoxCoder().decode(deltas[expected // 4], anchors[expected // 4]))
        # to float32 rounding: torch's vectorised and scalar sigmoid may differ in the last bit
        assert torch.allclose(scores, sigmoid[expected], rtol=1e-6, atol=0)
