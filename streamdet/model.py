"""An SNN-friendly RetinaNet: backbone, FPN, shared heads, anchors, box coder, focal loss, decoding.

Every layer is one the ANN-to-SNN converter (``streamdet.convert``) supports: 3x3 / 1x1 convolutions
followed by BatchNorm (fused into the convolution at conversion) and ``nn.ReLU`` or :class:`QuantReLU`;
strided convolutions instead of max-pooling; nearest (``nn.Upsample``) or transposed-convolution
upsampling; residual adds of two activations (``a + b``, both non-negative). There is no GroupNorm,
no pooling and no data-dependent control flow in ``forward``, so ``torch.fx.symbolic_trace`` works.

Shapes. Input ``x`` is ``[B, C, H, W]`` with ``H`` and ``W`` multiples of :data:`MAX_STRIDE` (see
:func:`pad_input`); ``C = 2`` for the ``events`` modality (OFF, ON counts / ``event_scale``, clipped
to [0, 1]) and ``C = 1`` for ``intensity`` (spike rate in [0, 1]). ``forward`` returns the raw head
outputs over all FPN levels P3, P4, P5 (strides 8, 16, 32; P2 at stride 4 first when the config's
``finest_stride`` is 4), concatenated level after level, each
level in ``(y, x, anchor)`` order: ``cls_logits [B, N_anchors, num_classes]`` and
``box_deltas [B, N_anchors, 4]``. :func:`make_anchors` lists the anchors in the same order.

Padding, anchors, box decoding and NMS live outside ``forward``: :func:`pad_input`,
:func:`make_anchors`, :class:`BoxCoder`, :func:`decode_detections`. :class:`DetectorBundle` (from
:func:`load_detector`) chains them: ``pad -> forward -> decode``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamdet.contract import (
    MODALITY_CHANNELS,
    Decoding,
    InputSpec,
    contract_record,
    input_channels,
    read_contract_record,
    spec_from_legacy_checkpoint,
)
from streamdet.errors import UserFacingError

CHECKPOINT_FORMAT = "streamdet-ann/2"
"""``format`` field of an ANN checkpoint (``docs/architecture.md``, "Checkpoints and shipped weights")."""
LEGACY_CHECKPOINT_FORMAT = "streamdet-ann/1"
"""Checkpoints that stored their input fields loose (modality, window_us, ...); read and migrated."""

FPN_STRIDES: tuple[int, ...] = (8, 16, 32)
"""Strides of the FPN levels P3, P4, P5 in input pixels (a model with ``finest_stride = 4`` adds P2 at
stride 4 before them, :func:`pyramid_strides`)."""

MAX_STRIDE = FPN_STRIDES[-1]
"""Input height and width must be multiples of this (see :func:`pad_input`)."""

SHIPPED_MODELS: tuple[str, ...] = (
    "events-default",
    "events-fast",
    "events-perspective",
    "intensity-default",
    "intensity-fast",
)
"""Names of the weights shipped in ``streamdet/weights``."""

DEFAULT_DECODING = Decoding()
"""The decoding of every shipped model: score 0.05, NMS 0.4, 100 boxes, box voting at IoU 0.5, chosen on
validation for both modalities (docs/model-card.md, "Decoding")."""
SCORE_THRESH = DEFAULT_DECODING.score_thresh
NMS_THRESH = DEFAULT_DECODING.nms_thresh
VOTE_IOU: float | None = DEFAULT_DECODING.vote_iou


# --------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class RetinaNetConfig:
    """Architecture of the detector.

    Attributes:
        in_channels: input channels (2 for ``events``, 1 for ``intensity``).
        num_classes: number of object classes (sigmoid outputs, no background class).
        input_size: sensor size ``(width, height)`` in pixels; anchors cover it padded up to multiples
            of :data:`MAX_STRIDE`.
        stem_channels: width of the stride-2 stem convolution.
        stage_channels: widths of the four stages at strides 4, 8, 16, 32; each starts with a strided
            3x3 convolution. C3, C4, C5 (strides 8, 16, 32) feed the FPN.
        stage_blocks: residual blocks after the strided convolution of each stage.
        fpn_channels: width of P3..P5 and of the heads.
        head_convs: conv-BN-activation layers in each head before its final (linear) convolution.
        head_blocks: residual blocks (:class:`ResidualBlock`) in each head after those layers: depth
            for telling objects from clutter, which :func:`carry_over_head_blocks` adds to a trained
            model without changing what it computes.
        activation: ``"relu"`` or ``"quant"`` (:class:`QuantReLU`).
        quant_levels: ``L`` of every Quant-ReLU (activation resolution ``clip / L``).
        quant_clip_init: initial clip value of every Quant-ReLU.
        upsample: ``"nearest"`` (``nn.Upsample``) or ``"transposed"`` (learned 2x2 ``ConvTranspose2d``).
        anchor_min_size: side of the smallest anchor of P3, pixels; anchor ``k = 0..8`` has side
            ``anchor_min_size * 2 ** (k / 2)``, three per level (P3: k = 0..2, P4: 3..5, P5: 6..8);
            P2 (``finest_stride = 4``) continues the series one octave down (``k = -2..0``).
        anchor_aspect_ratios: height / width ratios of the anchors at every size.
        prior_probability: initial foreground probability of the class head (its bias
            ``-log((1 - p) / p)``).
        finest_stride: stride of the finest FPN level: 8 (P3..P5) or 4 (P2..P5: a level on C2 for
            small objects, whose boxes fall between the centres of the stride-8 grid).
    """

    in_channels: int = 2
    num_classes: int = 4
    input_size: tuple[int, int] = (346, 260)
    stem_channels: int = 12
    stage_channels: tuple[int, int, int, int] = (24, 48, 64, 96)
    stage_blocks: tuple[int, int, int, int] = (0, 1, 1, 1)
    fpn_channels: int = 48
    head_convs: int = 1
    head_blocks: int = 0
    activation: str = "quant"
    quant_levels: int = 8
    quant_clip_init: float = 3.0
    upsample: str = "nearest"
    anchor_min_size: float = 10.0
    anchor_aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    prior_probability: float = 0.01
    finest_stride: int = 8

    def __post_init__(self) -> None:
        if len(self.stage_channels) != 4 or len(self.stage_blocks) != 4:
            raise UserFacingError(
                f"stage_channels and stage_blocks need 4 entries (strides 4, 8, 16, 32), got "
                f"{self.stage_channels} and {self.stage_blocks}"
            )
        if self.activation not in ("relu", "quant"):
            raise UserFacingError(f"activation must be 'relu' or 'quant', got {self.activation!r}")
        if self.upsample not in ("nearest", "transposed"):
            raise UserFacingError(f"upsample must be 'nearest' or 'transposed', got {self.upsample!r}")
        if self.finest_stride not in (4, 8):
            raise UserFacingError(f"finest_stride must be 4 or 8, got {self.finest_stride}")
        if self.head_convs < 0 or self.head_blocks < 0:
            raise UserFacingError(
                f"head_convs and head_blocks must be at least 0, got {self.head_convs} and {self.head_blocks}"
            )
        if self.quant_levels < 1:
            raise UserFacingError(f"quant_levels must be at least 1, got {self.quant_levels}")
        if not self.anchor_min_size > 0:
            raise UserFacingError(f"anchor_min_size must be positive, got {self.anchor_min_size}")
        ratios = self.anchor_aspect_ratios
        if not ratios or any(not r > 0 for r in ratios) or len(set(ratios)) != len(ratios):
            raise UserFacingError(f"anchor_aspect_ratios must be distinct positive numbers, got {ratios}")

    @property
    def anchors_per_location(self) -> int:
        """Anchors at each feature-map position: 3 sizes x the aspect ratios."""
        return 3 * len(self.anchor_aspect_ratios)

    @property
    def padded_size(self) -> tuple[int, int]:
        """``input_size`` rounded up to multiples of :data:`MAX_STRIDE`, ``(width, height)``."""
        width, height = self.input_size
        return (padded_length(width), padded_length(height))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (tuples as lists); :meth:`from_dict` inverts it."""
        return {
            name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RetinaNetConfig:
        """Config from :meth:`to_dict` output; unknown keys raise ``UserFacingError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserFacingError(f"unknown RetinaNetConfig field(s) {unknown}")
        return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})


MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "stem_channels": 8,
        "stage_channels": (8, 16, 16, 24),
        "stage_blocks": (0, 0, 0, 0),
        "fpn_channels": 16,
        "head_convs": 1,
    },
    "small": {},
    "medium": {
        "stem_channels": 24,
        "stage_channels": (48, 96, 160, 256),
        "stage_blocks": (1, 2, 2, 1),
        "fpn_channels": 128,
        "head_convs": 2,
    },
    "large": {
        "stem_channels": 32,
        "stage_channels": (64, 128, 256, 512),
        "stage_blocks": (1, 3, 4, 2),
        "fpn_channels": 256,
        "head_convs": 4,
    },
}
"""Width/depth presets for ``--size``: ``tiny`` (tests and toy sensors), ``small`` (default, about
0.37 GMAC per 352x288 input, trains on two CPU cores), ``medium`` and ``large`` for a GPU."""


def config_for(
    modality: str,
    size: str = "small",
    input_size: tuple[int, int] = (346, 260),
    history_windows: int = 0,
    **overrides: Any,
) -> RetinaNetConfig:
    """The config of a ``size`` preset (:data:`MODEL_SIZES`) for ``modality``'s input channels over its
    window and ``history_windows`` earlier windows (:func:`input_channels`)."""
    channels = input_channels(modality, history_windows)
    if size not in MODEL_SIZES:
        raise UserFacingError(f"unknown model size {size!r}; choose from {', '.join(MODEL_SIZES)}")
    values = {**MODEL_SIZES[size], **overrides}
    return RetinaNetConfig(in_channels=channels, input_size=tuple(input_size), **values)


def size_preset(config: RetinaNetConfig) -> str | None:
    """The :data:`MODEL_SIZES` preset whose widths and depths ``config`` has, or None for other ones."""
    shape = ("stem_channels", "stage_channels", "stage_blocks", "fpn_channels", "head_convs")
    for name in MODEL_SIZES:
        preset = config_for("events", name)
        if all(getattr(config, field) == getattr(preset, field) for field in shape):
            return name
    return None


def pyramid_strides(config: RetinaNetConfig) -> tuple[int, ...]:
    """Strides of the model's FPN levels, finest first: :data:`FPN_STRIDES`, with 4 before them when
    ``config.finest_stride`` is 4."""
    return (4, *FPN_STRIDES) if config.finest_stride == 4 else FPN_STRIDES


def padded_length(length: int) -> int:
    """``length`` rounded up to a multiple of :data:`MAX_STRIDE`."""
    return int(math.ceil(length / MAX_STRIDE) * MAX_STRIDE)


def pad_input(x: Tensor) -> Tensor:
    """Zero-pad ``x [B, C, H, W]`` at the bottom and right to multiples of :data:`MAX_STRIDE`.

    Box coordinates are unchanged by this padding (the origin stays at the top-left pixel).
    """
    height, width = x.shape[-2:]
    return F.pad(x, (0, padded_length(width) - width, 0, padded_length(height) - height))


# --------------------------------------------------------------------------------------------------
# layers


class _StraightThroughRound(torch.autograd.Function):
    """``floor(v + 0.5)`` forward, identity gradient backward."""

    @staticmethod
    def forward(ctx: Any, value: Tensor) -> Tensor:
        return torch.floor(value + 0.5)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


class QuantReLU(nn.Module):
    """Quant-ReLU: a clipped, quantised ReLU with a learnable clip (Qiu and Zhu 2023, section 4.3).

    ``y = c * floor(clamp(x / c, 0, 1) * L + 0.5) / L``

    with ``c = |clip|`` (learned scalar, activation units, at least 1e-3) and ``L = levels``. The ``+ 0.5``
    matches an IF neuron (threshold ``c``) run for ``L`` time steps with its membrane starting at half the
    threshold ("residual fix"): for a constant input it fires ``floor(L x / c + 0.5)`` times.
    Gradients are straight-through for the rounding; ``d y / d c`` is ``1`` above the clip and the
    rounding residual ``(q - x / c)`` inside it (as in PACT / LSQ).

    Example:
        >>> act = QuantReLU(levels=4, clip_init=1.0)
        >>> act(torch.tensor([-1.0, 0.1, 0.2, 0.6, 3.0])).tolist()
        [0.0, 0.0, 0.25, 0.5, 1.0]
    """

    def __init__(self, levels: int, clip_init: float) -> None:
        super().__init__()
        self.levels = int(levels)
        self.clip = nn.Parameter(torch.tensor(float(clip_init)))

    def forward(self, x: Tensor) -> Tensor:
        clip = self.clip.abs().clamp(min=1e-3)
        return clip * _StraightThroughRound.apply(torch.clamp(x / clip, 0.0, 1.0) * self.levels) / self.levels

    def extra_repr(self) -> str:
        return f"levels={self.levels}, clip={float(self.clip.detach()):.4g}"


def make_activation(config: RetinaNetConfig) -> nn.Module:
    """``nn.ReLU()`` or ``QuantReLU(config.quant_levels, config.quant_clip_init)``."""
    if config.activation == "quant":
        return QuantReLU(config.quant_levels, config.quant_clip_init)
    return nn.ReLU()


class ConvBNAct(nn.Sequential):
    """``act(BN(conv(x)))``: a ``kernel x kernel`` convolution (no bias; BN carries it) with ``stride``."""

    def __init__(
        self, in_channels: int, out_channels: int, config: RetinaNetConfig, kernel: int = 3, stride: int = 1
    ):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            make_activation(config),
        )


class ResidualBlock(nn.Module):
    """``y = x + act(BN(conv(act(BN(conv(x))))))``: the add takes two activations (both >= 0)."""

    def __init__(self, channels: int, config: RetinaNetConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(channels, channels, config), ConvBNAct(channels, channels, config)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Backbone(nn.Module):
    """Stem (stride 2) and four stages (strides 4, 8, 16, 32); returns C2, C3, C4, C5."""

    def __init__(self, config: RetinaNetConfig) -> None:
        super().__init__()
        self.stem = ConvBNAct(config.in_channels, config.stem_channels, config, stride=2)
        stages = []
        in_channels = config.stem_channels
        for channels, blocks in zip(config.stage_channels, config.stage_blocks, strict=True):
            layers = [ConvBNAct(in_channels, channels, config, stride=2)]
            layers += [ResidualBlock(channels, config) for _ in range(blocks)]
            stages.append(nn.Sequential(*layers))
            in_channels = channels
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c2 = self.stages[0](self.stem(x))
        c3 = self.stages[1](c2)
        c4 = self.stages[2](c3)
        c5 = self.stages[3](c4)
        return c2, c3, c4, c5


class FeaturePyramid(nn.Module):
    """FPN with non-negative levels: ``L_i = act(BN(conv1x1(C_i)))``, ``M_5 = L_5``,
    ``M_i = L_i + up(M_{i+1})``, ``P_i = act(BN(conv3x3(M_i)))``; ``up`` is nearest 2x or a
    transposed 2x2 convolution followed by BN and the activation. With ``finest_stride = 4`` the
    series goes on to ``M_2``, ``P_2`` (modules ``lateral_fine``, ``upsample_fine``, ``output_fine``, so
    the P3..P5 modules keep their names and a stride-8 model's weights load into them)."""

    def __init__(self, config: RetinaNetConfig) -> None:
        super().__init__()
        width = config.fpn_channels
        self.lateral = nn.ModuleList(
            [ConvBNAct(channels, width, config, kernel=1) for channels in config.stage_channels[1:]]
        )
        self.output = nn.ModuleList([ConvBNAct(width, width, config) for _ in FPN_STRIDES])
        self.upsample = nn.ModuleList([self._make_upsample(config) for _ in FPN_STRIDES[1:]])
        self.fine = config.finest_stride == 4
        if self.fine:
            self.lateral_fine = ConvBNAct(config.stage_channels[0], width, config, kernel=1)
            self.upsample_fine = self._make_upsample(config)
            self.output_fine = ConvBNAct(width, width, config)

    @staticmethod
    def _make_upsample(config: RetinaNetConfig) -> nn.Module:
        if config.upsample == "nearest":
            return nn.Upsample(scale_factor=2, mode="nearest")
        width = config.fpn_channels
        return nn.Sequential(
            nn.ConvTranspose2d(width, width, 2, stride=2, bias=False),
            nn.BatchNorm2d(width),
            make_activation(config),
        )

    def forward(self, c2: Tensor, c3: Tensor, c4: Tensor, c5: Tensor) -> tuple[Tensor, ...]:
        m5 = self.lateral[2](c5)
        m4 = self.lateral[1](c4) + self.upsample[1](m5)
        m3 = self.lateral[0](c3) + self.upsample[0](m4)
        levels = (self.output[0](m3), self.output[1](m4), self.output[2](m5))
        if not self.fine:
            return levels
        m2 = self.lateral_fine(c2) + self.upsample_fine(m3)
        return (self.output_fine(m2), *levels)


class Head(nn.Module):
    """A subnet shared by all FPN levels: ``head_convs`` conv-BN-activation layers and ``head_blocks``
    residual blocks (the ``tower``), then a linear 3x3
    convolution (``predictor``, no activation: where the SNN integrates) with ``A * outputs`` channels.

    ``forward(p) -> [B, H * W * A, outputs]`` in ``(y, x, anchor)`` order.
    """

    def __init__(self, config: RetinaNetConfig, outputs: int, bias_init: float = 0.0) -> None:
        super().__init__()
        width = config.fpn_channels
        self.outputs = outputs
        layers: list[nn.Module] = [ConvBNAct(width, width, config) for _ in range(config.head_convs)]
        layers += [ResidualBlock(width, config) for _ in range(config.head_blocks)]
        self.tower = nn.Sequential(*layers)
        self.predictor = nn.Conv2d(width, config.anchors_per_location * outputs, 3, padding=1)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.constant_(self.predictor.bias, bias_init)

    def forward(self, p: Tensor) -> Tensor:
        out = self.predictor(self.tower(p))
        out = torch.flatten(out.permute(0, 2, 3, 1), 1, 2)
        return torch.flatten(out.unflatten(-1, (-1, self.outputs)), 1, 2)


class RetinaNet(nn.Module):
    """Backbone -> FPN (P3, P4, P5, or P2..P5) -> shared class and box heads.

    ``forward(x [B, C, H, W]) -> (cls_logits [B, N, num_classes], box_deltas [B, N, 4])`` with
    ``N = sum over levels of (H / s) * (W / s) * A`` and ``A = config.anchors_per_location``.
    """

    def __init__(self, config: RetinaNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.fpn = FeaturePyramid(config)
        prior = config.prior_probability
        self.cls_head = Head(config, config.num_classes, bias_init=-math.log((1 - prior) / prior))
        self.box_head = Head(config, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        levels = self.fpn(*self.backbone(x))
        cls_logits = torch.cat([self.cls_head(p) for p in levels], dim=1)
        box_deltas = torch.cat([self.box_head(p) for p in levels], dim=1)
        return cls_logits, box_deltas


def count_macs(model: RetinaNet, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass on a ``[1, C, height, width]`` input (convolutions only)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        kernel = module.weight[0].numel() if isinstance(module, nn.Conv2d) else module.weight[:, 0].numel()
        total += output.numel() * kernel

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.config.in_channels, height, width))
    finally:
        for handle in handles:
            handle.remove()
    return total


# --------------------------------------------------------------------------------------------------
# anchors and boxes


def anchor_sizes(config: RetinaNetConfig) -> list[list[float]]:
    """Anchor sides per level (finest first), pixels: ``anchor_min_size * 2 ** (k / 2)`` with
    ``k = 3 l .. 3 l + 2`` for P3 (``l = 0``) to P5, and ``k = -2 .. 0`` for P2 when there is one."""
    exponents = [[3 * level + k for k in range(3)] for level in range(3)]
    if config.finest_stride == 4:
        exponents.insert(0, [-2, -1, 0])
    return [[config.anchor_min_size * 2 ** (k / 2) for k in level] for level in exponents]


def make_anchors(config: RetinaNetConfig, image_size: tuple[int, int] | None = None) -> Tensor:
    """Anchor boxes ``[N, 4]`` (x1, y1, x2, y2, pixels) in the order of the model's outputs.

    Level ``l`` with stride ``s`` has a grid of ``(H / s) x (W / s)`` centres at
    ``((j + 0.5) s, (i + 0.5) s)``; at each centre the anchors of size ``a`` and ratio ``r`` (height /
    width) have ``w = a / sqrt(r)``, ``h = a * sqrt(r)``, sizes outer, ratios inner.

    Args:
        config: the model's config.
        image_size: padded input ``(width, height)``; default ``config.padded_size``.
    """
    width, height = image_size or config.padded_size
    ratios = torch.tensor(config.anchor_aspect_ratios, dtype=torch.float32)
    levels = []
    for stride, sizes in zip(pyramid_strides(config), anchor_sizes(config), strict=True):
        side = torch.tensor(sizes, dtype=torch.float32)
        half_w = (side[:, None] / ratios.sqrt()[None, :]).flatten() / 2
        half_h = (side[:, None] * ratios.sqrt()[None, :]).flatten() / 2
        cell = torch.stack([-half_w, -half_h, half_w, half_h], dim=1)
        ys = (torch.arange(height // stride, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(width // stride, dtype=torch.float32) + 0.5) * stride
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
        levels.append((centres + cell[None]).reshape(-1, 4))
    return torch.cat(levels)


@dataclass(frozen=True)
class BoxCoder:
    """RetinaNet box parametrisation relative to anchors (x1, y1, x2, y2 in pixels).

    ``d_x = w_x (g_cx - a_cx) / a_w``, ``d_y = w_y (g_cy - a_cy) / a_h``, ``d_w = w_w log(g_w / a_w)``,
    ``d_h = w_h log(g_h / a_h)``; :meth:`decode` inverts it, clamping ``d_w``, ``d_h`` to ``max_log_scale``.
    """

    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    max_log_scale: float = math.log(1000.0 / 16)

    def encode(self, boxes: Tensor, anchors: Tensor) -> Tensor:
        """Deltas ``[N, 4]`` taking ``anchors [N, 4]`` to ``boxes [N, 4]``."""
        aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        ax, ay = anchors[:, 0] + 0.5 * aw, anchors[:, 1] + 0.5 * ah
        gw, gh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        gx, gy = boxes[:, 0] + 0.5 * gw, boxes[:, 1] + 0.5 * gh
        wx, wy, ww, wh = self.weights
        return torch.stack(
            [wx * (gx - ax) / aw, wy * (gy - ay) / ah, ww * torch.log(gw / aw), wh * torch.log(gh / ah)],
            dim=-1,
        )

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """Boxes ``[..., N, 4]`` from ``deltas [..., N, 4]`` and ``anchors [N, 4]``."""
        aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        ax, ay = anchors[:, 0] + 0.5 * aw, anchors[:, 1] + 0.5 * ah
        wx, wy, ww, wh = self.weights
        cx = deltas[..., 0] / wx * aw + ax
        cy = deltas[..., 1] / wy * ah + ay
        w = torch.exp(torch.clamp(deltas[..., 2] / ww, max=self.max_log_scale)) * aw
        h = torch.exp(torch.clamp(deltas[..., 3] / wh, max=self.max_log_scale)) * ah
        return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def detection_candidates(
    logits: Tensor,
    deltas: Tensor | Callable[[Tensor], Tensor],
    anchors: Tensor,
    score_thresh: float = SCORE_THRESH,
    topk: int = 1000,
    image_size: tuple[int, int] | None = None,
    box_coder: BoxCoder | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One image's candidates before suppression: ``(boxes [C, 4], scores [C], labels [C])`` for the
    ``topk`` highest (anchor, class) sigmoid scores above ``score_thresh``, from its ``logits [N, K]``
    and ``deltas [N, 4]`` (see :func:`decode_detections`). ``deltas`` may instead be a function from
    anchor indices ``[C]`` to their deltas ``[C, 4]``: the live node's window mean is then only taken at
    the candidates' anchors (the same boxes)."""
    from torchvision.ops import clip_boxes_to_image

    coder = box_coder or BoxCoder()
    num_classes = logits.shape[-1]
    flat = logits.float().flatten()
    if flat.device.type == "cpu":
        # the sigmoid only where it can pass: at logits above the threshold's logit less a margin far
        # wider than float32 rounding (up to about a thousand of ~400,000 in a live window), then the
        # comparison of the scores themselves; numpy's comparison and flatnonzero, less time than torch's
        near = torch.from_numpy(np.flatnonzero(flat.detach().numpy() > _logit(score_thresh) - 1e-3))
        near_scores = torch.sigmoid(flat[near])
        passing = torch.from_numpy(near_scores.detach().numpy() > score_thresh)
        candidates, scores = near[passing], near_scores[passing]
    else:
        all_scores = torch.sigmoid(flat)
        candidates = torch.nonzero(all_scores > score_thresh).squeeze(1)
        scores = all_scores[candidates]
    if candidates.numel() > topk:
        best = scores.topk(topk).indices
        candidates, scores = candidates[best], scores[best]
    anchor_index = candidates // num_classes
    candidate_deltas = deltas(anchor_index) if callable(deltas) else deltas[anchor_index]
    boxes = coder.decode(candidate_deltas.float(), anchors[anchor_index].to(candidate_deltas.device))
    if image_size is not None:
        boxes = clip_boxes_to_image(boxes, (image_size[1], image_size[0]))
    return boxes, scores, candidates % num_classes


def _logit(probability: float) -> float:
    """``log(p / (1 - p))``: the logit whose sigmoid is ``probability`` (-inf at 0, inf at 1)."""
    if probability <= 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return math.log(probability) - math.log1p(-probability)


def select_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    nms_thresh: float = NMS_THRESH,
    max_dets: int = 100,
    vote_iou: float | None = VOTE_IOU,
) -> Tensor:
    """Class-wise NMS (``torchvision.ops.batched_nms``) of one image's candidates, the best
    ``max_dets`` kept, as ``[D, 6]`` rows ``x1, y1, x2, y2, score, class`` sorted by decreasing score.

    With ``vote_iou``, each kept box becomes the score-weighted mean of the candidates of its class
    that overlap it with IoU >= ``vote_iou`` (itself included): box voting (Gidaris and Komodakis,
    2015). Its score stays the kept candidate's.
    """
    from torchvision.ops import batched_nms

    keep = batched_nms(boxes, scores, labels, nms_thresh)[:max_dets]
    kept = boxes[keep]
    if vote_iou is not None and keep.numel():
        voters = (_kept_iou(boxes, keep) >= vote_iou) & (labels[keep, None] == labels[None, :])
        voters[torch.arange(keep.numel()), keep] = True  # a box with no area has IoU 0 with itself
        weights = scores[None, :].double() * voters  # float64: a mean of boxes inside the image stays inside
        kept = (weights @ boxes.double() / weights.sum(dim=1, keepdim=True)).to(boxes.dtype)
    return torch.cat([kept, scores[keep, None], labels[keep, None].float()], dim=1)


def _kept_iou(boxes: Tensor, keep: Tensor) -> Tensor:
    """IoU ``[K, C]`` of the kept boxes ``boxes[keep]`` with every box ``[C, 4]``: the operations of
    ``torchvision.ops.box_iou`` (the same values to the bit), on one coordinate at a time, which costs
    about 0.6 of its time at a live window's ~100 x 1,000 pairs (it works on ``[K, C, 2]`` corners)."""
    x1, y1, x2, y2 = boxes.T.contiguous()
    kx1, ky1, kx2, ky2 = (coordinate[keep, None] for coordinate in (x1, y1, x2, y2))
    inter = (torch.minimum(kx2, x2) - torch.maximum(kx1, x1)).clamp(min=0) * (
        torch.minimum(ky2, y2) - torch.maximum(ky1, y1)
    ).clamp(min=0)
    area = (x2 - x1) * (y2 - y1)
    return inter / (area[keep, None] + area - inter)


def decode_detections(
    cls_logits: Tensor,
    box_deltas: Tensor,
    anchors: Tensor,
    score_thresh: float = SCORE_THRESH,
    nms_thresh: float = NMS_THRESH,
    topk: int = 1000,
    max_dets: int = 100,
    image_size: tuple[int, int] | None = None,
    box_coder: BoxCoder | None = None,
    vote_iou: float | None = VOTE_IOU,
) -> list[Tensor]:
    """Boxes from raw head outputs, per image: sigmoid scores, threshold, top-k, decode, class-wise NMS
    (:func:`detection_candidates`, then :func:`select_detections`).

    Args:
        cls_logits: ``[B, N, K]`` class logits.
        box_deltas: ``[B, N, 4]`` deltas (see :class:`BoxCoder`).
        anchors: ``[N, 4]`` from :func:`make_anchors`.
        score_thresh: minimum sigmoid score kept.
        nms_thresh: IoU above which a lower-scored box of the same class is suppressed
            (``torchvision.ops.batched_nms``).
        topk: candidates (over all anchors and classes) decoded before NMS.
        max_dets: boxes kept per image after NMS.
        image_size: ``(width, height)``; when given, boxes are clipped to the image.
        box_coder: the coder used in training (default ``BoxCoder()``).
        vote_iou: when given, box voting over the candidates at this IoU (:func:`select_detections`).

    Returns:
        per image a float32 ``[D, 6]`` tensor of rows ``x1, y1, x2, y2, score, class`` (pixels, class
        index), sorted by decreasing score.
    """
    return [
        select_detections(
            *detection_candidates(logits, deltas, anchors, score_thresh, topk, image_size, box_coder),
            nms_thresh=nms_thresh,
            max_dets=max_dets,
            vote_iou=vote_iou,
        )
        for logits, deltas in zip(cls_logits, box_deltas, strict=True)
    ]


# --------------------------------------------------------------------------------------------------
# training targets and loss


@dataclass(frozen=True)
class MatchConfig:
    """Anchor assignment (RetinaNet): IoU >= ``positive_iou`` is foreground, < ``negative_iou``
    background, in between ignored; each box also takes its best anchors (``allow_low_quality``).
    Background anchors lying mostly (``ignore_ioa``, intersection over anchor area) inside an
    ignored box are ignored too."""

    positive_iou: float = 0.5
    negative_iou: float = 0.4
    allow_low_quality: bool = True
    ignore_ioa: float = 0.5


def match_anchors(
    anchors: Tensor, boxes: Tensor, ignore_boxes: Tensor, config: MatchConfig = MatchConfig()
) -> Tensor:
    """Box index per anchor: ``>= 0`` the matched box, ``-1`` background, ``-2`` ignored.

    Args:
        anchors: ``[N, 4]`` pixels.
        boxes: ``[G, 4]`` ground-truth boxes to detect.
        ignore_boxes: ``[M, 4]`` regions (crowd / too small) where background is not penalised.
    """
    from torchvision.ops import box_area, box_iou

    matched = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
    if len(boxes):
        iou = box_iou(anchors, boxes)
        best_iou, best_box = iou.max(dim=1)
        matched = torch.where(best_iou >= config.positive_iou, best_box, matched)
        matched = torch.where(
            (best_iou >= config.negative_iou) & (best_iou < config.positive_iou), -2, matched
        )
        if config.allow_low_quality:
            best_per_box = iou.max(dim=0).values
            anchor_index, box_index = torch.nonzero(
                (iou == best_per_box[None]) & (best_per_box[None] > 0), as_tuple=True
            )
            matched[anchor_index] = box_index
    if len(ignore_boxes):
        top_left = torch.maximum(anchors[:, None, :2], ignore_boxes[None, :, :2])
        bottom_right = torch.minimum(anchors[:, None, 2:], ignore_boxes[None, :, 2:])
        intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
        ioa = (intersection / box_area(anchors)[:, None]).max(dim=1).values
        matched = torch.where((matched == -1) & (ioa >= config.ignore_ioa), -2, matched)
    return matched


BOX_LOSSES = ("smooth_l1", "giou")


@dataclass(frozen=True)
class LossConfig:
    """Focal loss (``alpha``, ``gamma``) for classes plus a box loss, both summed over anchors and
    divided by the number of foreground anchors (at least 1).

    ``box_loss``: ``smooth_l1`` on the deltas (``beta``), or ``giou``, the generalised-IoU loss of the
    decoded boxes (``torchvision.ops.generalized_box_iou_loss``; scale-free, so small objects weigh as
    much as large ones, and it rewards overlap directly, which is what mAP@0.5 scores)."""

    alpha: float = 0.25
    gamma: float = 2.0
    box_loss: str = "smooth_l1"
    smooth_l1_beta: float = 1.0 / 9.0
    box_weight: float = 1.0
    match: MatchConfig = field(default_factory=MatchConfig)

    def __post_init__(self) -> None:
        if self.box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {BOX_LOSSES}, not {self.box_loss!r}")


def detection_loss(
    cls_logits: Tensor,
    box_deltas: Tensor,
    anchors: Tensor,
    targets: list[dict[str, Tensor]],
    config: LossConfig = LossConfig(),
    box_coder: BoxCoder | None = None,
) -> dict[str, Tensor]:
    """RetinaNet loss of a batch.

    ``L_cls = sum_{a not ignored} sum_k FL(p_ak, y_ak) / max(1, N_fg)`` with the focal loss
    ``FL = -alpha_t (1 - p_t) ** gamma log(p_t)`` (``torchvision.ops.sigmoid_focal_loss``), and
    ``L_box = sum_{a fg} smoothL1(d_a - encode(g_a, a)) / max(1, N_fg)``, or with ``box_loss="giou"``
    ``L_box = sum_{a fg} (1 - GIoU(decode(d_a, a), g_a)) / max(1, N_fg)``.

    Args:
        cls_logits: ``[B, N, K]``; box_deltas: ``[B, N, 4]``; anchors: ``[N, 4]``.
        targets: per image ``{"boxes": [G, 4], "labels": [G] (0..K-1), "ignore_boxes": [M, 4]}``.

    Returns:
        ``{"cls": ..., "box": ..., "total": cls + box_weight * box}`` (scalars).
    """
    from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

    coder = box_coder or BoxCoder()
    cls_terms, box_terms, foreground = [], [], 0
    for logits, deltas, target in zip(cls_logits, box_deltas, targets, strict=True):
        matched = match_anchors(anchors, target["boxes"], target["ignore_boxes"], config.match)
        is_fg = matched >= 0
        valid = matched != -2
        labels = torch.zeros_like(logits)
        labels[is_fg, target["labels"][matched[is_fg]]] = 1.0
        cls_terms.append(
            sigmoid_focal_loss(logits[valid], labels[valid], config.alpha, config.gamma, reduction="sum")
        )
        if is_fg.any():
            boxes = target["boxes"][matched[is_fg]]
            if config.box_loss == "giou":
                predicted = coder.decode(deltas[is_fg], anchors[is_fg])
                box_terms.append(generalized_box_iou_loss(predicted, boxes, reduction="sum"))
            else:
                wanted = coder.encode(boxes, anchors[is_fg])
                box_terms.append(
                    F.smooth_l1_loss(deltas[is_fg], wanted, beta=config.smooth_l1_beta, reduction="sum")
                )
        foreground += int(is_fg.sum())
    normaliser = max(1, foreground)
    cls_loss = torch.stack(cls_terms).sum() / normaliser
    box_loss = torch.stack(box_terms).sum() / normaliser if box_terms else box_deltas.sum() * 0.0
    return {"cls": cls_loss, "box": box_loss, "total": cls_loss + config.box_weight * box_loss}


# --------------------------------------------------------------------------------------------------
# checkpoints and the detector bundle


def build_model(config: RetinaNetConfig) -> RetinaNet:
    """A freshly initialised :class:`RetinaNet`."""
    return RetinaNet(config)


def checkpoint_dict(
    model: RetinaNet,
    spec: InputSpec,
    class_names: tuple[str, ...] | list[str],
    train: dict[str, Any] | None = None,
    decoding: Decoding = DEFAULT_DECODING,
) -> dict[str, Any]:
    """The checkpoint of ``docs/architecture.md`` ("Checkpoints and shipped weights"): the model's config
    and weights, its class names, and its contract (:func:`streamdet.contract.contract_record`)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "contract": contract_record(spec, decoding),
        "config": model.config.to_dict(),
        "class_names": list(class_names),
        "state_dict": {name: value.detach().cpu() for name, value in model.state_dict().items()},
        "train": dict(train or {}),
    }


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A shipped model name (:data:`SHIPPED_MODELS`) -> its file in ``streamdet/weights``; else a path."""
    if str(name_or_path) in SHIPPED_MODELS:
        from importlib.resources import files

        return Path(str(files("streamdet") / "weights" / f"{name_or_path}.pt"))
    return Path(name_or_path)


def read_checkpoint(name_or_path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint dict; ``UserFacingError`` naming the file and what is wrong."""
    path = resolve_model_path(name_or_path)
    if not path.is_file():
        hint = (
            f" (shipped models: {', '.join(SHIPPED_MODELS)})"
            if str(name_or_path) not in SHIPPED_MODELS
            else ""
        )
        raise UserFacingError(f"model {name_or_path}: no such file {path}{hint}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises pickle, zip and runtime errors for non-checkpoints
        from streamdet.safe_unpickle import torch_load_reason

        raise UserFacingError(f"{path}: not a streamdet checkpoint ({torch_load_reason(error)})") from None
    return migrate_checkpoint(checkpoint, path)


def migrate_checkpoint(checkpoint: Any, source: object) -> dict[str, Any]:
    """A checkpoint dict of this version: a ``streamdet-ann/2`` dict is checked as it is, a
    ``streamdet-ann/1`` dict gets its loose input fields gathered into its contract record; anything else
    is a UserFacingError naming ``source``."""
    formats = (CHECKPOINT_FORMAT, LEGACY_CHECKPOINT_FORMAT)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") not in formats:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise UserFacingError(
            f"{source}: not a streamdet ANN checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    if checkpoint["format"] == LEGACY_CHECKPOINT_FORMAT:
        required = ("modality", "config", "class_names", "state_dict")
        missing = [key for key in required if key not in checkpoint]
        if missing:
            raise UserFacingError(f"{source}: checkpoint lacks field(s) {missing}")
        if checkpoint["modality"] not in MODALITY_CHANNELS:
            raise UserFacingError(f"{source}: unknown modality {checkpoint['modality']!r}")
        config = RetinaNetConfig.from_dict(checkpoint["config"])
        try:
            spec = spec_from_legacy_checkpoint(checkpoint, config.input_size)
        except (TypeError, ValueError) as error:
            raise UserFacingError(f"{source}: {error}") from None
        legacy = ("modality", "window_us", "event_scale", "history_windows", "sensor_size")
        checkpoint = {key: value for key, value in checkpoint.items() if key not in legacy}
        checkpoint.update(format=CHECKPOINT_FORMAT, contract=contract_record(spec, DEFAULT_DECODING))
    missing = [key for key in ("contract", "config", "class_names", "state_dict") if key not in checkpoint]
    if missing:
        raise UserFacingError(f"{source}: checkpoint lacks field(s) {missing}")
    read_contract_record(checkpoint["contract"], source)
    return checkpoint


def checkpoint_contract(checkpoint: dict[str, Any], source: object) -> tuple[InputSpec, Decoding]:
    """``(InputSpec, Decoding)`` of a checkpoint read by :func:`read_checkpoint`."""
    return read_contract_record(checkpoint["contract"], source)


def model_from_checkpoint(checkpoint: dict[str, Any], source: object) -> RetinaNet:
    """Rebuild the model of a checkpoint; ``UserFacingError`` when the config and weights disagree."""
    config = RetinaNetConfig.from_dict(checkpoint["config"])
    spec, _ = checkpoint_contract(checkpoint, source)
    if config.in_channels != spec.channels:
        raise UserFacingError(
            f"{source}: config has {config.in_channels} input channels but modality "
            f"{spec.modality!r} over {1 + spec.history_windows} window(s) has {spec.channels}"
        )
    if config.num_classes != len(checkpoint["class_names"]):
        raise UserFacingError(
            f"{source}: config has {config.num_classes} classes but class_names lists "
            f"{len(checkpoint['class_names'])}"
        )
    model = build_model(config)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise UserFacingError(
            f"{source}: weights do not match the config ({first[0] if first else error}; "
            f"{' '.join(line.strip() for line in first[1:3])})"
        ) from None
    return model


@dataclass(frozen=True)
class DetectorBundle:
    """A trained detector with everything needed to run it on a window of events or spikes.

    ``detect(inputs [B, C, H, W]) -> list[Tensor [D, 6]]`` pads, runs the model and decodes;
    ``decode(cls_logits, box_deltas)`` decodes head outputs (the ANN's or an SNN's integrated ones)
    with the same anchors and thresholds. The network is fully convolutional: inputs of another size than
    ``spec.sensor_size`` (a sensor run natively) decode with anchors of their own size.

    Attributes:
        model: the ANN.
        config: its architecture.
        spec: what it consumes (:class:`streamdet.contract.InputSpec`).
        decoding: how its outputs become boxes (:class:`streamdet.contract.Decoding`).
        class_names: label ``i`` is ``class_names[i]``.
        metadata: ``{"source", "train"}`` of the checkpoint.
    """

    model: RetinaNet
    config: RetinaNetConfig
    spec: InputSpec
    decoding: Decoding
    class_names: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @cached_property
    def anchors(self) -> Tensor:
        """Anchors of the input size the model was trained at."""
        return make_anchors(self.config)

    def check_inputs(self, inputs: Tensor) -> None:
        """``UserFacingError`` unless ``inputs`` is ``[B, C, H, W]`` with this model's channels."""
        channels = self.config.in_channels
        if inputs.ndim != 4 or inputs.shape[1] != channels:
            raise UserFacingError(
                f"the {self.spec.modality} model expects inputs [B, {channels}, H, W], got "
                f"{list(inputs.shape)} (modality mismatch?)"
            )

    def decode(
        self, cls_logits: Tensor, box_deltas: Tensor, input_size: tuple[int, int] | None = None
    ) -> list[Tensor]:
        """:func:`decode_detections` with this bundle's decoding, and the anchors of ``input_size``
        ``(W, H)`` (default the trained size), boxes clipped to it."""
        size = input_size or self.spec.sensor_size
        return decode_with(self.config, self.decoding, cls_logits, box_deltas, size)

    @torch.no_grad()
    def detect(self, inputs: Tensor) -> list[Tensor]:
        """Detections per image, rows ``x1, y1, x2, y2, score, class`` (pixels of ``inputs``), on the
        model's device."""
        self.check_inputs(inputs)
        cls_logits, box_deltas = self.model(pad_input(inputs.to(self._device, torch.float32)))
        return self.decode(cls_logits, box_deltas, (inputs.shape[-1], inputs.shape[-2]))


_ANCHOR_CACHE: dict[tuple[str, tuple[int, int]], Tensor] = {}


def anchors_for(config: RetinaNetConfig, input_size: tuple[int, int]) -> Tensor:
    """Anchors of an input of ``input_size`` ``(W, H)`` (padded to the stride), cached per size."""
    padded = (padded_length(input_size[0]), padded_length(input_size[1]))
    key = (repr(config), padded)
    if key not in _ANCHOR_CACHE:
        _ANCHOR_CACHE[key] = make_anchors(config, padded)
    return _ANCHOR_CACHE[key]


def decode_with(
    config: RetinaNetConfig,
    decoding: Decoding,
    cls_logits: Tensor,
    box_deltas: Tensor,
    input_size: tuple[int, int],
) -> list[Tensor]:
    """:func:`decode_detections` of head outputs of an input of ``input_size`` ``(W, H)``."""
    return [
        image_detections(config, decoding, logits, deltas, input_size)
        for logits, deltas in zip(cls_logits, box_deltas, strict=True)
    ]


def image_detections(
    config: RetinaNetConfig,
    decoding: Decoding,
    logits: Tensor,
    deltas: Tensor | Callable[[Tensor], Tensor],
    input_size: tuple[int, int],
) -> Tensor:
    """One image's rows ``[D, 6]`` from its ``logits [N, K]`` and ``deltas`` (``[N, 4]``, or a function
    of anchor indices: :func:`detection_candidates`) of an input of ``input_size`` ``(W, H)``, decoded
    with ``decoding``: :func:`decode_detections` for one image."""
    anchors = anchors_for(config, input_size).to(logits.device)
    size = tuple(input_size)
    return select_detections(
        *detection_candidates(logits, deltas, anchors, decoding.score_thresh, decoding.topk, size),
        nms_thresh=decoding.nms_thresh,
        max_dets=decoding.max_dets,
        vote_iou=decoding.vote_iou,
    )


def bundle_from_checkpoint(
    checkpoint: dict[str, Any], source: object, device: str | torch.device = "cpu"
) -> DetectorBundle:
    """A :class:`DetectorBundle` (model in eval mode on ``device``) from a checkpoint dict."""
    checkpoint = migrate_checkpoint(checkpoint, source)
    model = model_from_checkpoint(checkpoint, source).to(device).eval()
    spec, decoding = checkpoint_contract(checkpoint, source)
    return DetectorBundle(
        model=model,
        config=model.config,
        spec=spec,
        decoding=decoding,
        class_names=tuple(checkpoint["class_names"]),
        metadata={"source": str(source), "train": checkpoint.get("train", {})},
    )


def load_detector(name_or_path: str | Path, device: str | torch.device = "cpu") -> DetectorBundle:
    """Load a shipped model by name (``events-default``, ``intensity-default``) or a checkpoint by path.

    Raises ``UserFacingError`` for a missing file, a file that is not a streamdet ANN checkpoint, or a
    config that does not match the weights.
    """
    path = resolve_model_path(name_or_path)
    return bundle_from_checkpoint(read_checkpoint(name_or_path), path, device)
