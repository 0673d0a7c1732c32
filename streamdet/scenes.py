"""Procedural maritime and traffic scenes with ground truth per time stamp.

A scene is a pure function of time: :meth:`Scene.render` gives the luminance frame at ``t_us``
(float32 ``[H, W]`` in [0, 1], the input of the sensor emulators in :mod:`streamdet.encoders`) and
:meth:`Scene.ground_truth` the visible box of every object at the same instant. Everything random is
drawn once from the scene's seed when the scene is built, so rendering the same time twice, in any
order or in another process, gives the same pixels.

Geometry. Both presets use a pinhole camera over a flat ground (sea or road) plane: a point at lateral
offset ``X`` (metres), distance ``Z`` (metres) and height ``Y`` (metres) above the plane lands at

    u = c_x + f X / Z,        v = v_horizon + f (h_cam - Y) / Z

in the stabilised image (pixels), where ``f`` is the focal length in pixels and ``h_cam`` the camera
height. Objects are drawn there with ``cv2.fillPoly`` in order of distance (far first: the painter's
algorithm gives occlusion), on a canvas with a margin of :data:`CANVAS_MARGIN_PX` pixels. The camera's
own motion (roll, pitch and yaw of a boat; small vibration of a pole) is then one affine warp

    p_sensor = R(roll) (p_canvas - c_canvas) + c_sensor + (dx, dy)

applied with bilinear interpolation, so sub-pixel ego-motion moves edges smoothly and static buoys
still produce events.

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
from dataclasses import dataclass, field

import cv2
import numpy as np

PRESETS: tuple[str, ...] = ("maritime", "traffic")
"""Scene presets, by name."""

PRESET_CLASSES: dict[str, tuple[str, ...]] = {"maritime": ("boat", "buoy"), "traffic": ("car", "pedestrian")}
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
        preset: ``"maritime"`` or ``"traffic"``.
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
    pixels) and optionally ``_lighting(frame, t_s)``.
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
        """``(x_m, z_m, heading)`` at ``t_s``: ``x = x0 + (v / omega)(cos psi0 - cos psi)``; z alike."""
        tau = t_s - self.t0_s
        heading = self.heading0 + self.turn_rate * tau
        if abs(self.turn_rate) < 1e-6:
            return (
                self.x0_m + self.speed_m_s * tau * math.sin(self.heading0),
                self.z0_m + self.speed_m_s * tau * math.cos(self.heading0),
                heading,
            )
        radius = self.speed_m_s / self.turn_rate
        return (
            self.x0_m + radius * (math.cos(self.heading0) - math.cos(heading)),
            self.z0_m + radius * (math.sin(heading) - math.sin(self.heading0)),
            heading,
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
            self.rig = self._own_bow(rng)
        self._populate(rng)

    def _own_bow(self, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
        """The bow and railing of the camera's own boat at the bottom of the frame (sensor pixels)."""
        width, height = self.width, self.height
        tip_x = float(rng.uniform(0.3, 0.7)) * width
        tip_y = height * (1.0 - float(rng.uniform(0.08, 0.25)))
        left, right = float(rng.uniform(-0.2, 0.2)) * width, float(rng.uniform(0.8, 1.2)) * width
        deck = np.array([[left, height + 1], [tip_x, tip_y], [right, height + 1]], np.float32)
        deck_luminance = _contrasting_luminance(rng, self.sea_luminance, 0.2)
        rail = float(rng.uniform(0.02, 0.05)) * height
        thickness = max(1.0, 0.006 * height)
        railing = [
            _segment((left, height - rail), (tip_x, tip_y - rail), thickness),
            _segment((tip_x, tip_y - rail), (right, height - rail), thickness),
        ]
        rail_luminance = _contrasting_luminance(rng, deck_luminance, 0.2)
        return [(deck, deck_luminance)] + [(segment, rail_luminance) for segment in railing]

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


def make_scene(config: SceneConfig) -> Scene:
    """The scene described by ``config`` (a :class:`MaritimeScene` or a :class:`TrafficScene`)."""
    return MaritimeScene(config) if config.preset == "maritime" else TrafficScene(config)


def render_frames(scene: Scene, times_us: np.ndarray) -> np.ndarray:
    """Frames at ``times_us`` (int64 ``[N]``, microseconds), float32 ``[N, H, W]``."""
    frames = np.empty((len(times_us), scene.height, scene.width), dtype=np.float32)
    for index, t_us in enumerate(times_us):
        frames[index] = scene.render(int(t_us))
    return frames
