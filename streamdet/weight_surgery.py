"""Training-time weight surgery: carrying a trained model's weights into a changed architecture
(other anchors, more input channels, a finer pyramid level, deeper heads, wider backbone stages) for
fine-tuning (``streamdet train --init``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from streamdet.errors import UserFacingError
from streamdet.model import RetinaNet, RetinaNetConfig


def carry_over_anchors(
    state_dict: dict[str, Tensor], source: RetinaNetConfig, target: RetinaNetConfig
) -> dict[str, Tensor]:
    """``state_dict`` of a model with ``source``'s anchors, made to fit ``target``'s anchors.

    Only the two heads' predictors depend on the anchors (``A * outputs`` channels, anchor-major, anchor
    ``a = size * R + ratio``). Each anchor of ``target`` takes the predictor rows of ``source``'s anchor
    of the same size index whose aspect ratio is nearest in log scale, so a ratio both configs have keeps
    its rows exactly and a new ratio starts from its nearest neighbour. Everything else is unchanged.
    """
    nearest = [
        min(
            range(len(source.anchor_aspect_ratios)),
            key=lambda i: abs(math.log(source.anchor_aspect_ratios[i] / ratio)),
        )
        for ratio in target.anchor_aspect_ratios
    ]
    source_count, target_count = len(source.anchor_aspect_ratios), len(target.anchor_aspect_ratios)
    rows = [size * source_count + nearest[r] for size in range(3) for r in range(target_count)]
    result = dict(state_dict)
    for head in ("cls_head", "box_head"):
        for name in ("weight", "bias"):
            key = f"{head}.predictor.{name}"
            tensor = state_dict[key]
            per_anchor = tensor.unflatten(0, (source.anchors_per_location, -1))
            result[key] = per_anchor[rows].flatten(0, 1).clone()
    return result


def carry_over_input_channels(
    state_dict: dict[str, Tensor], source: RetinaNetConfig, target: RetinaNetConfig
) -> dict[str, Tensor]:
    """``state_dict`` of a model with ``source.in_channels`` inputs, made to read ``target.in_channels``.

    Only the stem's convolution sees the input. Input channels are windows stacked newest first
    (``streamdet.samples``), so the channels both configs have keep their weights and extra (older)
    windows get zero weights: the new model computes exactly what the old one did until training
    teaches it to use the extra windows. Fewer channels than the source drop the oldest windows.
    """
    key = "backbone.stem.0.weight"
    weight = state_dict[key]
    kept = min(source.in_channels, target.in_channels)
    carried = weight.new_zeros((weight.shape[0], target.in_channels, *weight.shape[2:]))
    carried[:, :kept] = weight[:, :kept]
    return {**state_dict, key: carried}


def _silence(state_dict: dict[str, Tensor], layer: str, config: RetinaNetConfig) -> None:
    """Make the conv-BN-activation ``layer`` (a :class:`ConvBNAct`'s prefix in ``state_dict``) output
    zero everywhere while it still learns: BN scale 0 and a shift a quarter of a Quant-ReLU level
    above zero (``clip / (4 L)``, which the activation rounds down to 0, in training as in evaluation)
    or ``1e-3`` for a plain ReLU (its output is then ``1e-3``, not 0). A shift of exactly 0 would sit
    on the activation's kink, where its gradient is zero, and the layer would never learn."""
    clip_key = f"{layer}.2.clip"
    shift = float(state_dict[clip_key].abs()) / (4 * config.quant_levels) if clip_key in state_dict else 1e-3
    state_dict[f"{layer}.1.weight"] = torch.zeros_like(state_dict[f"{layer}.1.weight"])
    state_dict[f"{layer}.1.bias"] = torch.full_like(state_dict[f"{layer}.1.bias"], shift)


def carry_over_finest_level(
    state_dict: dict[str, Tensor], source: RetinaNetConfig, model: RetinaNet
) -> dict[str, Tensor]:
    """``state_dict`` of a model with ``source``'s FPN levels, made to fit ``model``'s.

    A stride-8 source gives a stride-4 ``model`` its P2 modules as follows: ``output_fine`` (and a
    transposed ``upsample_fine``) copy P3's, and ``lateral_fine`` keeps ``model``'s fresh convolution
    silenced (:func:`_silence`), so it adds nothing yet and P2 starts as P3's features
    upsampled: the shared heads, which see an object twice as many cells wide against anchors half as
    large, then predict at P2 what they predict at P3. Training teaches ``lateral_fine`` to add C2's
    finer detail. A ``model`` without P2 drops the source's P2 modules; same levels: unchanged.
    """
    fine = model.config.finest_stride == 4
    result = {key: value for key, value in state_dict.items() if fine or "_fine." not in key}
    if source.finest_stride == 4 or not fine:
        return result
    for key, value in model.state_dict().items():
        if key.startswith("fpn.lateral_fine."):
            result[key] = value.clone()
    _silence(result, "fpn.lateral_fine", model.config)
    for fine, coarse in (("fpn.output_fine.", "fpn.output.0."), ("fpn.upsample_fine.", "fpn.upsample.0.")):
        for key, value in state_dict.items():
            if key.startswith(coarse):
                result[fine + key[len(coarse) :]] = value.clone()
    return result


def carry_over_head_blocks(
    state_dict: dict[str, Tensor], source: RetinaNetConfig, model: RetinaNet
) -> dict[str, Tensor]:
    """``state_dict`` of a model with ``source``'s head towers, made to fit ``model``'s head blocks.

    Blocks ``model`` has beyond ``source``'s keep ``model``'s fresh convolutions with their last layer
    silenced (:func:`_silence`): the residual branch outputs 0, so each new block passes its input
    through unchanged, in training as in evaluation, and a Quant-ReLU model computes exactly what the
    source did until training grows the branch. Blocks beyond ``model``'s are dropped. Both configs must
    have the same ``head_convs``.
    """
    target = model.config
    if source.head_convs != target.head_convs:
        raise UserFacingError(
            f"head_convs differ ({source.head_convs} vs {target.head_convs}); only head_blocks can change"
        )
    kept = min(source.head_blocks, target.head_blocks)

    def block_of(key: str) -> int | None:
        """The head block a key belongs to (0 = the first block), or ``None``."""
        parts = key.split(".")
        if parts[0] in ("cls_head", "box_head") and parts[1] == "tower":
            index = int(parts[2]) - target.head_convs
            return index if index >= 0 else None
        return None

    result = {}
    for key, value in state_dict.items():
        block = block_of(key)
        if block is None or block < kept:
            result[key] = value
    for key, value in model.state_dict().items():
        block = block_of(key)
        if block is not None and block >= kept:
            result[key] = value.clone()
    for head in ("cls_head", "box_head"):
        for block in range(kept, target.head_blocks):
            _silence(result, f"{head}.tower.{target.head_convs + block}.body.1", target)
    return result


WIDEN_SEED = 0
"""Seed of :func:`carry_over_stage_widths`' choices (which channels are copied, how their consumers'
weights are split), fixed so that one source widened to one set of widths is always the same file."""


def carry_over_stage_widths(
    state_dict: dict[str, Tensor], source: RetinaNetConfig, target: RetinaNetConfig
) -> dict[str, Tensor]:
    """``state_dict`` of a model with ``source.stage_channels``, made to fit the wider ``target`` by
    copying channels (Net2WiderNet, Chen, Goodfellow and Shlens 2016), so that the wider model computes
    what the source did.

    Each backbone stage widened from ``c`` to ``c' > c`` channels keeps its ``c`` channels and gives each
    new one a copy of a randomly chosen old channel ``j``: the producer's convolution rows and BN entries
    (weight, bias, running statistics; the Quant-ReLU clip is one per layer). The stage's output (the
    stream of its residual adds, copied the same way in every block's last layer so the adds stay
    consistent) and the inside of each block are widened alike. Every consumer of a copied channel (the
    block's next convolution, the next stage's strided convolution, the FPN's lateral) splits ``j``'s
    input weight among ``j`` and its copies with random positive shares that sum to 1 per output
    channel: the sum it computes is unchanged, and the copies, fed different gradients, grow apart in
    training. Exact up to float rounding (a pre-activation on a Quant-ReLU half-level boundary may round
    the other way). Only ``stage_channels`` may differ; narrower stages are refused.
    """
    if len(source.stage_channels) != len(target.stage_channels) or any(
        new < old for old, new in zip(source.stage_channels, target.stage_channels, strict=True)
    ):
        raise UserFacingError(
            f"stage_channels {tuple(target.stage_channels)} cannot be carried over from "
            f"{tuple(source.stage_channels)}: stages can only be widened"
        )
    generator = torch.Generator().manual_seed(WIDEN_SEED)
    result = dict(state_dict)
    for stage, (old, new) in enumerate(zip(source.stage_channels, target.stage_channels, strict=True)):
        if new == old:
            continue
        stream = _copied_channels(old, new, generator)
        _widen_producer(result, f"backbone.stages.{stage}.0", stream)
        for block in range(source.stage_blocks[stage]):
            body = f"backbone.stages.{stage}.{block + 1}.body"
            inner = _copied_channels(old, new, generator)
            _split_consumer(result, f"{body}.0.0", stream, generator)
            _widen_producer(result, f"{body}.0", inner)
            _split_consumer(result, f"{body}.1.0", inner, generator)
            _widen_producer(result, f"{body}.1", stream)
        for consumer in _stage_consumers(stage, len(source.stage_channels)):
            if f"{consumer}.weight" in result:  # no lateral_fine without a stride-4 level
                _split_consumer(result, consumer, stream, generator)
    return result


def _stage_consumers(stage: int, stages: int) -> list[str]:
    """The convolutions that read backbone stage ``stage``'s output: the next stage's strided
    convolution and the FPN's lateral (C2's is ``lateral_fine``, C3..C5's ``lateral.0..2``)."""
    lateral = "fpn.lateral_fine.0" if stage == 0 else f"fpn.lateral.{stage - 1}.0"
    return [lateral] + ([f"backbone.stages.{stage + 1}.0.0"] if stage + 1 < stages else [])


def _copied_channels(old: int, new: int, generator: torch.Generator) -> Tensor:
    """``[new]`` source channel of each channel of a layer widened from ``old`` to ``new``: ``0..old-1``
    themselves, then random old channels."""
    extra = torch.randint(0, old, (new - old,), generator=generator)
    return torch.cat([torch.arange(old), extra])


def _widen_producer(state_dict: dict[str, Tensor], layer: str, channels: Tensor) -> None:
    """Widen the outputs of the conv-BN-activation ``layer`` to ``channels`` (source channel per output)."""
    state_dict[f"{layer}.0.weight"] = state_dict[f"{layer}.0.weight"][channels].clone()
    for name in ("weight", "bias", "running_mean", "running_var"):
        state_dict[f"{layer}.1.{name}"] = state_dict[f"{layer}.1.{name}"][channels].clone()


def _split_consumer(
    state_dict: dict[str, Tensor], conv: str, channels: Tensor, generator: torch.Generator
) -> None:
    """Widen the inputs of convolution ``conv`` (a ``.weight`` prefix) to ``channels``: each source
    channel's weight is shared among its copies with random positive shares summing to 1 per output."""
    weight = state_dict[f"{conv}.weight"]
    shares = torch.rand((weight.shape[0], len(channels)), generator=generator, dtype=torch.float64) + 0.5
    totals = torch.zeros((weight.shape[0], weight.shape[1]), dtype=torch.float64)
    totals.index_add_(1, channels, shares)
    shares = shares / totals[:, channels]
    widened = weight.double()[:, channels] * shares[:, :, None, None]
    state_dict[f"{conv}.weight"] = widened.to(weight.dtype)


def new_layers(source: RetinaNetConfig, target: RetinaNetConfig) -> tuple[str, ...]:
    """Prefixes of the modules that a ``target`` model carried over from a ``source`` model starts
    fresh (:func:`carry_over_finest_level`'s P2 lateral, :func:`carry_over_head_blocks`' new blocks):
    layers to train from scratch while the rest fine-tunes."""
    prefixes = []
    if source.finest_stride == 8 and target.finest_stride == 4:
        prefixes.append("fpn.lateral_fine.")
    for block in range(source.head_blocks, target.head_blocks):
        prefixes += [f"{head}.tower.{target.head_convs + block}." for head in ("cls_head", "box_head")]
    return tuple(prefixes)
