"""The torch ``Dataset`` of a built split: one model input and its boxes per COCO image.

A sample is the window ``(t_us - window_us, t_us]`` of a sequence (``docs/architecture.md``, "Datasets
on disk"). :class:`DetectionSamples` keeps the window's *raw* measurement, from which the model input
is a linear map (clipped):

- ``events``: ``raw = counts [2, H, W]`` (OFF, ON events per pixel), input ``min(counts / event_scale, 1)``
  (:func:`streamdet.binning.events_to_input`);
- ``intensity``: ``raw = rate [1, H, W]`` (fraction of spike frames in which the pixel fired), input
  ``raw`` (:func:`streamdet.binning.spike_frames_to_input`).

A model with ``history_windows = N`` also reads the ``N`` windows before it, ``(t_us - (k + 1) window_us,
t_us - k window_us]`` for ``k = 1..N``, each mapped the same way and stacked after the newest window's
channels: ``[OFF, ON]`` of the newest window, then of the one before, ... A window that starts before
the recording holds only what was recorded (zeros before its start), as at the start of a live stream.

Augmentations (``streamdet.train``) act on the raw measurement before this map, so "twice as many
events" or "a brighter scene" stay physically meaningful.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from streamdet.binning import (
    events_to_counts,
    identity_mapping,
    raw_to_input,
    sensor_mapping,
    spike_frames_to_input,
)
from streamdet.contract import MODALITY_CHANNELS, Geometry, InputSpec, input_channels
from streamdet.errors import UserFacingError

if TYPE_CHECKING:
    from streamdet.model import DetectorBundle

Target = dict[str, Tensor]
"""``{"boxes": float32 [G, 4], "labels": int64 [G], "ignore_boxes": float32 [M, 4], "image_id": int64 []}``
(boxes ``x1, y1, x2, y2`` in pixels; labels index ``CLASS_NAMES``)."""

Augment = Callable[[Tensor, Target, np.random.Generator], tuple[Tensor, Target]]
"""``(raw, target, rng) -> (raw, target)``: a random transform of one sample's raw measurement."""


def split_targets(targets: dict[str, np.ndarray], image_id: int) -> Target:
    """Tensors of one image's boxes, with ignored boxes (``iscrowd`` / ``ignore``) kept apart."""
    ignore = targets["ignore"]
    return {
        "boxes": torch.from_numpy(targets["boxes"][~ignore]).float().reshape(-1, 4),
        "labels": torch.from_numpy(targets["labels"][~ignore]).long(),
        "ignore_boxes": torch.from_numpy(targets["boxes"][ignore]).float().reshape(-1, 4),
        "image_id": torch.tensor(image_id, dtype=torch.long),
    }


class DetectionSamples(torch.utils.data.Dataset):
    """Samples of one or more built splits for one modality.

    ``samples[i] -> (input [C, H, W] float32 in [0, 1], target)``; raw measurements are cached in memory
    (events as counts saturated at 255, uint8, or float16 when pooled; rates as float16) after the first read.

    Args:
        split_dirs: split directories (each with ``annotations.json``), e.g. ``data/train``.
        modality: ``events`` or ``intensity``.
        event_scale: events per pixel that map to input 1 (events modality).
        window_us: the model's window, ending at each image's ``t_us`` (``None``: the window the first
            split was built with). It may differ from the window a split was built with
            (:class:`streamdet.dataset.DatasetSplit`).
        augment: random transform of the raw measurement (training), or ``None``.
        seed: seed of the augmentation random numbers (item ``i`` of epoch ``e`` uses ``(seed, e, i)``).
        history_windows: earlier windows stacked as extra channels (module docstring). Windows are
            cached by their end time, so a history window that is another image's window is read once.
        geometry: how the splits' sensor is brought to the network input (``streamdet.contract.Geometry``)
            of a network trained at ``input_size``; ``None``: the sensor's own pixels. Targets stay in the
            sensor's pixels (:attr:`mapping` takes boxes back, ``streamdet.binning.boxes_to_sensor``).
        input_size: ``(W, H)`` the network was trained at (with ``geometry``).
    """

    def __init__(
        self,
        split_dirs: Sequence[str | Path],
        modality: str,
        event_scale: float,
        window_us: int | None = None,
        augment: Augment | None = None,
        seed: int = 0,
        history_windows: int = 0,
        geometry: Geometry | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        from streamdet.dataset import DatasetSplit

        if modality not in MODALITY_CHANNELS:
            raise UserFacingError(f"unknown modality {modality!r}; choose events or intensity")
        input_channels(modality, history_windows)  # validates history_windows
        self.history_windows = int(history_windows)
        if not split_dirs:
            raise UserFacingError("no dataset split given")
        self.modality = modality
        self.event_scale = float(event_scale)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        first = DatasetSplit(split_dirs[0], cache_events=False, window_us=window_us)
        self.window_us = first.window_us
        self.splits = [first] + [
            DatasetSplit(path, cache_events=False, window_us=self.window_us) for path in split_dirs[1:]
        ]
        self.sensor_size = self.splits[0].sensor_size
        for split in self.splits:
            if split.sensor_size != self.sensor_size:
                raise UserFacingError(
                    f"{split.split_dir}: sensor {split.sensor_size[0]}x{split.sensor_size[1]} differs from "
                    f"{self.sensor_size[0]}x{self.sensor_size[1]}"
                )
            if not any(not a.get("ignore", 0) for a in split.coco["annotations"]):
                raise UserFacingError(
                    f"{split.split_dir}: no annotations to learn or evaluate from "
                    "(0 boxes that are not ignored)"
                )
        self.mapping = identity_mapping(self.sensor_size)
        if geometry is not None:
            size = input_size or self.sensor_size
            spec = InputSpec(modality, size, self.window_us, event_scale, history_windows)
            self.mapping = sensor_mapping(self.sensor_size, spec, geometry)
        self.model_spec: InputSpec | None = None
        self.index = [(s, image) for s, split in enumerate(self.splits) for image in split.images]
        self._cache: dict[tuple[int, str, int], np.ndarray] = {}
        self._events: dict[tuple[int, str], np.ndarray] = {}

    @classmethod
    def for_model(
        cls,
        split_dirs: Sequence[str | Path],
        spec: InputSpec,
        geometry: Geometry | None = None,
        augment: Augment | None = None,
    ) -> DetectionSamples:
        """The samples a model of ``spec`` reads from splits (its window, scale, history windows), the
        splits' sensor brought to its input by ``geometry``."""
        samples = cls(
            split_dirs,
            spec.modality,
            spec.event_scale,
            window_us=spec.window_us,
            augment=augment,
            history_windows=spec.history_windows,
            geometry=geometry,
            input_size=spec.sensor_size,
        )
        samples.model_spec = spec
        return samples

    @property
    def spec(self) -> InputSpec:
        """The input of the model these samples were made for (:meth:`for_model`), every field of it kept,
        at this split's input size; for training samples, the input a model trained on them consumes."""
        if self.model_spec is not None:
            return replace(self.model_spec, sensor_size=self.mapping.input_size)
        return InputSpec(
            self.modality, self.mapping.input_size, self.window_us, self.event_scale, self.history_windows
        )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def channels(self) -> int:
        """Input channels: the modality's, times the windows read (1 + ``history_windows``)."""
        return input_channels(self.modality, self.history_windows)

    def image(self, i: int) -> dict:
        """The COCO image record of sample ``i``."""
        return self.index[i][1]

    def split_of(self, i: int) -> int:
        """Index into ``split_dirs`` (and :attr:`splits`) of the split sample ``i`` comes from."""
        return self.index[i][0]

    def _events_of(self, split_index: int, sequence: str, t_us: int) -> np.ndarray:
        key = (split_index, sequence)
        if key not in self._events:
            self._events.clear()
            self._events[key] = self.splits[split_index].sequence_events(sequence)
        events = self._events[key]
        lo, hi = np.searchsorted(events["t"], [t_us - self.window_us, t_us], side="right")
        return events[lo:hi]

    def _window(self, split_index: int, image: dict, t_us: int) -> np.ndarray:
        """Raw measurement of the window ending at ``t_us`` of the image's sequence (cached)."""
        key = (split_index, image["sequence"], t_us)
        if key not in self._cache:
            if self.modality == "events":
                events = self._events_of(split_index, image["sequence"], t_us)
                counts = events_to_counts(events, self.sensor_size, self.mapping)
                exact = np.uint8 if self.mapping.scale == 1.0 else np.float16  # pooled counts are fractional
                self._cache[key] = np.minimum(counts, 255).astype(exact)
            elif t_us <= 0:
                width, height = self.mapping.input_size
                self._cache[key] = np.zeros((1, height, width), dtype=np.float16)
            else:
                frames = self.splits[split_index].spike_frames({**image, "t_us": t_us})
                self._cache[key] = spike_frames_to_input(frames, self.mapping).astype(np.float16)
        return self._cache[key]

    def raw(self, i: int) -> Tensor:
        """Raw measurement of sample ``i``: counts ``[2, H, W]`` or rate ``[1, H, W]`` per window read
        (newest first), float32."""
        split_index, image = self.index[i]
        t_us = int(image["t_us"])
        windows = [
            self._window(split_index, image, t_us - k * self.window_us)
            for k in range(1 + self.history_windows)
        ]
        return torch.from_numpy(np.concatenate(windows).astype(np.float32))

    def preload(self, progress: bool = False) -> None:
        """Read every sample's raw measurement into the cache, sequence by sequence (each file read once)."""
        from tqdm import tqdm

        for i in tqdm(range(len(self)), desc="loading", unit="img", disable=not progress, leave=False):
            self.raw(i)
        self._events.clear()

    def target(self, i: int) -> Target:
        """Boxes of sample ``i`` (see :data:`Target`)."""
        split_index, image = self.index[i]
        return split_targets(self.splits[split_index].targets(image), int(image["id"]))

    def __getitem__(self, i: int) -> tuple[Tensor, Target]:
        raw, target = self.raw(i), self.target(i)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            raw, target = self.augment(raw, target, rng)
        return raw_to_input(raw, self.modality, self.event_scale), target


def collate_samples(batch: list[tuple[Tensor, Target]]) -> tuple[Tensor, list[Target]]:
    """Stack inputs ``[B, C, H, W]``; keep targets as a list."""
    inputs, targets = zip(*batch, strict=True)
    return torch.stack(inputs), list(targets)


def split_inputs(
    split_dir: str | Path,
    bundle: DetectorBundle,
    limit: int | None,
    batch_size: int,
    spread: bool = False,
    geometry: Geometry | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Batches ``(image ids, padded ANN inputs [B, C, H, W])`` of a split's windows: the first ``limit``
    in file order, or with ``spread`` ``limit`` windows evenly spaced over the split (every sequence and
    preset, not just the first ones); the split's sensor brought to the model's input by ``geometry``
    (``None``: as it is, see :meth:`DetectionSamples.for_model`)."""
    from streamdet.model import pad_input

    samples = DetectionSamples.for_model([split_dir], bundle.spec, geometry)
    count = len(samples) if limit is None else max(0, min(int(limit), len(samples)))
    if spread:
        chosen = sorted({round(i * (len(samples) - 1) / max(count - 1, 1)) for i in range(count)})
    else:
        chosen = list(range(count))
    for start in range(0, len(chosen), batch_size):
        indices = chosen[start : start + batch_size]
        ids = [int(samples.image(i)["id"]) for i in indices]
        yield ids, pad_input(torch.stack([samples[i][0] for i in indices]))
