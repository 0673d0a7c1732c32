"""The typed contract between stages: what a detector consumes, how it decodes, what subscribers get.

- :class:`InputSpec`: the input a trained detector was built for (modality, the sensor size it was trained
  at, its window, the event count that saturates a pixel, the earlier windows it also reads).
- :class:`Geometry`: how a stream of any sensor size is brought to that input (scale with linear count
  pooling, crop a region, or run the fully convolutional network at the sensor's own size); chosen per
  stream from its header (``streamdet.binning.SensorMapping`` is the resolved mapping).
- :class:`Decoding`: head outputs -> boxes (score threshold, top-k, NMS, detections per image, box voting).
- :class:`BoxFilter`: what a live subscriber is sent (publishing score threshold, at most ``max_boxes``
  rows, only some classes, never a box with no area or outside the sensor).

Every model file (ANN checkpoint, converted SNN) stores ``InputSpec`` and ``Decoding`` as one record,
:func:`contract_record` / :func:`read_contract_record`, versioned by :data:`CONTRACT_FORMAT`.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

from streamdet.errors import UserFacingError

MODALITY_CHANNELS: dict[str, int] = {"events": 2, "intensity": 1}
"""Input channels of each modality over one window (events: OFF, ON counts; intensity: spike rate)."""

GEOMETRY_MODES: tuple[str, ...] = ("scale", "crop", "native", "auto")
"""How a stream's sensor is brought to the network input (:class:`Geometry`)."""

CONTRACT_FORMAT = "streamdet-contract/1"
"""``format`` of the record a model file stores its :class:`InputSpec` and :class:`Decoding` in."""


def input_channels(modality: str, history_windows: int = 0) -> int:
    """Input channels of a model that reads its window and ``history_windows`` windows before it, each
    as :data:`MODALITY_CHANNELS` channels (newest window first)."""
    if modality not in MODALITY_CHANNELS:
        raise UserFacingError(f"unknown modality {modality!r}; choose events or intensity")
    if int(history_windows) < 0:
        raise UserFacingError(f"history windows must be 0 or more, got {history_windows}")
    return MODALITY_CHANNELS[modality] * (1 + int(history_windows))


def _size_pair(name: str, value: Any) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value)
    except (TypeError, ValueError):
        raise UserFacingError(f"{name} must be (width, height), got {value!r}") from None
    if width < 1 or height < 1:
        raise UserFacingError(f"{name} must be positive, got {width}x{height}")
    return width, height


@dataclass(frozen=True)
class InputSpec:
    """What a detector consumes.

    Attributes:
        modality: ``events`` (2 channels: OFF, ON counts per pixel) or ``intensity`` (1 channel: spike
            rate per pixel).
        sensor_size: ``(width, height)`` in pixels of the input the network was trained at; a stream of
            another size is brought to it by a :class:`Geometry`.
        window_us: one input window, microseconds (the ANN input is the window ``(t - window_us, t]``).
        event_scale: events per pixel and polarity that map to input 1.0 (events modality:
            ``x = min(count / event_scale, 1)``).
        history_windows: earlier windows read as more channels, newest first (``streamdet.samples``).
    """

    modality: str
    sensor_size: tuple[int, int]
    window_us: int
    event_scale: float = 1.0
    history_windows: int = 0

    def __post_init__(self) -> None:
        input_channels(self.modality, self.history_windows)
        object.__setattr__(self, "sensor_size", _size_pair("sensor_size", self.sensor_size))
        if int(self.window_us) < 1:
            raise UserFacingError(f"window_us must be at least 1, got {self.window_us}")
        if not float(self.event_scale) > 0:
            raise UserFacingError(f"event_scale must be positive, got {self.event_scale}")
        object.__setattr__(self, "window_us", int(self.window_us))
        object.__setattr__(self, "event_scale", float(self.event_scale))
        object.__setattr__(self, "history_windows", int(self.history_windows))

    @property
    def channels(self) -> int:
        """Input channels: the modality's, times the windows read (1 + ``history_windows``)."""
        return input_channels(self.modality, self.history_windows)

    @property
    def wire_kind(self) -> str:
        """The wire kind of the streams this detector reads: ``events`` or ``spikes``."""
        return "events" if self.modality == "events" else "spikes"


@dataclass(frozen=True)
class Geometry:
    """How a stream's sensor is brought to the network input; the same for every stream of a detector,
    resolved per stream from its sensor size (``streamdet.binning.sensor_mapping``).

    Attributes:
        mode: ``scale``: the region is shrunk by one factor ``s = min(1, W_in / w, H_in / h)`` on both
            axes (aspect ratio kept, the rest padded with zeros; a smaller sensor is padded, never
            enlarged), and each event adds ``1 / n`` to the input pixel it falls in, ``n`` the number of
            sensor pixels that pixel covers (about ``1 / s^2``), so a pixel holds the mean count of the
            sensor pixels it covers and the input stays linear in the counts.
            ``crop``: the region is taken at the sensor's own pixels, and must fit the network input
            (default region: the input's size, centred). ``native``: the fully convolutional network runs
            at the region's own size (cost grows with its pixels). ``auto``: ``native`` where the region,
            padded to the network's stride, has no more pixels than the trained input (so a step costs
            no more than at the trained size), else ``scale``.
        roi: ``(x, y, width, height)`` of the sensor region used, pixels; ``None`` = the whole sensor
            (``scale``, ``native``) or the centred input-sized window (``crop``).
    """

    mode: str = "scale"
    roi: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in GEOMETRY_MODES:
            raise UserFacingError(f"geometry must be one of {', '.join(GEOMETRY_MODES)}, got {self.mode!r}")
        if self.roi is not None:
            try:
                x, y, width, height = (int(v) for v in self.roi)
            except (TypeError, ValueError):
                raise UserFacingError(f"roi must be x,y,width,height, got {self.roi!r}") from None
            if x < 0 or y < 0 or width < 1 or height < 1:
                raise UserFacingError(f"roi {x},{y},{width},{height}: x, y must be >= 0, width, height >= 1")
            object.__setattr__(self, "roi", (x, y, width, height))

    def describe(self) -> str:
        """``scale``, ``crop 10,20,346x260``: one short phrase for logs."""
        if self.roi is None:
            return self.mode
        x, y, width, height = self.roi
        return f"{self.mode} of region {x},{y},{width}x{height}"


@dataclass(frozen=True)
class Decoding:
    """Head outputs -> boxes (``streamdet.model.decode_detections``), with torchvision's RetinaNet
    defaults where we kept them.

    Attributes:
        score_thresh: sigmoid score below which a candidate is dropped before NMS (0.05: evaluation keeps
            low scores for mAP; live subscribers get :class:`BoxFilter` on top).
        nms_thresh: IoU above which class-wise NMS suppresses the lower-scored box.
        topk: candidates decoded before NMS.
        max_dets: boxes kept per image after NMS.
        vote_iou: box voting IoU (the kept box becomes the score-weighted mean of its overlapping
            candidates), or ``None`` for no voting.
    """

    score_thresh: float = 0.05
    nms_thresh: float = 0.4
    topk: int = 1000
    max_dets: int = 100
    vote_iou: float | None = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_thresh < 1.0:
            raise UserFacingError(f"score_thresh must be in [0, 1), got {self.score_thresh}")
        if not 0.0 < self.nms_thresh <= 1.0:
            raise UserFacingError(f"nms_thresh must be in (0, 1], got {self.nms_thresh}")
        for name in ("topk", "max_dets"):
            if int(getattr(self, name)) < 1:
                raise UserFacingError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.vote_iou is not None and not 0.0 < self.vote_iou <= 1.0:
            raise UserFacingError(f"vote_iou must be in (0, 1] or None, got {self.vote_iou}")


PUBLISH_MIN_SCORE = 0.4
"""Default publishing score threshold of ``detect`` (``--min-score``): see ``docs/streaming.md``,
"What subscribers get", for the validation figures it was chosen on."""

PUBLISH_MAX_BOXES = 50
"""Default ``--max-boxes``: rows per published detections message at most."""


@dataclass(frozen=True)
class BoxFilter:
    """What a live subscriber is sent of a window's decoded boxes (``streamdet.binning.filter_boxes``).

    Attributes:
        min_score: boxes scoring below this are not published.
        max_boxes: at most this many rows, highest scores first.
        classes: class names kept (``None``: all the model's classes).
    """

    min_score: float = PUBLISH_MIN_SCORE
    max_boxes: int = PUBLISH_MAX_BOXES
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise UserFacingError(f"min_score must be in [0, 1], got {self.min_score}")
        if int(self.max_boxes) < 1:
            raise UserFacingError(f"max_boxes must be at least 1, got {self.max_boxes}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(name) for name in self.classes))
            if not self.classes:
                raise UserFacingError("classes must name at least one class")

    def check_classes(self, class_names: tuple[str, ...]) -> None:
        """UserFacingError naming any class of ``classes`` the model does not know."""
        unknown = [name for name in self.classes or () if name not in class_names]
        if unknown:
            raise UserFacingError(
                f"--classes {','.join(unknown)}: not a class of the model ({', '.join(class_names)})"
            )


EVALUATION_FILTER = BoxFilter(min_score=0.0, max_boxes=10**9)
"""No filtering beyond the model's decoding: what mAP is computed on."""


def contract_record(spec: InputSpec, decoding: Decoding) -> dict[str, Any]:
    """The one record a model file stores its contract in: ``{"format", "input": {...}, "decoding": {...}}``
    (plain JSON-able values)."""
    inputs = asdict(spec)
    inputs["sensor_size"] = list(spec.sensor_size)
    return {"format": CONTRACT_FORMAT, "input": inputs, "decoding": asdict(decoding)}


def read_contract_record(record: Any, source: object) -> tuple[InputSpec, Decoding]:
    """``(InputSpec, Decoding)`` of a stored record; UserFacingError naming ``source`` and the problem for
    a record of another format or version, a missing field or an unknown one."""
    if not isinstance(record, dict) or record.get("format") != CONTRACT_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise UserFacingError(
            f"{source}: contract record has format {found!r}, expected {CONTRACT_FORMAT!r} "
            "(a file from another streamdet version; re-save it with this one)"
        )
    spec = _dataclass_from(InputSpec, record.get("input"), f"{source}: input")
    decoding = _dataclass_from(Decoding, record.get("decoding"), f"{source}: decoding")
    return spec, decoding


def _dataclass_from(cls: type, values: Any, source: str):
    if not isinstance(values, dict):
        raise UserFacingError(f"{source} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserFacingError(f"{source}: unknown field(s) {unknown}")
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(name for name in required if name not in values)
    if missing:
        raise UserFacingError(f"{source}: missing field(s) {missing}")
    try:
        return cls(**values)
    except TypeError as error:
        raise UserFacingError(f"{source}: {error}") from None


def spec_from_legacy_checkpoint(checkpoint: dict[str, Any], default_size: tuple[int, int]) -> InputSpec:
    """The :class:`InputSpec` of an ANN checkpoint that stores its fields loose (``streamdet-ann/1``)."""
    return InputSpec(
        modality=checkpoint["modality"],
        sensor_size=tuple(checkpoint.get("sensor_size", default_size)),
        window_us=int(checkpoint.get("window_us", 50_000)),
        event_scale=float(checkpoint.get("event_scale", 1.0)),
        history_windows=int(checkpoint.get("history_windows", 0)),
    )


def with_sensor_size(spec: InputSpec, sensor_size: tuple[int, int]) -> InputSpec:
    """``spec`` at another input size (a network run natively on a sensor)."""
    return replace(spec, sensor_size=tuple(sensor_size))
