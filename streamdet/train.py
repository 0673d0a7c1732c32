"""Training of the RetinaNet: augmentation, the loop, checkpoints, resume.

Recipe (:class:`TrainConfig`): AdamW, linear warm-up then cosine decay of the learning rate per step,
batches of random crops (:func:`random_crop`) of the padded sensor frame, focal + smooth-L1 loss
(``streamdet.model.detection_loss``), model selection by mAP@0.5 on the validation split(s) after every
epoch. The whole state (model, optimiser, epoch, best score) is written to ``<out>.last.pt`` after every
epoch so ``--resume`` continues where training stopped; ``<out>`` itself is always the best checkpoint
so far, in the format ``streamdet.model.load_detector`` reads.

Augmentations act on the raw measurement (events: OFF/ON counts; intensity: spike rate, see
``streamdet.samples``), so they mimic other sensors and scenes: horizontal flip, random crop, count
scaling and Poisson noise events (events), polarity swap (events), brightness scaling and spike noise
(intensity), and, off by default, uneven illumination and texture (intensity: the look of real scenes in
a spike-rate image, against the renderer's flat shading).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from streamdet import CLASS_NAMES
from streamdet.contract import InputSpec, contract_record
from streamdet.errors import UserFacingError
from streamdet.model import (
    MAX_STRIDE,
    LossConfig,
    RetinaNet,
    RetinaNetConfig,
    build_model,
    checkpoint_contract,
    checkpoint_dict,
    config_for,
    detection_loss,
    make_anchors,
    migrate_checkpoint,
    model_from_checkpoint,
    pad_input,
    read_checkpoint,
    save_checkpoint,
    size_preset,
)
from streamdet.samples import DetectionSamples, Target, collate_samples
from streamdet.weight_surgery import (
    carry_over_anchors,
    carry_over_finest_level,
    carry_over_head_blocks,
    carry_over_input_channels,
    carry_over_stage_widths,
    new_layers,
)

DEFAULT_EVENT_SCALE = 4.0
"""Events per pixel and window that saturate the ``events`` input (input = min(count / 4, 1))."""


@dataclass(frozen=True)
class AugmentConfig:
    """Random transforms of one training sample (probabilities and ranges).

    Attributes:
        flip: probability of a horizontal flip.
        crop_size: ``(width, height)`` of the random crop, multiples of 32 pixels (``None``: no crop).
        count_scale: events: counts multiplied by ``U(lo, hi)`` (a busier or quieter sensor).
        noise_rate: events: Poisson noise events added per pixel and channel (one polarity of one window),
            rate ``noise_rate * u ** noise_power`` with ``u ~ U(0, 1)`` (power 1: ``U(0, noise_rate)``;
            larger powers favour low rates while still reaching ``noise_rate``).
        noise_power: see ``noise_rate``.
        thinning: events: probability of binomial thinning, each event kept with probability
            ``U(*thin_keep)`` (a less sensitive sensor: fewer events on the same edges, unlike
            ``count_scale``, which dims every count alike).
        thin_keep: range of the keep probability of ``thinning``.
        hot_pixels: events: hot pixels, a fraction ``U(0, hot_pixels)`` of the pixels firing
            ``U(*hot_pixel_hz)`` events per second in one random polarity in every window read.
        hot_pixel_hz: range of a hot pixel's rate, events per second.
        polarity_swap: events: probability of swapping the OFF and ON channels.
        brightness: intensity: rate multiplied by ``U(lo, hi)``.
        spike_noise: intensity: uniform rate noise ``U(0, spike_noise)`` added per pixel.
        illumination: intensity: uneven lighting (shadows, vignetting), the rate multiplied by a smooth
            random gain in ``[1 - a, 1 + a]``, ``a ~ U(0, illumination)``, over 2-4 cells per side
            (:func:`illumination_gain`; 0: off).
        texture: intensity: band-limited texture of surfaces (paving, water, clothing, hulls), the rate
            multiplied by ``1 + t * field``, ``t ~ U(0, texture)``, ``field`` in [-1, 1] with cells of
            2-16 pixels (:func:`texture_gain`; 0: off).
        min_visible: a cropped box keeping less than this fraction of its area becomes an ignore region.
    """

    flip: float = 0.5
    crop_size: tuple[int, int] | None = (256, 192)
    count_scale: tuple[float, float] = (0.6, 1.6)
    noise_rate: float = 0.05
    noise_power: float = 1.0
    thinning: float = 0.0
    thin_keep: tuple[float, float] = (0.3, 1.0)
    hot_pixels: float = 0.0
    hot_pixel_hz: tuple[float, float] = (50.0, 200.0)
    polarity_swap: float = 0.2
    brightness: tuple[float, float] = (0.6, 1.4)
    spike_noise: float = 0.05
    illumination: float = 0.0
    texture: float = 0.0
    min_visible: float = 0.5

    def __post_init__(self) -> None:
        for name in ("flip", "thinning", "hot_pixels", "polarity_swap", "illumination", "texture"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserFacingError(f"augmentation {name} must be in [0, 1], got {getattr(self, name)}")
        if self.spike_noise < 0:
            raise UserFacingError(f"augmentation spike_noise must be >= 0, got {self.spike_noise}")
        if self.noise_rate < 0 or self.noise_power <= 0:
            raise UserFacingError(
                f"augmentation noise rate must be >= 0 and its power > 0, got {self.noise_rate} and "
                f"{self.noise_power}"
            )
        if not 0.0 < self.thin_keep[0] <= self.thin_keep[1] <= 1.0:
            raise UserFacingError(
                f"augmentation thin_keep must satisfy 0 < lo <= hi <= 1, got {self.thin_keep}"
            )


def horizontal_flip(raw: Tensor, target: Target) -> tuple[Tensor, Target]:
    """Mirror ``raw [C, H, W]`` left-right; boxes ``x1' = W - x2``, ``x2' = W - x1``."""
    width = raw.shape[-1]

    def mirror(boxes: Tensor) -> Tensor:
        return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)

    return raw.flip(-1), {
        **target,
        "boxes": mirror(target["boxes"]),
        "ignore_boxes": mirror(target["ignore_boxes"]),
    }


def random_crop(
    raw: Tensor, target: Target, size: tuple[int, int], rng: np.random.Generator, min_visible: float = 0.5
) -> tuple[Tensor, Target]:
    """A ``size = (width, height)`` window of ``raw [C, H, W]`` zero-padded to multiples of 32.

    Boxes move with the window and are clipped to it; a box keeping less than ``min_visible`` of its
    area becomes an ignore region; boxes entirely outside are dropped.
    """
    padded = pad_input(raw[None])[0]
    height, width = padded.shape[-2:]
    crop_w, crop_h = size
    x0 = int(rng.integers(0, width - crop_w + 1))
    y0 = int(rng.integers(0, height - crop_h + 1))
    window = padded[:, y0 : y0 + crop_h, x0 : x0 + crop_w]
    offset = torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
    limit = torch.tensor([crop_w, crop_h, crop_w, crop_h], dtype=torch.float32)

    def move(boxes: Tensor) -> tuple[Tensor, Tensor]:
        shifted = boxes - offset
        clipped = torch.minimum(torch.clamp(shifted, min=0), limit)
        area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
        kept = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        return clipped, kept / area.clamp(min=1e-6)

    boxes, visible = move(target["boxes"])
    ignore_boxes, ignore_visible = move(target["ignore_boxes"])
    keep = visible >= min_visible
    partial = (visible > 0) & ~keep
    return window, {
        **target,
        "boxes": boxes[keep],
        "labels": target["labels"][keep],
        "ignore_boxes": torch.cat([boxes[partial], ignore_boxes[ignore_visible > 0]]),
    }


def thin_events(raw: Tensor, keep: float, generator: torch.Generator) -> Tensor:
    """Each event of the counts ``raw`` kept with probability ``keep`` (binomial thinning)."""
    return torch.binomial(raw, torch.full_like(raw, keep), generator=generator)


def add_poisson_noise(raw: Tensor, rate: float, generator: torch.Generator) -> Tensor:
    """Poisson(``rate``) noise events added to every pixel and channel of the counts ``raw``."""
    return raw + torch.poisson(torch.full_like(raw, rate), generator=generator)


def add_hot_pixels(
    raw: Tensor, fraction: float, counts_per_window: float, generator: torch.Generator
) -> Tensor:
    """Hot pixels: a ``fraction`` of the pixels of ``raw`` (``[2 W, H, W]``, OFF / ON per window) fire
    Poisson(``counts_per_window``) events in one random polarity in every window."""
    windows = raw.shape[0] // 2
    hot = torch.rand(raw.shape[1:], generator=generator) < fraction
    on = torch.randint(0, 2, raw.shape[1:], generator=generator).bool()
    out = raw.unflatten(0, (windows, 2)).clone()
    for polarity, mask in ((0, hot & ~on), (1, hot & on)):
        rate = torch.full((windows, int(mask.sum())), counts_per_window)
        out[:, polarity][:, mask] += torch.poisson(rate, generator=generator)
    return out.flatten(0, 1)


def smooth_random_field(size: tuple[int, int], grid: tuple[int, int], generator: torch.Generator) -> Tensor:
    """A random field ``[H, W]`` in [-1, 1], band-limited: ``grid = (rows, columns)`` values
    ``U(-1, 1)`` (at least 2 each) interpolated bilinearly over ``size = (H, W)``, corner to corner,
    so that neighbouring values lie ``(H - 1) / (rows - 1)`` pixels apart (rows) and likewise across."""
    values = torch.rand((1, 1, *grid), generator=generator) * 2.0 - 1.0
    return F.interpolate(values, size=size, mode="bilinear", align_corners=True)[0, 0]


def illumination_gain(
    size: tuple[int, int], strength: float, rng: np.random.Generator, generator: torch.Generator
) -> Tensor:
    """Uneven lighting over an image of ``size = (H, W)``: ``1 + a * field`` with ``a ~ U(0, strength)``
    and ``field`` a :func:`smooth_random_field` over 2-4 cells per side (gradients, vignetting, broad
    shadows), so a gain ``[H, W]`` in ``[1 - a, 1 + a]``."""
    amplitude = float(rng.uniform(0.0, strength))
    cells = rng.integers(2, 5, size=2)
    return 1.0 + amplitude * smooth_random_field(size, (int(cells[0]) + 1, int(cells[1]) + 1), generator)


def texture_gain(
    size: tuple[int, int], strength: float, rng: np.random.Generator, generator: torch.Generator
) -> Tensor:
    """Surface texture over an image of ``size = (H, W)``: ``1 + t * field`` with ``t ~ U(0, strength)``
    and ``field`` a :func:`smooth_random_field` whose values lie ``c ~ U{2, ..., 16}`` pixels apart (one
    scale per sample), so a gain ``[H, W]`` in ``[1 - t, 1 + t]``. Multiplied into the rate (intensity
    is illumination times reflectance), it is relative to the local rate: black padding stays black."""
    amplitude = float(rng.uniform(0.0, strength))
    cell = int(rng.integers(2, 17))
    height, width = size
    grid = (math.ceil((height - 1) / cell) + 1, math.ceil((width - 1) / cell) + 1)
    return 1.0 + amplitude * smooth_random_field(size, grid, generator)


def make_augment(modality: str, config: AugmentConfig, window_us: int | None = None):
    """The training transform ``(raw, target, rng) -> (raw, target)`` of ``modality`` (see
    :class:`AugmentConfig`); ``window_us`` (one window's length) sets a hot pixel's count per window."""

    def augment(raw: Tensor, target: Target, rng: np.random.Generator) -> tuple[Tensor, Target]:
        if rng.random() < config.flip:
            raw, target = horizontal_flip(raw, target)
        if config.crop_size is not None:
            raw, target = random_crop(raw, target, config.crop_size, rng, config.min_visible)
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        if modality == "events":
            if config.thinning > 0 and rng.random() < config.thinning:
                raw = thin_events(raw, float(rng.uniform(*config.thin_keep)), generator)
            raw = raw * float(rng.uniform(*config.count_scale))
            rate = float(rng.uniform(0.0, config.noise_rate))  # noise_rate * u
            if config.noise_power != 1.0 and config.noise_rate > 0:
                # noise_rate * u ** power from the same draw, as the shipped events models were trained
                rate = config.noise_rate * (rate / config.noise_rate) ** config.noise_power
            raw = add_poisson_noise(raw, rate, generator)
            if config.hot_pixels > 0:
                if window_us is None:
                    raise ValueError("hot-pixel augmentation needs window_us")
                fraction = float(rng.uniform(0.0, config.hot_pixels))
                hz = float(rng.uniform(*config.hot_pixel_hz))
                raw = add_hot_pixels(raw, fraction, hz * window_us / 1e6, generator)
            if rng.random() < config.polarity_swap:  # OFF <-> ON in every window read
                raw = raw.unflatten(0, (-1, 2)).flip(1).flatten(0, 1)
        else:
            raw = raw * float(rng.uniform(*config.brightness))
            if config.illumination > 0 or config.texture > 0:
                raw = (raw * _scene_look_gain(raw.shape[-2:], config, rng, generator)).clamp(0.0, 1.0)
            raw = raw + torch.rand(raw.shape, generator=generator) * float(
                rng.uniform(0.0, config.spike_noise)
            )
        return raw, target

    return augment


def _scene_look_gain(
    size: tuple[int, int], config: AugmentConfig, rng: np.random.Generator, generator: torch.Generator
) -> Tensor:
    """The gain ``[H, W]`` of ``config``'s illumination and texture (each 1 where off), the same for
    every window a sample reads (a still scene's look)."""
    gain = torch.ones(size)
    if config.illumination > 0:
        gain = gain * illumination_gain(size, config.illumination, rng, generator)
    if config.texture > 0:
        gain = gain * texture_gain(size, config.texture, rng, generator)
    return gain


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe.

    Attributes:
        modality: ``events`` or ``intensity``.
        size: model size preset (``streamdet.model.MODEL_SIZES``).
        activation: ``quant`` (Quant-ReLU, for low-latency conversion) or ``relu``.
        quant_levels: Quant-ReLU levels ``L``.
        epochs: passes over the training splits.
        batch_size: samples per step.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay (not applied to BN, biases, Quant-ReLU clips).
        warmup_steps: linear warm-up steps.
        event_scale: events per pixel that saturate the events input.
        window_us: the model's input window, ending at each label's time (``None``: the window the first
            training split was built with).
        seed: seed of initialisation, shuffling and augmentation.
        val_limit: validation images used for model selection (``None``: all).
        box_loss: ``smooth_l1`` (deltas) or ``giou`` (decoded boxes), see :class:`LossConfig`.
        anchor_min_size: side of the smallest anchor in pixels (``None``: the ``--init`` checkpoint's,
            else the model default), see ``streamdet.model.RetinaNetConfig``.
        anchor_aspect_ratios: anchor height / width ratios (``None``: as ``anchor_min_size``).
        finest_stride: 4 adds a stride-4 FPN level P2 (``None``: as ``anchor_min_size``; the model
            default is 8). ``--init`` from a stride-8 model starts P2 as P3 upsampled
            (``streamdet.model.carry_over_finest_level``).
        head_blocks: residual blocks in each head after its conv layers (``None``: the ``--init``
            checkpoint's, else 0). ``--init`` from fewer blocks adds blocks that pass their input through
            unchanged until trained (``streamdet.model.carry_over_head_blocks``).
        stage_channels: widths of the four backbone stages (``None``: the ``--init`` checkpoint's, else the
            size preset's). ``--init`` from narrower stages copies channels so the wider model computes
            what the narrower one did (``streamdet.weight_surgery.carry_over_stage_widths``).
        new_layer_lr: peak learning rate of the layers an ``--init`` model lacks (a P2 lateral, new head
            blocks: ``streamdet.model.new_layers``), which start silenced and learn from scratch while
            the rest fine-tunes at ``lr`` (at a fine-tuning rate they barely grow out of silence).
        history_windows: earlier windows read as extra input channels (``streamdet.samples``; ``None``:
            the ``--init`` checkpoint's, else 0). ``--init`` from fewer windows starts the new windows'
            stem weights at zero (``streamdet.weight_surgery.carry_over_input_channels``).
        distill_from: teacher of the distillation against forgetting (a model name or checkpoint path,
            read like ``--init``'s; ``None``: no distillation), see :func:`distillation_loss`.
        distill_weight: ``W`` of the loss ``L_det + W * L_distill``.
        distill_data: the dataset roots (as given in ``data_dirs``) whose training samples get the
            distillation term (the old scenes); the others (the new scenes) get none. Required with
            ``distill_from``.
        augment: :class:`AugmentConfig`.
    """

    modality: str = "events"
    size: str = "small"
    activation: str = "quant"
    quant_levels: int = 8
    epochs: int = 8
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    event_scale: float = DEFAULT_EVENT_SCALE
    window_us: int | None = None
    seed: int = 0
    val_limit: int | None = None
    box_loss: str = "smooth_l1"
    anchor_min_size: float | None = None
    anchor_aspect_ratios: tuple[float, ...] | None = None
    finest_stride: int | None = None
    head_blocks: int | None = None
    stage_channels: tuple[int, ...] | None = None
    new_layer_lr: float = 2e-3
    history_windows: int | None = None
    distill_from: str | None = None
    distill_weight: float = 1.0
    distill_data: tuple[str, ...] = ()
    augment: AugmentConfig = AugmentConfig()

    def __post_init__(self) -> None:
        object.__setattr__(self, "distill_data", tuple(str(root) for root in self.distill_data))
        if self.distill_from is not None and not self.distill_data:
            raise UserFacingError(
                f"distill_from {self.distill_from} needs distill_data (--distill-data DIR [DIR ...]: the "
                "--data roots of the old scenes whose samples are distilled)"
            )
        if self.distill_from is None and self.distill_data:
            raise UserFacingError(
                f"distill_data {list(self.distill_data)} needs distill_from (--distill-from CKPT: the "
                "teacher model)"
            )
        if not (math.isfinite(self.distill_weight) and self.distill_weight >= 0):
            raise UserFacingError(f"distill_weight must be finite and >= 0, got {self.distill_weight}")


INHERITED_FROM_INIT = ("modality", "size", "activation", "quant_levels", "event_scale", "window_us")
"""The recipe fields that shape the model and its input, which ``streamdet train --init`` takes from the
checkpoint unless they are given (:func:`recipe_from_init`)."""


def recipe_from_init(
    config: TrainConfig,
    init_config: RetinaNetConfig,
    init_spec: InputSpec,
    given: Collection[str],
    init: object,
) -> TrainConfig:
    """``config`` with every field of :data:`INHERITED_FROM_INIT` not in ``given`` taken from the ``--init``
    model ``init`` (its architecture ``init_config`` and input ``init_spec``), so that a fine-tune keeps
    the model it starts from (a shipped events model reads 4 Quant-ReLU levels over 100 ms windows, not
    the from-scratch defaults of 8 levels over the data's window). A given ``modality`` other than the
    model's is a UserFacingError; a size that is no preset of :data:`streamdet.model.MODEL_SIZES` stays
    the recipe's (the architecture check of the fine-tune then names the difference)."""
    if "modality" in given and config.modality != init_spec.modality:
        raise UserFacingError(
            f"--init {init} is an {init_spec.modality} model; it cannot be fine-tuned as --modality "
            f"{config.modality} (leave --modality out to take the model's)"
        )
    inherited = {
        "modality": init_spec.modality,
        "size": size_preset(init_config) or config.size,
        "activation": init_config.activation,
        "quant_levels": init_config.quant_levels,
        "event_scale": init_spec.event_scale,
        "window_us": init_spec.window_us,
    }
    return replace(config, **{name: value for name, value in inherited.items() if name not in given})


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """``lr * step / warmup`` during warm-up, then ``lr * (1 + cos(pi * progress)) / 2``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


DISTILL_BOX_MIN_SCORE = 0.05
"""Teacher's highest class probability from which an anchor's box deltas are distilled (the decoding's
score threshold): the regression of anchors the teacher calls background is left free."""


def distillation_loss(
    student_cls: Tensor,
    student_box: Tensor,
    teacher_cls: Tensor,
    teacher_box: Tensor,
    mask: Tensor,
    box_min_score: float = DISTILL_BOX_MIN_SCORE,
) -> Tensor:
    """Distillation against forgetting (Li and Hoiem 2016; for detectors Shmelkov et al. 2017): how far
    the student's outputs moved from the teacher's on the samples of old scenes, where it matters to the
    detections: the (anchor, class) pairs either network scores at least ``box_min_score``,
    ``P_b = {(a, k) : max(sigmoid(s_bak), sigmoid(t_bak)) >= box_min_score}`` (the student's side taken
    without gradient), and ``A_b = {a : max_k sigmoid(t_bak) >= box_min_score}``::

        L = (1/B) sum_b m_b [ (1/max(1, |P_b|)) sum_{(a,k) in P_b} (s_bak - t_bak)^2
                              + (1/(4 max(1, |A_b|))) sum_{a in A_b} ||d^s_ba - d^t_ba||^2 ]

    ``m_b`` is 1 for a distilled sample and 0 otherwise, so a sample of a new scene adds nothing (and a
    batch without distilled samples gives 0). The class term keeps the teacher's detections and holds
    down the student's new ones; the logits of the background (most anchors, far below the threshold in
    both networks) move freely, since they change no detection. Over all anchors they made most of the
    term: on the street fine-tune of docs/real-scenes.md a mean squared error of the centred logits over
    every anchor read 1.8-2.9 a hundred steps in.

    Args:
        student_cls, teacher_cls: class logits ``[B, N, K]``.
        student_box, teacher_box: box deltas ``[B, N, 4]``.
        mask: ``[B]`` bool, the samples distilled.
        box_min_score: the score threshold of ``P_b`` and ``A_b``.

    Returns:
        the scalar ``L`` (differentiable in the student's outputs).
    """
    teacher_scores = teacher_cls.sigmoid()
    scored = torch.maximum(student_cls.detach().sigmoid(), teacher_scores) >= box_min_score  # [B, N, K]
    scored = scored.to(student_cls.dtype)
    cls_error = (student_cls - teacher_cls).pow(2) * scored
    cls_term = cls_error.sum(dim=(1, 2)) / scored.sum(dim=(1, 2)).clamp(min=1.0)
    confident = (teacher_scores.amax(-1) >= box_min_score).to(student_box.dtype)  # [B, N]
    box_error = (student_box - teacher_box).pow(2).sum(-1) * confident
    box_term = box_error.sum(-1) / (4.0 * confident.sum(-1).clamp(min=1.0))
    weights = mask.to(student_cls.dtype)
    return ((cls_term + box_term) * weights).sum() / max(1, int(mask.numel()))


def parameter_groups(
    model: RetinaNet, weight_decay: float, new_prefixes: tuple[str, ...] = (), new_layer_scale: float = 1.0
) -> list[dict[str, Any]]:
    """AdamW groups: convolution weights decay, everything one-dimensional (BN, biases, clips) does not.
    Parameters under the ``new_prefixes`` form groups of their own whose ``lr_scale`` is
    ``new_layer_scale`` (their learning rate over the schedule's); the others have ``lr_scale`` 1."""
    groups = []
    for new in (False, True):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith(new_prefixes) == new]
        for decays in (True, False):
            params = [p for _, p in named if (p.ndim > 1) == decays]
            if params:
                groups.append(
                    {
                        "params": params,
                        "weight_decay": weight_decay if decays else 0.0,
                        "lr_scale": new_layer_scale if new else 1.0,
                    }
                )
    return groups


def last_state_path(out: str | Path) -> Path:
    """``<out>.last.pt``: the full training state for ``--resume``."""
    out = Path(out)
    return out.with_name(out.name + ".last.pt")


def _check_splits(paths: list[Path], name: str) -> list[Path]:
    for path in paths:
        if not (path / "annotations.json").is_file():
            raise UserFacingError(
                f"{path}: no annotations.json ({name} split missing; build it with "
                f"`streamdet dataset build --split {name}`)"
            )
    return paths


def train_detector(
    config: TrainConfig,
    data_dirs: list[str | Path],
    out: str | Path,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    log=print,
    init: str | Path | None = None,
    val_splits: list[str | Path] | None = None,
) -> dict[str, Any]:
    """Train a detector on ``DIR/train`` of every data dir, select on ``DIR/val``, write ``out``.

    Args:
        config: the recipe.
        data_dirs: dataset roots (each holding ``train/`` and optionally ``val/``).
        out: path of the best checkpoint; ``<out>.last.pt`` holds the resumable state.
        resume: continue from ``<out>.last.pt`` (its recipe must have the same modality).
        device: ``cuda`` when available unless given.
        progress: tqdm bars on stderr.
        log: called with one line per epoch.
        init: fine-tune: start from the weights of this checkpoint (name or path; same modality and
            architecture) with a fresh optimiser and schedule. Ignored with ``resume``.
        val_splits: split directories that select the best epoch instead of every ``DIR/val``
            (each must hold ``annotations.json``).

    Returns:
        the ``train`` record stored in the checkpoint (recipe, data, epochs, history, seconds).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    roots = [Path(p) for p in data_dirs]
    train_dirs, val_dirs = _train_and_val_dirs(roots, val_splits)
    torch.manual_seed(config.seed)
    init_checkpoint = read_checkpoint(init) if init is not None and not resume else None
    init_model = model_from_checkpoint(init_checkpoint, init) if init_checkpoint is not None else None
    last_path = last_state_path(out)
    saved = _read_resume_state(last_path, config) if resume else None
    if saved is not None:
        config = _resumed_distillation(config, saved["recipe"], log)
    distilled_splits = distilled_roots(config.distill_data, roots)
    history_windows = _history_windows(config, init_checkpoint, saved)
    train_set = _training_samples(config, train_dirs, history_windows)
    model, state = _starting_model_and_state(
        config, train_set, history_windows, init, init_checkpoint, init_model, saved, last_path
    )
    optimizer = _optimizer(model, config, state, saved)
    model.to(device)
    teacher = _load_teacher(config.distill_from, model.config, train_set.spec, device)
    anchors = _training_anchors(model.config, config.augment.crop_size).to(device)
    train_set.preload(progress)
    record: dict[str, Any] = {}
    for epoch in range(state["epoch"], config.epochs):
        entry = _train_one_epoch(
            model,
            optimizer,
            anchors,
            train_set,
            config,
            state,
            epoch,
            device,
            progress,
            Distillation(teacher, distilled_splits, config.distill_weight) if teacher is not None else None,
        )
        if val_dirs:
            entry["val_map50"] = _validate(model, model.config, config, train_set, val_dirs, progress)
        state["history"].append(entry)
        state["epoch"] = epoch + 1
        record = {
            "recipe": _recipe(config),
            "data": [str(p) for p in roots],
            "val": [str(p) for p in val_dirs],
            "epochs": state["epoch"],
            "history": state["history"],
            "seconds": round(state["seconds"], 1),
            "device": str(device),
        }
        score = entry.get("val_map50", float(epoch))
        _save_epoch(out, last_path, model, optimizer, train_set, config, state, record, score)
        log(" ".join(f"{k}={v}" for k, v in entry.items()))
    return record


def distilled_roots(distill_data: Collection[str], roots: list[Path]) -> tuple[bool, ...]:
    """Per dataset root (the order of ``roots``, which is the order of the training splits), whether its
    samples are distilled: it is one of ``distill_data``. Roots are compared as paths, resolved, so
    ``data/a`` and ``data/a/`` match. ``UserFacingError`` naming a ``distill_data`` root not among
    ``roots``."""
    resolved = [root.resolve() for root in roots]
    wanted = {Path(text).resolve(): text for text in distill_data}
    strangers = [text for path, text in wanted.items() if path not in resolved]
    if strangers:
        raise UserFacingError(
            f"--distill-data {' '.join(strangers)}: not among the --data roots "
            f"({' '.join(str(root) for root in roots)}); give each as it is given to --data"
        )
    return tuple(path in wanted for path in resolved)


def check_teacher(
    teacher: RetinaNetConfig,
    teacher_spec: InputSpec,
    student: RetinaNetConfig,
    student_spec: InputSpec,
    source: object,
) -> None:
    """``UserFacingError`` naming ``source`` and the field unless the teacher reads the student's input
    (modality, window, event scale, windows read, input channels) and has the student's outputs (classes,
    anchors per location and the anchors themselves: sizes, ratios, pyramid levels), anchor for anchor."""
    pairs = {
        "modality": (teacher_spec.modality, student_spec.modality),
        "window_us": (teacher_spec.window_us, student_spec.window_us),
        "event_scale": (teacher_spec.event_scale, student_spec.event_scale),
        "history_windows": (teacher_spec.history_windows, student_spec.history_windows),
        "in_channels": (teacher.in_channels, student.in_channels),
        "num_classes": (teacher.num_classes, student.num_classes),
        "anchors_per_location": (teacher.anchors_per_location, student.anchors_per_location),
        "anchor_min_size": (teacher.anchor_min_size, student.anchor_min_size),
        "anchor_aspect_ratios": (tuple(teacher.anchor_aspect_ratios), tuple(student.anchor_aspect_ratios)),
        "finest_stride": (teacher.finest_stride, student.finest_stride),
    }
    differing = [
        f"{name} {theirs} (student: {ours})" for name, (theirs, ours) in pairs.items() if theirs != ours
    ]
    if differing:
        raise UserFacingError(
            f"--distill-from {source}: the teacher must read the student's input and predict for the "
            f"same anchors and classes; it differs in {', '.join(differing)}"
        )


def _load_teacher(
    distill_from: str | None, student: RetinaNetConfig, student_spec: InputSpec, device: str
) -> RetinaNet | None:
    """The frozen teacher on ``device``, read like ``--init``'s model and checked against the student
    (:func:`check_teacher`); ``None`` without ``distill_from``.

    Frozen: no gradients, weights and BatchNorm running statistics never change (momentum 0). Its
    BatchNorm layers normalise with the batch's statistics, as the student's do in training, so a student
    equal to the teacher has a distillation term of 0 (on the tiny test data, eval-mode statistics made
    the term push the student's eval-mode outputs away from the teacher's instead)."""
    if distill_from is None:
        return None
    checkpoint = read_checkpoint(distill_from)
    teacher = model_from_checkpoint(checkpoint, distill_from)
    spec, _ = checkpoint_contract(checkpoint, distill_from)
    check_teacher(teacher.config, spec, student, student_spec, distill_from)
    teacher.requires_grad_(False)
    for module in teacher.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0  # running = (1 - momentum) running + momentum batch: kept
    return teacher.to(device).train()


def _resumed_distillation(config: TrainConfig, recipe: dict[str, Any], log) -> TrainConfig:
    """A resumed run's distillation: the one given, else the saved recipe's (its teacher reloaded from
    the path recorded there)."""
    if config.distill_from is not None or recipe.get("distill_from") is None:
        return config
    log(f"resume: distilling from {recipe['distill_from']} as recorded in the saved recipe")
    return replace(
        config,
        distill_from=recipe["distill_from"],
        distill_weight=float(recipe["distill_weight"]),
        distill_data=tuple(recipe["distill_data"]),
    )


def _train_and_val_dirs(
    roots: list[Path], val_splits: list[str | Path] | None
) -> tuple[list[Path], list[Path]]:
    """``root/train`` of every root (each must exist), and the validation splits: ``val_splits`` (each must
    exist), else every ``root/val`` that exists."""
    train_dirs = _check_splits([root / "train" for root in roots], "train")
    val_dirs = (
        _check_splits([Path(p) for p in val_splits], "validation")
        if val_splits is not None
        else [root / "val" for root in roots if (root / "val" / "annotations.json").is_file()]
    )
    return train_dirs, val_dirs


def _training_samples(config: TrainConfig, train_dirs: list[Path], history_windows: int) -> DetectionSamples:
    """The training windows of ``train_dirs`` with the recipe's augmentation."""
    train_set = DetectionSamples(
        train_dirs,
        config.modality,
        config.event_scale,
        window_us=config.window_us,
        seed=config.seed,
        history_windows=history_windows,
    )
    train_set.augment = make_augment(config.modality, config.augment, train_set.window_us)
    return train_set


def _starting_model_and_state(
    config: TrainConfig,
    train_set: DetectionSamples,
    history_windows: int,
    init: str | Path | None,
    init_checkpoint: dict[str, Any] | None,
    init_model: RetinaNet | None,
    saved: dict[str, Any] | None,
    last_path: Path,
) -> tuple[RetinaNet, dict[str, Any]]:
    """The model to train and the loop state (epoch, step, best score, history, seconds, layers new to an
    ``--init`` model): a resumed run's, else ``--init``'s weights carried into the recipe's architecture,
    else fresh weights."""
    model_config = config_for(
        config.modality,
        config.size,
        input_size=train_set.sensor_size,
        history_windows=history_windows,
        activation=config.activation,
        quant_levels=config.quant_levels,
        **_inherited_settings(config, init_model.config if init_model is not None else None),
    )
    model = (
        _initial_weights(init_model, init_checkpoint, init, model_config)
        if init_model is not None
        else build_model(model_config)
    )
    state: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best_map50": -1.0,
        "history": [],
        "seconds": 0.0,
        "new_layers": list(new_layers(init_model.config, model_config)) if init_model is not None else [],
    }
    if saved is not None:
        model = model_from_checkpoint(saved["checkpoint"], last_path)
        state = {"new_layers": [], **saved["state"]}
    return model, state


def _optimizer(
    model: RetinaNet, config: TrainConfig, state: dict[str, Any], saved: dict[str, Any] | None
) -> torch.optim.AdamW:
    """AdamW over the parameter groups (layers new to an ``--init`` model at ``new_layer_lr``), with a
    resumed run's moments."""
    optimizer = torch.optim.AdamW(
        parameter_groups(
            model, config.weight_decay, tuple(state["new_layers"]), config.new_layer_lr / config.lr
        ),
        lr=config.lr,
    )
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
    return optimizer


def _training_anchors(model_config: RetinaNetConfig, crop: tuple[int, int] | None) -> torch.Tensor:
    """Anchors of the training inputs (the crop, else the padded sensor); a resumed model keeps the anchors
    it was started with."""
    if crop is not None and (crop[0] % MAX_STRIDE or crop[1] % MAX_STRIDE):
        raise UserFacingError(f"crop size {crop} must be multiples of {MAX_STRIDE}")
    return make_anchors(model_config, crop)


@dataclass(frozen=True)
class Distillation:
    """The distillation of one training run: the frozen ``teacher``, per training split whether its
    samples are distilled (``splits``, :func:`distilled_roots`), and the weight ``W``."""

    teacher: RetinaNet
    splits: tuple[bool, ...]
    weight: float

    def mask(self, train_set: DetectionSamples, indices: Collection[int]) -> Tensor:
        """``[B]`` bool: whether each sample of a batch (``indices`` into ``train_set``) is distilled."""
        return torch.tensor([self.splits[train_set.split_of(int(i))] for i in indices], dtype=torch.bool)


def _train_one_epoch(
    model: RetinaNet,
    optimizer: torch.optim.Optimizer,
    anchors: torch.Tensor,
    train_set: DetectionSamples,
    config: TrainConfig,
    state: dict[str, Any],
    epoch: int,
    device: str,
    progress: bool,
    distillation: Distillation | None = None,
) -> dict[str, Any]:
    """One pass over ``train_set`` in the epoch's seeded order; advances ``state["step"]`` and
    ``state["seconds"]``. Returns the history entry ``{epoch, loss (running mean), seconds}``, with
    ``distillation`` also ``distill``, the epoch's mean distillation term (:func:`distillation_loss`)."""
    from tqdm import tqdm

    started = time.monotonic()
    train_set.epoch = epoch
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    order = torch.randperm(len(train_set), generator=generator)
    model.train()
    loss_config = LossConfig(box_loss=config.box_loss)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress)
    running = 0.0
    distill_sum = 0.0
    for batch_index in bar:
        indices = order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]
        inputs, targets = collate_samples([train_set[int(i)] for i in indices])
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(state["step"], total_steps, config) * group.get("lr_scale", 1.0)
        mask = distillation.mask(train_set, indices.tolist()) if distillation is not None else None
        losses = _optimisation_step(
            model, optimizer, anchors, inputs.to(device), targets, loss_config, distillation, mask
        )
        state["step"] += 1
        loss_value = float(losses["total"].detach())
        running = 0.9 * running + 0.1 * loss_value if batch_index else loss_value
        postfix = {
            name: f"{float(losses[name].detach()):.3f}"
            for name in ("cls", "box", "distill")
            if name in losses
        }
        if "distill" in losses:
            distill_sum += float(losses["distill"].detach())
        bar.set_postfix(loss=f"{running:.3f}", **postfix)
    bar.close()
    state["seconds"] += time.monotonic() - started
    entry: dict[str, Any] = {"epoch": epoch + 1, "loss": round(running, 4)}
    if distillation is not None:
        entry["distill"] = round(distill_sum / steps_per_epoch, 6)
    return {**entry, "seconds": round(state["seconds"], 1)}


def _optimisation_step(
    model: RetinaNet,
    optimizer: torch.optim.Optimizer,
    anchors: torch.Tensor,
    inputs: torch.Tensor,
    targets: list[Target],
    loss_config: LossConfig,
    distillation: Distillation | None = None,
    mask: Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Loss of one batch, its gradient (norm clipped to 10) and an optimiser step; returns the losses.
    With ``distillation``, the teacher reads the same ``inputs`` (no gradients) and the total gains
    ``W * distill`` over the samples of ``mask`` (:func:`distillation_loss`)."""
    cls_logits, box_deltas = model(inputs)
    losses = detection_loss(cls_logits, box_deltas, anchors, targets, loss_config)
    if distillation is not None and mask is not None:
        mask = mask.to(inputs.device)
        if bool(mask.any()):
            with torch.no_grad():
                teacher_cls, teacher_box = distillation.teacher(inputs)
            distill = distillation_loss(cls_logits, box_deltas, teacher_cls, teacher_box, mask)
        else:
            distill = cls_logits.sum() * 0.0
        losses = {**losses, "distill": distill, "total": losses["total"] + distillation.weight * distill}
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    return losses


def _save_epoch(
    out: str | Path,
    last_path: Path,
    model: RetinaNet,
    optimizer: torch.optim.Optimizer,
    train_set: DetectionSamples,
    config: TrainConfig,
    state: dict[str, Any],
    record: dict[str, Any],
    score: float,
) -> None:
    """Write ``out`` when ``score`` (validation mAP@0.5, else the epoch index) is at least the best so far,
    and always the resumable state at ``last_path``."""
    checkpoint = checkpoint_dict(model, train_set.spec, CLASS_NAMES, train=record)
    if score >= state["best_map50"]:
        state["best_map50"] = score
        save_checkpoint(out, {**checkpoint, "train": {**record, "selected_epoch": state["epoch"]}})
    save_checkpoint(
        last_path,
        {
            "checkpoint": checkpoint,
            "optimizer": optimizer.state_dict(),
            "state": state,
            "recipe": _recipe(config),
        },
    )


def _read_resume_state(last_path: Path, config: TrainConfig) -> dict[str, Any]:
    """The ``--resume`` state at ``last_path``; ``UserFacingError`` if missing or of another modality."""
    if not last_path.is_file():
        raise UserFacingError(f"--resume: no training state {last_path} (run without --resume first)")
    from streamdet.safe_unpickle import load_weights_file

    saved = load_weights_file(last_path)
    if saved["recipe"]["modality"] != config.modality:
        raise UserFacingError(
            f"--resume: {last_path} trains the {saved['recipe']['modality']} modality, not {config.modality}"
        )
    return saved


def _history_windows(
    config: TrainConfig, init_checkpoint: dict[str, Any] | None, saved: dict[str, Any] | None
) -> int:
    """Windows before the model's own that it reads: a resumed run's, else the recipe's, else the
    ``--init`` checkpoint's, else 0."""
    if saved is not None:
        resumed = migrate_checkpoint(saved["checkpoint"], "--resume")
        return checkpoint_contract(resumed, "--resume")[0].history_windows
    if config.history_windows is not None:
        return int(config.history_windows)
    if init_checkpoint is not None:
        return checkpoint_contract(init_checkpoint, "--init")[0].history_windows
    return 0


def _inherited_settings(config: TrainConfig, source: RetinaNetConfig | None) -> dict[str, Any]:
    """The anchor, pyramid, head-depth and stage-width fields of the model being trained: the recipe's,
    else the ``--init`` model's (``source``), else none (the model defaults)."""
    settings: dict[str, Any] = {}
    if source is not None:
        settings = {
            "anchor_min_size": source.anchor_min_size,
            "anchor_aspect_ratios": source.anchor_aspect_ratios,
            "finest_stride": source.finest_stride,
            "head_blocks": source.head_blocks,
            "stage_channels": tuple(source.stage_channels),
        }
    if config.anchor_min_size is not None:
        settings["anchor_min_size"] = config.anchor_min_size
    if config.anchor_aspect_ratios is not None:
        settings["anchor_aspect_ratios"] = tuple(config.anchor_aspect_ratios)
    if config.finest_stride is not None:
        settings["finest_stride"] = config.finest_stride
    if config.head_blocks is not None:
        settings["head_blocks"] = config.head_blocks
    if config.stage_channels is not None:
        settings["stage_channels"] = tuple(config.stage_channels)
    return settings


def _initial_weights(
    source: RetinaNet, checkpoint: dict[str, Any], init: str | Path, model_config: RetinaNetConfig
) -> RetinaNet:
    """The weights of the ``--init`` model ``source`` (read from ``checkpoint`` at ``init``) in a model of
    ``model_config``: the architecture must be the same. The number of Quant-ReLU levels may differ
    (fine-tuning to fewer levels for conversion at fewer time steps keeps every weight and clip), and so
    may the anchors: the heads' predictors are carried over anchor by anchor
    (``streamdet.model.carry_over_anchors``), the windows read (the stem's input channels,
    ``streamdet.weight_surgery.carry_over_input_channels``), the finest level (a stride-4 P2 added to a
    stride-8 model, ``streamdet.model.carry_over_finest_level``), the heads' residual blocks
    (``streamdet.model.carry_over_head_blocks``) and the backbone stages' widths (wider only,
    ``streamdet.weight_surgery.carry_over_stage_widths``)."""
    from dataclasses import replace

    comparable = replace(
        source.config,
        in_channels=model_config.in_channels,
        quant_levels=model_config.quant_levels,
        anchor_min_size=model_config.anchor_min_size,
        anchor_aspect_ratios=model_config.anchor_aspect_ratios,
        finest_stride=model_config.finest_stride,
        head_blocks=model_config.head_blocks,
        stage_channels=model_config.stage_channels,
    )
    if comparable != model_config:
        raise UserFacingError(
            f"--init {init}: its architecture ({checkpoint_contract(checkpoint, init)[0].modality}, "
            f"{source.config}) differs from "
            f"the one being trained ({model_config}); use the same --modality, --size and activation"
        )
    model = build_model(model_config)
    state_dict = carry_over_anchors(source.state_dict(), source.config, model_config)
    state_dict = carry_over_input_channels(state_dict, source.config, model_config)
    state_dict = carry_over_finest_level(state_dict, source.config, model)
    state_dict = carry_over_head_blocks(state_dict, source.config, model)
    try:
        state_dict = carry_over_stage_widths(state_dict, source.config, model_config)
    except UserFacingError as error:
        raise UserFacingError(f"--init {init}: {error}") from None
    model.load_state_dict(state_dict)
    return model


def _recipe(config: TrainConfig) -> dict[str, Any]:
    values = asdict(config)
    values["augment"] = asdict(config.augment)
    return values


def _validate(
    model: RetinaNet,
    model_config,
    config: TrainConfig,
    train_set: DetectionSamples,
    val_dirs: list[Path],
    progress: bool,
) -> float:
    """Mean over the validation splits of mAP@0.5 (full frames, ``streamdet.evaluate``)."""
    from streamdet.evaluate import evaluate_split
    from streamdet.model import decode_detections

    model.eval()
    device = next(model.parameters()).device
    anchors = make_anchors(model_config).to(device)

    @torch.no_grad()
    def predict(inputs: Tensor) -> list[Tensor]:
        cls_logits, box_deltas = model(pad_input(inputs.to(device)))
        return decode_detections(cls_logits, box_deltas, anchors, image_size=train_set.sensor_size)

    scores = [
        evaluate_split(predict, split, train_set.spec, limit=config.val_limit, progress=progress)["map50"]
        for split in val_dirs
    ]
    model.train()
    return round(float(np.mean(scores)), 4)


AVERAGED_FIELDS = ("config", "class_names", "contract")
"""Checkpoint fields that must agree for two checkpoints' weights to be averaged."""


def average_checkpoints(checkpoints: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    """One checkpoint whose weights are the element-wise mean of ``checkpoints`` ("model soup").

    Meant for runs fine-tuned from one starting point (same architecture, anchors, input windows), whose
    weights lie in one basin: floating-point tensors (weights, BN statistics, Quant-ReLU clips) are
    averaged; integer tensors (BN's batch counters) are taken from the first. The ``train`` record lists
    the sources and their own records. A checkpoint that reads fewer earlier windows than another (the
    ``--init`` of a run that added ``--history-windows``) is first carried over to the most windows,
    as ``--init`` carries it (:func:`with_history_windows`: zero weight on the windows it lacks, the
    same function), and one with narrower backbone stages is widened to the widest
    (:func:`with_stage_widths`, as ``--init`` widens it, with the same copies), so a run can be averaged
    with the model it started from.

    Raises:
        UserFacingError: fewer than two checkpoints, or one whose fields (:data:`AVERAGED_FIELDS`) or
            tensor names and shapes differ from the first's, naming the file.
    """
    if len(checkpoints) < 2:
        raise UserFacingError(f"averaging needs at least two checkpoints, got {len(checkpoints)}")
    windows = max(
        checkpoint_contract(checkpoint, source)[0].history_windows
        for checkpoint, source in zip(checkpoints, sources, strict=True)
    )
    checkpoints = [
        with_history_windows(checkpoint, windows, source)
        for checkpoint, source in zip(checkpoints, sources, strict=True)
    ]
    configs = [RetinaNetConfig.from_dict(checkpoint["config"]) for checkpoint in checkpoints]
    widths = tuple(max(config.stage_channels[stage] for config in configs) for stage in range(4))
    checkpoints = [
        with_stage_widths(checkpoint, widths, source)
        for checkpoint, source in zip(checkpoints, sources, strict=True)
    ]
    first = checkpoints[0]
    first_fields = _averaged_fields(first)
    for checkpoint, source in zip(checkpoints[1:], sources[1:], strict=True):
        fields = _averaged_fields(checkpoint)
        for field in AVERAGED_FIELDS:
            if fields[field] != first_fields[field]:
                raise UserFacingError(
                    f"{source}: {field} {checkpoint.get(field)!r} differs from {sources[0]}'s "
                    f"{first.get(field)!r}; only runs of one architecture and input can be averaged"
                )
        if _tensor_shapes(checkpoint) != _tensor_shapes(first):
            raise UserFacingError(
                f"{source}: its weight tensors differ in names or shapes from {sources[0]}'s"
            )
    state_dict = {}
    for name, tensor in first["state_dict"].items():
        if tensor.is_floating_point():
            stacked = torch.stack([checkpoint["state_dict"][name].double() for checkpoint in checkpoints])
            state_dict[name] = stacked.mean(dim=0).to(tensor.dtype)
        else:
            state_dict[name] = tensor.clone()
    averaged = {key: value for key, value in first.items() if key not in ("state_dict", "train")}
    averaged["state_dict"] = state_dict
    averaged["train"] = {
        "averaged_from": [
            {"source": source, "train": checkpoint.get("train", {})}
            for checkpoint, source in zip(checkpoints, sources, strict=True)
        ]
    }
    return averaged


def with_history_windows(checkpoint: dict[str, Any], history_windows: int, source: object) -> dict[str, Any]:
    """``checkpoint`` made to read ``history_windows`` earlier windows, at least its own: the stem keeps
    its weights for the windows it reads and gets zero weight on the older ones
    (``streamdet.weight_surgery.carry_over_input_channels``), so it computes what it computed before.
    The checkpoint itself when it reads that many already."""
    spec, decoding = checkpoint_contract(checkpoint, source)
    if history_windows < spec.history_windows:
        raise ValueError(
            f"{source}: reads {spec.history_windows} earlier windows, more than {history_windows}"
        )
    if history_windows == spec.history_windows:
        return checkpoint
    config = RetinaNetConfig.from_dict(checkpoint["config"])
    wider = replace(spec, history_windows=history_windows)
    target = replace(config, in_channels=wider.channels)
    return {
        **checkpoint,
        "config": target.to_dict(),
        "contract": contract_record(wider, decoding),
        "state_dict": carry_over_input_channels(checkpoint["state_dict"], config, target),
    }


def with_stage_widths(checkpoint: dict[str, Any], widths: tuple[int, ...], source: object) -> dict[str, Any]:
    """``checkpoint`` with its backbone stages widened to ``widths`` by copied channels
    (``streamdet.weight_surgery.carry_over_stage_widths``, whose fixed seed makes the copies those of a
    ``--init`` to the same widths), so it computes what it computed before; the checkpoint itself when
    its stages have those widths. ``UserFacingError`` naming ``source`` for a narrower width."""
    config = RetinaNetConfig.from_dict(checkpoint["config"])
    if tuple(config.stage_channels) == tuple(widths):
        return checkpoint
    target = replace(config, stage_channels=tuple(widths))
    try:
        state_dict = carry_over_stage_widths(checkpoint["state_dict"], config, target)
    except UserFacingError as error:
        raise UserFacingError(f"{source}: {error}") from None
    return {**checkpoint, "config": target.to_dict(), "state_dict": state_dict}


def _averaged_fields(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint``'s :data:`AVERAGED_FIELDS`, defaults filled in: files written before a field existed
    lack it (a config without ``head_blocks``: the config's default)."""
    fields = {field: checkpoint.get(field) for field in AVERAGED_FIELDS}
    if fields["config"]:
        fields["config"] = RetinaNetConfig.from_dict(fields["config"]).to_dict()
    return fields


def _tensor_shapes(checkpoint: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in checkpoint["state_dict"].items()}


def relevel_checkpoint(checkpoint: dict[str, Any], levels: int, source: str) -> dict[str, Any]:
    """``checkpoint`` with every Quant-ReLU read at ``levels`` levels: the same weights and clips, only
    ``config.quant_levels`` changed, and a ``train`` record naming the source, its levels and its own record.

    A Quant-ReLU computes ``c floor(clamp(x / c, 0, 1) L + 0.5) / L``; with more levels it follows the
    clipped ReLU more closely, and every value of ``L`` levels is one of ``k L`` levels. Converted with burst
    neurons (``N = L`` spikes per step, one step per window from fresh membranes) the spiking network
    reproduces the Quant-ReLU network at any ``L`` in one step, so on a dense engine a finer ``L`` costs no
    time; IF neurons do not read ``L`` (their network is the same at any ``L``). Whether a model trained at
    one ``L`` scores better at another is measured, not assumed (docs/model-card.md, "Quant-ReLU levels").

    Raises:
        UserFacingError: a checkpoint without Quant-ReLU activations, or ``levels`` below 1.
    """
    config = RetinaNetConfig.from_dict(checkpoint["config"])
    if config.activation != "quant":
        raise UserFacingError(
            f"{source}: activation {config.activation!r} has no Quant-ReLU levels to change "
            "(only models trained with --activation quant have them)"
        )
    if int(levels) < 1:
        raise UserFacingError(f"--quant-levels must be at least 1, got {levels}")
    relevelled = {key: value for key, value in checkpoint.items() if key not in ("config", "train")}
    relevelled["config"] = {**config.to_dict(), "quant_levels": int(levels)}
    relevelled["train"] = {
        "relevelled_from": {
            "source": source,
            "quant_levels": config.quant_levels,
            "train": checkpoint.get("train", {}),
        }
    }
    return relevelled


def relevel_checkpoint_file(path: str | Path, levels: int, out: str | Path) -> dict[str, Any]:
    """Read ``path`` (a name or file), write it read at ``levels`` levels (:func:`relevel_checkpoint`)."""
    checkpoint = read_checkpoint(path)
    model_from_checkpoint(checkpoint, path)  # config and weights agree
    relevelled = relevel_checkpoint(checkpoint, levels, str(path))
    save_checkpoint(out, relevelled)
    return relevelled


def average_checkpoint_files(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Read ``paths`` (names or files), write their average (:func:`average_checkpoints`) to ``out``."""
    checkpoints = [read_checkpoint(path) for path in paths]
    for checkpoint, path in zip(checkpoints, paths, strict=True):
        model_from_checkpoint(checkpoint, path)  # config and weights agree
    averaged = average_checkpoints(checkpoints, [str(path) for path in paths])
    save_checkpoint(out, averaged)
    return averaged
