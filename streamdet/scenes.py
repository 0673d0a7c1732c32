"""Procedural maritime, traffic, street and harbour scenes with ground truth per time stamp.

A scene is a pure function of time: :meth:`Scene.render` gives the luminance frame at ``t_us``
(float32 ``[H, W]`` in [0, 1], the input of the sensor emulators in :mod:`streamdet.encoders`) and
:meth:`Scene.ground_truth` the visible box of every object at the same instant. Everything random is
drawn once from the scene's seed when the scene is built, so rendering the same time twice, in any
order or in another process, gives the same pixels.

Geometry. Every preset uses a pinhole camera over a flat ground (sea or road) plane: a point at lateral
offset ``X`` (metres), distance ``Z`` (metres) and height ``Y`` (metres) above the plane lands at

    u = c_x + f X / Z,        v = v_horizon + f (h_cam - Y) / Z

in the stabilised image (pixels), where ``f`` is the focal length in pixels and ``h_cam`` the camera
height. Objects are drawn there with ``cv2.fillPoly`` in order of distance (far first: the painter's
algorithm gives occlusion), on a canvas with a margin of :data:`CANVAS_MARGIN_PX` pixels. The camera's
own motion (roll, pitch and yaw of a boat; small vibration of a pole) is then one affine warp

    p_sensor = R(roll) (p_canvas - c_canvas) + c_sensor + (dx, dy)

applied with bilinear interpolation, so sub-pixel ego-motion moves edges smoothly and static buoys
still produce events. The street's camera may also drive along the road (``z_e(t)``), and the harbour's
drone or boat camera move over the water (``x_e(t), z_e(t)``): distances are then ``Z - z_e(t)``, and
the street or harbour itself is projected again at every instant, so that the whole static scene flows.

Ground truth. At a label time the same drawing is repeated into an integer label map (object index,
-1 for background), warped with nearest-neighbour interpolation. The visible part of an object is the
set of sensor pixels that carry its index after occlusion and cropping; its box is
``(x_min, y_min, x_max + 1, y_max + 1)`` of those pixels (pixel edges, so ``w = x2 - x1`` counts
pixels). ``visible_fraction`` is the visible pixel count over the pixel count of the whole object drawn
alone and uncropped. ``contrast`` is the median over the visible pixels of
``|log(I + 0.02) - log(B + 0.02)|`` (``I`` the frame, ``B`` the scene without objects: what an event
camera responds to) and ``motion_px`` the largest displacement of any of the object's vertices, in
sensor pixels, between the label time and four instants spread over the ``motion_window_us`` before
it (object and camera motion). An
object is kept with ``ignore = True`` (COCO ``iscrowd``/``ignore``) when its visible box has a side
shorter than ``min_visible_side_px``, its visible fraction is below ``min_visible_fraction``, its
contrast is below ``min_contrast`` (lost in the haze) or it moved less than ``min_motion_px`` (an
event camera cannot see it); objects with no visible pixel are not listed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

PRESETS: tuple[str, ...] = ("maritime", "traffic", "street", "harbour")
"""Scene presets, by name."""

PRESET_CLASSES: dict[str, tuple[str, ...]] = {
    "maritime": ("boat", "buoy"),
    "traffic": ("car", "pedestrian"),
    "street": ("car", "pedestrian"),
    "harbour": ("boat", "buoy"),
}
"""Classes that each preset labels (names from ``streamdet.CLASS_NAMES``)."""

CANVAS_MARGIN_PX = 24
"""Margin around the sensor on the stabilised canvas, pixels; bounds the camera's ego-motion."""

_UNIT_CIRCLE = np.stack(
    [
        np.cos(np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)),
        np.sin(np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False)),
    ],
    axis=1,
).astype(np.float32)


@dataclass(frozen=True)
class SceneConfig:
    """What to render.

    Attributes:
        preset: ``"maritime"``, ``"traffic"``, ``"street"`` or ``"harbour"``.
        sensor_size: ``(width, height)`` in pixels.
        seed: seed of every random choice in the scene.
        duration_us: scene length in microseconds; objects enter over the whole duration.
        min_visible_side_px: visible boxes with a shorter side are marked ignore.
        min_visible_fraction: objects less visible than this (occluded or cropped) are marked ignore.
        min_contrast: objects with a smaller log contrast against the empty scene are marked ignore.
        min_motion_px: objects that moved less than this (pixels) in ``motion_window_us`` are marked ignore.
        motion_window_us: the window before a label time over which motion is measured, microseconds.
    """

    preset: str
    sensor_size: tuple[int, int] = (346, 260)
    seed: int = 0
    duration_us: int = 10_000_000
    min_visible_side_px: float = 6.0
    min_visible_fraction: float = 0.2
    min_contrast: float = 0.1
    min_motion_px: float = 0.3
    motion_window_us: int = 50_000

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown scene preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        width, height = self.sensor_size
        if width < 32 or height < 32:
            raise ValueError(f"sensor size {width}x{height} is too small for a scene (at least 32x32)")
        if self.duration_us <= 0:
            raise ValueError(f"scene duration must be positive, got {self.duration_us} us")


@dataclass(frozen=True)
class ObjectTruth:
    """Ground truth of one object at one instant.

    Attributes:
        track_id: identity of the object over the whole scene (unique within the scene).
        class_name: one of ``streamdet.CLASS_NAMES``.
        box: visible box ``(x1, y1, x2, y2)`` in sensor pixels, pixel edges (``x2 - x1`` pixels wide).
        visible_area_px: number of sensor pixels showing the object.
        visible_fraction: ``visible_area_px`` over the object's area when drawn alone and uncropped.
        contrast: median log contrast of its visible pixels against the scene without objects.
        motion_px: largest vertex displacement over the motion window, sensor pixels (inf: it entered).
        ignore: too small, hidden, faint or still to be required of a detector (COCO
            ``iscrowd = ignore = 1``).
    """

    track_id: int
    class_name: str
    box: tuple[int, int, int, int]
    visible_area_px: int
    visible_fraction: float
    contrast: float
    motion_px: float
    ignore: bool


@dataclass(frozen=True, eq=False)
class _Part:
    """One filled polygon of a drawing: canvas pixel vertices ``[K, 2]``, luminance, owner (None: scenery)."""

    polygon: np.ndarray
    luminance: float
    owner: int | None


@dataclass(frozen=True, eq=False)
class _Drawn:
    """An object's drawing at one instant: its distance (for draw order) and its parts."""

    distance: float
    parts: list[_Part] = field(default_factory=list)


def _segment(p0: tuple[float, float], p1: tuple[float, float], half_width: float) -> np.ndarray:
    """Quadrilateral around the segment ``p0 -> p1`` with the given half width (same units), ``[4, 2]``."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm * half_width, dx / norm * half_width
    return np.array(
        [
            [p0[0] + nx, p0[1] + ny],
            [p1[0] + nx, p1[1] + ny],
            [p1[0] - nx, p1[1] - ny],
            [p0[0] - nx, p0[1] - ny],
        ],
        dtype=np.float32,
    )


def _disc(centre: tuple[float, float], radius_x: float, radius_y: float | None = None) -> np.ndarray:
    """20-gon approximating an ellipse around ``centre``, ``[20, 2]``."""
    radii = np.array([radius_x, radius_x if radius_y is None else radius_y], dtype=np.float32)
    return _UNIT_CIRCLE * radii + np.array(centre, dtype=np.float32)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned rectangle ``[4, 2]``."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def _fill(canvas: np.ndarray, polygon: np.ndarray, value: float) -> None:
    """Fill ``polygon`` (pixel vertices, sub-pixel accurate to 1/16 px) into ``canvas`` in place."""
    cv2.fillPoly(canvas, [np.round(polygon * 16.0).astype(np.int32)], value, lineType=cv2.LINE_8, shift=4)


def _contrasting_luminance(rng: np.random.Generator, background: float, min_contrast: float = 0.15) -> float:
    """A luminance in [0.04, 0.96] at least ``min_contrast`` away from ``background`` (darker or brighter)."""
    darker = rng.random() < 0.5
    low, high = (0.04, background - min_contrast) if darker else (background + min_contrast, 0.96)
    if high <= low:
        low, high = (background + min_contrast, 0.96) if darker else (0.04, background - min_contrast)
    return float(rng.uniform(low, max(high, low + 1e-3)))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth random texture in [-1, 1] of ``shape`` (rows, cols): a ``cells`` grid of uniforms, bicubic."""
    coarse = rng.uniform(-1.0, 1.0, size=cells).astype(np.float32)
    return np.clip(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), -1.0, 1.0)


class Scene(ABC):
    """Base of the presets: canvas, camera warp, drawing and ground truth.

    Subclasses set ``self.objects`` (each with ``track_id``, ``class_name`` and ``draw(t_s)`` returning
    a ``_Drawn`` or None when out of view), optionally ``self.scenery`` (static drawings that occlude
    objects behind them, such as poles) and ``self.rig`` (sensor-pixel polygons fixed to the camera,
    such as the bow of the camera's own boat, drawn over everything and never moving), and implement
    ``_background(t_s)`` (canvas luminance), ``_camera_shift(t_s)`` (roll in radians, dx, dy in
    pixels) and optionally ``_lighting(frame, t_s)``; a scene whose scenery changes with time (the
    street seen from a driving car) overrides ``_drawings(t_s)`` instead of setting ``self.scenery``.
    Every frame is scaled by the scene's ``exposure`` (0.7-1; 0.25-0.7 for the 30% of scenes that are
    dim), so the emulators also see low light, where events are sparser and noisier, and half of the
    scenes are seen through a soft lens (Gaussian blur, ``blur_sigma_px`` 0.4-1.2 px).
    """

    def __init__(self, config: SceneConfig) -> None:
        self.config = config
        self.width, self.height = config.sensor_size
        self.canvas_width = self.width + 2 * CANVAS_MARGIN_PX
        self.canvas_height = self.height + 2 * CANVAS_MARGIN_PX
        self.rng = np.random.default_rng(config.seed)
        dim = self.rng.random() < 0.3
        self.exposure = float(self.rng.uniform(0.25, 0.7) if dim else self.rng.uniform(0.7, 1.0))
        self.blur_sigma_px = float(self.rng.uniform(0.4, 1.2)) if self.rng.random() < 0.5 else 0.0
        self.objects: list = []
        self.scenery: list[_Drawn] = []
        self.rig: list[tuple[np.ndarray, float]] = []

    @property
    def class_names(self) -> tuple[str, ...]:
        """Classes this scene labels."""
        return PRESET_CLASSES[self.config.preset]

    @abstractmethod
    def _background(self, t_s: float) -> np.ndarray:
        """Canvas luminance ``[H + 2 m, W + 2 m]`` float32 before objects, at ``t_s`` seconds."""

    @abstractmethod
    def _camera_shift(self, t_s: float) -> tuple[float, float, float]:
        """Camera pose at ``t_s`` seconds: roll (radians), dx, dy (pixels)."""

    def _lighting(self, frame: np.ndarray, t_s: float) -> np.ndarray:
        return frame

    def camera_matrix(self, t_us: int) -> np.ndarray:
        """Affine map canvas -> sensor pixels at ``t_us``, float32 ``[2, 3]`` (see module docstring)."""
        roll, dx, dy = self._camera_shift(t_us * 1e-6)
        cos_r, sin_r = math.cos(roll), math.sin(roll)
        ccx, ccy = (self.canvas_width - 1) / 2.0, (self.canvas_height - 1) / 2.0
        scx, scy = (self.width - 1) / 2.0 + dx, (self.height - 1) / 2.0 + dy
        return np.array(
            [
                [cos_r, -sin_r, scx - cos_r * ccx + sin_r * ccy],
                [sin_r, cos_r, scy - sin_r * ccx - cos_r * ccy],
            ],
            dtype=np.float32,
        )

    def _drawings(self, t_s: float) -> list[tuple[int, _Drawn]]:
        """``(object index, drawing)`` of every object in view at ``t_s``, farthest first."""
        drawn = []
        for index, obj in enumerate(self.objects):
            drawing = obj.draw(t_s)
            if drawing is not None:
                drawn.append((index, drawing))
        drawn += [(-1, drawing) for drawing in self.scenery]
        drawn.sort(key=lambda item: -item[1].distance)
        return drawn

    def render(self, t_us: int, exclude: frozenset[int] = frozenset()) -> np.ndarray:
        """Luminance frame at ``t_us`` (microseconds), float32 ``[H, W]`` in [0, 1].

        Args:
            t_us: scene time in microseconds.
            exclude: track ids of objects to leave out (the scene behind them shows instead; what they
                cause but is not part of them, such as a boat's wake, stays).
        """
        return self._render(t_us, exclude, with_labels=False)[0]

    def render_with_truth(
        self, t_us: int, exclude: frozenset[int] = frozenset()
    ) -> tuple[np.ndarray, list[ObjectTruth], np.ndarray]:
        """Frame, ground truth and label map at ``t_us`` (``exclude`` as in :meth:`render`).

        Returns:
            ``(frame, truths, labels)``: the luminance frame float32 ``[H, W]``; one :class:`ObjectTruth`
            per object with at least one visible pixel; int16 ``[H, W]`` map of the track id visible at
            each pixel (-1 where no object is).
        """
        frame, labels, empty = self._render(t_us, exclude, with_labels=True)
        truths = self._truths(t_us, frame, labels, empty)
        track_ids = np.array([obj.track_id for obj in self.objects] + [-1], dtype=np.int16)
        return frame, truths, track_ids[labels]

    def ground_truth(self, t_us: int, exclude: frozenset[int] = frozenset()) -> list[ObjectTruth]:
        """Visible boxes of all objects at ``t_us`` (see :meth:`render_with_truth`)."""
        return self.render_with_truth(t_us, exclude)[1]

    def _render(
        self, t_us: int, exclude: frozenset[int], with_labels: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Frame; with ``with_labels`` also the label map (object index, -1) and the empty scene."""
        t_s = t_us * 1e-6
        canvas = self._background(t_s)
        empty = canvas.copy() if with_labels else None
        # int32, not int16: OpenCV 4.13's nearest-neighbour warpAffine of int16 maps misplaces labels
        labels = np.full(canvas.shape, -1, dtype=np.int32) if with_labels else None
        for index, drawing in self._drawings(t_s):
            for part in drawing.parts:
                if part.owner is not None and part.owner in exclude:
                    continue
                _fill(canvas, part.polygon, part.luminance)
                if labels is not None:
                    _fill(labels, part.polygon, index if part.owner is not None else -1)
        matrix = self.camera_matrix(t_us)
        frame = self._expose(canvas, t_s, matrix)
        if labels is None:
            return frame, None, None
        sensor_labels = cv2.warpAffine(
            labels,
            matrix,
            (self.width, self.height),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=-1,
        )
        for polygon, _ in self.rig:
            _fill(sensor_labels, polygon, -1)
        return frame, sensor_labels, self._expose(empty, t_s, matrix)

    def _expose(self, canvas: np.ndarray, t_s: float, matrix: np.ndarray) -> np.ndarray:
        """Lighting, exposure, the camera warp and lens blur: canvas -> sensor frame in [0, 1]."""
        canvas = self._lighting(canvas, t_s)
        canvas *= np.float32(self.exposure)
        frame = cv2.warpAffine(
            canvas, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        for polygon, luminance in self.rig:
            _fill(frame, polygon, luminance * self.exposure)
        if self.blur_sigma_px > 0.0:
            frame = cv2.GaussianBlur(frame, (0, 0), self.blur_sigma_px, borderType=cv2.BORDER_REPLICATE)
        return np.clip(frame, 0.0, 1.0, out=frame)

    def _truths(
        self, t_us: int, frame: np.ndarray, labels: np.ndarray, empty: np.ndarray
    ) -> list[ObjectTruth]:
        config = self.config
        t_s = t_us * 1e-6
        flat = labels.ravel().astype(np.int64)
        counts = np.bincount(flat + 1, minlength=len(self.objects) + 1)[1:]
        log_contrast = np.abs(np.log(frame + np.float32(0.02)) - np.log(empty + np.float32(0.02)))
        truths = []
        for index in np.flatnonzero(counts):
            obj = self.objects[index]
            mask = labels == index
            ys, xs = np.nonzero(mask)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            full_area = self._full_area(obj, t_s)
            fraction = min(1.0, float(counts[index]) / max(full_area, 1))
            contrast = float(np.median(log_contrast[mask]))
            motion = self._motion_px(obj, t_us)
            ignore = (
                min(box[2] - box[0], box[3] - box[1]) < config.min_visible_side_px
                or fraction < config.min_visible_fraction
                or contrast < config.min_contrast
                or motion < config.min_motion_px
            )
            truths.append(
                ObjectTruth(
                    obj.track_id, obj.class_name, box, int(counts[index]), fraction, contrast, motion, ignore
                )
            )
        return truths

    def _motion_px(self, obj, t_us: int) -> float:
        """Largest displacement (sensor pixels) of the object's vertices between ``t`` and any of
        ``t - k motion_window_us / 4``, ``k = 1..4``, through the camera poses at those times (so that an
        oscillation within the window counts); ``inf`` when it was not drawn (or drawn differently)."""
        now = obj.draw(t_us * 1e-6)
        now_points = [part.polygon for part in now.parts if part.owner is not None]
        now_sensor = self._to_sensor(now_points, t_us)
        largest = 0.0
        for k in range(1, 5):
            before_us = t_us - k * self.config.motion_window_us // 4
            before = obj.draw(before_us * 1e-6)
            if before is None:
                return math.inf
            before_points = [part.polygon for part in before.parts if part.owner is not None]
            if [len(p) for p in now_points] != [len(p) for p in before_points]:
                return math.inf
            moved = now_sensor - self._to_sensor(before_points, before_us)
            largest = max(largest, float(np.sqrt((moved**2).sum(axis=1)).max()))
        return largest

    def _to_sensor(self, polygons: list[np.ndarray], t_us: int) -> np.ndarray:
        """Canvas vertices -> sensor pixels through the camera pose at ``t_us``, ``[K, 2]``."""
        matrix = self.camera_matrix(t_us)
        return np.concatenate(polygons) @ matrix[:, :2].T + matrix[:, 2]

    @staticmethod
    def _full_area(obj, t_s: float) -> int:
        """Pixels of ``obj`` drawn alone on an unbounded canvas (its own parts, no scenery)."""
        drawing = obj.draw(t_s)
        polygons = [part.polygon for part in drawing.parts if part.owner is not None]
        stacked = np.concatenate(polygons)
        origin = np.floor(stacked.min(axis=0)) - 1.0
        size = np.ceil(stacked.max(axis=0) - origin).astype(int) + 2
        local = np.zeros((size[1], size[0]), dtype=np.uint8)
        for polygon in polygons:
            _fill(local, polygon - origin, 1)
        return int(local.sum())


# --------------------------------------------------------------------------------------------------
# maritime


@dataclass(frozen=True)
class _Camera:
    """Pinhole over a flat plane: focal ``f`` px, height ``h`` (m), centre column, horizon row, canvas px."""

    focal_px: float
    height_m: float
    centre_col: float
    horizon_row: float

    def project(self, x_m: float, z_m: float, y_m: float = 0.0) -> tuple[float, float]:
        """Canvas pixel ``(u, v)`` of the point at lateral ``x_m``, distance ``z_m``, height ``y_m``."""
        return (
            self.centre_col + self.focal_px * x_m / z_m,
            self.horizon_row + self.focal_px * (self.height_m - y_m) / z_m,
        )


def _place(
    profile: list[tuple[np.ndarray, float]],
    camera: _Camera,
    x_m: float,
    z_m: float,
    y_m: float,
    stretch_x: float,
    tilt_rad: float,
    owner: int | None,
    haze: float,
    haze_luminance: float,
) -> list[_Part]:
    """Parts of a profile (metres: x along the object, y up from its base) placed at ``(x_m, z_m)``.

    Screen: ``u = u0 + s (x' stretch_x)``, ``v = v0 - s y'`` with ``s = f / z`` px/m, ``(x', y')`` the
    profile rotated by ``tilt_rad``; luminance ``l (1 - haze) + haze_luminance haze``.
    """
    u0, v0 = camera.project(x_m, z_m, y_m)
    scale = camera.focal_px / z_m
    cos_t, sin_t = math.cos(tilt_rad), math.sin(tilt_rad)
    rotation = np.array(
        [[cos_t * stretch_x * scale, sin_t * scale], [-sin_t * stretch_x * scale, -cos_t * scale]],
        dtype=np.float32,
    )
    offset = np.array([u0, v0], dtype=np.float32)
    parts = []
    for polygon, luminance in profile:
        parts.append(
            _Part(polygon @ rotation.T + offset, luminance * (1.0 - haze) + haze_luminance * haze, owner)
        )
    return parts


_ProfilePart = tuple[np.ndarray, float]
"""A polygon of a side view (metres) and its luminance."""


@dataclass(frozen=True)
class _BoatColours:
    """Luminances of a boat: hull (against the sea), deck and superstructure (against the hull), and the
    dark details (windows, funnel, mast)."""

    hull: float
    deck: float
    dark: float


def _boat_profile(kind: str, length: float, rng: np.random.Generator, sea: float) -> list[_ProfilePart]:
    """Side view of a boat in metres, bow towards +x, waterline at y = 0, x in [-L/2, L/2].

    The draws from ``rng`` come in a fixed order (colours, then the kind's shape), so a seed gives the
    same boat."""
    hull_l = _contrasting_luminance(rng, sea)
    deck_l = _contrasting_luminance(rng, hull_l, 0.12)
    colours = _BoatColours(hull=hull_l, deck=deck_l, dark=float(rng.uniform(0.03, 0.15)))
    if kind == "dinghy":
        return _dinghy_profile(length, rng, sea, colours)
    if kind == "ship":
        return _ship_profile(length, rng, colours)
    freeboard = float(rng.uniform(0.07, 0.13)) * length
    superstructures = {"motorboat": _motorboat_cabin, "fishing": _fishing_cabin_and_boom}
    superstructure = superstructures.get(kind, _sailing_rig)
    return _small_boat_hull(length, freeboard, colours) + superstructure(length, freeboard, rng, sea, colours)


def _dinghy_profile(
    length: float, rng: np.random.Generator, sea: float, colours: _BoatColours
) -> list[_ProfilePart]:
    """A low open hull with a person sitting in it."""
    half = length / 2.0
    freeboard = 0.09 * length
    hull = np.array([[-half, 0], [0.3 * half, 0], [half, 1.3 * freeboard], [-half, freeboard]], np.float32)
    person = _contrasting_luminance(rng, sea)
    return [
        (hull, colours.hull),
        (_rect(-0.15 * half, freeboard, 0.1 * half, freeboard + 0.55), person),
        (_disc((-0.02 * half, freeboard + 0.7), 0.14), person),
    ]


def _ship_profile(length: float, rng: np.random.Generator, colours: _BoatColours) -> list[_ProfilePart]:
    """A long hull with a bridge tower (with its window band), deck houses and a funnel."""
    half = length / 2.0
    freeboard = float(rng.uniform(0.08, 0.12)) * length
    hull = np.array(
        [[-half, -0.01 * length], [0.75 * half, 0], [half, 1.25 * freeboard], [-0.97 * half, freeboard]],
        np.float32,
    )
    tower_x0 = float(rng.uniform(-0.9, 0.4)) * half
    tower = _rect(
        tower_x0, freeboard, tower_x0 + 0.22 * length, freeboard + float(rng.uniform(0.12, 0.22)) * length
    )
    windows = _rect(
        tower_x0 + 0.02 * length,
        tower[2, 1] - 0.04 * length,
        tower_x0 + 0.2 * length,
        tower[2, 1] - 0.025 * length,
    )
    parts = [(hull, colours.hull), (tower, colours.deck), (windows, colours.dark)]
    parts += _ship_deck_houses(length, freeboard, tower_x0, rng, colours)
    funnel_x = tower_x0 + 0.05 * length
    parts.append(
        (_rect(funnel_x, tower[2, 1], funnel_x + 0.05 * length, tower[2, 1] + 0.06 * length), colours.dark)
    )
    return parts


def _ship_deck_houses(
    length: float, freeboard: float, tower_x0: float, rng: np.random.Generator, colours: _BoatColours
) -> list[_ProfilePart]:
    """Up to four low blocks along the deck, none near the bridge tower or the bow."""
    half = length / 2.0
    houses = []
    for index in range(int(rng.integers(0, 5))):
        x0 = -0.85 * half + index * 0.28 * length
        if tower_x0 - 0.25 * length < x0 < tower_x0 + 0.25 * length or x0 > 0.6 * half:
            continue
        houses.append(
            (
                _rect(x0, freeboard, x0 + 0.24 * length, freeboard + float(rng.uniform(0.04, 0.09)) * length),
                _contrasting_luminance(rng, colours.hull, 0.1),
            )
        )
    return houses


def _small_boat_hull(length: float, freeboard: float, colours: _BoatColours) -> list[_ProfilePart]:
    """Hull and deck line of a motorboat, fishing boat or sailing boat."""
    half = length / 2.0
    hull = np.array([[-half, 0], [0.45 * half, 0], [half, 1.35 * freeboard], [-half, freeboard]], np.float32)
    return [(hull, colours.hull), (_rect(-half, freeboard * 0.8, half * 0.9, freeboard), colours.deck)]


def _motorboat_cabin(
    length: float, freeboard: float, rng: np.random.Generator, sea: float, colours: _BoatColours
) -> list[_ProfilePart]:
    """A cabin with a raked front and a dark window band."""
    half = length / 2.0
    cabin_h = float(rng.uniform(0.1, 0.2)) * length
    x0, x1 = float(rng.uniform(-0.5, -0.1)) * half, float(rng.uniform(0.15, 0.45)) * half
    cabin = np.array(
        [
            [x0, freeboard],
            [x1, freeboard],
            [x1 - 0.3 * cabin_h, freeboard + cabin_h],
            [x0, freeboard + cabin_h],
        ],
        np.float32,
    )
    windows = _rect(
        x0 + 0.1 * (x1 - x0),
        freeboard + 0.45 * cabin_h,
        x1 - 0.45 * cabin_h,
        freeboard + 0.8 * cabin_h,
    )
    return [(cabin, colours.deck), (windows, colours.dark)]


def _fishing_cabin_and_boom(
    length: float, freeboard: float, rng: np.random.Generator, sea: float, colours: _BoatColours
) -> list[_ProfilePart]:
    """A tall wheelhouse, a mast aft and a boom slanting towards the stern."""
    half = length / 2.0
    cabin_h = float(rng.uniform(0.2, 0.3)) * length
    x0 = float(rng.uniform(0.0, 0.3)) * half
    mast = _segment((-0.4 * half, freeboard), (-0.4 * half, freeboard + 0.6 * length), 0.012 * length)
    boom = _segment(
        (-0.4 * half, freeboard + 0.55 * length),
        (-0.95 * half, freeboard + 0.1 * length),
        0.008 * length,
    )
    return [
        (_rect(x0, freeboard, x0 + 0.25 * length, freeboard + cabin_h), colours.deck),
        (mast, colours.dark),
        (boom, colours.dark),
    ]


def _sailing_rig(
    length: float, freeboard: float, rng: np.random.Generator, sea: float, colours: _BoatColours
) -> list[_ProfilePart]:
    """A coachroof, a mainsail and a jib (mostly white, else a colour against the sea) and the mast."""
    half = length / 2.0
    mast_x = float(rng.uniform(-0.1, 0.2)) * half
    mast_h = float(rng.uniform(1.0, 1.5)) * length
    sail_l = float(rng.uniform(0.75, 0.98)) if rng.random() < 0.8 else _contrasting_luminance(rng, sea)
    boom = freeboard + 0.1 * length
    mainsail = np.array(
        [[mast_x - 0.01, boom], [mast_x - 0.01, freeboard + mast_h], [-0.85 * half, boom]], np.float32
    )
    jib = np.array(
        [
            [mast_x + 0.01, freeboard + 0.9 * mast_h],
            [0.95 * half, freeboard + 0.05 * length],
            [mast_x + 0.01, boom],
        ],
        np.float32,
    )
    return [
        (_rect(-0.5 * half, freeboard, 0.2 * half, freeboard + 0.08 * length), colours.deck),
        (mainsail, sail_l),
        (jib, sail_l * float(rng.uniform(0.85, 1.0))),
        (_segment((mast_x, freeboard), (mast_x, freeboard + mast_h), max(0.01 * length, 0.06)), colours.dark),
    ]


_BOAT_KINDS = {
    "dinghy": (2.5, 4.5),
    "motorboat": (5.0, 13.0),
    "sailboat": (6.0, 16.0),
    "fishing": (10.0, 24.0),
    "ship": (30.0, 90.0),
}
"""Boat kinds and their length ranges in metres."""


def _arc_position(
    x0_m: float, z0_m: float, heading0: float, turn_rate: float, speed_m_s: float, tau_s: float
) -> tuple[float, float, float]:
    """``(x_m, z_m, heading)`` after ``tau_s`` on a circular arc: ``psi = psi0 + omega tau``,
    ``x = x0 + (v / omega)(cos psi0 - cos psi)``, ``z = z0 + (v / omega)(sin psi - sin psi0)`` (a straight
    line when ``omega`` is 0; heading 0 is away from the camera, along +z)."""
    heading = heading0 + turn_rate * tau_s
    if abs(turn_rate) < 1e-6:
        return (
            x0_m + speed_m_s * tau_s * math.sin(heading0),
            z0_m + speed_m_s * tau_s * math.cos(heading0),
            heading,
        )
    radius = speed_m_s / turn_rate
    return (
        x0_m + radius * (math.cos(heading0) - math.cos(heading)),
        z0_m + radius * (math.sin(heading) - math.sin(heading0)),
        heading,
    )


@dataclass(frozen=True, eq=False)
class _Boat:
    """A boat on a circular arc: heading ``psi(t) = psi0 + omega (t - t0)`` (0 = away from the camera)."""

    track_id: int
    camera: _Camera
    profile: list[tuple[np.ndarray, float]]
    length_m: float
    beam_m: float
    x0_m: float
    z0_m: float
    heading0: float
    turn_rate: float
    speed_m_s: float
    t0_s: float
    bob_amplitude_m: float
    bob_rate: float
    bob_phase: float
    visibility_m: float
    haze_luminance: float
    canvas_width: int
    class_name: str = "boat"

    def position(self, t_s: float) -> tuple[float, float, float]:
        """``(x_m, z_m, heading)`` at ``t_s`` (:func:`_arc_position`)."""
        return _arc_position(
            self.x0_m, self.z0_m, self.heading0, self.turn_rate, self.speed_m_s, t_s - self.t0_s
        )

    def draw(self, t_s: float) -> _Drawn | None:
        if t_s < self.t0_s:
            return None
        x_m, z_m, heading = self.position(t_s)
        if z_m < 12.0:
            return None
        u, _ = self.camera.project(x_m, z_m)
        half_px = self.camera.focal_px * self.length_m / z_m
        if u + half_px < 0 or u - half_px > self.canvas_width:
            return None
        sin_h, cos_h = math.sin(heading), math.cos(heading)
        stretch = (abs(sin_h) + self.beam_m / self.length_m * abs(cos_h)) * (1.0 if sin_h >= 0 else -1.0)
        phase = self.bob_rate * t_s + self.bob_phase
        haze = 1.0 - math.exp(-z_m / self.visibility_m)
        parts = []
        if self.speed_m_s > 1.5 and abs(sin_h) > 0.3:
            direction = 1.0 if sin_h >= 0 else -1.0
            wake_len = self.length_m * min(0.8, 0.1 * self.speed_m_s)
            wake = np.array(
                [
                    [0.0, 0.02],
                    [-direction * wake_len, -0.02 * self.length_m],
                    [-direction * wake_len, 0.05 * self.length_m],
                ],
                np.float32,
            )
            wake += np.array([-direction * 0.5 * self.length_m * abs(sin_h), 0.0], np.float32)
            parts += _place(
                [(wake, 0.9)], self.camera, x_m, z_m, 0.0, 1.0, 0.0, None, haze, self.haze_luminance
            )
        parts += _place(
            self.profile,
            self.camera,
            x_m,
            z_m,
            self.bob_amplitude_m * math.sin(phase),
            stretch,
            0.04 * math.sin(phase + 1.0),
            self.track_id,
            haze,
            self.haze_luminance,
        )
        return _Drawn(z_m, parts)


@dataclass(frozen=True, eq=False)
class _Buoy:
    """A moored buoy: fixed ``(x, z)``, bobbing ``y(t) = a sin(w t + phi)`` and tilting."""

    track_id: int
    camera: _Camera
    profile: list[tuple[np.ndarray, float]]
    x_m: float
    z_m: float
    bob_amplitude_m: float
    bob_rate: float
    bob_phase: float
    tilt_rad: float
    visibility_m: float
    haze_luminance: float
    class_name: str = "buoy"

    def draw(self, t_s: float) -> _Drawn | None:
        phase = self.bob_rate * t_s + self.bob_phase
        haze = 1.0 - math.exp(-self.z_m / self.visibility_m)
        parts = _place(
            self.profile,
            self.camera,
            self.x_m,
            self.z_m,
            self.bob_amplitude_m * (math.sin(phase) - 0.5),
            1.0,
            self.tilt_rad * math.sin(phase + 0.7),
            self.track_id,
            haze,
            self.haze_luminance,
        )
        return _Drawn(self.z_m, parts)


def _buoy_profile(rng: np.random.Generator, sea: float) -> list[tuple[np.ndarray, float]]:
    """Side view of a buoy in metres, centred at x = 0, waterline y = 0: can, cone, sphere, spar or pillar."""
    width = float(rng.uniform(0.6, 2.2))
    body = _contrasting_luminance(rng, sea, 0.2)
    band = _contrasting_luminance(rng, body, 0.2)
    kind = rng.choice(["can", "cone", "sphere", "spar", "pillar"])
    half = width / 2.0
    if kind == "can":
        return [
            (_rect(-half, -0.1, half, 1.2 * width), body),
            (_rect(-half, 0.5 * width, half, 0.75 * width), band),
        ]
    if kind == "cone":
        return [
            (
                np.array(
                    [[-half, -0.1], [half, -0.1], [0.05 * width, 1.3 * width], [-0.05 * width, 1.3 * width]],
                    np.float32,
                ),
                body,
            )
        ]
    if kind == "sphere":
        return [
            (_disc((0.0, 0.3 * width), half), body),
            (_rect(-0.07 * width, 0.7 * width, 0.07 * width, width), band),
        ]
    if kind == "spar":
        return [
            (_rect(-0.15 * width, -0.1, 0.15 * width, 3.0 * width), body),
            (_rect(-0.15 * width, 1.5 * width, 0.15 * width, 2.2 * width), band),
            (_disc((0.0, 3.25 * width), 0.25 * width), band),
        ]
    return [
        (
            np.array(
                [[-half, -0.1], [half, -0.1], [0.3 * width, 0.6 * width], [-0.3 * width, 0.6 * width]],
                np.float32,
            ),
            body,
        ),
        (_rect(-0.18 * width, 0.6 * width, 0.18 * width, 2.2 * width), band),
        (
            np.array(
                [[-0.3 * width, 2.2 * width], [0.3 * width, 2.2 * width], [0.0, 2.7 * width]], np.float32
            ),
            body,
        ),
    ]


def _own_bow(
    rng: np.random.Generator, width: int, height: int, water: float
) -> list[tuple[np.ndarray, float]]:
    """The bow and railing of the camera's own boat at the bottom of a ``width`` x ``height`` frame (sensor
    pixels, luminances against the ``water``)."""
    tip_x = float(rng.uniform(0.3, 0.7)) * width
    tip_y = height * (1.0 - float(rng.uniform(0.08, 0.25)))
    left, right = float(rng.uniform(-0.2, 0.2)) * width, float(rng.uniform(0.8, 1.2)) * width
    deck = np.array([[left, height + 1], [tip_x, tip_y], [right, height + 1]], np.float32)
    deck_luminance = _contrasting_luminance(rng, water, 0.2)
    rail = float(rng.uniform(0.02, 0.05)) * height
    thickness = max(1.0, 0.006 * height)
    railing = [
        _segment((left, height - rail), (tip_x, tip_y - rail), thickness),
        _segment((tip_x, tip_y - rail), (right, height - rail), thickness),
    ]
    rail_luminance = _contrasting_luminance(rng, deck_luminance, 0.2)
    return [(deck, deck_luminance)] + [(segment, rail_luminance) for segment in railing]


class MaritimeScene(Scene):
    """Sky, sea with waves, glitter and haze; boats that move and turn; bobbing buoys; a rolling camera."""

    def __init__(self, config: SceneConfig) -> None:
        super().__init__(config)
        rng = self.rng
        width, height = self.canvas_width, self.canvas_height
        self.camera = _Camera(
            focal_px=float(rng.uniform(0.8, 1.8)) * self.width,
            height_m=float(rng.uniform(3.0, 12.0)),
            centre_col=(width - 1) / 2.0,
            horizon_row=CANVAS_MARGIN_PX + float(rng.uniform(0.2, 0.5)) * self.height,
        )
        self.sky_top = float(rng.uniform(0.3, 0.95))
        self.haze_luminance = float(rng.uniform(0.45, 0.9))
        self.sea_luminance = float(rng.uniform(0.12, 0.6))
        self.visibility_m = float(rng.uniform(400.0, 4000.0))
        self._build_static(rng, width, height)
        self._build_waves(rng)
        self.roll_amplitude = math.radians(float(rng.uniform(0.5, 3.0)))
        self.pitch_amplitude_px = float(rng.uniform(3.0, 10.0))
        self.yaw_amplitude_px = float(rng.uniform(1.0, 5.0))
        self.motion_rates = rng.uniform(2 * math.pi / 6.0, 2 * math.pi / 2.0, size=3)
        self.motion_phases = rng.uniform(0, 2 * math.pi, size=3)
        self.engine_px = float(rng.uniform(0.1, 0.4))
        self.engine_rates = rng.uniform(2 * math.pi * 6.0, 2 * math.pi * 15.0, size=2)
        if rng.random() < 0.3:
            self.rig = _own_bow(rng, self.width, self.height, self.sea_luminance)
        self._populate(rng)

    def _build_static(self, rng: np.random.Generator, width: int, height: int) -> None:
        rows = np.arange(height, dtype=np.float32)[:, None]
        cols = np.arange(width, dtype=np.float32)[None, :]
        below = np.maximum(rows - self.camera.horizon_row, 0.5)
        self.sea_first_row = int(math.ceil(self.camera.horizon_row))
        depth = np.minimum(self.camera.focal_px * self.camera.height_m / below, 20_000.0)
        haze = 1.0 - np.exp(-depth / self.visibility_m)
        sea = self.sea_luminance * (1.0 - haze) + self.haze_luminance * haze
        above = np.clip((self.camera.horizon_row - rows) / max(self.camera.horizon_row, 1.0), 0.0, 1.0)
        sky = self.haze_luminance + (self.sky_top - self.haze_luminance) * np.sqrt(above)
        clouds = _smooth_noise(rng, (height, width), (int(rng.integers(3, 7)), int(rng.integers(4, 10))))
        sky = sky + float(rng.uniform(0.0, 0.15)) * clouds * above
        sea_texture = _smooth_noise(
            rng, (height, width), (int(rng.integers(4, 10)), int(rng.integers(4, 12)))
        )
        sea = sea + 0.04 * sea_texture
        self.static = np.where(rows >= self.camera.horizon_row, sea + 0.0 * cols, sky + 0.0 * cols).astype(
            np.float32
        )
        if rng.random() < 0.4:
            self._draw_coast(rng, width)
        self.sea_depth = depth[self.sea_first_row :]
        self.sea_x = ((cols - self.camera.centre_col) * self.sea_depth / self.camera.focal_px).astype(
            np.float32
        )

    def _draw_coast(self, rng: np.random.Generator, width: int) -> None:
        """A distant coastline on the horizon: a band of hills (smooth random heights) over part of the
        view, hazy like the horizon; scenery, not an object, but it moves with the camera."""
        x0, x1 = sorted(rng.uniform(-0.3, 1.3, size=2) * width)
        cols = np.arange(int(max(x0, 0)), int(min(x1, width)) + 1, dtype=np.float32)
        if len(cols) < 2:
            return
        peak = float(rng.uniform(0.02, 0.12)) * self.height
        profile = peak * (0.6 + 0.4 * _smooth_noise(rng, (1, len(cols)), (1, int(rng.integers(3, 12))))[0])
        ends = np.clip(np.minimum(cols - x0, x1 - cols) / (0.1 * width), 0.0, 1.0)
        top = self.camera.horizon_row - profile * ends
        outline = np.concatenate(
            [
                np.stack([cols, top], axis=1),
                [[cols[-1], self.camera.horizon_row + 0.5], [cols[0], self.camera.horizon_row + 0.5]],
            ]
        )
        land = self.haze_luminance + float(rng.uniform(-0.35, -0.05)) * (1.0 if rng.random() < 0.8 else -0.5)
        _fill(self.static, outline.astype(np.float32), float(np.clip(land, 0.02, 0.98)))

    def _build_waves(self, rng: np.random.Generator) -> None:
        """Wave components ``a_i L_sea att_i(Z) sin(k_i . (X, Z) - w_i t)``, deep water ``w = sqrt(g k)``.

        Amplitudes are relative to the local sea luminance ``L_sea`` (a DVS sees relative change);
        glitter adds ``g max(waves - c L_sea, 0)`` where crests are brightest. ``att_i`` fades a component
        out where one wavelength spans fewer than 4 pixels (no aliasing).
        Each component is stored as the two grids ``a att sin(phase)`` and ``a att cos(phase)``, so a
        frame is one weighted sum, ``sin(p - w t) = sin p cos wt - cos p sin wt`` (einsum rather than BLAS,
        whose threads fight on a busy machine).
        """
        roughness = float(rng.uniform(0.03, 0.15))
        sea = np.maximum(self.static[self.sea_first_row :], 0.05)
        grids, rates = [], []
        for low, high in ((1.0, 3.0), (3.0, 9.0), (9.0, 30.0), (2.0, 12.0)):
            wavelength = float(rng.uniform(low, high))
            k = 2 * math.pi / wavelength
            direction = float(rng.uniform(-1.2, 1.2))
            phase = k * math.sin(direction) * self.sea_x + k * math.cos(direction) * self.sea_depth
            pixels_per_wave = wavelength * self.camera.focal_px / self.sea_depth
            fade = np.clip((pixels_per_wave - 4.0) / 8.0, 0.0, 1.0)
            gain = roughness * float(rng.uniform(0.4, 1.0)) * fade * sea
            grids += [(gain * np.sin(phase)).ravel(), (gain * np.cos(phase)).ravel()]
            rates.append(math.sqrt(9.81 * k))
        self.wave_grids = np.ascontiguousarray(np.stack(grids), dtype=np.float32)
        self.wave_rates = np.array(rates)
        self.glitter_threshold = (float(rng.uniform(0.6, 0.95)) * roughness * 2.0 * sea).astype(np.float32)
        self.glitter_gain = float(rng.uniform(0.0, 4.0)) if rng.random() < 0.7 else 0.0

    def _populate(self, rng: np.random.Generator) -> None:
        duration_s = self.config.duration_us * 1e-6
        track_id = 0
        objects: list = []
        z_far = min(1500.0, self.camera.focal_px * 3.0)
        for _ in range(int(rng.integers(1, 9))):
            profile = _buoy_profile(rng, self.sea_luminance)
            tallest_m = max(float(polygon[:, 1].max()) for polygon, _ in profile)
            z_near = max(15.0, self.camera.focal_px * tallest_m / (0.25 * self.height))
            z = float(np.exp(rng.uniform(math.log(z_near), math.log(max(z_far * 0.3, 2.0 * z_near)))))
            x = float(rng.uniform(-0.5, 0.5)) * self.width * z / self.camera.focal_px
            objects.append(
                _Buoy(
                    track_id,
                    self.camera,
                    profile,
                    x,
                    z,
                    float(rng.uniform(0.05, 0.35)),
                    float(rng.uniform(1.5, 4.5)),
                    float(rng.uniform(0, 2 * math.pi)),
                    float(rng.uniform(0.02, 0.2)),
                    self.visibility_m,
                    self.haze_luminance,
                )
            )
            track_id += 1
        initial = int(rng.integers(1, 6))
        rate = float(rng.uniform(0.05, 0.4))
        spawn_times = [0.0] * initial
        t = 0.0
        while True:
            t += float(rng.exponential(1.0 / rate))
            if t >= duration_s:
                break
            spawn_times.append(t)
        for index, t0 in enumerate(spawn_times):
            kind = str(rng.choice(list(_BOAT_KINDS), p=[0.15, 0.3, 0.25, 0.15, 0.15]))
            length = float(rng.uniform(*_BOAT_KINDS[kind]))
            z_near = max(25.0, self.camera.focal_px * length / (0.6 * self.width))
            z = float(np.exp(rng.uniform(math.log(z_near), math.log(max(z_far, 2.0 * z_near)))))
            half_view = 0.5 * self.canvas_width * z / self.camera.focal_px
            speed = float(rng.uniform(0.8, 9.0)) * (0.5 if kind == "ship" else 1.0)
            heading = float(rng.uniform(0.3, math.pi - 0.3)) * (1 if rng.random() < 0.5 else -1)
            if rng.random() < 0.15:
                heading = float(rng.uniform(-0.4, 0.4)) + (math.pi if rng.random() < 0.5 else 0.0)
            if index < initial:
                x = float(rng.uniform(-0.8, 0.8)) * half_view
            else:
                x = -math.copysign(half_view + 0.6 * length, math.sin(heading))
            turn = float(rng.uniform(-0.08, 0.08)) if rng.random() < 0.4 else 0.0
            objects.append(
                _Boat(
                    track_id,
                    self.camera,
                    _boat_profile(kind, length, rng, self.sea_luminance),
                    length,
                    length * float(rng.uniform(0.25, 0.4)),
                    x,
                    z,
                    heading,
                    turn,
                    speed,
                    t0,
                    float(rng.uniform(0.03, 0.15)) * min(length, 10.0) / 5.0,
                    float(rng.uniform(1.0, 3.0)),
                    float(rng.uniform(0, 2 * math.pi)),
                    self.visibility_m,
                    self.haze_luminance,
                    self.canvas_width,
                )
            )
            track_id += 1
        self.objects = objects

    def _background(self, t_s: float) -> np.ndarray:
        canvas = self.static.copy()
        angles = self.wave_rates * t_s
        coefficients = np.stack([np.cos(angles), -np.sin(angles)], axis=1).ravel().astype(np.float32)
        waves = np.einsum("i,ij->j", coefficients, self.wave_grids).reshape(-1, self.canvas_width)
        sea = canvas[self.sea_first_row :]
        sea += waves
        if self.glitter_gain > 0.0:
            sea += self.glitter_gain * np.maximum(waves - self.glitter_threshold, 0.0)
        return canvas

    def _camera_shift(self, t_s: float) -> tuple[float, float, float]:
        """Swell (roll, pitch, yaw: sines of 2-6 s) plus engine vibration (6-15 Hz, 0.1-0.4 px)."""
        roll_s, pitch_s, yaw_s = np.sin(self.motion_rates * t_s + self.motion_phases)
        engine_x, engine_y = self.engine_px * np.sin(self.engine_rates * t_s)
        return (
            self.roll_amplitude * float(roll_s),
            self.yaw_amplitude_px * float(yaw_s) + float(engine_x),
            self.pitch_amplitude_px * float(pitch_s) + float(engine_y),
        )


# --------------------------------------------------------------------------------------------------
# traffic


def _car_profile(
    kind: str, length: float, rng: np.random.Generator, road: float
) -> list[tuple[np.ndarray, float]]:
    """Side view of a vehicle in metres, front towards +x, road at y = 0, x in [-L/2, L/2]."""
    half = length / 2.0
    body_l = _contrasting_luminance(rng, road, 0.18)
    glass = float(rng.uniform(0.05, 0.3)) if body_l > 0.35 else float(rng.uniform(0.45, 0.7))
    tyre = float(rng.uniform(0.02, 0.1))
    wheel_r = 0.33 if kind != "truck" else 0.5
    if kind in ("sedan", "hatchback"):
        roof_x1 = 0.45 * half if kind == "sedan" else 0.2 * half
        roof_x0 = -0.5 * half if kind == "sedan" else -0.85 * half
        parts = [
            (
                np.array(
                    [[-half, 0.3], [half, 0.3], [half, 0.8], [0.75 * half, 1.0], [-half, 1.05]], np.float32
                ),
                body_l,
            ),
            (
                np.array(
                    [
                        [-0.75 * half if kind == "sedan" else -half, 1.0],
                        [0.7 * half, 1.0],
                        [roof_x1, 1.45],
                        [roof_x0, 1.45],
                    ],
                    np.float32,
                ),
                body_l,
            ),
            (
                np.array(
                    [
                        [-0.6 * half if kind == "sedan" else -0.9 * half, 1.05],
                        [0.6 * half, 1.05],
                        [roof_x1 - 0.05, 1.38],
                        [roof_x0 + 0.05, 1.38],
                    ],
                    np.float32,
                ),
                glass,
            ),
        ]
    elif kind == "van":
        parts = [
            (
                np.array(
                    [[-half, 0.3], [half, 0.3], [half, 1.1], [0.7 * half, 2.0], [-half, 2.05]], np.float32
                ),
                body_l,
            ),
            (
                np.array(
                    [[0.45 * half, 1.2], [0.85 * half, 1.2], [0.68 * half, 1.85], [0.45 * half, 1.85]],
                    np.float32,
                ),
                glass,
            ),
        ]
    else:
        cargo_l = _contrasting_luminance(rng, road, 0.18)
        parts = [
            (_rect(-half, 0.55, 0.55 * half, float(rng.uniform(2.8, 3.6))), cargo_l),
            (
                np.array(
                    [[0.6 * half, 0.4], [half, 0.4], [half, 2.2], [0.9 * half, 2.8], [0.6 * half, 2.8]],
                    np.float32,
                ),
                body_l,
            ),
            (_rect(0.7 * half, 1.7, 0.95 * half, 2.5), glass),
        ]
    axles = (-0.68 * half, 0.68 * half) if kind != "truck" else (-0.75 * half, -0.45 * half, 0.8 * half)
    parts += [(_disc((axle, wheel_r), wheel_r), tyre) for axle in axles]
    return parts


_VEHICLE_KINDS = {"sedan": (4.2, 5.0), "hatchback": (3.6, 4.3), "van": (4.8, 6.0), "truck": (7.0, 12.0)}
"""Vehicle kinds and their length ranges in metres."""


@dataclass(frozen=True, eq=False)
class _Vehicle:
    """A vehicle in a lane at distance ``z_m``: ``x(t) = x0 + v (t - t0)`` metres (v signed)."""

    track_id: int
    camera: _Camera
    profile: list[tuple[np.ndarray, float]]
    length_m: float
    z_m: float
    x0_m: float
    velocity_m_s: float
    t0_s: float
    canvas_width: int
    class_name: str = "car"

    def draw(self, t_s: float) -> _Drawn | None:
        x_m = self.x0_m + self.velocity_m_s * (t_s - self.t0_s)
        u, _ = self.camera.project(x_m, self.z_m)
        half_px = self.camera.focal_px * self.length_m / self.z_m
        if u + half_px < 0 or u - half_px > self.canvas_width:
            return None
        stretch = 1.0 if self.velocity_m_s >= 0 else -1.0
        bounce = 0.015 * math.sin(7.0 * t_s + self.track_id)
        return _Drawn(
            self.z_m,
            _place(self.profile, self.camera, x_m, self.z_m, bounce, stretch, 0.0, self.track_id, 0.0, 0.0),
        )


@dataclass(frozen=True, eq=False)
class _Pedestrian:
    """A walking figure at ``(x, z)(t) = (x0, z0) + (vx, vz)(t - t0)`` metres, legs swinging with the stride.

    Limb angle ``theta(t) = A sin(2 pi s(t) / stride)`` with ``s`` the distance walked.
    """

    track_id: int
    camera: _Camera
    height_m: float
    x0_m: float
    z0_m: float
    vx_m_s: float
    vz_m_s: float
    t0_s: float
    t1_s: float
    clothes: tuple[float, float, float]
    canvas_width: int
    class_name: str = "pedestrian"

    def draw(self, t_s: float) -> _Drawn | None:
        if not self.t0_s <= t_s <= self.t1_s:
            return None
        tau = t_s - self.t0_s
        x_m, z_m = self.x0_m + self.vx_m_s * tau, self.z0_m + self.vz_m_s * tau
        u, _ = self.camera.project(x_m, z_m)
        if (
            u < -self.height_m * self.camera.focal_px / z_m
            or u > self.canvas_width + self.height_m * self.camera.focal_px / z_m
        ):
            return None
        h = self.height_m
        walked = math.hypot(self.vx_m_s, self.vz_m_s) * tau
        side_on = abs(self.vx_m_s) > abs(self.vz_m_s)
        swing = (0.45 if side_on else 0.15) * math.sin(2 * math.pi * walked / (0.75 * h))
        hip, neck = (0.0, 0.52 * h), (0.0, 0.82 * h)
        limb = 0.035 * h
        top, legs, skin = self.clothes
        profile = []
        for sign in (1.0, -1.0):
            knee = (hip[0] + sign * 0.26 * h * math.sin(swing), hip[1] - 0.26 * h * math.cos(swing))
            foot = (knee[0] + sign * 0.26 * h * math.sin(swing - abs(swing) * 0.5), 0.0)
            profile += [(_segment(hip, knee, limb * 1.2), legs), (_segment(knee, foot, limb), legs)]
            hand = (neck[0] - sign * 0.3 * h * math.sin(swing * 0.8), neck[1] - 0.33 * h)
            profile.append((_segment((0.0, 0.8 * h), hand, limb * 0.8), top))
        profile += [
            (_segment(hip, neck, 0.08 * h if side_on else 0.11 * h), top),
            (_disc((0.0, 0.9 * h), 0.065 * h), skin),
        ]
        direction = 1.0 if self.vx_m_s >= 0 else -1.0
        return _Drawn(
            z_m, _place(profile, self.camera, x_m, z_m, 0.0, direction, 0.0, self.track_id, 0.0, 0.0)
        )


class TrafficScene(Scene):
    """Road with lanes, markings, kerbs and buildings; cars both ways; walking and crossing pedestrians."""

    def __init__(self, config: SceneConfig) -> None:
        super().__init__(config)
        rng = self.rng
        self.camera = _Camera(
            focal_px=float(rng.uniform(0.7, 1.5)) * self.width,
            height_m=float(rng.uniform(2.5, 9.0)),
            centre_col=(self.canvas_width - 1) / 2.0,
            horizon_row=CANVAS_MARGIN_PX + float(rng.uniform(-0.3, 0.35)) * self.height,
        )
        self.lane_count = int(rng.integers(2, 5))
        self.lane_width_m = float(rng.uniform(3.0, 3.8))
        self.sidewalk_m = float(rng.uniform(2.0, 4.0))
        bottom_row = self.canvas_height - CANVAS_MARGIN_PX
        z_bottom = (
            self.camera.focal_px * self.camera.height_m / max(bottom_row - self.camera.horizon_row, 1.0)
        )
        nearest_z = self.camera.focal_px * 5.0 / (0.8 * self.width)
        self.road_near_z = max(z_bottom + self.sidewalk_m * float(rng.uniform(0.3, 1.0)), nearest_z)
        self.road_far_z = self.road_near_z + self.lane_count * self.lane_width_m
        self.road_luminance = float(rng.uniform(0.15, 0.55))
        self.crosswalk_x = (
            float(rng.uniform(-0.3, 0.3)) * self.width * self.road_near_z / self.camera.focal_px
        )
        self._build_static(rng)
        self.vibration_px = float(rng.uniform(0.05, 0.5))
        self.vibration_rates = rng.uniform(2 * math.pi * 3.0, 2 * math.pi * 15.0, size=3)
        self.gain_amplitude = float(rng.uniform(0.0, 0.2))
        self.gain_rate = 2 * math.pi / float(rng.uniform(3.0, 20.0))
        self.shadow_depth = float(rng.uniform(0.0, 0.35))
        self.shadow_width_px = float(rng.uniform(0.3, 1.5)) * self.width
        self.shadow_speed_px_s = float(rng.uniform(-40.0, 40.0))
        self.scenery = [self._pole(rng) for _ in range(int(rng.integers(1, 3)) if rng.random() < 0.4 else 0)]
        self._populate(rng)

    def _pole(self, rng: np.random.Generator) -> _Drawn:
        """A lamp post or sign post on the near sidewalk: it hides what passes behind it."""
        z_m = self.road_near_z - float(rng.uniform(0.3, 0.8)) * self.sidewalk_m
        x_m = float(rng.uniform(-0.45, 0.45)) * self.width * z_m / self.camera.focal_px
        height_m, half_m = float(rng.uniform(3.0, 6.0)), float(rng.uniform(0.05, 0.12))
        luminance = _contrasting_luminance(rng, self.road_luminance, 0.2)
        profile = [(_rect(-half_m, 0.0, half_m, height_m), luminance)]
        if rng.random() < 0.5:
            board = float(rng.uniform(0.4, 0.9))
            profile.append(
                (_rect(-board, height_m - 1.5 * board, board, height_m), _contrasting_luminance(rng, 0.5))
            )
        return _Drawn(z_m, _place(profile, self.camera, x_m, z_m, 0.0, 1.0, 0.0, None, 0.0, 0.0))

    def _row_of(self, z_m: float) -> float:
        return self.camera.horizon_row + self.camera.focal_px * self.camera.height_m / z_m

    def _build_static(self, rng: np.random.Generator) -> None:
        width, height = self.canvas_width, self.canvas_height
        rows = np.arange(height, dtype=np.float32)[:, None]
        sky = float(rng.uniform(0.4, 0.95))
        canvas = np.empty((height, width), dtype=np.float32)
        canvas[:] = sky - 0.15 * np.clip((self.camera.horizon_row - rows) / height, 0.0, 1.0)
        ground = float(rng.uniform(0.2, 0.6))
        horizon = int(max(0, math.ceil(self.camera.horizon_row)))
        canvas[horizon:] = ground
        canvas += 0.05 * _smooth_noise(rng, (height, width), (6, 9))
        building_z = self.road_far_z + self.sidewalk_m + float(rng.uniform(1.0, 8.0))
        x_left = -(self.camera.centre_col + 10) * building_z / self.camera.focal_px
        x_right = -x_left
        x = x_left
        while x < x_right:
            building_w = float(rng.uniform(6.0, 20.0))
            building_h = float(rng.uniform(4.0, 30.0))
            wall = float(rng.uniform(0.1, 0.9))
            u0, v0 = self.camera.project(x, building_z, 0.0)
            u1, v1 = self.camera.project(x + building_w, building_z, building_h)
            _fill(canvas, _rect(u0, v0, u1, v1), wall)
            window = wall + (0.25 if wall < 0.5 else -0.25)
            for floor in np.arange(1.0, building_h - 1.0, 3.0):
                for bay in np.arange(1.0, building_w - 1.0, 2.5):
                    wu0, wv0 = self.camera.project(x + bay, building_z, floor + 1.4)
                    wu1, wv1 = self.camera.project(x + bay + 1.2, building_z, floor)
                    _fill(canvas, _rect(wu0, wv0, wu1, wv1), window + float(rng.uniform(-0.08, 0.08)))
            if rng.random() < 0.4:
                tree_u, tree_v = self.camera.project(x + building_w, building_z - 1.0, 4.0)
                radius = 2.5 * self.camera.focal_px / building_z
                _fill(
                    canvas,
                    _rect(
                        tree_u - radius * 0.15, tree_v, tree_u + radius * 0.15, self._row_of(building_z - 1.0)
                    ),
                    float(rng.uniform(0.05, 0.3)),
                )
                _fill(canvas, _disc((tree_u, tree_v), radius, radius * 1.2), float(rng.uniform(0.1, 0.45)))
            x += building_w + float(rng.uniform(0.0, 4.0))
        pavement = self.pavement_luminance = float(rng.uniform(0.35, 0.8))
        kerb = float(np.clip(pavement + rng.uniform(-0.3, 0.3), 0.0, 1.0))
        far_walk_z = self.road_far_z + self.sidewalk_m
        _fill(canvas, _rect(0, self._row_of(far_walk_z), width, self._row_of(self.road_far_z)), pavement)
        _fill(canvas, _rect(0, self._row_of(self.road_far_z), width, height), pavement)
        road = _rect(0, self._row_of(self.road_far_z), width, self._row_of(self.road_near_z))
        _fill(canvas, road, self.road_luminance)
        for z_kerb in (self.road_far_z, self.road_near_z):
            row = self._row_of(z_kerb)
            _fill(canvas, _rect(0, row - 0.15 * self.camera.focal_px / z_kerb, width, row), kerb)
        marking = float(np.clip(self.road_luminance + rng.uniform(0.3, 0.6), 0.0, 1.0))
        half_view_m = self.camera.centre_col * self.road_far_z / self.camera.focal_px + 10.0
        for lane in range(1, self.lane_count):
            z_line = self.road_near_z + lane * self.lane_width_m
            dashed = lane != self.lane_count // 2 or rng.random() < 0.5
            for x0 in np.arange(-half_view_m, half_view_m, 9.0 if dashed else 1000.0):
                x1 = x0 + (3.0 if dashed else 2 * half_view_m)
                line = np.array(
                    [
                        self.camera.project(x0, z_line - 0.08),
                        self.camera.project(x1, z_line - 0.08),
                        self.camera.project(x1, z_line + 0.08),
                        self.camera.project(x0, z_line + 0.08),
                    ],
                    np.float32,
                )
                _fill(canvas, line, marking)
        for stripe in np.arange(0.0, 4.0, 0.8):
            x0 = self.crosswalk_x + stripe
            quad = np.array(
                [
                    self.camera.project(x0, self.road_near_z),
                    self.camera.project(x0 + 0.45, self.road_near_z),
                    self.camera.project(x0 + 0.45, self.road_far_z),
                    self.camera.project(x0, self.road_far_z),
                ],
                np.float32,
            )
            _fill(canvas, quad, marking)
        texture = rng.normal(0.0, float(rng.uniform(0.005, 0.03)), size=canvas.shape).astype(np.float32)
        self.static = np.clip(canvas + texture, 0.0, 1.0)

    def _populate(self, rng: np.random.Generator) -> None:
        duration_s = self.config.duration_us * 1e-6
        objects: list = []
        track_id = 0
        for lane in range(self.lane_count):
            z_lane = self.road_near_z + (lane + 0.5) * self.lane_width_m
            direction = 1.0 if (lane < self.lane_count / 2) != (rng.random() < 0.15) else -1.0
            speed = float(rng.uniform(3.0, 16.0))
            half_view_m = (self.camera.centre_col + 20.0) * z_lane / self.camera.focal_px
            entry = -direction * (half_view_m + 7.0)
            crossing_s = 2 * (half_view_m + 7.0) / speed
            mean_gap_s = float(rng.uniform(1.0, 6.0))
            t = -crossing_s
            last_length = 0.0
            while t < duration_s:
                kind = str(rng.choice(list(_VEHICLE_KINDS), p=[0.35, 0.25, 0.25, 0.15]))
                length = float(rng.uniform(*_VEHICLE_KINDS[kind]))
                t += max(float(rng.exponential(mean_gap_s)), (length + last_length) / speed + 0.6)
                last_length = length
                objects.append(
                    _Vehicle(
                        track_id,
                        self.camera,
                        _car_profile(kind, length, rng, self.road_luminance),
                        length,
                        z_lane,
                        entry,
                        direction * speed,
                        t,
                        self.canvas_width,
                    )
                )
                track_id += 1
        walk_rate = float(rng.uniform(0.1, 0.8))
        t = -20.0
        while t < duration_s:
            t += float(rng.exponential(1.0 / walk_rate))
            height = float(rng.uniform(1.5, 1.95) if rng.random() < 0.85 else rng.uniform(1.0, 1.5))
            clothes = (
                _contrasting_luminance(rng, self.pavement_luminance, 0.2),
                _contrasting_luminance(rng, 0.5 * (self.pavement_luminance + self.road_luminance), 0.2),
                float(rng.uniform(0.3, 0.8)),
            )
            speed = float(rng.uniform(0.8, 1.9))
            choice = rng.random()
            if choice < 0.3:
                near = rng.random() < 0.5
                z0 = self.road_near_z - 0.3 if near else self.road_far_z + 0.3
                vz = speed if near else -speed
                x0 = self.crosswalk_x + float(rng.uniform(0.3, 3.7))
                span = self.road_far_z - self.road_near_z + 0.6
                objects.append(
                    _Pedestrian(
                        track_id,
                        self.camera,
                        height,
                        x0,
                        z0,
                        float(rng.uniform(-0.2, 0.2)),
                        vz,
                        t,
                        t + span / speed,
                        clothes,
                        self.canvas_width,
                    )
                )
            else:
                near = choice < 0.65
                z0 = (
                    self.road_near_z - float(rng.uniform(0.5, self.sidewalk_m * 0.8))
                    if near
                    else self.road_far_z + float(rng.uniform(0.5, self.sidewalk_m))
                )
                direction = 1.0 if rng.random() < 0.5 else -1.0
                half_view_m = (self.camera.centre_col + 20.0) * z0 / self.camera.focal_px
                x0 = -direction * (half_view_m + 1.0)
                objects.append(
                    _Pedestrian(
                        track_id,
                        self.camera,
                        height,
                        x0,
                        z0,
                        direction * speed,
                        0.0,
                        t,
                        t + 2 * (half_view_m + 1.0) / speed,
                        clothes,
                        self.canvas_width,
                    )
                )
            track_id += 1
        self.objects = [
            obj for obj in objects if obj.draw(0.0) is not None or self._ever_visible(obj, duration_s)
        ]

    def _ever_visible(self, obj, duration_s: float) -> bool:
        return any(obj.draw(t) is not None for t in np.linspace(0.0, duration_s, 200))

    def _background(self, t_s: float) -> np.ndarray:
        return self.static.copy()

    def _lighting(self, frame: np.ndarray, t_s: float) -> np.ndarray:
        """``L' = L g(t) (1 - d s(u, t))``: gain ``g = 1 + a sin(w t)``, shadow ``s`` moving in ``u``."""
        gain = 1.0 + self.gain_amplitude * math.sin(self.gain_rate * t_s)
        cols = np.arange(self.canvas_width, dtype=np.float32)
        centre = (self.shadow_speed_px_s * t_s) % (3.0 * self.canvas_width) - self.canvas_width
        shadow = np.exp(-(((cols - centre) / self.shadow_width_px) ** 2))
        frame *= (gain * (1.0 - self.shadow_depth * shadow)).astype(np.float32)[None, :]
        return frame

    def _camera_shift(self, t_s: float) -> tuple[float, float, float]:
        values = np.sin(self.vibration_rates * t_s)
        return (
            0.001 * float(values[2]),
            self.vibration_px * float(values[0]),
            self.vibration_px * float(values[1]),
        )


# --------------------------------------------------------------------------------------------------
# street


_NEAR_M = 0.5
"""Near clipping distance of the street's static geometry, metres: below the frame for every street camera."""

_STREET_CAR_SHAPES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "small": ((1.6, 1.75), (1.4, 1.52), (3.6, 4.2)),
    "sedan": ((1.75, 1.9), (1.4, 1.5), (4.4, 5.0)),
    "suv": ((1.8, 2.0), (1.65, 1.85), (4.3, 4.9)),
    "van": ((1.9, 2.1), (1.95, 2.6), (4.8, 6.2)),
}
"""Kinds of street car seen end-on: width, height and length ranges in metres."""


@dataclass(frozen=True)
class _Ego:
    """The street camera's position: lateral ``x_m``, ``z(t) = v t + a sin(w t)`` metres along the road.

    A pole camera has ``v = a = 0``; a car camera drives at ``v`` with a slow surge ``a`` (braking and
    accelerating). ``far_m`` is the farthest distance at which the street is drawn, ``objects_far_m`` that
    of cars, pedestrians and street furniture (where the widest car, 2.1 m, is under 6 px wide, so that
    anything appearing there is too small to be labelled)."""

    x_m: float
    speed_m_s: float
    surge_m: float
    surge_rate: float
    far_m: float
    objects_far_m: float

    def z(self, t_s: float) -> float:
        """Camera position along the road at ``t_s`` seconds, metres."""
        return self.speed_m_s * t_s + self.surge_m * math.sin(self.surge_rate * t_s)


def _project_world(
    points: np.ndarray, camera: _Camera, ego_x: float, ego_z: float, near_m: float = _NEAR_M
) -> np.ndarray:
    """Canvas pixels ``[..., 2]`` of world points ``[..., 3]`` (x, y, z metres) seen from ``(ego_x, ego_z)``.

    ``u = c_x + f (x - x_e) / d``, ``v = v_h + f (h - y) / d`` with ``d = max(z - z_e, near_m)``: clamping
    the distance clips a quad whose near and far edges lie across the road (constant z) exactly at the
    near plane (a plane that leaves the canvas nearer than ``near_m`` is clipped there, keeping the
    polygons small)."""
    distance = np.maximum(points[..., 2] - ego_z, near_m)
    u = camera.centre_col + camera.focal_px * (points[..., 0] - ego_x) / distance
    v = camera.horizon_row + camera.focal_px * (camera.height_m - points[..., 1]) / distance
    return np.stack([u, v], axis=-1).astype(np.float32)


def _box_quad(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> list[list[float]]:
    """Corners ``[4][3]`` of an axis-aligned rectangle in a plane of constant x, y or z (one pair equal)."""
    if x0 == x1:
        return [[x0, y0, z0], [x0, y1, z0], [x0, y1, z1], [x0, y0, z1]]
    if y0 == y1:
        return [[x0, y0, z0], [x1, y0, z0], [x1, y0, z1], [x0, y0, z1]]
    return [[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0]]


@dataclass(frozen=True, eq=False)
class _Facet:
    """Non-overlapping static quads of one luminance, world metres ``[N, 4, 3]``, drawn within ``reach_m``;
    ``layer`` orders facets that may overlap (lower first)."""

    quads: np.ndarray
    luminance: float
    reach_m: float = math.inf
    layer: int = 0

    def canvas_polygons(
        self, camera: _Camera, ego_x: float, ego_z: float, far_m: float, near_m: float
    ) -> np.ndarray:
        """Canvas polygons ``[M, 4, 2]`` of the quads in front of ``near_m`` and within reach (metres)."""
        quads = self.quads.reshape(-1, 4, 3)
        z = quads[..., 2]
        keep = (z.max(axis=1) - ego_z > near_m) & (z.min(axis=1) - ego_z < min(far_m, self.reach_m))
        return _project_world(quads[keep], camera, ego_x, ego_z, near_m)


@dataclass(frozen=True, eq=False)
class _QuadBatch:
    """Static quads drawn group by group, each group in one fill of one luminance (so the quads of a group
    must not overlap): world metres ``[N, 4, 3]`` ordered by group, the end index of each group, and per
    quad its nearest and farthest z and its reach (metres); quads are clipped at ``near_m``, where their
    plane has left the canvas."""

    quads: np.ndarray
    z_near: np.ndarray
    z_far: np.ndarray
    reach_m: np.ndarray
    ends: np.ndarray
    luminances: tuple[float, ...]
    near_m: float

    @classmethod
    def of(cls, facets: list[_Facet], near_m: float) -> _QuadBatch:
        """Facets merged by layer and luminance (to 1/6), layer by layer."""
        groups: dict[tuple[int, float], list[_Facet]] = {}
        for facet in facets:
            if facet.quads.size:
                groups.setdefault((facet.layer, round(facet.luminance * 6.0) / 6.0), []).append(facet)
        quads, reach, ends = [], [], []
        keys = sorted(groups, key=lambda key: key[0])
        for key in keys:
            for facet in groups[key]:
                quads.append(facet.quads.reshape(-1, 4, 3))
                reach.append(np.full(len(quads[-1]), facet.reach_m, np.float32))
            ends.append(sum(len(q) for q in quads))
        stacked = np.concatenate(quads).astype(np.float32)
        return cls(
            stacked,
            stacked[..., 2].min(axis=1),
            stacked[..., 2].max(axis=1),
            np.concatenate(reach),
            np.array(ends),
            tuple(key[1] for key in keys),
            near_m,
        )

    def draw(self, canvas: np.ndarray, camera: _Camera, ego_x: float, ego_z: float, far_m: float) -> None:
        """Fill the quads in front of the near plane and within reach and ``far_m``, group by group."""
        keep = (self.z_far - ego_z > _NEAR_M) & (self.z_near - ego_z < np.minimum(far_m, self.reach_m))
        kept_ends = np.cumsum(keep)[self.ends - 1]
        polygons = _project_world(self.quads[keep], camera, ego_x, ego_z, self.near_m)
        for group, luminance in zip(np.split(polygons, kept_ends[:-1]), self.luminances, strict=True):
            _fill_polygons(canvas, group, luminance)


def _parts_box(parts: list[_Part]) -> tuple[float, float, float, float]:
    """Canvas box ``(u0, v0, u1, v1)`` around all vertices of ``parts``, one pixel wider on each side."""
    points = np.concatenate([part.polygon for part in parts])
    low, high = points.min(axis=0), points.max(axis=0)
    return float(low[0]) - 1.0, float(low[1]) - 1.0, float(high[0]) + 1.0, float(high[1]) + 1.0


def _fill_polygons(canvas: np.ndarray, polygons: np.ndarray, value: float) -> None:
    """Fill non-overlapping polygons ``[M, K, 2]`` in one call (overlaps would cancel: even-odd rule)."""
    if len(polygons):
        cv2.fillPoly(canvas, list(np.round(polygons * 16.0).astype(np.int32)), value, cv2.LINE_8, 4)


@dataclass(frozen=True, eq=False)
class _Building:
    """A building along one side of the street: facets in drawing order; ``z_far_m`` sorts it."""

    z_near_m: float
    z_far_m: float
    facets: list[_Facet]


@dataclass(frozen=True, eq=False)
class _Upright:
    """A profile facing the camera (metres, x across, y up), stacked so that it is placed in one step:
    vertices ``[K, 2]``, each polygon's ``(start, end)`` rows, their luminances and the profile's
    bounds ``(x0, y0, x1, y1)``."""

    vertices: np.ndarray
    spans: tuple[tuple[int, int], ...]
    luminances: tuple[float, ...]
    bounds: tuple[float, float, float, float]

    @classmethod
    def of(cls, profile: list[tuple[np.ndarray, float]]) -> _Upright:
        ends = np.cumsum([len(polygon) for polygon, _ in profile]).tolist()
        spans = tuple(zip([0] + ends[:-1], ends, strict=True))
        vertices = np.concatenate([polygon for polygon, _ in profile]).astype(np.float32)
        low, high = vertices.min(axis=0), vertices.max(axis=0)
        bounds = (float(low[0]), float(low[1]), float(high[0]), float(high[1]))
        return cls(vertices, spans, tuple(luminance for _, luminance in profile), bounds)

    def box(self, camera: _Camera, x_m: float, distance_m: float) -> tuple[float, float, float, float]:
        """Canvas box ``(u0, v0, u1, v1)`` of :meth:`place` at height 0, one pixel wider on each side."""
        scale = camera.focal_px / distance_m
        u0, v0 = camera.project(x_m, distance_m)
        x_low, y_low, x_high, y_high = self.bounds
        return (
            u0 + scale * x_low - 1.0,
            v0 - scale * y_high - 1.0,
            u0 + scale * x_high + 1.0,
            v0 - scale * y_low + 1.0,
        )

    def place(
        self, camera: _Camera, x_m: float, distance_m: float, y_m: float, owner: int | None
    ) -> list[_Part]:
        """Parts at lateral ``x_m``, ``distance_m`` and height ``y_m``: ``u = u0 + s x``, ``v = v0 - s y``
        with ``s = f / d`` (:func:`_place` without stretch or tilt)."""
        scale = camera.focal_px / distance_m
        u0, v0 = camera.project(x_m, distance_m, y_m)
        placed = self.vertices * np.float32([scale, -scale]) + np.float32([u0, v0])
        return [
            _Part(placed[start:end], luminance, owner)
            for (start, end), luminance in zip(self.spans, self.luminances, strict=True)
        ]


@dataclass(frozen=True, eq=False)
class _Prop:
    """Street furniture standing at ``(x_m, z_m)``, ``height_m`` tall: its full profile facing the camera
    and, for when it is under 30 px tall, a simpler one (its first parts)."""

    x_m: float
    z_m: float
    height_m: float
    near: _Upright
    far: _Upright

    @classmethod
    def of(cls, x_m: float, z_m: float, profile: list[tuple[np.ndarray, float]], far_parts: int) -> _Prop:
        height = float(max(polygon[:, 1].max() for polygon, _ in profile))
        return cls(x_m, z_m, height, _Upright.of(profile), _Upright.of(profile[:far_parts]))

    def place(
        self, camera: _Camera, ego_x: float, distance_m: float
    ) -> tuple[list[_Part], tuple[float, float, float, float]]:
        """Its parts seen from ``ego_x`` at ``distance_m`` and their canvas box (see :meth:`_Upright.box`)."""
        upright = self.near if self.height_m * camera.focal_px / distance_m >= 30.0 else self.far
        x_rel = self.x_m - ego_x
        return upright.place(camera, x_rel, distance_m, 0.0, None), upright.box(camera, x_rel, distance_m)


@dataclass(frozen=True)
class _CarLook:
    """A car seen end-on: size (metres), grey levels and the profile of its near face (rear or front),
    metres with x across the car and y up from the road."""

    width_m: float
    height_m: float
    length_m: float
    belt_m: float
    body: float
    glass: float
    end: _Upright
    far_end: _Upright
    tiny_end: _Upright


def _car_look(kind: str, front: bool, rng: np.random.Generator, road: float) -> _CarLook:
    """Rear or front view of a car of ``kind`` (see :data:`_STREET_CAR_SHAPES`): wheels, bumper, lower body,
    cabin, rear window or windscreen, tail or head lights, grille, plate and mirrors."""
    (w0, w1), (h0, h1), (l0, l1) = _STREET_CAR_SHAPES[kind]
    width, height, length = float(rng.uniform(w0, w1)), float(rng.uniform(h0, h1)), float(rng.uniform(l0, l1))
    body = _contrasting_luminance(rng, road, 0.18)
    glass = float(rng.uniform(0.05, 0.25)) if body > 0.35 else float(rng.uniform(0.45, 0.7))
    tyre = float(rng.uniform(0.02, 0.1))
    lamp = float(rng.uniform(0.75, 0.95)) if front else _contrasting_luminance(rng, body, 0.2)
    half = width / 2.0
    van = kind == "van"
    belt = (0.45 if van else 0.55) * height
    top = (0.95 if van else 0.78) * half
    glass_low = belt + (0.04 if front else 0.08)
    parts = [
        (_rect(-half + 0.08, 0.0, -half + 0.34, 0.4), tyre),
        (_rect(half - 0.34, 0.0, half - 0.08, 0.4), tyre),
        (_rect(-half, 0.28, half, belt), body),
        (
            np.array([[-half + 0.05, belt], [half - 0.05, belt], [top, height], [-top, height]], np.float32),
            body,
        ),
    ]
    glass_high = height - (0.12 if van else 0.07)
    glass_half_low, glass_half_high = half - 0.14, top - 0.1
    if van and not front:
        parts += [
            (_rect(-glass_half_low, glass_low + 0.3, -0.06, glass_high), glass),
            (_rect(0.06, glass_low + 0.3, glass_half_low, glass_high), glass),
            (_rect(-0.015, 0.42, 0.015, height - 0.05), tyre),
        ]
    else:
        low = glass_high - 0.45 if van else glass_low
        parts.append(
            (
                np.array(
                    [
                        [-glass_half_low, low],
                        [glass_half_low, low],
                        [glass_half_high, glass_high],
                        [-glass_half_high, glass_high],
                    ],
                    np.float32,
                ),
                glass,
            )
        )
    bumper = float(np.clip(body * 0.6, 0.02, 1.0))
    parts.append((_rect(-half, 0.28, half, 0.42), bumper))
    light_y0, light_y1 = belt - (0.2 if front else 0.18), belt - 0.05
    parts += [
        (_rect(-half + 0.05, light_y0, -half + 0.38, light_y1), lamp),
        (_rect(half - 0.38, light_y0, half - 0.05, light_y1), lamp),
    ]
    if front:
        parts.append((_rect(-half + 0.45, light_y0, half - 0.45, light_y1), tyre))
    plate_y = 0.3 if front else 0.46
    parts += [
        (_rect(-0.26, plate_y, 0.26, plate_y + 0.11), float(rng.uniform(0.75, 0.95))),
        (_rect(-half - 0.14, belt + 0.02, -half, belt + 0.16), body),
        (_rect(half, belt + 0.02, half + 0.14, belt + 0.16), body),
    ]
    far_end = [
        (_rect(-half, 0.0, half, 0.3), tyre),
        (_rect(-half, 0.28, half, belt), body),
        (parts[3][0], body),
        (_rect(-top + 0.05, belt + 0.08, top - 0.05, height - 0.08), glass),
    ]
    tiny_end = [(_rect(-half, 0.0, half, belt), body), (_rect(-top, belt, top, height), glass)]
    return _CarLook(
        width,
        height,
        length,
        belt,
        body,
        glass,
        _Upright.of(parts),
        _Upright.of(far_end),
        _Upright.of(tiny_end),
    )


@dataclass(frozen=True, eq=False)
class _StreetCar:
    """A car driving along the road (or parked), seen from behind or in front: its near end is at
    ``z(t) = z0 + v t`` metres (v along +z: away from the camera), centred at lateral ``x_m``.

    Drawn as a box in perspective: its shadow, the side facing the camera (body and windows), the roof,
    then the near face (:class:`_CarLook` profile), so it grows as it approaches and shrinks as it leaves.
    """

    track_id: int
    camera: _Camera
    ego: _Ego
    look: _CarLook
    x_m: float
    z0_m: float
    velocity_m_s: float
    shadow: float
    canvas_width: int
    canvas_height: int
    class_name: str = "car"

    def draw(self, t_s: float) -> _Drawn | None:
        look = self.look
        distance = self.z0_m + self.velocity_m_s * t_s - self.ego.z(t_s)
        if not 1.0 <= distance <= self.ego.objects_far_m:
            return None
        f, x_rel = self.camera.focal_px, self.x_m - self.ego.x_m
        half = look.width_m / 2.0 + 0.2
        near_span = (self.camera.centre_col + f * (x_rel - half) / distance, f * 2 * half / distance)
        far_u = self.camera.centre_col + f * x_rel / (distance + look.length_m)
        left = min(near_span[0], far_u)
        right = max(near_span[0] + near_span[1], far_u)
        top_far = self.camera.horizon_row + f * (self.camera.height_m - look.height_m) / (
            distance + look.length_m
        )
        if right < 0 or left > self.canvas_width or top_far > self.canvas_height:
            return None
        z_world = self.z0_m + self.velocity_m_s * t_s
        bounce = 0.015 * math.sin(7.0 * t_s + self.track_id) if self.velocity_m_s != 0.0 else 0.0
        side_x = self.x_m - look.width_m / 2.0 if x_rel > 0 else self.x_m + look.width_m / 2.0
        length, belt, height = look.length_m, look.belt_m + bounce, look.height_m + bounce
        side = _box_quad(side_x, side_x, 0.28 + bounce, belt, z_world, z_world + length)
        width_px = f * look.width_m / distance
        if width_px < 40.0:  # farther away: the side and a simpler near face
            (side_px,) = _project_world(
                np.array([side], np.float32), self.camera, self.ego.x_m, self.ego.z(t_s)
            )
            end = look.far_end if width_px >= 12.0 else look.tiny_end
            parts = [_Part(side_px, look.body * 0.8, self.track_id)]
            return _Drawn(distance, parts + end.place(self.camera, x_rel, distance, bounce, self.track_id))
        hw = look.width_m / 2.0
        corners = np.array(
            [
                _box_quad(
                    self.x_m - hw - 0.15, self.x_m + hw + 0.15, 0.0, 0.0, z_world - 0.2, z_world + length
                ),
                side,
                [
                    [side_x, belt, z_world + 0.15 * length],
                    [side_x, height - 0.06, z_world + 0.3 * length],
                    [side_x, height - 0.06, z_world + 0.75 * length],
                    [side_x, belt, z_world + 0.85 * length],
                ],
                _box_quad(
                    self.x_m - 0.75 * hw,
                    self.x_m + 0.75 * hw,
                    height,
                    height,
                    z_world + 0.25 * length,
                    z_world + 0.8 * length,
                ),
            ],
            dtype=np.float32,
        )
        shadow, side_px, window, roof = _project_world(corners, self.camera, self.ego.x_m, self.ego.z(t_s))
        parts = [
            _Part(shadow, self.shadow, None),
            _Part(side_px, look.body * 0.8, self.track_id),
            _Part(window, look.glass, self.track_id),
            _Part(roof, min(look.body * 1.15, 1.0), self.track_id),
        ]
        return _Drawn(distance, parts + look.end.place(self.camera, x_rel, distance, bounce, self.track_id))


@dataclass(frozen=True, eq=False)
class _CrossingCar:
    """A car crossing the street at an intersection, seen side-on (:func:`_car_profile`):
    ``x(t) = x0 + v t`` metres at ``z_m`` along the road; under 40 px long, its body parts only."""

    track_id: int
    camera: _Camera
    ego: _Ego
    profile: list[tuple[np.ndarray, float]]
    length_m: float
    z_m: float
    x0_m: float
    velocity_m_s: float
    canvas_width: int
    class_name: str = "car"

    def draw(self, t_s: float) -> _Drawn | None:
        distance = self.z_m - self.ego.z(t_s)
        if not 2.0 <= distance <= self.ego.far_m:  # side-on, it is labelled-size farther than the others
            return None
        x_rel = self.x0_m + self.velocity_m_s * t_s - self.ego.x_m
        u, _ = self.camera.project(x_rel, distance)
        half_px = self.camera.focal_px * self.length_m / distance
        if u + half_px < 0 or u - half_px > self.canvas_width:
            return None
        stretch = 1.0 if self.velocity_m_s >= 0 else -1.0
        bounce = 0.015 * math.sin(7.0 * t_s + self.track_id)
        profile = self.profile if half_px >= 40.0 else self.profile[:2]
        return _Drawn(
            distance,
            _place(profile, self.camera, x_rel, distance, bounce, stretch, 0.0, self.track_id, 0.0, 0.0),
        )


def _walker_front_profile(
    height_m: float, walked_m: float, clothes: tuple[float, float, float], simple: bool
) -> list[tuple[np.ndarray, float]]:
    """A figure seen from in front or behind (x across the body, feet at y = 0), metres.

    Stride phase ``phi = 2 pi s / (0.75 h)`` with ``s`` the distance walked: the feet lift in turn by
    ``0.05 h max(0, +-sin phi)``, the body bobs by ``0.012 h |sin phi|`` and the hands swing by
    ``0.03 h sin phi``; a figure that does not walk stands still. ``simple``: legs, torso and head only
    (for a figure under 30 px tall)."""
    h = height_m
    phase = math.sin(2.0 * math.pi * walked_m / (0.75 * h))
    bob = 0.012 * h * abs(phase)
    top, legs, skin = clothes
    if simple:
        return [
            (_rect(-0.1 * h, 0.0, 0.1 * h, 0.5 * h + bob), legs),
            (_rect(-0.13 * h, 0.47 * h + bob, 0.13 * h, 0.82 * h + bob), top),
            (_disc((0.0, 0.9 * h + bob), 0.065 * h), skin),
        ]
    parts = []
    for side in (-1.0, 1.0):
        lift = 0.05 * h * max(0.0, side * phase)
        parts.append((_segment((side * 0.06 * h, lift), (side * 0.07 * h, 0.5 * h + bob), 0.04 * h), legs))
    parts.append(
        (
            np.array(
                [
                    [-0.1 * h, 0.47 * h + bob],
                    [0.1 * h, 0.47 * h + bob],
                    [0.13 * h, 0.8 * h + bob],
                    [-0.13 * h, 0.8 * h + bob],
                ],
                np.float32,
            ),
            top,
        )
    )
    for side in (-1.0, 1.0):
        hand = (side * 0.16 * h, 0.47 * h + bob + side * 0.03 * h * phase)
        parts.append((_segment((side * 0.14 * h, 0.78 * h + bob), hand, 0.028 * h), top))
    parts.append((_disc((0.0, 0.9 * h + bob), 0.065 * h), skin))
    return parts


@dataclass(frozen=True, eq=False)
class _StreetWalker:
    """A pedestrian walking along the sidewalk, towards or away from the camera (or standing):
    ``(x, z)(t) = (x0, z0) + (vx, vz) t`` metres, visible for ``t0 <= t <= t1``."""

    track_id: int
    camera: _Camera
    ego: _Ego
    height_m: float
    x0_m: float
    z0_m: float
    vx_m_s: float
    vz_m_s: float
    t0_s: float
    t1_s: float
    clothes: tuple[float, float, float]
    canvas_width: int
    class_name: str = "pedestrian"

    def draw(self, t_s: float) -> _Drawn | None:
        if not self.t0_s <= t_s <= self.t1_s:
            return None
        distance = self.z0_m + self.vz_m_s * t_s - self.ego.z(t_s)
        if not 1.0 <= distance <= self.ego.objects_far_m:
            return None
        x_rel = self.x0_m + self.vx_m_s * t_s - self.ego.x_m
        u, _ = self.camera.project(x_rel, distance)
        half_px = 0.3 * self.height_m * self.camera.focal_px / distance
        if u + half_px < 0 or u - half_px > self.canvas_width:
            return None
        walked = math.hypot(self.vx_m_s, self.vz_m_s) * (t_s - self.t0_s)
        simple = self.height_m * self.camera.focal_px / distance < 30.0
        profile = _walker_front_profile(self.height_m, walked, self.clothes, simple)
        return _Drawn(
            distance, _place(profile, self.camera, x_rel, distance, 0.0, 1.0, 0.0, self.track_id, 0.0, 0.0)
        )


@dataclass(frozen=True)
class _StreetLayout:
    """Cross-section of the street, lateral metres (x right of the centre line): lanes away from the
    camera on the right, oncoming on the left, an optional parking strip, kerb, sidewalk, then the
    building line; intersections at ``crossings_m`` (centre, along z) ``crossing_width_m`` wide."""

    lane_width_m: float
    lanes_away: int
    lanes_oncoming: int
    parking_right: bool
    parking_left: bool
    sidewalk_m: float
    crossings_m: tuple[float, ...]
    crossing_width_m: float

    @property
    def kerb_right(self) -> float:
        return self.lanes_away * self.lane_width_m + (2.2 if self.parking_right else 0.3)

    @property
    def kerb_left(self) -> float:
        return -self.lanes_oncoming * self.lane_width_m - (2.2 if self.parking_left else 0.3)

    def kerb(self, side: float) -> float:
        return self.kerb_right if side > 0 else self.kerb_left

    def building_line(self, side: float) -> float:
        return self.kerb(side) + side * self.sidewalk_m

    def in_crossing(self, z0: float, z1: float, margin_m: float = 0.0) -> bool:
        """Whether ``[z0, z1]`` overlaps an intersection widened by ``margin_m``."""
        half = self.crossing_width_m / 2.0 + margin_m
        return any(z0 < c + half and z1 > c - half for c in self.crossings_m)


class StreetScene(Scene):
    """A street seen along its length: lanes both ways with cars from behind and in front, parked cars,
    cars crossing at intersections, pedestrians on the sidewalks, buildings, trees and street furniture;
    from a pole (fixed) or from a car driving down the street (half of the scenes each)."""

    def __init__(self, config: SceneConfig) -> None:
        super().__init__(config)
        rng = self.rng
        self.moving = bool(rng.random() < 0.5)
        duration_s = config.duration_us * 1e-6
        if self.moving:
            focal = float(rng.uniform(0.5, 0.9)) * self.width
            camera_height = float(rng.uniform(1.2, 1.6))
            horizon = float(rng.uniform(0.35, 0.55))
        else:
            focal = float(rng.uniform(0.8, 1.5)) * self.width
            camera_height = float(rng.uniform(3.5, 9.0))
            horizon = float(rng.uniform(0.05, 0.4))
        self.camera = _Camera(
            focal_px=focal,
            height_m=camera_height,
            centre_col=(self.canvas_width - 1) / 2.0,
            horizon_row=CANVAS_MARGIN_PX + horizon * self.height,
        )
        lane_width = float(rng.uniform(3.0, 3.6))
        lanes_away, lanes_oncoming = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        parking = rng.random(2) < 0.75
        speed = float(rng.uniform(5.0, 15.0)) if self.moving else 0.0
        far_m = min(250.0, focal)
        z_end = speed * duration_s + far_m + 20.0
        crossings, z = [], float(rng.uniform(25.0, 90.0))
        while z < z_end:
            crossings.append(z)
            z += float(rng.uniform(70.0, 160.0))
        self.layout = _StreetLayout(
            lane_width,
            lanes_away,
            lanes_oncoming,
            bool(parking[0]),
            bool(parking[1]),
            float(rng.uniform(2.5, 5.0)),
            tuple(crossings),
            float(rng.uniform(8.0, 14.0)),
        )
        if self.moving:
            ego_x = (float(rng.integers(0, lanes_away)) + 0.5) * lane_width
            surge = float(rng.uniform(0.0, 0.1)) * speed
        else:
            ego_x = float(rng.uniform(self.layout.kerb_left, self.layout.building_line(1.0) - 0.5))
            surge = 0.0
        self.ego = _Ego(ego_x, speed, surge, 2 * math.pi / float(rng.uniform(4.0, 10.0)), far_m, 0.36 * focal)
        self.z_range = (-15.0, z_end)
        self.road_luminance = float(rng.uniform(0.15, 0.5))
        self.pavement_luminance = float(rng.uniform(0.35, 0.75))
        self._build_base(rng)
        self._build_ground(rng)
        self._build_buildings(rng)
        self._build_props(rng)
        self.vibration_px = float(rng.uniform(0.05, 0.5)) if not self.moving else float(rng.uniform(0.1, 0.4))
        self.vibration_rates = rng.uniform(2 * math.pi * 3.0, 2 * math.pi * 15.0, size=3)
        self.pitch_px = float(rng.uniform(0.5, 2.5)) if self.moving else 0.0
        self.pitch_rates = rng.uniform(2 * math.pi * 0.7, 2 * math.pi * 3.0, size=2)
        self.gain_amplitude = float(rng.uniform(0.0, 0.15))
        self.gain_rate = 2 * math.pi / float(rng.uniform(3.0, 20.0))
        self._static_cache: tuple[float, np.ndarray, list[_Drawn], np.ndarray] | None = None
        self._populate(rng, duration_s)

    # ---- static world -------------------------------------------------------------------------------

    def _build_base(self, rng: np.random.Generator) -> None:
        """Sky, a distant skyline at the horizon and the bare ground (canvas pixels, never moving), the
        ground's texture (world-anchored, :func:`_smooth_noise`) and, for a pole camera, fine grain."""
        width, height = self.canvas_width, self.canvas_height
        rows = np.arange(height, dtype=np.float32)[:, None]
        horizon = self.camera.horizon_row
        sky = float(rng.uniform(0.45, 0.95))
        base = np.empty((height, width), dtype=np.float32)
        base[:] = sky - 0.2 * np.clip((horizon - rows) / height, 0.0, 1.0)
        base += 0.04 * _smooth_noise(rng, (height, width), (4, 7))
        skyline = float(rng.uniform(0.2, 0.7))
        u = 0.0
        while u < width:
            block = float(rng.uniform(4.0, 25.0))
            rise = float(rng.uniform(1.0, 12.0)) * self.camera.focal_px / 300.0
            _fill(
                base,
                _rect(u, horizon - rise, u + block, horizon + 1.0),
                skyline + float(rng.uniform(-0.08, 0.08)),
            )
            u += block
        start = int(max(0, math.ceil(horizon)))
        base[start:] = float(rng.uniform(0.25, 0.6))
        self.base = base
        self.grain = (
            rng.normal(0.0, float(rng.uniform(0.005, 0.03)), size=base.shape).astype(np.float32)
            if not self.moving
            else None
        )
        # Ground texture in world metres: 0.5 m along the road, 0.25 m across, features of about 1.5 m.
        z0, z1 = self.z_range
        rows_z, cols_x = int((z1 - z0) / 0.5) + 2, 321
        self.ground_texture = 0.06 * _smooth_noise(rng, (rows_z, cols_x), (max(rows_z // 3, 4), 54))
        ground_rows = np.arange(start, height, dtype=np.float32)[:, None] + 0.5
        distance = self.camera.focal_px * self.camera.height_m / np.maximum(ground_rows - horizon, 0.5)
        cols = np.arange(width, dtype=np.float32)[None, :]
        lateral = (cols - self.camera.centre_col) * distance / self.camera.focal_px + self.ego.x_m
        self.ground_start = start
        self.texture_col = ((lateral + 40.0) / 0.25).astype(np.float32)
        self.texture_row = np.broadcast_to(((distance - z0) / 0.5).astype(np.float32), lateral.shape).copy()
        footprint = distance**2 / (self.camera.focal_px * self.camera.height_m)  # metres along z per row
        self.texture_fade = np.clip(2.0 - footprint / 0.75, 0.0, 1.0).astype(np.float32)

    def _build_ground(self, rng: np.random.Generator) -> None:
        """Road, cross streets, kerbs, markings, crossings, patches, manholes, slab joints and shadows."""
        layout, (z0, z1) = self.layout, self.z_range
        road, pavement = self.road_luminance, self.pavement_luminance
        kl, kr = layout.kerb_left, layout.kerb_right
        half = layout.crossing_width_m / 2.0
        facets = [
            _Facet(np.array([_box_quad(kl, kr, 0, 0, z0, z1)], np.float32), road),
            _Facet(
                np.array(
                    [_box_quad(-200, 200, 0, 0, c - half, c + half) for c in layout.crossings_m], np.float32
                ).reshape(-1, 4, 3),
                road,
            ),
        ]
        kerb = float(np.clip(pavement + rng.uniform(-0.3, 0.3), 0.0, 1.0))
        kerb_quads = []
        for x_edge, sign in ((kr, 1.0), (kl, -1.0)):
            for a, b in self._open_stretches(z0, z1, 0.0):
                kerb_quads.append(_box_quad(x_edge, x_edge + sign * 0.2, 0, 0, a, b))
        facets.append(_Facet(np.array(kerb_quads, np.float32), kerb))
        marking = float(np.clip(road + rng.uniform(0.3, 0.5), 0.0, 1.0))
        lines = []
        for a, b in self._open_stretches(z0, z1, 4.0):
            lines.append(_box_quad(-0.08, 0.08, 0, 0, a, b))
            for lane in list(range(1, layout.lanes_away)) + [-k for k in range(1, layout.lanes_oncoming)]:
                x = lane * layout.lane_width_m
                lines += [
                    _box_quad(x - 0.07, x + 0.07, 0, 0, s, min(s + 3.0, b)) for s in np.arange(a, b, 9.0)
                ]
            for x_edge, sign in (
                (layout.lanes_away * layout.lane_width_m, 1.0),
                (-layout.lanes_oncoming * layout.lane_width_m, -1.0),
            ):
                x = x_edge + sign * 0.1
                lines += [
                    _box_quad(x - 0.06, x + 0.06, 0, 0, s, min(s + 1.0, b)) for s in np.arange(a, b, 3.0)
                ]
        for c in layout.crossings_m:
            for x in np.arange(kl + 0.5, kr - 0.5, 1.0):
                lines.append(_box_quad(x, x + 0.5, 0, 0, c - half - 4.0, c - half - 1.0))
                lines.append(_box_quad(x, x + 0.5, 0, 0, c + half + 1.0, c + half + 4.0))
            lines.append(
                _box_quad(0.1, layout.lanes_away * layout.lane_width_m, 0, 0, c - half - 5.0, c - half - 4.6)
            )
        facets.append(_Facet(np.array(lines, np.float32), marking))
        patch_quads: list[list[list[float]]] = []
        stain_quads: list[list[list[float]]] = []
        for z in np.arange(z0, z1, 6.0):
            for x in np.arange(kl, kr - 1.0, 2.5):
                roll = rng.random()
                if roll < 0.08:
                    length, width = float(rng.uniform(0.8, 5.0)), min(float(rng.uniform(0.4, 2.2)), kr - x)
                    patch_quads.append(_box_quad(x, x + width, 0, 0, z, z + length))
                elif roll < 0.12:
                    radius = float(rng.uniform(0.3, 0.9))
                    stain_quads.append(_box_quad(x, x + radius, 0, 0, z + 1.0, z + 1.0 + radius))
        facets.append(
            _Facet(
                np.array(patch_quads, np.float32).reshape(-1, 4, 3),
                float(np.clip(road * rng.uniform(0.75, 1.3), 0, 1)),
            )
        )
        facets.append(_Facet(np.array(stain_quads, np.float32).reshape(-1, 4, 3), road * 0.6))
        slab = float(np.clip(pavement - rng.uniform(0.08, 0.2), 0.0, 1.0))
        joints = []
        spacing = float(rng.uniform(1.2, 2.5))
        for side in (1.0, -1.0):
            inner, outer = sorted((layout.kerb(side) + side * 0.2, layout.building_line(side)))
            joints += [_box_quad(inner, outer, 0, 0, s, s + 0.05) for s in np.arange(z0, z1, spacing)]
        facets.append(_Facet(np.array(joints, np.float32), slab, reach_m=40.0))
        self.shadow_side = 1.0 if rng.random() < 0.5 else -1.0
        self.ground_facets = facets

    def _open_stretches(self, z0: float, z1: float, margin_m: float) -> list[tuple[float, float]]:
        """Pieces of ``[z0, z1]`` outside the intersections (each widened by ``margin_m``)."""
        half = self.layout.crossing_width_m / 2.0 + margin_m
        stretches, start = [], z0
        for c in self.layout.crossings_m:
            if c - half > start:
                stretches.append((start, c - half))
            start = max(start, c + half)
        if start < z1:
            stretches.append((start, z1))
        return stretches

    def _build_buildings(self, rng: np.random.Generator) -> None:
        """Buildings along both sides: facade with window bands and piers, shop front, door, cornice, the
        side wall facing the camera where the previous building stands back, and their shadow band."""
        layout, (z0, z1) = self.layout, self.z_range
        self.buildings: list[_Building] = []
        self.corner_buildings: list[_Building] = []
        shadow_quads = []
        for side in (1.0, -1.0):
            z, gap = z0, True
            while z < z1:
                length = float(rng.uniform(6.0, 25.0))
                if layout.in_crossing(z, z + length):
                    crossing = min(layout.crossings_m, key=lambda c: abs(c - z - length / 2.0))
                    if z < crossing - layout.crossing_width_m / 2.0 - 4.0:
                        length = crossing - layout.crossing_width_m / 2.0 - z
                    else:
                        z, gap = crossing + layout.crossing_width_m / 2.0, True
                        continue
                corner = any(
                    abs(z + length - (c - layout.crossing_width_m / 2.0)) < 1e-6 for c in layout.crossings_m
                )
                building = self._building(rng, side, layout.building_line(side), z, z + length, gap, corner)
                (self.corner_buildings if corner else self.buildings).append(building)
                if side == self.shadow_side:
                    depth = min(layout.sidewalk_m, 0.15 * float(rng.uniform(4.0, 30.0)))
                    x_line = layout.building_line(side)
                    shadow_quads.append(
                        _box_quad(*sorted((x_line, x_line - side * depth)), 0, 0, z, z + length)
                    )
                gap = rng.random() < 0.25
                z += length + (float(rng.uniform(0.5, 4.0)) if gap else 0.0)
        self.ground_facets.append(
            _Facet(np.array(shadow_quads, np.float32).reshape(-1, 4, 3), self.pavement_luminance * 0.6)
        )
        camera, half_width = (
            self.camera,
            max(self.camera.centre_col, self.canvas_width - self.camera.centre_col),
        )
        bottom_m = camera.focal_px * camera.height_m / (self.canvas_height - camera.horizon_row + 1.0)
        self.ground = _QuadBatch.of(
            [replace(f, layer=k) for k, f in enumerate(self.ground_facets)], max(0.9 * bottom_m, _NEAR_M)
        )
        offset_m = min(abs(layout.building_line(side) - self.ego.x_m) for side in (1.0, -1.0))
        # Facades share one plane per side and never overlap: they are drawn layer by layer in a few
        # fills. Side walls (where a building follows a gap) may hide one another: one fill each.
        self.facades = _QuadBatch.of(
            [f for b in self.buildings for f in b.facets if f.layer > 0],
            max(0.9 * camera.focal_px * offset_m / (half_width + 1.0), _NEAR_M),
        )
        walls = [f for b in self.buildings for f in b.facets if f.layer == 0]
        self.side_walls = np.array([f.quads[0] for f in walls], np.float32).reshape(-1, 4, 3)
        self.side_wall_luminances = np.array([f.luminance for f in walls], np.float32)

    def _building(
        self, rng: np.random.Generator, side: float, x: float, za: float, zb: float, gap: bool, plain: bool
    ) -> _Building:
        """Facade on the plane ``x`` from ``za`` to ``zb`` (metres); the side wall facing the camera only
        after a gap (elsewhere the previous building hides it); ``plain``: no window grid (the corners at
        intersections, drawn one polygon at a time)."""
        height = float(rng.uniform(5.0, 30.0))
        wall = float(rng.uniform(0.15, 0.9))
        glass = float(np.clip(wall + (0.3 if wall < 0.5 else -0.35) + rng.uniform(-0.1, 0.1), 0.02, 1.0))
        trim = _contrasting_luminance(rng, wall, 0.12)
        depth = float(rng.uniform(8.0, 20.0))
        facets = [_Facet(np.array([_box_quad(x, x, 0.0, height, za, zb)], np.float32), wall, layer=1)]
        if gap:
            side_wall = _box_quad(x, x + side * depth, 0.0, height, za, za)
            facets.insert(0, _Facet(np.array([side_wall], np.float32), wall * 0.7))
        floor_h, bay = float(rng.uniform(2.8, 3.6)), float(rng.uniform(2.2, 3.8))
        window_h = float(rng.uniform(1.1, 1.8))
        floors = np.arange(3.6, height - 1.3 - window_h, floor_h) if not plain else np.zeros(0)
        bays = np.arange(za + 0.8, zb - 0.8 - bay * 0.5, bay)
        if len(floors) and len(bays):
            window_w = bay * float(rng.uniform(0.4, 0.65))
            bands = [
                _box_quad(x, x, f + 0.6, f + 0.6 + window_h, bays[0], bays[-1] + window_w) for f in floors
            ]
            piers = [
                _box_quad(x, x, floors[0], floors[-1] + 0.6 + window_h, b + window_w, b + bay)
                for b in bays[:-1]
            ]
            facets += [
                _Facet(np.array(bands, np.float32), glass, reach_m=0.35 * self.camera.focal_px, layer=2),
                _Facet(np.array(piers, np.float32), wall, reach_m=0.35 * self.camera.focal_px, layer=3),
            ]
        if zb - za > 4.0:
            shop = float(rng.uniform(0.05, 0.35)) if rng.random() < 0.6 else float(rng.uniform(0.6, 0.9))
            door = float(rng.uniform(za + 2.0, zb - 2.0))
            facets += [
                _Facet(np.array([_box_quad(x, x, 0.3, 2.7, za + 0.6, door)], np.float32), shop, layer=4),
                _Facet(
                    np.array([_box_quad(x, x, 0.0, 2.2, door + 0.2, door + 1.3)], np.float32),
                    trim * 0.6,
                    layer=4,
                ),
                _Facet(np.array([_box_quad(x, x, 2.9, 3.3, za + 0.3, zb - 0.3)], np.float32), trim, layer=4),
            ]
        facets.append(
            _Facet(np.array([_box_quad(x, x, height - 0.5, height, za, zb)], np.float32), trim, layer=4)
        )
        return _Building(za, zb, facets)

    def _build_props(self, rng: np.random.Generator) -> None:
        """Lamp posts, trees, signs and bins on the sidewalks, traffic lights at the intersections."""
        layout, (z0, z1) = self.layout, self.z_range
        props: list[_Prop] = []
        dark = float(rng.uniform(0.05, 0.3))
        bottom_z = (
            self.camera.focal_px
            * self.camera.height_m
            / max(self.canvas_height - self.camera.horizon_row, 1.0)
        )
        for side in (1.0, -1.0):
            kerb = layout.kerb(side)
            lamp_gap = float(rng.uniform(22.0, 40.0))
            for z in np.arange(z0 + float(rng.uniform(0.0, lamp_gap)), z1, lamp_gap):
                if not layout.in_crossing(z, z, 1.0):
                    pole_h = float(rng.uniform(5.0, 8.0))
                    reach = -side * float(rng.uniform(0.8, 2.0))
                    profile = [
                        (_rect(-0.08, 0.0, 0.08, pole_h), dark),
                        (_rect(min(0.0, reach), pole_h - 0.12, max(0.0, reach), pole_h), dark),
                        (
                            _rect(reach - 0.25, pole_h - 0.3, reach + 0.25, pole_h - 0.1),
                            float(rng.uniform(0.6, 0.95)),
                        ),
                    ]
                    props.append(_Prop.of(kerb + side * 0.5, float(z), profile, far_parts=1))
            if rng.random() < 0.6:
                tree_gap = float(rng.uniform(10.0, 20.0))
                for z in np.arange(z0 + float(rng.uniform(0.0, tree_gap)), z1, tree_gap):
                    if not layout.in_crossing(z, z, 2.0):
                        radius = float(rng.uniform(1.0, 2.2))
                        trunk_h = float(rng.uniform(2.0, 3.0))
                        crown = float(rng.uniform(0.1, 0.45))
                        profile = [
                            (_rect(-0.12, 0.0, 0.12, trunk_h + radius * 0.5), float(rng.uniform(0.05, 0.25))),
                            (_disc((0.0, trunk_h + radius), radius, radius * 1.15), crown),
                            (_disc((-0.3 * radius, trunk_h + 1.3 * radius), 0.5 * radius), crown * 0.7),
                        ]
                        props.append(_Prop.of(kerb + side * 1.2, float(z), profile, far_parts=2))
            for z in z0 + np.sort(rng.uniform(0.0, z1 - z0, size=int((z1 - z0) / 40.0))):
                kind = rng.random()
                x = kerb + side * float(rng.uniform(0.3, layout.sidewalk_m - 0.4))
                board = _contrasting_luminance(rng, self.pavement_luminance, 0.2)
                if kind < 0.5:
                    sign = _rect(-0.3, 2.0, 0.3, 2.6) if rng.random() < 0.5 else _disc((0.0, 2.3), 0.32)
                    profile = [(_rect(-0.04, 0.0, 0.04, 2.6), dark), (sign, board)]
                else:
                    profile = [(_rect(-0.28, 0.0, 0.28, 0.9), board), (_rect(-0.32, 0.85, 0.32, 0.97), dark)]
                props.append(_Prop.of(x, float(z), profile, far_parts=2))
        for c in layout.crossings_m:
            for side in (1.0, -1.0):
                z = c - side * (layout.crossing_width_m / 2.0 + 0.8)
                profile = [
                    (_rect(-0.07, 0.0, 0.07, 2.6), dark),
                    (_rect(-0.18, 2.6, 0.18, 3.6), dark),
                    (_disc((0.0, 3.4), 0.11), float(rng.uniform(0.3, 0.95))),
                    (_disc((0.0, 3.1), 0.11), float(rng.uniform(0.3, 0.95))),
                    (_disc((0.0, 2.8), 0.11), float(rng.uniform(0.3, 0.95))),
                ]
                props.append(_Prop.of(layout.kerb(side) + side * 0.4, z, profile, far_parts=2))
        if not self.moving:  # nothing may stand across the view right in front of a pole camera
            props = [p for p in props if p.z_m > bottom_z + 3.0]
        self.props = props

    def _static_view(self, ego_z: float) -> tuple[np.ndarray, list[_Drawn], np.ndarray]:
        """The street without its objects seen from ``ego_z``: the canvas (ground, its texture, buildings,
        and, for a pole camera, drawn far to near over them, the props and corner buildings that may hide
        an object), those occluders' drawings and their canvas boxes ``[S, 4]`` (u0, v0, u1, v1). The
        last view is kept, so a pole camera draws its street once."""
        if self._static_cache is not None and self._static_cache[0] == ego_z:
            return self._static_cache[1:]
        camera, ego = self.camera, self.ego
        canvas = self.base.copy()
        self.ground.draw(canvas, camera, ego.x_m, ego_z, ego.far_m)
        start = self.ground_start
        texture = cv2.remap(
            self.ground_texture,
            self.texture_col,
            self.texture_row + np.float32(ego_z / 0.5),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        canvas[start:] += texture * self.texture_fade
        wall_z = self.side_walls[:, 0, 2] - ego_z
        in_view = np.flatnonzero((wall_z > self.facades.near_m) & (wall_z < ego.far_m))
        in_view = in_view[np.argsort(-wall_z[in_view])]  # far to near: nearer walls hide farther ones
        walls = _project_world(self.side_walls[in_view], camera, ego.x_m, ego_z)
        for polygon, luminance in zip(walls, self.side_wall_luminances[in_view].tolist(), strict=True):
            _fill(canvas, polygon, luminance)
        self.facades.draw(canvas, camera, ego.x_m, ego_z, ego.far_m)
        if self.grain is not None:
            canvas += self.grain
        boxed = []
        for building in self.corner_buildings:
            if building.z_far_m - ego_z > _NEAR_M and building.z_near_m - ego_z < ego.far_m:
                parts = [
                    _Part(polygon, facet.luminance, None)
                    for facet in building.facets
                    for polygon in facet.canvas_polygons(
                        camera, ego.x_m, ego_z, ego.far_m, self.facades.near_m
                    )
                ]
                if parts:  # every facet clipped away (behind the camera or past the far plane)
                    boxed.append((_Drawn(building.z_far_m - ego_z, parts), _parts_box(parts)))
        for prop in self.props:
            distance = prop.z_m - ego_z
            if 1.0 <= distance <= ego.objects_far_m:
                parts, box = prop.place(camera, ego.x_m, distance)
                boxed.append((_Drawn(distance, parts), box))
        boxed.sort(key=lambda item: -item[0].distance)
        if not self.moving:  # a pole camera keeps this canvas: draw the occluders on it once
            for drawing, _ in boxed:
                for part in drawing.parts:
                    _fill(canvas, part.polygon, part.luminance)
        drawn = [drawing for drawing, _ in boxed]
        boxes = np.array([box for _, box in boxed], np.float32).reshape(-1, 4)
        self._static_cache = (ego_z, canvas, drawn, boxes)
        return canvas, drawn, boxes

    # ---- moving things ------------------------------------------------------------------------------

    def _populate(self, rng: np.random.Generator, duration_s: float) -> None:
        """Cars in every lane (from behind and in front), parked cars, crossing cars and pedestrians;
        those never in view during the scene are dropped. Track ids are the order of creation."""
        objects: list = []
        self._lane_cars(rng, duration_s, objects)
        self._parked_cars(rng, objects)
        self._crossing_cars(rng, duration_s, objects)
        self._walkers(rng, duration_s, objects)
        self.objects = [obj for obj in objects if self._ever_visible(obj, duration_s)]

    def _add_car(
        self, rng: np.random.Generator, objects: list, x: float, z0: float, velocity: float, front: bool
    ) -> float:
        """Append a car of a random kind seen from behind (or in ``front``); its length in metres."""
        kind = str(rng.choice(list(_STREET_CAR_SHAPES), p=[0.3, 0.3, 0.25, 0.15]))
        look = _car_look(kind, front, rng, self.road_luminance)
        shadow = self.road_luminance * 0.45
        objects.append(
            _StreetCar(
                len(objects),
                self.camera,
                self.ego,
                look,
                x,
                z0,
                velocity,
                shadow,
                self.canvas_width,
                self.canvas_height,
            )
        )
        return look.length_m

    def _lane_cars(self, rng: np.random.Generator, duration_s: float, objects: list) -> None:
        """Cars 12-90 m apart driving away in the right lanes (the car camera's lane: only ahead of it
        and faster), and 15-100 m apart oncoming in the left lanes, each lane at its own speed."""
        layout, ego = self.layout, self.ego
        z_start, z_end = self.z_range
        reach = ego.objects_far_m + 30.0
        for lane in range(layout.lanes_away):
            x = (lane + 0.5) * layout.lane_width_m
            own = self.moving and abs(x - ego.x_m) < 0.1
            speed = (ego.speed_m_s + float(rng.uniform(0.5, 4.0))) if own else float(rng.uniform(4.0, 16.0))
            z = float(rng.uniform(8.0, 40.0)) if own else z_start - speed * duration_s - 10.0
            while z < z_end + reach:
                self._add_car(rng, objects, x, z, speed, front=False)
                z += float(rng.uniform(12.0, 90.0))
        for lane in range(layout.lanes_oncoming):
            x = -(lane + 0.5) * layout.lane_width_m
            speed = float(rng.uniform(4.0, 16.0))
            z = z_start
            while z < z_end + speed * duration_s + reach:
                self._add_car(rng, objects, x, z, -speed, front=True)
                z += float(rng.uniform(15.0, 100.0))

    def _parked_cars(self, rng: np.random.Generator, objects: list) -> None:
        """Cars in half of the parking places, none near an intersection."""
        layout = self.layout
        z_start, z_end = self.z_range
        for side, present in ((1.0, layout.parking_right), (-1.0, layout.parking_left)):
            if not present:
                continue
            x = layout.kerb(side) - side * 1.15
            z = z_start + float(rng.uniform(0.0, 10.0))
            while z < z_end:
                if rng.random() < 0.5 and not layout.in_crossing(z, z + 6.2, 5.0):
                    z += self._add_car(rng, objects, x, z, 0.0, front=side < 0)
                z += float(rng.uniform(0.8, 10.0))

    def _crossing_cars(self, rng: np.random.Generator, duration_s: float, objects: list) -> None:
        """Side-on cars crossing at every intersection, one lane each way, entering 60 m to the side."""
        layout, ego = self.layout, self.ego
        for crossing in layout.crossings_m:
            # a car camera never meets a crossing car: none reaches the road while it is within 30 m
            passing = (
                ((crossing - 30.0) / ego.speed_m_s, (crossing + 10.0) / ego.speed_m_s)
                if self.moving
                else None
            )
            for direction in (1.0, -1.0):
                z = crossing + direction * layout.crossing_width_m / 4.0
                speed = float(rng.uniform(4.0, 12.0))
                t = -float(rng.uniform(0.0, 120.0 / speed))
                while t < duration_s:
                    kind = str(rng.choice(list(_VEHICLE_KINDS), p=[0.35, 0.25, 0.25, 0.15]))
                    length = float(rng.uniform(*_VEHICLE_KINDS[kind]))
                    profile = _car_profile(kind, length, rng, self.road_luminance)
                    at_road = t + 60.0 / speed  # it reaches the centre of the street then
                    if passing is None or not passing[0] < at_road < passing[1]:
                        objects.append(
                            _CrossingCar(
                                len(objects),
                                self.camera,
                                ego,
                                profile,
                                length,
                                z,
                                -direction * 60.0 - direction * speed * t,
                                direction * speed,
                                self.canvas_width,
                            )
                        )
                    t += max(float(rng.exponential(6.0)), (length + 2.0) / speed)

    def _walkers(self, rng: np.random.Generator, duration_s: float, objects: list) -> None:
        """Pedestrians along both sidewalks: 30 % stand, 35 % stroll, 35 % walk, towards or away."""
        layout, ego = self.layout, self.ego
        z_start, z_end = self.z_range
        walk_gap = float(rng.uniform(6.0, 20.0))
        for side in (1.0, -1.0):
            inner = layout.kerb(side) + side * 0.4
            outer = layout.building_line(side) - side * 0.6
            z = z_start + float(rng.uniform(0.0, walk_gap))
            while z < z_end + 20.0:
                height = float(rng.uniform(1.5, 1.95) if rng.random() < 0.85 else rng.uniform(1.0, 1.5))
                clothes = (
                    _contrasting_luminance(rng, self.pavement_luminance, 0.2),
                    _contrasting_luminance(rng, self.pavement_luminance, 0.15),
                    float(rng.uniform(0.3, 0.8)),
                )
                mode = rng.random()
                if mode < 0.3:
                    speed = 0.0
                elif mode < 0.65:
                    speed = float(rng.uniform(0.2, 0.6))
                else:
                    speed = float(rng.uniform(0.8, 1.8))
                x = float(rng.uniform(min(inner, outer), max(inner, outer)))
                direction = 1.0 if rng.random() < 0.5 else -1.0
                t0 = -float(rng.uniform(0.0, 10.0))  # the stride's phase at t = 0
                drift = float(rng.uniform(-0.05, 0.05)) if speed > 0 else 0.0
                objects.append(
                    _StreetWalker(
                        len(objects),
                        self.camera,
                        ego,
                        height,
                        x,
                        z,
                        drift,
                        direction * speed,
                        t0,
                        duration_s + 1.0,
                        clothes,
                        self.canvas_width,
                    )
                )
                z += float(rng.exponential(walk_gap)) + 0.8

    def _ever_visible(self, obj, duration_s: float) -> bool:
        return any(obj.draw(t) is not None for t in np.linspace(0.0, duration_s, 100))

    # ---- per frame ----------------------------------------------------------------------------------

    def _background(self, t_s: float) -> np.ndarray:
        return self._static_view(self.ego.z(t_s))[0].copy()

    def _drawings(self, t_s: float) -> list[tuple[int, _Drawn]]:
        """Objects in view and the occluders, farthest first. A pole camera's canvas already shows the
        occluders: only those whose box meets the box of an object farther away are drawn again (so
        that they hide it)."""
        _, occluders, occluder_boxes = self._static_view(self.ego.z(t_s))
        drawn = []
        for index, obj in enumerate(self.objects):
            drawing = obj.draw(t_s)
            if drawing is not None:
                drawn.append((index, drawing))
        if self.moving:
            drawn += [(-1, drawing) for drawing in occluders]
        elif drawn and len(occluders):
            boxes = np.array([_parts_box(drawing.parts) for _, drawing in drawn], np.float32)
            distances = np.array([drawing.distance for _, drawing in drawn])
            occluder_distances = np.array([drawing.distance for drawing in occluders])
            meets = (
                (occluder_boxes[:, None, 0] < boxes[None, :, 2])
                & (boxes[None, :, 0] < occluder_boxes[:, None, 2])
                & (occluder_boxes[:, None, 1] < boxes[None, :, 3])
                & (boxes[None, :, 1] < occluder_boxes[:, None, 3])
                & (occluder_distances[:, None] < distances[None, :])
            ).any(axis=1)
            drawn += [(-1, occluders[k]) for k in np.flatnonzero(meets)]
        drawn.sort(key=lambda item: -item[1].distance)
        return drawn

    def _lighting(self, frame: np.ndarray, t_s: float) -> np.ndarray:
        """``L' = L (1 + a sin(w t))``: a slow global gain (clouds, auto exposure)."""
        frame *= np.float32(1.0 + self.gain_amplitude * math.sin(self.gain_rate * t_s))
        return frame

    def _camera_shift(self, t_s: float) -> tuple[float, float, float]:
        """Vibration (3-15 Hz) and, for a car camera, pitch over the road's bumps (0.7-3 Hz)."""
        values = np.sin(self.vibration_rates * t_s)
        pitch = self.pitch_px * float(np.sin(self.pitch_rates * t_s).sum()) / 2.0
        return (
            0.001 * float(values[2]),
            self.vibration_px * float(values[0]),
            self.vibration_px * float(values[1]) + pitch,
        )


# --------------------------------------------------------------------------------------------------
# harbour


_HARBOUR_BOAT_KINDS: dict[str, tuple[float, float]] = {**_BOAT_KINDS, "barge": (40.0, 110.0)}
"""Boat kinds of the harbour and their length ranges in metres: the maritime kinds and inland barges."""

_HARBOUR_CAMERAS = ("quay", "drone", "boat")
"""Harbour cameras: fixed on a quay or pole, a drone looking obliquely down, on a boat moving along."""


def _barge_profile(length: float, rng: np.random.Generator, water: float) -> list[_ProfilePart]:
    """Side view of an inland cargo ship (metres, bow towards +x, waterline at y = 0): a long low hull,
    the hold (containers in blocks, hatch covers or an empty coaming), accommodation and a wheelhouse
    with its window band at the stern."""
    half = length / 2.0
    hull_l = _contrasting_luminance(rng, water)
    colours = _BoatColours(hull_l, _contrasting_luminance(rng, hull_l, 0.12), float(rng.uniform(0.03, 0.15)))
    freeboard = float(rng.uniform(1.0, 2.5))
    hull = np.array([[-half, 0], [0.9 * half, 0], [half, 1.4 * freeboard], [-half, freeboard]], np.float32)
    parts = [(hull, colours.hull), (_rect(-half, 0.75 * freeboard, 0.97 * half, freeboard), colours.deck)]
    hold0, hold1 = -0.62 * half, 0.85 * half
    cargo = rng.random()
    if cargo < 0.4:
        x = hold0
        while x < hold1 - 12.0:
            block = 6.1 * int(rng.integers(2, 5))
            tiers = int(rng.integers(1, 4))
            top = freeboard + 2.6 * tiers
            parts.append(
                (_rect(x, freeboard, min(x + block, hold1), top), _contrasting_luminance(rng, hull_l, 0.08))
            )
            x += block + 0.3
    else:
        coaming = float(rng.uniform(0.8, 1.6)) if cargo < 0.8 else 0.6
        parts.append((_rect(hold0, freeboard, hold1, freeboard + coaming), colours.deck))
    house_h = float(rng.uniform(2.5, 4.0))
    parts.append((_rect(-half + 1.0, freeboard, hold0 - 0.5, freeboard + house_h), colours.deck))
    wheel_x = -half + 0.45 * (hold0 + half)
    wheel_top = freeboard + house_h + float(rng.uniform(1.8, 2.6))
    parts += [
        (_rect(wheel_x - 2.0, freeboard + house_h, wheel_x + 2.0, wheel_top), colours.deck),
        (_rect(wheel_x - 1.7, wheel_top - 1.2, wheel_x + 1.7, wheel_top - 0.4), colours.dark),
    ]
    return parts


def _boat_end_profile(
    side: list[_ProfilePart], beam: float, length: float, front: bool
) -> list[_ProfilePart]:
    """The bow (``front``) or stern view of a boat (metres, x across, y up from the waterline) made from
    its side view: the hull narrows to the keel (a V at the bow, a transom at the stern) and every part
    above it keeps its heights and grey level, as wide as it is long when it is narrow (masts, funnels,
    a person) and at most 0.95 (longer than 0.3 L), 0.55 (dark bands: windows) or 0.7 beams otherwise;
    sails are seen edge-on (0.15 m) and discs (heads, balls) keep their shape."""
    hull, hull_l = side[0]
    freeboard = float(hull[hull[:, 0] < 0, 1].max())
    half = beam / 2.0
    if front:
        top = 1.25 * freeboard
        outline = [[-half, top], [half, top], [0.15 * half, 0.0], [-0.15 * half, 0.0]]
    else:
        outline = [[-half, freeboard], [half, freeboard], [0.75 * half, 0.0], [-0.75 * half, 0.0]]
    parts: list[_ProfilePart] = [(np.array(outline, np.float32), hull_l)]
    dark = min(luminance for _, luminance in side)
    for polygon, luminance in side[1:]:
        x0, y0 = polygon.min(axis=0)
        x1, y1 = polygon.max(axis=0)
        extent = float(x1 - x0)
        if len(polygon) == len(_UNIT_CIRCLE):
            parts.append((polygon - np.float32([(x0 + x1) / 2.0, 0.0]), luminance))
            continue
        if len(polygon) == 3:
            width = 0.15
        elif extent > 0.3 * length:
            width = min(extent, 0.95 * beam)
        elif luminance == dark and extent > 0.06 * length:
            width = min(extent, 0.55 * beam)
        else:
            width = min(extent, 0.7 * beam)
        parts.append((_rect(-width / 2.0, float(y0), width / 2.0, float(y1)), luminance))
    return parts


@dataclass(frozen=True)
class _Drift:
    """The harbour camera's position, metres: ``x(t) = x0 + vx t + ax sin(wx t)``,
    ``z(t) = vz t + az sin(wz t)`` (a quay camera stands still; a drone drifts and wanders; a boat moves
    along and surges)."""

    x0_m: float
    vx_m_s: float
    vz_m_s: float
    wander_x_m: float
    wander_z_m: float
    rate_x: float
    rate_z: float

    def x(self, t_s: float) -> float:
        return self.x0_m + self.vx_m_s * t_s + self.wander_x_m * math.sin(self.rate_x * t_s)

    def z(self, t_s: float) -> float:
        return self.vz_m_s * t_s + self.wander_z_m * math.sin(self.rate_z * t_s)


_Piece = tuple[np.ndarray, tuple[tuple[int, int], ...], tuple[float, ...]]
"""Some parts of a boat: local ``(along, up, across)`` vertices ``[K, 3]`` in metres (along towards the
bow, up from the waterline, across to starboard), each part's rows and its luminance."""


def _coarse_profile(profile: list[_ProfilePart], share: float = 0.05) -> list[_ProfilePart]:
    """The hull and the parts whose bounding box covers at least ``share`` of the whole profile's: what
    still shapes a boat a few tens of pixels long (sails, cabins, containers), without its details."""

    def area(polygon: np.ndarray) -> float:
        return float(np.prod(polygon.max(axis=0) - polygon.min(axis=0)))

    total = area(np.concatenate([polygon for polygon, _ in profile]))
    return [profile[0]] + [(p, lum) for p, lum in profile[1:] if area(p) >= share * total]


def _roof_piece(profile: list[_ProfilePart], beam: float, length: float, below_m: float) -> _Piece | None:
    """Roofs of the blocks standing on the deck (cabins, wheelhouses, deck houses, containers): for each
    part above the freeboard that is not dark, at least 0.06 L long and fills at least 70 % of its
    bounding box, a horizontal quad at its top, as wide as in the end view and 8 % brighter; only those
    lower than ``below_m`` (a camera sees the roofs beneath it), None when there is none."""
    hull = profile[0][0]
    freeboard = float(hull[hull[:, 0] < 0, 1].max())
    dark = min(luminance for _, luminance in profile)
    quads, luminances = [], []
    for polygon, luminance in profile[1:]:
        (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
        extent, box = float(x1 - x0), float((x1 - x0) * (y1 - y0))
        shoelace = 0.5 * abs(
            float(np.dot(polygon[:, 0], np.roll(polygon[:, 1], 1) - np.roll(polygon[:, 1], -1)))
        )
        if luminance == dark or y0 < 0.99 * freeboard or extent < 0.06 * length or y1 >= below_m:
            continue
        if len(polygon) == len(_UNIT_CIRCLE) or shoelace < 0.7 * box:
            continue
        half = 0.5 * min(extent, (0.95 if extent > 0.3 * length else 0.7) * beam)
        quads += [[x0, y1, -half], [x1, y1, -half], [x1, y1, half], [x0, y1, half]]
        luminances.append(min(1.08 * luminance, 1.0))
    if not quads:
        return None
    spans = tuple((4 * k, 4 * k + 4) for k in range(len(luminances)))
    return np.array(quads, np.float32), spans, tuple(luminances)


def _profile_piece(profile: list[_ProfilePart], along: float | None, across: float | None) -> _Piece:
    """A side view on the plane ``across`` (``along`` None) or an end view (x across) at ``along``."""
    upright = _Upright.of(profile)
    x, y = upright.vertices[:, 0], upright.vertices[:, 1]
    if along is None:
        local = np.stack([x, y, np.full(len(x), across, np.float32)], axis=1)
    else:
        local = np.stack([np.full(len(x), along, np.float32), y, x], axis=1)
    return local.astype(np.float32), upright.spans, upright.luminances


@dataclass(frozen=True, eq=False)
class _BoatLook:
    """A boat at one level of detail: its side view on either side plane (0: port, at ``-B/2``;
    1: starboard), its end view at either end (0: the bow, at ``+L/2``, :func:`_boat_end_profile`;
    1: the stern) and the roofs of its superstructure (:func:`_roof_piece`; None: none seen)."""

    sides: tuple[_Piece, _Piece]
    ends: tuple[_Piece, _Piece]
    roofs: _Piece | None = None

    @classmethod
    def of(
        cls, profile: list[_ProfilePart], beam: float, length: float, camera_height_m: float = 0.0
    ) -> _BoatLook:
        half_beam, half_length = 0.5 * beam, 0.5 * length
        return cls(
            (_profile_piece(profile, None, -half_beam), _profile_piece(profile, None, half_beam)),
            (
                _profile_piece(_boat_end_profile(profile, beam, length, True), half_length, None),
                _profile_piece(_boat_end_profile(profile, beam, length, False), -half_length, None),
            ),
            _roof_piece(profile, beam, length, camera_height_m - 0.5),
        )

    def mirrored(self, water: float, reflectance: float) -> _BoatLook:
        """Its reflection: heights times -0.8, luminance ``w + r (l - w)`` towards the water's ``w``."""

        def mirror(piece: _Piece) -> _Piece:
            local, spans, luminances = piece
            flipped = local * np.float32([1.0, -0.8, 1.0])
            return flipped, spans, tuple(water + reflectance * (lum - water) for lum in luminances)

        return _BoatLook(
            (mirror(self.sides[0]), mirror(self.sides[1])), (mirror(self.ends[0]), mirror(self.ends[1]))
        )


def _wake_piece(length: float, beam: float, speed_m_s: float, foam: float, water: float) -> _Piece:
    """Foam trail (from the beam at the stern to 1.6 beams at 0.6 w, luminance ``foam``) and the two
    Kelvin arms (0.3 m wide, at ``tan 19.5 deg = 0.354``, half as bright above the water) of a wake
    ``w = min(3 L, 4 s v)`` metres long, on the water (0.01 m up)."""
    half, stern = 0.5 * beam, -0.5 * length
    wake = min(3.0 * length, 4.0 * speed_m_s)
    spread = half + 0.354 * wake
    outline = [
        [stern, half],
        [stern, -half],
        [stern - 0.6 * wake, -1.6 * half],
        [stern - 0.6 * wake, 1.6 * half],
    ]
    for sign in (1.0, -1.0):
        outline += [
            [stern, sign * half],
            [stern, sign * (half + 0.3)],
            [stern - wake, sign * (spread + 0.3)],
            [stern - wake, sign * spread],
        ]
    flat = np.array(outline, np.float32)
    local = np.stack([flat[:, 0], np.full(len(flat), 0.01, np.float32), flat[:, 1]], axis=1)
    arm = water + 0.5 * (foam - water)
    return local, ((0, 4), (4, 8), (8, 12)), (foam, arm, arm)


@dataclass(frozen=True, eq=False)
class _HarbourBoat:
    """A boat on the water in perspective: its deck (footprint at freeboard height), the side facing the
    camera (its side view on that side's plane) and the near end (bow or stern view) are world polygons
    projected from the camera, so a boat seen side-on, bow-on, stern-on or obliquely has the right look
    and grows as it approaches. Under it (not labelled): its reflection (the mirrored hull) and, when
    it moves faster than 1.5 m/s, its wake (:func:`_wake_piece`). Moored boats have speed 0. Position:
    :func:`_arc_position` from ``t0_s``; visible for ``t0_s <= t <= t1_s``. Levels of detail by its
    length on the sensor: 60 px and more everything, 20-60 px :func:`_coarse_profile` with deck and
    wake but no reflection, under 20 px the hull alone (no deck, reflection or wake)."""

    track_id: int
    camera: _Camera
    ego: _Drift
    looks: tuple[_BoatLook, _BoatLook, _BoatLook]
    reflection: _BoatLook
    wake: _Piece | None
    deck: _Piece
    length_m: float
    beam_m: float
    x0_m: float
    z0_m: float
    heading0: float
    turn_rate: float
    speed_m_s: float
    t0_s: float
    t1_s: float
    bob_amplitude_m: float
    bob_rate: float
    bob_phase: float
    visibility_m: float
    haze_luminance: float
    far_m: float
    canvas_width: int
    class_name: str = "boat"

    def draw(self, t_s: float) -> _Drawn | None:
        if not self.t0_s <= t_s <= self.t1_s:
            return None
        x, z, heading = _arc_position(
            self.x0_m, self.z0_m, self.heading0, self.turn_rate, self.speed_m_s, t_s - self.t0_s
        )
        ego_x, ego_z = self.ego.x(t_s), self.ego.z(t_s)
        x_rel, distance = x - ego_x, z - ego_z
        if not 1.0 < distance <= self.far_m:
            return None
        f = self.camera.focal_px
        reach = 0.5 * self.length_m + self.beam_m
        u = self.camera.centre_col + f * x_rel / distance
        if (
            distance > 2.0 * reach
            and abs(u - 0.5 * self.canvas_width) > 0.5 * self.canvas_width + 2.0 * f * reach / distance
        ):
            return None
        sin_h, cos_h = math.sin(heading), math.cos(heading)
        # the side whose outward normal (cos h, -sin h) faces the camera, and the end nearer to it
        side = 1 if x_rel * cos_h - distance * sin_h <= 0.0 else 0
        end = 0 if x_rel * sin_h + distance * cos_h <= 0.0 else 1
        length_px = f * self.length_m / distance
        level = 0 if length_px >= 60.0 else 1 if length_px >= 20.0 else 2
        look = self.looks[level]
        pieces: list[tuple[_Piece, int | None]] = []
        if level < 2:
            if self.wake is not None:
                pieces.append((self.wake, None))
            if level == 0:
                pieces += [(self.reflection.sides[side], None), (self.reflection.ends[end], None)]
            pieces.append((self.deck, self.track_id))
        pieces += [(look.sides[side], self.track_id), (look.ends[end], self.track_id)]
        if look.roofs is not None:
            pieces.append((look.roofs, self.track_id))
        local = np.concatenate([piece[0] for piece, _ in pieces])
        along, up, across = local[:, 0], local[:, 1], local[:, 2]
        phase = self.bob_rate * t_s + self.bob_phase
        height = up + self.bob_amplitude_m * math.sin(phase) + 0.01 * math.sin(phase + 1.0) * along
        world = np.stack(
            [x + along * sin_h + across * cos_h, height, z + along * cos_h - across * sin_h], axis=1
        )
        if (world[:, 2] - ego_z).min() < 1.0:
            return None
        projected = _project_world(world, self.camera, ego_x, ego_z, 1.0)
        haze = 1.0 - math.exp(-distance / self.visibility_m)
        parts, offset = [], 0
        for (vertices, spans, luminances), owner in pieces:
            for (start, stop), luminance in zip(spans, luminances, strict=True):
                hazy = luminance * (1.0 - haze) + self.haze_luminance * haze
                parts.append(_Part(projected[offset + start : offset + stop], hazy, owner))
            offset += len(vertices)
        return _Drawn(distance, parts)


@dataclass(frozen=True, eq=False)
class _HarbourBuoy:
    """A navigation or mooring buoy at a fixed ``(x, z)``, bobbing ``y(t) = a (sin(w t + phi) - 0.5)`` and
    tilting, seen from the harbour camera."""

    track_id: int
    camera: _Camera
    ego: _Drift
    profile: list[tuple[np.ndarray, float]]
    x_m: float
    z_m: float
    bob_amplitude_m: float
    bob_rate: float
    bob_phase: float
    tilt_rad: float
    visibility_m: float
    haze_luminance: float
    far_m: float
    class_name: str = "buoy"

    def draw(self, t_s: float) -> _Drawn | None:
        distance = self.z_m - self.ego.z(t_s)
        if not 3.0 <= distance <= self.far_m:
            return None
        phase = self.bob_rate * t_s + self.bob_phase
        haze = 1.0 - math.exp(-distance / self.visibility_m)
        parts = _place(
            self.profile,
            self.camera,
            self.x_m - self.ego.x(t_s),
            distance,
            self.bob_amplitude_m * (math.sin(phase) - 0.5),
            1.0,
            self.tilt_rad * math.sin(phase + 0.7),
            self.track_id,
            haze,
            self.haze_luminance,
        )
        return _Drawn(distance, parts)


@dataclass(frozen=True, eq=False)
class _Pontoon:
    """A floating pontoon or a fixed pier on piles reaching across the water at ``z0_m..z1_m`` from a
    bank (``x0_m..x1_m``): world quads (end face, deck, front beam, piles, bollards) drawn far to near
    with the boats (it hides what lies behind it)."""

    quads: np.ndarray
    luminances: tuple[float, ...]
    z_mid_m: float
    camera: _Camera
    ego: _Drift

    def draw(self, t_s: float) -> _Drawn | None:
        ego_z = self.ego.z(t_s)
        if self.quads[..., 2].min() - ego_z < 2.0:
            return None
        polygons = _project_world(self.quads, self.camera, self.ego.x(t_s), ego_z, 1.0)
        parts = [
            _Part(polygon, luminance, None)
            for polygon, luminance in zip(polygons, self.luminances, strict=True)
        ]
        return _Drawn(self.z_mid_m - ego_z, parts)


@dataclass(frozen=True, eq=False)
class _Bank:
    """One bank of the water at lateral ``x_m`` (side +1: right, -1: left): the quay top and the
    buildings behind it (``back``), trees, lamps and bollards (``props``, drawn far to near), then the
    quay wall with its ladders and capping (``front``), in that order so that a camera below the quay
    top sees the wall hide what stands on the quay."""

    x_m: float
    side: float
    back: _QuadBatch
    props: list[_Prop]
    front: _QuadBatch


class HarbourScene(Scene):
    """A harbour or an inland waterway in perspective: textured water with ripples and reflections, a far
    shore with buildings, sheds, cranes and trees, quays along one or both banks, pontoons and piers
    with moored boats, moving boats at every heading (dinghies to barges) with their wakes, buoys; seen
    from a quay camera, a drone or a boat (a third of the scenes each, from the seed)."""

    def __init__(self, config: SceneConfig) -> None:
        super().__init__(config)
        rng = self.rng
        duration_s = config.duration_us * 1e-6
        self.camera_kind = str(rng.choice(_HARBOUR_CAMERAS))
        self.river = bool(rng.random() < 0.45)
        width = float(rng.uniform(35.0, 180.0)) if self.river else float(rng.uniform(150.0, 500.0))
        left_share = float(rng.uniform(0.3, 0.7))
        banks = (True, True) if self.river else (bool(rng.random() < 0.3), bool(rng.random() < 0.3))
        self.bank_x = (
            -left_share * width if banks[0] else -math.inf,
            (1.0 - left_share) * width if banks[1] else math.inf,
        )
        self.ego, self.camera = self._make_camera(rng, duration_s)
        ego_z_end = max(self.ego.z(t) for t in np.linspace(0.0, duration_s, 50))
        self.far_m = float(rng.uniform(150.0, 600.0)) + ego_z_end
        self.z_range = (min(self.ego.z(t) for t in np.linspace(0.0, duration_s, 50)) - 30.0, self.far_m)
        self.water_luminance = float(rng.uniform(0.12, 0.5))
        self.haze_luminance = float(rng.uniform(0.45, 0.9))
        self.visibility_m = float(rng.uniform(300.0, 3000.0))
        self.reflectance = float(rng.uniform(0.3, 0.7))
        self._build_static(rng)
        self._build_waves(rng)
        self._build_far_shore(rng)
        self.banks = [
            self._build_bank(rng, side, x)
            for side, x in ((-1.0, self.bank_x[0]), (1.0, self.bank_x[1]))
            if math.isfinite(x)
        ]
        self._build_motion(rng)
        self.near_quay, self.water_z_min = self._build_near_quay(rng)
        if self.camera_kind == "boat" and rng.random() < 0.3:
            self.rig = _own_bow(rng, self.width, self.height, self.water_luminance)
        self._structure_cache: tuple[tuple[float, float], np.ndarray, np.ndarray, int, np.ndarray] | None = (
            None
        )
        self._populate(rng, duration_s)

    # ---- camera -------------------------------------------------------------------------------------

    def _make_camera(self, rng: np.random.Generator, duration_s: float) -> tuple[_Drift, _Camera]:
        """Quay: 2.5-12 m up at the edge of a bank (or on a pole in the basin), fixed; drone: 15-60 m up,
        looking obliquely down (horizon from above the frame to 30 %), drifting 0.3-3 m/s and wandering;
        boat: 1.5-4 m up, moving along at 1-5 m/s."""
        left, right = self.bank_x
        if self.camera_kind == "quay":
            focal, height, horizon = rng.uniform(0.8, 1.6), rng.uniform(2.5, 12.0), rng.uniform(0.15, 0.45)
            sides = [x for x in (left, right) if math.isfinite(x)]
            x0 = (sides[int(rng.integers(0, len(sides)))] * 0.97) if sides and rng.random() < 0.8 else 0.0
            ego = _Drift(float(x0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        elif self.camera_kind == "drone":
            focal, height, horizon = rng.uniform(0.6, 1.2), rng.uniform(15.0, 60.0), rng.uniform(-0.25, 0.3)
            speed, direction = float(rng.uniform(0.3, 3.0)), float(rng.uniform(0.0, 2 * math.pi))
            ego = _Drift(
                float(rng.uniform(-0.2, 0.2)) * min(right - left, 200.0),
                speed * math.sin(direction) * (0.2 if self.river else 1.0),
                speed * math.cos(direction),
                float(rng.uniform(0.5, 3.0)),
                float(rng.uniform(0.5, 3.0)),
                2 * math.pi / float(rng.uniform(6.0, 20.0)),
                2 * math.pi / float(rng.uniform(6.0, 20.0)),
            )
        else:
            focal, height, horizon = rng.uniform(0.6, 1.2), rng.uniform(1.5, 4.0), rng.uniform(0.3, 0.5)
            speed = float(rng.uniform(1.0, 5.0))
            ego = _Drift(
                float(rng.uniform(-0.1, 0.1)) * min(right - left, 200.0),
                float(rng.uniform(-0.3, 0.3)),
                speed,
                0.0,
                float(rng.uniform(0.0, 0.1)) * speed,
                0.0,
                2 * math.pi / float(rng.uniform(4.0, 10.0)),
            )
        camera = _Camera(
            focal_px=float(focal) * self.width,
            height_m=float(height),
            centre_col=(self.canvas_width - 1) / 2.0,
            horizon_row=CANVAS_MARGIN_PX + float(horizon) * self.height,
        )
        return ego, camera

    def _build_motion(self, rng: np.random.Generator) -> None:
        """Camera shake, by camera: quay sway (0.05-0.4 px over 1-5 s, roll 0.02-0.1 deg, vibration
        0.03-0.15 px at 5-12 Hz); drone pan (4-14 px over 15-40 s), roll 0.02-0.1 deg, jitter (0.1-0.4 px
        at 2-8 Hz); boat roll (0.5-2.5 deg), pitch and yaw (2-6 px) over 2-6 s and engine
        vibration (0.1-0.3 px at 6-15 Hz)."""
        kind = self.camera_kind
        roll = (0.5, 2.5) if kind == "boat" else (0.02, 0.1)
        self.roll_amplitude = math.radians(float(rng.uniform(*roll)))
        slow = {"quay": (0.05, 0.4), "drone": (4.0, 14.0), "boat": (2.0, 6.0)}[kind]
        periods = {"quay": (1.0, 5.0), "drone": (15.0, 40.0), "boat": (2.0, 6.0)}[kind]
        fast = {"quay": (0.03, 0.15), "drone": (0.1, 0.4), "boat": (0.1, 0.3)}[kind]
        fast_hz = {"quay": (5.0, 12.0), "drone": (2.0, 8.0), "boat": (6.0, 15.0)}[kind]
        self.slow_px = rng.uniform(*slow, size=2)
        self.slow_rates = 2 * math.pi / rng.uniform(*periods, size=3)
        self.slow_phases = rng.uniform(0.0, 2 * math.pi, size=3)
        self.fast_px = float(rng.uniform(*fast))
        self.fast_rates = 2 * math.pi * rng.uniform(*fast_hz, size=2)
        self.gain_amplitude = float(rng.uniform(0.0, 0.12))
        self.gain_rate = 2 * math.pi / float(rng.uniform(3.0, 20.0))

    # ---- static world -------------------------------------------------------------------------------

    def _build_static(self, rng: np.random.Generator) -> None:
        """Sky (gradient, clouds) and water: luminance fading into the haze (the sky it reflects) with
        distance, a lateral brightness gradient and slow texture."""
        width, height = self.canvas_width, self.canvas_height
        camera = self.camera
        rows = np.arange(height, dtype=np.float32)[:, None]
        cols = np.arange(width, dtype=np.float32)[None, :]
        self.water_first_row = int(min(max(math.ceil(camera.horizon_row), 0), height - 1))
        below = np.maximum(rows - camera.horizon_row, 0.5)
        depth = np.minimum(camera.focal_px * camera.height_m / below, 20_000.0)
        haze = 1.0 - np.exp(-depth / self.visibility_m)
        water = self.water_luminance * (1.0 - haze) + self.haze_luminance * haze
        water = water + float(rng.uniform(-0.06, 0.06)) * (cols / width - 0.5)
        water = water + 0.03 * _smooth_noise(
            rng, (height, width), (int(rng.integers(3, 8)), int(rng.integers(4, 10)))
        )
        above = np.clip((camera.horizon_row - rows) / max(camera.horizon_row, 1.0), 0.0, 1.0)
        sky_top = float(rng.uniform(0.35, 0.95))
        sky = self.haze_luminance + (sky_top - self.haze_luminance) * np.sqrt(above)
        sky = sky + float(rng.uniform(0.0, 0.12)) * above * _smooth_noise(rng, (height, width), (4, 8))
        self.static = np.where(rows >= camera.horizon_row, water, sky + 0.0 * cols).astype(np.float32)
        self.water_depth = depth[self.water_first_row :]
        self.water_x = ((cols - camera.centre_col) * self.water_depth / camera.focal_px).astype(np.float32)

    def _build_waves(self, rng: np.random.Generator) -> None:
        """Ripples: three components ``a_i L att_i sin(k_i . (X, Z) - w_i t)`` in world metres with
        wavelengths 0.4-1.5, 1.5-5 and 5-15 m, ``w = sqrt(g k)``, amplitudes 1-12 % of the local water
        luminance ``L``, faded out where a wavelength spans fewer than 4 px. The grids are stored relative
        to the camera, ``sin(k . X_c)`` and ``cos(k . X_c)``, so that a camera at ``(x_e, z_e)`` adds the
        phase ``k . (x_e, z_e)`` by a weighted sum (as in the maritime preset)."""
        roughness = float(rng.uniform(0.03, 0.12))
        water = np.maximum(self.static[self.water_first_row :], 0.05)
        grids, wavenumbers, rates = [], [], []
        for low, high in ((0.4, 1.5), (1.5, 5.0), (5.0, 15.0)):
            wavelength = float(rng.uniform(low, high))
            k = 2 * math.pi / wavelength
            direction = float(rng.uniform(-math.pi, math.pi))
            kx, kz = k * math.sin(direction), k * math.cos(direction)
            phase = kx * self.water_x + kz * self.water_depth
            pixels_per_wave = wavelength * self.camera.focal_px / self.water_depth
            fade = np.clip((pixels_per_wave - 4.0) / 8.0, 0.0, 1.0)
            gain = roughness * float(rng.uniform(0.4, 1.0)) * fade * water
            grids += [(gain * np.sin(phase)).ravel(), (gain * np.cos(phase)).ravel()]
            wavenumbers.append((kx, kz))
            rates.append(math.sqrt(9.81 * k))
        self.wave_grids = np.ascontiguousarray(np.stack(grids), dtype=np.float32)
        self.wave_numbers = np.array(wavenumbers)
        self.wave_rates = np.array(rates)

    def _build_far_shore(self, rng: np.random.Generator) -> None:
        """The far shore at ``far_m``: a quay wall, sheds, buildings with window grids, cranes, trees and
        hills drawn once at about one canvas pixel per sprite pixel (``r = far_m / f`` metres) with an
        alpha mask, hazed, and its reflection (flipped, streaked vertically, darker). Each frame warps
        both onto the canvas for the camera's position: ``u = c_x + f (x - x_e) / (far - z_e)``."""
        f = self.camera.focal_px
        res = self.far_m / f
        half_view = 0.5 * self.canvas_width * res * 1.3 + 200.0
        x0, x1 = -half_view, half_view
        rows, cols = int(80.0 / res) + 2, int((x1 - x0) / res) + 2
        lum = np.zeros((rows, cols), np.float32)
        alpha = np.zeros((rows, cols), np.float32)

        def fill(polygon_m: np.ndarray, value: float) -> None:
            pixels = np.stack([(polygon_m[:, 0] - x0) / res, (80.0 - polygon_m[:, 1]) / res], axis=1)
            _fill(lum, pixels.astype(np.float32), value)
            _fill(alpha, pixels.astype(np.float32), 1.0)

        hills = float(rng.uniform(0.0, 40.0)) if rng.random() < 0.6 else 0.0
        if hills > 0:
            xs = np.linspace(x0, x1, 64, dtype=np.float32)
            top = hills * (0.6 + 0.4 * _smooth_noise(rng, (1, 64), (1, int(rng.integers(3, 9))))[0])
            fill(
                np.concatenate([np.stack([xs, top], 1), [[x1, 0.0], [x0, 0.0]]]).astype(np.float32),
                float(rng.uniform(0.15, 0.45)),
            )
        quay = float(rng.uniform(1.0, 3.0))
        ground = float(rng.uniform(0.25, 0.7))
        x = x0
        while x < x1:
            kind = rng.random()
            span = float(rng.uniform(8.0, 60.0))
            if kind < 0.35:
                self._shore_building(rng, fill, x, x + span, quay)
            elif kind < 0.55:
                roof = float(rng.uniform(6.0, 14.0))
                shade = float(rng.uniform(0.2, 0.85))
                fill(
                    np.array(
                        [
                            [x, quay],
                            [x + span, quay],
                            [x + span, quay + roof],
                            [x + span / 2, quay + roof + 3.0],
                            [x, quay + roof],
                        ],
                        np.float32,
                    ),
                    shade,
                )
                for door in np.arange(x + 3.0, x + span - 6.0, float(rng.uniform(8.0, 16.0))):
                    fill(_rect(float(door), quay, float(door) + 4.0, quay + 0.6 * roof), shade * 0.5)
            elif kind < 0.75:
                crown = float(rng.uniform(0.08, 0.35))
                for tree in np.arange(x, x + span, float(rng.uniform(4.0, 9.0))):
                    radius = float(rng.uniform(2.0, 5.0))
                    fill(_disc((float(tree), quay + 1.5 * radius + 2.0), radius, 1.3 * radius), crown)
            elif kind < 0.85:
                self._shore_crane(rng, fill, x + span / 2.0, quay)
            x += span + (float(rng.uniform(0.0, 20.0)) if rng.random() < 0.3 else 0.0)
        fill(_rect(x0, 0.0, x1, quay), float(rng.uniform(0.15, 0.6)))
        fill(_rect(x0, quay, x1, quay + 0.4), ground)
        haze = 1.0 - math.exp(-self.far_m / self.visibility_m)
        lum = lum * (1.0 - haze) + self.haze_luminance * haze
        lum = cv2.GaussianBlur(lum * alpha, (0, 0), 0.5)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 0.5)
        lum = np.where(alpha > 1e-3, lum / np.maximum(alpha, 1e-3), 0.0).astype(np.float32)
        self.shore = cv2.merge([lum, alpha])
        flipped = self.shore[::-1].copy()
        streak = max(3, int(1.5 / res) | 1)
        self.shore_reflection = cv2.blur(flipped, (1, streak))
        self.shore_geometry = (x0, res, rows)

    def _shore_building(
        self,
        rng: np.random.Generator,
        fill: Callable[[np.ndarray, float], None],
        x0: float,
        x1: float,
        quay: float,
    ) -> None:
        """A block with a window grid (floors of 3-3.6 m, bays of 2.5-4 m) and a roof line."""
        height = float(rng.uniform(6.0, 35.0))
        wall = float(rng.uniform(0.2, 0.9))
        glass = float(np.clip(wall + (0.3 if wall < 0.5 else -0.35), 0.02, 1.0))
        fill(_rect(x0, quay, x1, quay + height), wall)
        floor, bay = float(rng.uniform(3.0, 3.6)), float(rng.uniform(2.5, 4.0))
        for y in np.arange(quay + 1.5, quay + height - 2.0, floor):
            for x in np.arange(x0 + 1.0, x1 - 2.0, bay):
                fill(_rect(float(x), float(y), float(x) + 0.5 * bay, float(y) + 1.4), glass)
        fill(
            _rect(x0 - 0.3, quay + height - 0.6, x1 + 0.3, quay + height),
            _contrasting_luminance(rng, wall, 0.1),
        )

    def _shore_crane(
        self, rng: np.random.Generator, fill: Callable[[np.ndarray, float], None], x: float, quay: float
    ) -> None:
        """A harbour crane: a tower (or a gantry's two legs), a jib and a counter-jib."""
        height = float(rng.uniform(20.0, 45.0))
        shade = float(rng.uniform(0.05, 0.35)) if rng.random() < 0.7 else float(rng.uniform(0.7, 0.95))
        reach = float(rng.uniform(15.0, 40.0)) * (1.0 if rng.random() < 0.5 else -1.0)
        fill(_rect(x - 1.0, quay, x + 1.0, quay + height), shade)
        if rng.random() < 0.5:
            fill(_rect(x + 12.0, quay, x + 14.0, quay + height), shade)
        fill(_rect(min(x, x + reach), quay + height - 1.2, max(x, x + reach), quay + height), shade)
        fill(
            _rect(min(x, x - 0.3 * reach), quay + height - 1.5, max(x, x - 0.3 * reach), quay + height), shade
        )
        fill(_segment((x, quay + height + 5.0), (x + reach, quay + height), 0.3), shade)

    def _build_bank(self, rng: np.random.Generator, side: float, x_wall: float) -> _Bank:
        """Quay wall (0.8-3 m high), its top, ladders every 10-25 m and the capping; buildings set back
        6-30 m with window bands and piers (like the street's facades), gaps; trees, lamps, bollards."""
        z0, z1 = self.z_range
        quay = float(rng.uniform(0.8, 3.0))
        top_l, wall_l = float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.1, 0.6))
        out = x_wall + side * 80.0
        back = [_Facet(np.array([_box_quad(*sorted((x_wall, out)), quay, quay, z0, z1)], np.float32), top_l)]
        setback = float(rng.uniform(6.0, 30.0))
        x_face = x_wall + side * setback
        reach = 0.35 * self.camera.focal_px
        z = z0 + float(rng.uniform(0.0, 20.0))
        while z < z1:
            length = float(rng.uniform(10.0, 40.0))
            if rng.random() < 0.8:
                height = float(rng.uniform(5.0, 25.0))
                wall = float(rng.uniform(0.15, 0.9))
                glass = float(np.clip(wall + (0.3 if wall < 0.5 else -0.35), 0.02, 1.0))
                back.append(
                    _Facet(
                        np.array([_box_quad(x_face, x_face, quay, quay + height, z, z + length)], np.float32),
                        wall,
                        layer=1,
                    )
                )
                floor, bay = float(rng.uniform(2.8, 3.6)), float(rng.uniform(2.2, 3.8))
                floors = np.arange(quay + 1.0, quay + height - 2.5, floor)
                bays = np.arange(z + 0.8, z + length - 0.8 - bay * 0.5, bay)
                if len(floors) and len(bays):
                    window = bay * float(rng.uniform(0.4, 0.65))
                    bands = [
                        _box_quad(x_face, x_face, f, f + 1.4, bays[0], bays[-1] + window) for f in floors
                    ]
                    piers = [
                        _box_quad(x_face, x_face, floors[0], floors[-1] + 1.4, b + window, b + bay)
                        for b in bays[:-1]
                    ]
                    back += [
                        _Facet(np.array(bands, np.float32), glass, reach_m=reach, layer=2),
                        _Facet(np.array(piers, np.float32), wall, reach_m=reach, layer=3),
                    ]
                back.append(
                    _Facet(
                        np.array(
                            [_box_quad(x_face, x_face, quay + height - 0.5, quay + height, z, z + length)],
                            np.float32,
                        ),
                        _contrasting_luminance(rng, wall, 0.1),
                        layer=4,
                    )
                )
            z += length + (float(rng.uniform(2.0, 15.0)) if rng.random() < 0.3 else 0.0)
        front = [_Facet(np.array([_box_quad(x_wall, x_wall, 0.0, quay, z0, z1)], np.float32), wall_l)]
        ladders = [
            _box_quad(x_wall, x_wall, 0.0, quay, s, s + 0.5)
            for s in np.arange(z0, z1, float(rng.uniform(10.0, 25.0)))
        ]
        front += [
            _Facet(np.array(ladders, np.float32), wall_l * 0.5, reach_m=reach, layer=1),
            _Facet(
                np.array([_box_quad(x_wall, x_wall, quay - 0.25, quay, z0, z1)], np.float32),
                _contrasting_luminance(rng, wall_l, 0.12),
                layer=2,
            ),
        ]
        offset = min(
            abs(x_wall - self.ego.x(t)) for t in np.linspace(0.0, self.config.duration_us * 1e-6, 50)
        )
        near_m = max(0.9 * self.camera.focal_px * offset / (self.canvas_width / 2.0 + 1.0), _NEAR_M)
        props: list[_Prop] = []
        dark = float(rng.uniform(0.05, 0.3))
        lift = np.float32([0.0, quay])
        gap = float(rng.uniform(8.0, 20.0))
        for z in np.arange(z0 + float(rng.uniform(0.0, gap)), z1, gap):
            props.append(
                _Prop.of(x_wall + side * 0.4, float(z), [(_rect(-0.2, 0.0, 0.2, 0.5) + lift, dark)], 1)
            )
        if rng.random() < 0.7:
            gap = float(rng.uniform(8.0, 20.0))
            for z in np.arange(z0 + float(rng.uniform(0.0, gap)), z1, gap):
                radius = float(rng.uniform(1.5, 3.0))
                crown = float(rng.uniform(0.08, 0.4))
                profile = [
                    (_rect(-0.15, 0.0, 0.15, 2.5 + radius * 0.5) + lift, float(rng.uniform(0.05, 0.25))),
                    (_disc((0.0, 2.5 + radius), radius, radius * 1.15) + lift, crown),
                ]
                props.append(
                    _Prop.of(
                        x_wall + side * float(rng.uniform(2.0, max(setback - 2.0, 2.5))), float(z), profile, 2
                    )
                )
        if rng.random() < 0.6:
            gap = float(rng.uniform(20.0, 40.0))
            for z in np.arange(z0 + float(rng.uniform(0.0, gap)), z1, gap):
                pole = float(rng.uniform(4.0, 7.0))
                profile = [
                    (_rect(-0.08, 0.0, 0.08, pole) + lift, dark),
                    (_rect(-0.3, pole - 0.3, 0.3, pole) + lift, float(rng.uniform(0.6, 0.95))),
                ]
                props.append(_Prop.of(x_wall + side * 1.5, float(z), profile, 1))
        props.sort(key=lambda prop: -prop.z_m)
        return _Bank(x_wall, side, _QuadBatch.of(back, near_m), props, _QuadBatch.of(front, near_m))

    def _build_near_quay(
        self, rng: np.random.Generator
    ) -> tuple[tuple[_QuadBatch, list[_Prop]] | None, float]:
        """For half of the quay cameras, the quay it stands on: its top (0.3-0.5 of the camera's height
        above the water, at most 2.5 m) up to an edge across the view whose line lies 5-60 % of the way
        from the bottom of the canvas up to the waterline below it, a capping strip (0.5 m) along the
        edge and bollards (0.6 m) every 6-15 m. It hides the water nearer than
        ``z_e h / (h - q)`` (``z_e`` the edge's distance, ``q`` its height, ``h`` the camera's): objects
        stay 3 m beyond that, returned as the nearest distance for objects (0 without a near quay)."""
        if self.camera_kind != "quay" or rng.random() < 0.5:
            return None, 0.0
        camera = self.camera
        quay = min(float(rng.uniform(0.3, 0.5)) * camera.height_m, 2.5)
        rows_below = self.canvas_height - camera.horizon_row
        z_edge = camera.focal_px * (camera.height_m - quay) / rows_below * float(rng.uniform(1.05, 1.6))
        x = self.ego.x0_m
        top_l = float(rng.uniform(0.25, 0.75))
        facets = [
            _Facet(
                np.array([_box_quad(x - 600, x + 600, quay, quay, z_edge - 80.0, z_edge)], np.float32), top_l
            ),
            _Facet(
                np.array([_box_quad(x - 600, x + 600, quay, quay, z_edge - 0.5, z_edge)], np.float32),
                _contrasting_luminance(rng, top_l, 0.1),
                layer=1,
            ),
        ]
        dark, lift = float(rng.uniform(0.05, 0.3)), np.float32([0.0, quay])
        half_view = 0.5 * self.canvas_width * z_edge / camera.focal_px + 5.0
        bollards = [
            _Prop.of(float(b), z_edge - 0.3, [(_rect(-0.2, 0.0, 0.2, 0.6) + lift, dark)], 1)
            for b in np.arange(x - half_view, x + half_view, float(rng.uniform(6.0, 15.0)))
        ]
        hidden = z_edge * camera.height_m / (camera.height_m - quay)
        return (_QuadBatch.of(facets, _NEAR_M), bollards), hidden + 3.0

    def _structures(self, ego_x: float, ego_z: float) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """What the structures make of the canvas seen from ``(ego_x, ego_z)``: the opaque layer (NaN where
        the water or sky shows) and its mask, and the far shore's reflection as a band of rows
        (``start``, luminance to add) that the ripples then modulate. The last view is kept, so a quay
        camera draws its harbour once."""
        key = (ego_x, ego_z)
        if self._structure_cache is not None and self._structure_cache[0] == key:
            return self._structure_cache[1:]
        camera = self.camera
        layer = np.full((self.canvas_height, self.canvas_width), np.nan, np.float32)
        x0, res, rows = self.shore_geometry
        distance = self.far_m - ego_z
        scale = camera.focal_px * res / distance
        offset_u = camera.centre_col + camera.focal_px * (x0 - ego_x) / distance
        top_v = camera.horizon_row + camera.focal_px * (camera.height_m - 80.0) / distance
        waterline = camera.horizon_row + camera.focal_px * camera.height_m / distance
        band_start, band = self.canvas_height, np.zeros((0, self.canvas_width), np.float32)
        first = int(max(math.floor(top_v), 0))
        last = int(min(math.ceil(waterline) + 1, self.canvas_height))
        if last > first:
            matrix = np.float32([[scale, 0.0, offset_u], [0.0, scale, top_v - first]])
            warped = cv2.warpAffine(
                self.shore, matrix, (self.canvas_width, last - first), flags=cv2.INTER_LINEAR
            )
            lum, alpha = warped[..., 0], warped[..., 1]
            behind = self.static[first:last]
            layer[first:last] = np.where(alpha > 0.02, behind * (1.0 - alpha) + lum * alpha, np.nan)
        reflection_end = int(min(math.ceil(waterline + scale * rows), self.canvas_height))
        band_start = int(max(math.floor(waterline), 0))
        if reflection_end > band_start:
            shift = scale * (
                80.0 / res - rows + 1
            )  # the flipped sprite's first row is y = -(80 - (rows - 1) r)
            matrix = np.float32([[scale, 0.0, offset_u], [0.0, scale, waterline - band_start + shift]])
            warped = cv2.warpAffine(
                self.shore_reflection,
                matrix,
                (self.canvas_width, reflection_end - band_start),
                flags=cv2.INTER_LINEAR,
            )
            behind = self.static[band_start:reflection_end]
            band = (self.reflectance * warped[..., 1] * (0.8 * warped[..., 0] - behind)).astype(np.float32)
        for bank in self.banks:
            bank.back.draw(layer, camera, ego_x, ego_z, distance)
            for prop in bank.props:
                prop_distance = prop.z_m - ego_z
                if 1.0 <= prop_distance <= min(distance, camera.focal_px * min(prop.height_m / 8.0, 0.5)):
                    for part in prop.place(camera, ego_x, prop_distance)[0]:
                        _fill(layer, part.polygon, part.luminance)
            bank.front.draw(layer, camera, ego_x, ego_z, distance)
        if self.near_quay is not None:
            batch, bollards = self.near_quay
            batch.draw(layer, camera, ego_x, ego_z, distance)
            for bollard in bollards:
                for part in bollard.place(camera, ego_x, bollard.z_m - ego_z)[0]:
                    _fill(layer, part.polygon, part.luminance)
        mask = ~np.isnan(layer)
        self._structure_cache = (key, layer, mask, band_start, band)
        return layer, mask, band_start, band

    # ---- objects ------------------------------------------------------------------------------------

    def _populate(self, rng: np.random.Generator, duration_s: float) -> None:
        """Pontoons and piers with moored boats, boats moored along the banks and the far quay, moving
        boats and buoys; objects never in view during the scene are dropped."""
        objects: list = []
        self.pontoons: list[_Pontoon] = []
        self._keep_out: list[tuple[float, float, float, float]] = []
        for _ in range(int(rng.integers(0, 3))):
            self._add_pontoon(rng, objects)
        self._bank_moorings(rng, objects)
        self._moving_boats(rng, duration_s, objects)
        self._buoys(rng, objects)
        kept = [obj for obj in objects if self._ever_visible(obj, duration_s)]
        self.objects = [replace(obj, track_id=index) for index, obj in enumerate(kept)]

    def _water_x_range(self) -> tuple[float, float]:
        """Lateral extent of the water considered for objects, metres."""
        left, right = self.bank_x
        view = 0.5 * self.canvas_width * self.far_m / self.camera.focal_px
        return max(left, self.ego.x0_m - view), min(right, self.ego.x0_m + view)

    def _boat(
        self,
        rng: np.random.Generator,
        kind: str,
        x: float,
        z: float,
        heading: float,
        speed: float,
        turn: float = 0.0,
        t0: float = -1e9,
        t1: float = 1e9,
        length: float | None = None,
    ) -> _HarbourBoat:
        """A boat of ``kind`` with its side view, both end views, reflections and deck outline; the hulls
        of 60 % of the small boats are white (0.75-0.95) where that stands out from the water, as in a
        marina."""
        length = float(rng.uniform(*_HARBOUR_BOAT_KINDS[kind])) if length is None else length
        water = self.water_luminance
        profile = (
            _barge_profile(length, rng, water) if kind == "barge" else _boat_profile(kind, length, rng, water)
        )
        white = float(rng.uniform(0.75, 0.95))
        if kind not in ("barge", "ship") and rng.random() < 0.6 and white - water > 0.15:
            profile = [(profile[0][0], white)] + profile[1:]
        beam = length * (
            float(rng.uniform(0.12, 0.16)) if kind in ("barge", "ship") else float(rng.uniform(0.28, 0.4))
        )
        if kind == "barge":
            beam = min(beam, 11.4)
        half, hull = 0.5 * length, profile[0][0]
        freeboard = float(hull[hull[:, 0] < 0, 1].max())
        deck = np.array(
            [
                [-half, freeboard, -0.5 * beam],
                [0.5 * half, freeboard, -0.5 * beam],
                [half, freeboard, 0.0],
                [0.5 * half, freeboard, 0.5 * beam],
                [-half, freeboard, 0.5 * beam],
            ],
            np.float32,
        )
        hull_look = _BoatLook.of(profile[:1], beam, length)
        foam = float(np.clip(water + rng.uniform(0.12, 0.3), 0.0, 1.0))
        return _HarbourBoat(
            0,
            self.camera,
            self.ego,
            (
                _BoatLook.of(profile, beam, length, self.camera.height_m),
                _BoatLook.of(_coarse_profile(profile), beam, length, self.camera.height_m),
                hull_look,
            ),
            hull_look.mirrored(water, self.reflectance),
            _wake_piece(length, beam, speed, foam, water) if speed > 1.5 else None,
            (deck, ((0, len(deck)),), (profile[1][1],)),
            length,
            beam,
            x,
            z,
            heading,
            turn,
            speed,
            t0,
            t1,
            float(rng.uniform(0.01, 0.05)) * min(length, 10.0) / 5.0 if speed > 0 else 0.0,
            float(rng.uniform(1.0, 3.0)),
            float(rng.uniform(0.0, 2 * math.pi)),
            self.visibility_m,
            self.haze_luminance,
            self.far_m,
            self.canvas_width,
        )

    def _add_pontoon(self, rng: np.random.Generator, objects: list) -> None:
        """A pontoon (deck 0.3-0.6 m) or a pier on piles (deck 1.2-2.5 m) from a bank (or from beyond the
        view) 20-70 % across the water at 25-250 m, with boats moored along its front and back: side-on
        (alongside) or bow/stern to it, 40-90 % of the berths from the tip on taken, at most 4 a side."""
        left, right = self._water_x_range()
        side = 1.0 if rng.random() < 0.5 else -1.0
        root = right if side > 0 else left
        width_m = right - left
        tip = root - side * float(rng.uniform(0.2, 0.7)) * width_m
        if self.camera_kind == "boat":  # keep the boat camera's lane free
            lane = self.ego.x0_m + side * 12.0
            tip = max(tip, lane) if side > 0 else min(tip, lane)
        root = tip + side * min(abs(root - tip) + 5.0, 150.0)
        x0, x1 = sorted((root, tip))
        z_near = max(25.0, self.ego.z(0.0) + 25.0, self.water_z_min + 10.0)
        z0 = float(rng.uniform(z_near, max(min(250.0, self.far_m - 60.0), z_near + 1.0)))
        depth = float(rng.uniform(2.0, 4.0))
        if any(z0 - 25.0 < b and a < z0 + depth + 25.0 for _, _, a, b in self._keep_out):
            return
        z1 = z0 + depth
        floating = rng.random() < 0.6
        deck_h = float(rng.uniform(0.3, 0.6)) if floating else float(rng.uniform(1.2, 2.5))
        deck_l = float(rng.uniform(0.3, 0.85))
        face_l = float(np.clip(deck_l * rng.uniform(0.4, 0.8), 0.0, 1.0))
        end_x = x0 if side > 0 else x1
        quads = [_box_quad(end_x, end_x, 0.0, deck_h, z0, z1), _box_quad(x0, x1, deck_h, deck_h, z0, z1)]
        luminances = [face_l * 0.8, deck_l]
        if floating:
            quads.append(_box_quad(x0, x1, 0.0, deck_h, z0, z0))
            luminances.append(face_l)
        else:
            quads.append(_box_quad(x0, x1, deck_h - 0.4, deck_h, z0, z0))
            luminances.append(face_l)
            for pile in np.arange(x0 + 1.0, x1, float(rng.uniform(3.0, 6.0))):
                quads.append(_box_quad(float(pile), float(pile) + 0.35, 0.0, deck_h - 0.4, z0, z0))
                luminances.append(face_l * 0.7)
        for post in np.arange(x0 + 2.0, x1, float(rng.uniform(6.0, 12.0))):
            quads.append(_box_quad(float(post), float(post) + 0.3, deck_h, deck_h + 0.45, z0 + 0.3, z0 + 0.3))
            luminances.append(float(rng.uniform(0.05, 0.3)))
        self.pontoons.append(
            _Pontoon(np.array(quads, np.float32), tuple(luminances), (z0 + z1) / 2.0, self.camera, self.ego)
        )
        self._keep_out.append((x0, x1, z0, z1))
        kinds = ["dinghy", "motorboat", "sailboat", "fishing"]
        for row, sign in ((z0, -1.0), (z1, 1.0)):
            alongside = rng.random() < 0.5
            occupancy = float(rng.uniform(0.4, 0.9))
            along = 1.0  # berth edge, metres from the tip towards the root
            placed = 0
            while along < x1 - x0 - 3.0 and placed < 4:
                kind = str(rng.choice(kinds, p=[0.2, 0.45, 0.25, 0.1]))
                length = float(rng.uniform(*_HARBOUR_BOAT_KINDS[kind]))
                slot = length + 1.0 if alongside else 0.35 * length + 1.2
                if rng.random() < occupancy and along + slot < x1 - x0:
                    x = tip + side * (along + 0.5 * slot)
                    if alongside:
                        heading = (math.pi / 2.0) * (1.0 if rng.random() < 0.5 else -1.0)
                        z = row + sign * (0.2 * length + 0.4)
                    else:
                        heading = 0.0 if (sign > 0) == (rng.random() < 0.8) else math.pi
                        z = row + sign * (0.5 * length + 0.5)
                    objects.append(self._boat(rng, kind, x, z, heading, 0.0, length=length))
                    reach = 0.5 * length if not alongside else 0.2 * length
                    self._keep_out.append(
                        (x - 0.5 * slot, x + 0.5 * slot, min(row, z - reach), max(row, z + reach))
                    )
                    placed += 1
                along += slot

    def _bank_moorings(self, rng: np.random.Generator, objects: list) -> None:
        """Boats and barges moored along the banks (bow or stern towards the camera, seen obliquely) and
        along the far quay (side-on)."""
        z0 = max(self.ego.z(0.0) + 20.0, 20.0, self.water_z_min)
        for side, x_wall in ((-1.0, self.bank_x[0]), (1.0, self.bank_x[1])):
            if not math.isfinite(x_wall) or rng.random() < 0.3:
                continue
            z = z0 + float(rng.uniform(0.0, 30.0))
            for _ in range(int(rng.integers(1, 5))):
                kind = str(
                    rng.choice(["motorboat", "sailboat", "fishing", "barge"], p=[0.35, 0.2, 0.2, 0.25])
                )
                length = float(rng.uniform(*_HARBOUR_BOAT_KINDS[kind]))
                if z + length > self.far_m - 20.0:
                    break
                beam = length * (0.14 if kind == "barge" else 0.34)
                x = x_wall - side * (0.5 * min(beam, 11.4) + 0.3)
                heading = 0.0 if rng.random() < 0.5 else math.pi
                objects.append(self._boat(rng, kind, x, z + 0.5 * length, heading, 0.0, length=length))
                self._keep_out.append(
                    (min(x_wall, x - side * 6.0), max(x_wall, x - side * 6.0), z, z + length)
                )
                z += length + float(rng.uniform(1.0, 40.0))
        left, right = self._water_x_range()
        for _ in range(int(rng.integers(0, 3))):
            kind = str(rng.choice(["fishing", "ship", "barge"]))
            length = float(rng.uniform(*_HARBOUR_BOAT_KINDS[kind]))
            x = float(rng.uniform(left, right))
            z = self.far_m - 0.1 * length - 1.0
            objects.append(
                self._boat(
                    rng,
                    kind,
                    x,
                    z,
                    math.pi / 2.0 if rng.random() < 0.5 else -math.pi / 2.0,
                    0.0,
                    length=length,
                )
            )

    def _moving_boats(self, rng: np.random.Generator, duration_s: float, objects: list) -> None:
        """2-6 boats under way at the start and more arriving (0.15-0.5 per second): crossing, coming
        towards the camera, leaving, oblique (along the river on a waterway), 0.8-9 m/s (barges and
        ships 1.5-4), 30 % turning; paths that would run through a pontoon, a moored boat or a bank, or
        into the camera, are drawn again (up to 8 times)."""
        left, right = self._water_x_range()
        rate = float(rng.uniform(0.15, 0.5))
        starts = [0.0] * int(rng.integers(2, 7))
        t = 0.0
        while True:
            t += float(rng.exponential(1.0 / rate))
            if t >= duration_s:
                break
            starts.append(t)
        f = self.camera.focal_px
        for t0 in starts:
            for _ in range(8):
                kind = str(rng.choice(list(_HARBOUR_BOAT_KINDS), p=[0.15, 0.35, 0.15, 0.1, 0.05, 0.2]))
                length = float(rng.uniform(*_HARBOUR_BOAT_KINDS[kind]))
                slow = kind in ("barge", "ship")
                speed = float(rng.uniform(1.5, 4.0)) if slow else float(rng.uniform(0.8, 9.0))
                if self.river and rng.random() < 0.7:
                    heading = float(rng.uniform(-0.3, 0.3)) + (math.pi if rng.random() < 0.5 else 0.0)
                else:
                    heading = float(rng.uniform(-math.pi, math.pi))
                turn = float(rng.uniform(-0.06, 0.06)) if rng.random() < 0.3 else 0.0
                z_near = max(12.0, f * length / (1.2 * self.width)) + max(self.ego.z(t0), 0.0)
                z = float(np.exp(rng.uniform(math.log(z_near), math.log(max(self.far_m - 30.0, 2 * z_near)))))
                x = (
                    float(rng.uniform(left + 0.4 * length, right - 0.4 * length))
                    if right - left > length
                    else 0.5 * (left + right)
                )
                if t0 > 0.0 and abs(math.sin(heading)) > 0.5:  # arriving: enters from the side
                    view = 0.5 * self.canvas_width * (z - self.ego.z(t0)) / f
                    x = self.ego.x(t0) - math.copysign(view + 0.6 * length, math.sin(heading))
                    x = min(max(x, left + 0.4 * length), right - 0.4 * length)
                boat = self._boat(rng, kind, x, z, heading, speed, turn, t0, duration_s + 1.0, length)
                if self._path_is_clear(boat, duration_s):
                    objects.append(boat)
                    break

    def _path_is_clear(self, boat: _HarbourBoat, duration_s: float) -> bool:
        """Whether the boat stays on the water, off the pontoons, berths and the camera for the scene."""
        left, right = self.bank_x
        margin = 0.5 * boat.length_m + 1.0
        for t in np.linspace(boat.t0_s if boat.t0_s > 0 else 0.0, duration_s, 24):
            x, z, _ = _arc_position(
                boat.x0_m, boat.z0_m, boat.heading0, boat.turn_rate, boat.speed_m_s, t - boat.t0_s
            )
            if x - 0.5 * boat.beam_m < left or x + 0.5 * boat.beam_m > right or z > self.far_m - 5.0:
                return False
            if math.hypot(x - self.ego.x(t), z - self.ego.z(t)) < margin + 6.0:
                return False
            if z - margin < self.water_z_min:
                return False
            for x0, x1, z0, z1 in self._keep_out:
                if x0 - margin < x < x1 + margin and z0 - margin < z < z1 + margin:
                    return False
        return True

    def _buoys(self, rng: np.random.Generator, objects: list) -> None:
        """1-8 buoys: navigation buoys (:func:`_buoy_profile`) and mooring balls (0.3-0.7 m), none on a
        pontoon or berth, nor within 5 m of a boat camera's course."""
        left, right = self._water_x_range()
        f = self.camera.focal_px
        for _ in range(int(rng.integers(1, 9))):
            if rng.random() < 0.6:
                profile = _buoy_profile(rng, self.water_luminance)
            else:
                radius = float(rng.uniform(0.15, 0.35))
                ball = _contrasting_luminance(rng, self.water_luminance, 0.2)
                profile = [(_disc((0.0, 0.6 * radius), radius), ball)]
            tallest = max(float(polygon[:, 1].max()) for polygon, _ in profile)
            z_near = max(10.0, f * tallest / (0.25 * self.height), self.water_z_min) + max(
                self.ego.z(0.0), 0.0
            )
            z = float(np.exp(rng.uniform(math.log(z_near), math.log(max(0.5 * self.far_m, 2 * z_near)))))
            view = 0.5 * self.width * (z - self.ego.z(0.0)) / f
            x = float(np.clip(self.ego.x(0.0) + rng.uniform(-1.0, 1.0) * view, left + 2.0, right - 2.0))
            if any(x0 - 2 < x < x1 + 2 and z0 - 2 < z < z1 + 2 for x0, x1, z0, z1 in self._keep_out):
                continue
            if self.camera_kind == "boat" and abs(x - self.ego.x0_m) < 5.0:  # off the boat's course
                continue
            objects.append(
                _HarbourBuoy(
                    0,
                    self.camera,
                    self.ego,
                    profile,
                    x,
                    z,
                    float(rng.uniform(0.03, 0.2)),
                    float(rng.uniform(1.5, 4.5)),
                    float(rng.uniform(0.0, 2 * math.pi)),
                    float(rng.uniform(0.02, 0.15)),
                    self.visibility_m,
                    self.haze_luminance,
                    self.far_m,
                )
            )

    def _ever_visible(self, obj, duration_s: float) -> bool:
        return any(obj.draw(t) is not None for t in np.linspace(0.0, duration_s, 60))

    # ---- per frame ----------------------------------------------------------------------------------

    def _background(self, t_s: float) -> np.ndarray:
        """Static sky and water, the shore's reflection, ripples at the camera's position, structures."""
        ego_x, ego_z = self.ego.x(t_s), self.ego.z(t_s)
        layer, mask, band_start, band = self._structures(ego_x, ego_z)
        canvas = self.static.copy()
        canvas[band_start : band_start + len(band)] += band
        phases = self.wave_numbers @ np.array([ego_x, ego_z]) - self.wave_rates * t_s
        coefficients = np.stack([np.cos(phases), np.sin(phases)], axis=1).ravel().astype(np.float32)
        waves = np.einsum("i,ij->j", coefficients, self.wave_grids).reshape(-1, self.canvas_width)
        canvas[self.water_first_row :] += waves
        np.copyto(canvas, layer, where=mask)
        return canvas

    def _drawings(self, t_s: float) -> list[tuple[int, _Drawn]]:
        drawn = []
        for index, obj in enumerate(self.objects):
            drawing = obj.draw(t_s)
            if drawing is not None:
                drawn.append((index, drawing))
        for pontoon in self.pontoons:
            drawing = pontoon.draw(t_s)
            if drawing is not None:
                drawn.append((-1, drawing))
        drawn.sort(key=lambda item: -item[1].distance)
        return drawn

    def _lighting(self, frame: np.ndarray, t_s: float) -> np.ndarray:
        """``L' = L (1 + a sin(w t))``: a slow global gain (clouds, auto exposure)."""
        frame *= np.float32(1.0 + self.gain_amplitude * math.sin(self.gain_rate * t_s))
        return frame

    def _camera_shift(self, t_s: float) -> tuple[float, float, float]:
        """Slow sway, pan or swell (roll, dx, dy) plus fast vibration (see :meth:`_build_motion`)."""
        roll_s, x_s, y_s = np.sin(self.slow_rates * t_s + self.slow_phases)
        fast_x, fast_y = self.fast_px * np.sin(self.fast_rates * t_s)
        return (
            self.roll_amplitude * float(roll_s),
            float(self.slow_px[0] * x_s) + float(fast_x),
            float(self.slow_px[1] * y_s) * (0.3 if self.camera_kind == "drone" else 1.0) + float(fast_y),
        )


def make_scene(config: SceneConfig) -> Scene:
    """The scene described by ``config`` (a :class:`MaritimeScene`, :class:`TrafficScene`,
    :class:`StreetScene` or :class:`HarbourScene`)."""
    scenes = {
        "maritime": MaritimeScene,
        "traffic": TrafficScene,
        "street": StreetScene,
        "harbour": HarbourScene,
    }
    return scenes[config.preset](config)


def render_frames(scene: Scene, times_us: np.ndarray) -> np.ndarray:
    """Frames at ``times_us`` (int64 ``[N]``, microseconds), float32 ``[N, H, W]``."""
    frames = np.empty((len(times_us), scene.height, scene.width), dtype=np.float32)
    for index, t_us in enumerate(times_us):
        frames[index] = scene.render(int(t_us))
    return frames
