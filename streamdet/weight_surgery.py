"""Training-time weight surgery: carrying a trained model's weights into a changed architecture
(other anchors, more input channels, a finer pyramid level, deeper heads) for fine-tuning
(``streamdet train --init``)."""

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
