"""Event and spike files: detect the format, read whole or in time windows, write.

Every reader returns events as ``EVENT_DTYPE`` (tonic's ``events_struct``: ``x``, ``y`` pixels, ``t``
microseconds, ``p`` bool, True = ON) and a sensor size ``(width, height)``.

- ``evt2``, ``evt3``: Prophesee RAW (``% evt 2.0`` / ``% evt 3.0`` header), decoded by expelliarmus;
  size from the header's ``format``/``geometry`` line, else from the camera plugin name.
- ``dat``: Prophesee DAT (``%`` header, event type/size bytes), expelliarmus; size from
  ``% Width``/``% Height``.
- ``aedat4``: iniVation AEDAT4 (``#!AER-DAT4.0``), dv-processing; size from the event stream.
- ``spike-dat``: PKU spike camera, headerless bit-packed frames; size and rate from the ``<stem>.json``
  sidecar, else 400 x 250 at 20 kHz.
- ``npy``: numpy structured array with fields x, y, t, p; size from the ``<file>.json`` sidecar.
- ``h5``: HDF5 dataset ``events`` (or group ``events`` with datasets x, y, t, p); size from the
  attributes ``width``, ``height``.

When a format holds no size, an explicit ``sensor_size`` argument is used, and failing that the
smallest sensor that holds every event, ``(max x + 1, max y + 1)``.

PKU spike-camera ``.dat``: frame ``n`` is ``W * H`` bits, packed 8 pixels per byte, least significant
bit first, in row-major pixel order with the rows stored bottom-up; frames follow each other with no
header. Frame ``n`` is stamped ``t0_us + n * frame_us`` (default 50 us, a 20 kHz camera).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamdet.errors import FileFormatError, UserFacingError
from streamdet.events import EVENT_DTYPE, as_events, empty_events
from streamdet.wire import MAX_SENSOR_SIDE

FORMATS = ("evt2", "evt3", "dat", "aedat4", "spike-dat", "npy", "h5")
"""Format names returned by :func:`detect_format`."""

SPIKE_CAMERA_SIZE = (400, 250)
"""Sensor size ``(width, height)`` of the classic PKU spike camera."""

SPIKE_FRAME_US = 50.0
"""Duration of one spike-camera frame, microseconds (20 000 frames per second)."""

CHUNK_EVENTS = 1 << 18
"""Events decoded per chunk when streaming a file (bounds the memory of streamed reads)."""

SPIKE_CHUNK_PIXELS = 1 << 24
"""Pixels decoded per chunk when streaming a spike ``.dat`` (167 frames of 400 x 250, 16 MB of bool)."""

PROPHESEE_PLUGIN_SIZES = {
    "hal_plugin_gen3_fx3": (640, 480),
    "hal_plugin_gen31_fx3": (640, 480),
    "hal_plugin_gen31_evk2": (640, 480),
    "hal_plugin_gen41_evk2": (1280, 720),
    "hal_plugin_gen41_evk3": (1280, 720),
    "hal_plugin_imx636_evk3": (1280, 720),
    "hal_plugin_imx636_evk4": (1280, 720),
}
"""Sensor size of Prophesee camera plugins (Gen3/Gen3.1 VGA, Gen4.1 and IMX636 HD), for RAW files whose
header names the plugin but no size (older Metavision versions write no geometry line)."""

_AEDAT4_MAGIC = b"#!AER-DAT4.0"
_NPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_EXTENSION_FORMATS = {
    ".raw": "raw",
    ".dat": "dat",
    ".aedat4": "aedat4",
    ".npy": "npy",
    ".h5": "h5",
    ".hdf5": "h5",
}
_RAW_WORD_BYTES = {"evt2": 4, "evt3": 2}


@dataclass(frozen=True)
class EventRecording:
    """A whole recording in memory: ``events`` (``EVENT_DTYPE``), ``sensor_size`` ``(W, H)``, ``format``."""

    events: np.ndarray
    sensor_size: tuple[int, int]
    format: str


@dataclass(frozen=True)
class RecordingInfo:
    """Summary of a recording, computed by streaming it once.

    ``t_first_us`` / ``t_last_us`` are ``None`` when the recording holds no events. ``frames`` and
    ``frame_us`` are set for spike-camera files only. ``outside_sensor`` counts the events with
    coordinates outside ``width x height`` (``streamdet info`` warns about them); ``largest_gap_us``
    is the largest jump in time between consecutive events (``replay`` refuses more than 10 minutes).
    """

    path: str
    format: str
    events: int
    t_first_us: int | None
    t_last_us: int | None
    width: int
    height: int
    x_max: int | None
    y_max: int | None
    frames: int | None = None
    frame_us: float | None = None
    outside_sensor: int = 0
    """Events outside the ``width x height`` sensor: corrupt data, or a wrong stated size."""
    largest_gap_us: int = 0
    """Largest jump forwards in time from one event to the next, microseconds."""


@dataclass(frozen=True)
class SpikeDatLayout:
    """How to read a headerless spike-camera ``.dat``: ``sensor_size`` ``(W, H)``, ``frame_us``, ``t0_us``."""

    sensor_size: tuple[int, int] = SPIKE_CAMERA_SIZE
    frame_us: float = SPIKE_FRAME_US
    t0_us: int = 0


@dataclass(frozen=True)
class PropheseeHeader:
    """The ``%`` text header of a Prophesee RAW or DAT file.

    ``fields`` maps each header key (first word, lower case) to the rest of the line; ``binary_offset``
    is the byte where the event data begins (after the event type/size bytes in DAT files);
    ``event_bytes`` is the DAT event size (0 for RAW files).
    """

    fields: dict[str, str]
    binary_offset: int
    event_bytes: int


# --------------------------------------------------------------------------------------------------
# format detection


def _check_readable(path: Path) -> int:
    """Size of ``path`` in bytes; FileFormatError when it is missing, not a file, or empty."""
    if not path.exists():
        raise FileFormatError(path, "no such file")
    if not path.is_file():
        raise FileFormatError(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise FileFormatError(path, "file is empty")
    return size


def _read_percent_header(path: Path, is_dat: bool) -> PropheseeHeader | None:
    """Parse the ``% key value`` lines at the start of a Prophesee file; ``None`` when there are none."""
    fields: dict[str, str] = {}
    offset = 0
    with path.open("rb") as file:
        while True:
            line = file.readline(4096)
            if line.startswith(b"%") and not line.endswith(b"\n") and len(line) < 4096:
                raise FileFormatError(path, f"header cut mid-line: the file ends in {line[:40]!r}")
            if not line.startswith(b"%") or not line.endswith(b"\n"):
                break
            try:
                text = line[1:].decode("ascii").strip()
            except UnicodeDecodeError:
                break
            offset += len(line)
            if text == "end":
                break
            key, _, value = text.partition(" ")
            if key:
                fields[key.lower()] = value.strip()
        if offset == 0:
            return None
        event_bytes = 0
        if is_dat:
            file.seek(offset)
            type_and_size = file.read(2)
            if len(type_and_size) < 2:
                raise FileFormatError(path, "Prophesee DAT header ends before the event type/size bytes")
            event_bytes = type_and_size[1]
            if event_bytes == 0:
                raise FileFormatError(path, "Prophesee DAT header declares an event size of 0 bytes")
            offset += 2
    return PropheseeHeader(fields=fields, binary_offset=offset, event_bytes=event_bytes)


def _raw_encoding(path: Path, header: PropheseeHeader) -> str:
    """``evt2`` or ``evt3`` from a RAW header (``% evt 3.0`` or ``% format EVT3;...``)."""
    version = header.fields.get("evt", "")
    layout = header.fields.get("format", "").split(";")[0].strip().upper()
    if version.startswith("2") or layout == "EVT2":
        return "evt2"
    if version.startswith("3") or layout == "EVT3":
        return "evt3"
    if version or layout:
        raise FileFormatError(
            path, f"unsupported Prophesee RAW encoding {version or layout!r} (EVT 2.0 or 3.0)"
        )
    raise FileFormatError(path, "Prophesee RAW header has no '% evt' or '% format' line")


def _sidecar_path(path: Path) -> Path:
    """The JSON sidecar of a ``.npy`` file: ``<file>.json`` (``events.npy`` -> ``events.npy.json``)."""
    return path.with_name(path.name + ".json")


def spike_sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a spike ``.dat``: ``<stem>.json`` beside it (``spikes.dat`` -> ``spikes.json``)."""
    path = Path(path)
    return path.with_suffix(".json")


def detect_format(path: str | Path) -> str:
    """The format of an event file: one of :data:`FORMATS`.

    Decided by content where the format has a signature (AEDAT4, npy, HDF5 magic bytes; the ``%``
    header of Prophesee RAW/DAT files), by the extension otherwise (a ``.dat`` without a Prophesee
    header is a PKU spike-camera file). Raises FileFormatError for a missing, empty or unrecognised file.
    """
    path = Path(path)
    _check_readable(path)
    with path.open("rb") as file:
        head = file.read(16)
    if head.startswith(_AEDAT4_MAGIC):
        return "aedat4"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    by_extension = _EXTENSION_FORMATS.get(path.suffix.lower())
    is_dat = by_extension == "dat"
    if is_dat and spike_sidecar_path(path).exists():
        return "spike-dat"
    header = _read_percent_header(path, is_dat=is_dat) if head.startswith(b"%") else None
    if header is not None:
        if is_dat:
            return "dat"
        return _raw_encoding(path, header)
    if by_extension == "dat":
        return "spike-dat"
    if by_extension is None:
        raise FileFormatError(
            path,
            f"unknown format: extension {path.suffix or '(none)'!r} and no known signature in the content",
        )
    expected = {
        "raw": "a Prophesee '%' text header",
        "aedat4": "the '#!AER-DAT4.0' signature",
        "npy": "the numpy '\\x93NUMPY' signature",
        "h5": "the HDF5 signature",
    }[by_extension]
    raise FileFormatError(path, f"not a valid {path.suffix} file: it does not start with {expected}")


# --------------------------------------------------------------------------------------------------
# sensor size


def _size_from_prophesee_header(header: PropheseeHeader) -> tuple[int, int] | None:
    """``(W, H)`` from ``% format EVT3;height=H;width=W``, ``% geometry WxH``, ``% Width``/``% Height``
    or the plugin name; ``None`` when the header says nothing about it."""
    fields = header.fields
    layout = dict(part.split("=", 1) for part in fields.get("format", "").split(";")[1:] if "=" in part)
    if "width" in layout and "height" in layout:
        return _valid_size(int(layout["width"]), int(layout["height"]))
    if "geometry" in fields and "x" in fields["geometry"]:
        width, height = fields["geometry"].lower().split("x", 1)
        return _valid_size(int(width), int(height))
    if "width" in fields and "height" in fields:
        return _valid_size(int(fields["width"]), int(fields["height"]))
    return PROPHESEE_PLUGIN_SIZES.get(fields.get("plugin_name", ""))


def _valid_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)``; ValueError unless both are in 1..``MAX_SENSOR_SIDE``."""
    if not (0 < width <= MAX_SENSOR_SIDE and 0 < height <= MAX_SENSOR_SIDE):
        raise ValueError(f"{width}x{height} is not a sensor size (each side 1..{MAX_SENSOR_SIDE})")
    return width, height


def read_spike_sidecar(path: str | Path) -> SpikeDatLayout | None:
    """The layout in the ``<stem>.json`` sidecar of a spike ``.dat`` (``{"width", "height", "rate_hz",
    "t0_us"}``, each optional), or ``None`` when there is no sidecar. ``frame_us = 1e6 / rate_hz``."""
    sidecar = spike_sidecar_path(path)
    if not sidecar.exists():
        return None
    try:
        meta = json.loads(sidecar.read_text())
        default = SpikeDatLayout()
        width = int(meta.get("width", default.sensor_size[0]))
        height = int(meta.get("height", default.sensor_size[1]))
        rate_hz = float(meta.get("rate_hz", 1e6 / default.frame_us))
        t0_us = int(meta.get("t0_us", 0))
    except (ValueError, TypeError, AttributeError) as error:
        raise FileFormatError(sidecar, f"bad spike-camera sidecar: {error}") from None
    if width <= 0 or height <= 0 or rate_hz <= 0:
        raise FileFormatError(
            sidecar, f"bad spike-camera sidecar: width {width}, height {height}, rate {rate_hz} Hz"
        )
    return SpikeDatLayout(sensor_size=(width, height), frame_us=1e6 / rate_hz, t0_us=t0_us)


def write_spike_sidecar(path: str | Path, layout: SpikeDatLayout) -> Path:
    """Write the ``<stem>.json`` sidecar of the spike ``.dat`` at ``path``; returns the sidecar path."""
    sidecar = spike_sidecar_path(path)
    width, height = layout.sensor_size
    meta = {"width": width, "height": height, "rate_hz": 1e6 / layout.frame_us, "t0_us": layout.t0_us}
    return write_text_atomically(sidecar, json.dumps(meta) + "\n")


def _npy_sensor_size(path: Path) -> tuple[int, int] | None:
    sidecar = _sidecar_path(path)
    if not sidecar.exists():
        return None
    try:
        meta = json.loads(sidecar.read_text())
        return int(meta["width"]), int(meta["height"])
    except (ValueError, KeyError, TypeError) as error:
        raise FileFormatError(sidecar, f"bad sensor-size sidecar (needs width, height): {error}") from None


def header_sensor_size(path: str | Path, fmt: str | None = None) -> tuple[int, int] | None:
    """Sensor size ``(W, H)`` stated by the file itself (header, attributes or sidecar), without
    decoding events; ``None`` when the file does not state it."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt in ("evt2", "evt3", "dat"):
        header = _read_percent_header(path, is_dat=fmt == "dat")
        try:
            return _size_from_prophesee_header(header) if header else None
        except ValueError as error:
            raise FileFormatError(path, f"bad sensor size in the header: {error}") from None
    if fmt == "aedat4":
        recording = _open_aedat4(path)
        return tuple(int(v) for v in recording.getEventResolution())
    if fmt == "spike-dat":
        return spike_layout(path, None).sensor_size
    if fmt == "npy":
        return _npy_sensor_size(path)
    if fmt == "h5":
        with _open_h5(path) as file:
            for attrs in (file.attrs, file["events"].attrs):
                if "width" in attrs and "height" in attrs:
                    return int(attrs["width"]), int(attrs["height"])
        return None
    raise UserFacingError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _fitting_sensor_size(x_max: int | None, y_max: int | None) -> tuple[int, int]:
    """The smallest sensor holding every event: ``(x_max + 1, y_max + 1)``; ``(0, 0)`` with no events."""
    return (0 if x_max is None else x_max + 1, 0 if y_max is None else y_max + 1)


# --------------------------------------------------------------------------------------------------
# streamed decoding, one chunk at a time


def _check_raw_body(path: Path, fmt: str, header: PropheseeHeader) -> None:
    """FileFormatError when the binary part of a RAW/DAT file is not a whole number of words/events."""
    body = path.stat().st_size - header.binary_offset
    word = header.event_bytes if fmt == "dat" else _RAW_WORD_BYTES[fmt]
    if body % word:
        unit = "events" if fmt == "dat" else "words"
        raise FileFormatError(
            path, f"truncated: the {body}-byte event data is not a whole number of {word}-byte {unit}"
        )
    if fmt == "dat" and header.event_bytes != 8:
        raise FileFormatError(path, f"Prophesee DAT with {header.event_bytes}-byte events (8-byte CD only)")
    _check_body_not_zero(path, header.binary_offset, body)


ZERO_SCAN_BYTES = 1 << 20
"""Block size of the scan for a non-zero byte in a RAW/DAT body (:func:`_check_body_not_zero`)."""


def _check_body_not_zero(path: Path, offset: int, body: int) -> None:
    """FileFormatError when every byte of the ``body`` bytes from ``offset`` is zero (a zeroed or
    never-written file decodes to events at pixel 0, time 0). Stops at the first non-zero block:
    real files cost one read of ``ZERO_SCAN_BYTES``."""
    with path.open("rb") as file:
        file.seek(offset)
        while block := file.read(ZERO_SCAN_BYTES):
            if any(block):
                return
    if body:
        raise FileFormatError(path, f"the {body}-byte event data is all zero bytes (zeroed or never written)")


def _prophesee_chunks(path: Path, fmt: str) -> Iterator[np.ndarray]:
    from expelliarmus import Wizard

    header = _read_percent_header(path, is_dat=fmt == "dat")
    if header is None:
        raise FileFormatError(path, "no Prophesee '%' header")
    _check_raw_body(path, fmt, header)
    expected_suffix = ".dat" if fmt == "dat" else ".raw"
    if path.suffix != expected_suffix:
        raise FileFormatError(path, f"{fmt} content needs the {expected_suffix} extension (expelliarmus)")
    wizard = Wizard(encoding=fmt, fpath=path, chunk_size=CHUNK_EVENTS)
    for chunk in wizard.read_chunk():
        yield as_events(chunk)


def _dv_error_reason(error: Exception) -> str:
    """One line from a dv-processing exception (whose text carries a C++ location and a stack trace)."""
    text = str(error)
    if "End-Of-File" in text:
        return "truncated: end of file reached"
    lines = [line.strip() for line in text.split("Stacktrace:")[0].splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _open_aedat4(path: Path):
    import dv_processing as dv

    try:
        recording = dv.io.MonoCameraRecording(str(path))
    except RuntimeError as error:
        raise FileFormatError(path, f"not a readable AEDAT4 file: {_dv_error_reason(error)}") from None
    if not recording.isEventStreamAvailable():
        raise FileFormatError(path, "AEDAT4 file has no event stream")
    return recording


def _aedat4_chunks(path: Path) -> Iterator[np.ndarray]:
    recording = _open_aedat4(path)
    while True:
        try:
            batch = recording.getNextEventBatch()
        except RuntimeError as error:
            raise FileFormatError(path, f"corrupt AEDAT4 event packet: {_dv_error_reason(error)}") from None
        if batch is None:
            return
        packet = batch.numpy()
        events = np.empty(len(packet), dtype=EVENT_DTYPE)
        events["x"] = packet["x"]
        events["y"] = packet["y"]
        events["t"] = packet["timestamp"]
        events["p"] = packet["polarity"] > 0
        yield events


def _open_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise FileFormatError(path, f"not a readable .npy array (truncated or corrupt): {error}") from None
    if array.ndim != 1 or array.dtype.names is None:
        raise FileFormatError(path, f"expected a 1-D structured event array, got {array.dtype} {array.shape}")
    missing = [name for name in EVENT_DTYPE.names if name not in array.dtype.names]
    if missing:
        raise FileFormatError(path, f"event array lacks field(s) {missing}; has {array.dtype.names}")
    return array


def _npy_chunks(path: Path) -> Iterator[np.ndarray]:
    array = _open_npy(path)
    for start in range(0, len(array), CHUNK_EVENTS):
        yield as_events(np.asarray(array[start : start + CHUNK_EVENTS]))


def _open_h5(path: Path):
    import h5py

    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise FileFormatError(path, f"not a readable HDF5 file (truncated or corrupt): {error}") from None
    if "events" not in file:
        file.close()
        raise FileFormatError(path, "HDF5 file has no 'events' dataset or group")
    return file


def _h5_chunks(path: Path) -> Iterator[np.ndarray]:
    import h5py

    with _open_h5(path) as file:
        node = file["events"]
        try:
            if isinstance(node, h5py.Dataset):
                if node.dtype.names is None:
                    raise FileFormatError(path, f"dataset 'events' is not structured: {node.dtype}")
                for start in range(0, node.shape[0], CHUNK_EVENTS):
                    yield as_events(node[start : start + CHUNK_EVENTS])
            else:
                missing = [name for name in EVENT_DTYPE.names if name not in node]
                if missing:
                    raise FileFormatError(path, f"group 'events' lacks dataset(s) {missing}")
                total = node["t"].shape[0]
                for start in range(0, total, CHUNK_EVENTS):
                    stop = min(start + CHUNK_EVENTS, total)
                    events = np.empty(stop - start, dtype=EVENT_DTYPE)
                    for name in EVENT_DTYPE.names:
                        events[name] = node[name][start:stop]
                    yield events
        except (OSError, ValueError) as error:
            raise FileFormatError(path, f"cannot read events from HDF5: {error}") from None


def spike_layout(path: Path, sensor_size: tuple[int, int] | None) -> SpikeDatLayout:
    """Layout of a spike ``.dat``: sidecar values, with ``sensor_size`` overriding the sidecar's size."""
    layout = read_spike_sidecar(path) or SpikeDatLayout()
    if sensor_size is not None:
        layout = SpikeDatLayout(tuple(int(v) for v in sensor_size), layout.frame_us, layout.t0_us)
    return layout


def _spike_dat_chunks(path: Path, sensor_size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    layout = spike_layout(path, sensor_size)
    width, height = layout.sensor_size
    frames_per_chunk = max(1, SPIKE_CHUNK_PIXELS // (width * height))
    first_frame = 0
    for frames in iter_spike_dat(path, frames_per_chunk, layout.sensor_size):
        t0_us = layout.t0_us + first_frame * layout.frame_us
        yield spike_frames_to_events(frames, frame_us=layout.frame_us, t0_us=t0_us)
        first_frame += len(frames)


def iter_event_chunks(
    path: str | Path, *, sensor_size: tuple[int, int] | None = None, fmt: str | None = None
) -> Iterator[np.ndarray]:
    """Decode a file chunk by chunk (at most a few hundred thousand events each), in file order.

    Args:
        path: the event file.
        sensor_size: ``(W, H)``; only used by spike ``.dat`` files, to cut the bits into frames.
        fmt: the format when already known (see :func:`detect_format`).

    Yields:
        ``EVENT_DTYPE`` arrays; concatenated they are the whole recording.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt in ("evt2", "evt3", "dat"):
        yield from _prophesee_chunks(path, fmt)
    elif fmt == "aedat4":
        yield from _aedat4_chunks(path)
    elif fmt == "spike-dat":
        yield from _spike_dat_chunks(path, sensor_size)
    elif fmt == "npy":
        yield from _npy_chunks(path)
    elif fmt == "h5":
        yield from _h5_chunks(path)
    else:
        raise UserFacingError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _gaps_checked(chunks: Iterable[np.ndarray], max_gap_us: int) -> Iterator[np.ndarray]:
    """``chunks`` as they are; UserFacingError at the first jump in time (forwards, from one event to
    the next) larger than ``max_gap_us``."""
    last: int | None = None
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        times = chunk["t"] if last is None else np.concatenate([[last], chunk["t"]])
        jumps = np.diff(times)
        if len(jumps) and int(jumps.max()) > max_gap_us:
            at = int(np.argmax(jumps))
            raise UserFacingError(
                f"time stamps jump by {int(jumps[at])} us (from {int(times[at])} to {int(times[at + 1])}), "
                f"more than {max_gap_us} us: corrupt time stamps?"
            )
        last = int(chunk["t"][-1])
        yield chunk


def iter_timed_windows(
    chunks: Iterable[np.ndarray], window_us: int, max_gap_us: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Regroup time-ordered event chunks into consecutive windows of ``window_us`` microseconds.

    Yields ``(start_us, events)``: window ``k`` starts at ``start_us = t0 + k * window_us`` and holds
    the events with ``start_us <= t < start_us + window_us``, where ``t0`` is the time stamp of the first
    event. Windows without events are yielded as empty arrays, so the windows tile time without gaps.
    A chunk whose time stamps go backwards is sorted (stably) first. Memory: one window plus one chunk.
    With ``max_gap_us``, a jump in time larger than that between two events is a UserFacingError
    instead of ``gap / window_us`` empty windows (a time stamp of 2**62 would give them for ever).
    """
    if window_us <= 0:
        raise UserFacingError(f"window must be a positive number of microseconds, got {window_us}")
    if max_gap_us is not None:
        chunks = _gaps_checked(chunks, max_gap_us)
    pending: list[np.ndarray] = []
    window_start: int | None = None
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if np.any(np.diff(chunk["t"]) < 0):
            chunk = chunk[np.argsort(chunk["t"], kind="stable")]
        if window_start is None:
            window_start = int(chunk["t"][0])
        while len(chunk):
            window_end = window_start + window_us
            cut = int(np.searchsorted(chunk["t"], window_end, side="left"))
            if cut == len(chunk):
                pending.append(chunk)
                break
            pending.append(chunk[:cut])
            yield window_start, np.concatenate(pending)
            pending = []
            chunk = chunk[cut:]
            window_start = window_end
    if pending:
        yield window_start, np.concatenate(pending)


def split_time_windows(chunks: Iterable[np.ndarray], window_us: int) -> Iterator[np.ndarray]:
    """The events of :func:`iter_timed_windows` without the start times."""
    return (events for _, events in iter_timed_windows(chunks, window_us))


def iter_event_windows(
    path: str | Path, window_us: int, *, sensor_size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Stream a file as consecutive time windows of ``window_us`` microseconds (see
    :func:`split_time_windows`), decoding it chunk by chunk: memory is bounded by one window."""
    return split_time_windows(iter_event_chunks(path, sensor_size=sensor_size), window_us)


def recording_info(
    path: str | Path,
    *,
    sensor_size: tuple[int, int] | None = None,
    on_chunk: Callable[[np.ndarray], None] | None = None,
) -> RecordingInfo:
    """Count events and find the time span and extent of a recording in one streamed pass.

    Width and height come from ``sensor_size`` when given, else from the file (header, attributes or
    sidecar), else ``(x_max + 1, y_max + 1)``. ``on_chunk`` sees every decoded chunk (for progress).
    """
    path = Path(path)
    fmt = detect_format(path)
    count = outside = largest_gap = 0
    t_first = t_last = x_max = y_max = None
    previous_t: int | None = None
    stated = sensor_size or header_sensor_size(path, fmt)
    for chunk in iter_event_chunks(path, sensor_size=sensor_size, fmt=fmt):
        if on_chunk is not None:
            on_chunk(chunk)
        if len(chunk) == 0:
            continue
        count += len(chunk)
        times = chunk["t"] if previous_t is None else np.concatenate([[previous_t], chunk["t"]])
        if len(times) > 1:
            largest_gap = max(largest_gap, int(np.diff(times).max()))
        previous_t = int(chunk["t"][-1])
        t_first = int(chunk["t"].min()) if t_first is None else min(t_first, int(chunk["t"].min()))
        t_last = int(chunk["t"].max()) if t_last is None else max(t_last, int(chunk["t"].max()))
        x_max = int(chunk["x"].max()) if x_max is None else max(x_max, int(chunk["x"].max()))
        y_max = int(chunk["y"].max()) if y_max is None else max(y_max, int(chunk["y"].max()))
        if stated is not None:
            outside += int(np.count_nonzero(
                (chunk["x"] < 0) | (chunk["x"] >= stated[0]) | (chunk["y"] < 0) | (chunk["y"] >= stated[1])
            ))  # fmt: skip
    size = stated or _fitting_sensor_size(x_max, y_max)
    frames = frame_us = None
    if fmt == "spike-dat":
        layout = spike_layout(path, sensor_size)
        frames = spike_dat_frame_count(path, layout.sensor_size)
        frame_us = layout.frame_us
    return RecordingInfo(
        path=str(path),
        format=fmt,
        events=count,
        t_first_us=t_first,
        t_last_us=t_last,
        width=int(size[0]),
        height=int(size[1]),
        x_max=x_max,
        y_max=y_max,
        frames=frames,
        frame_us=frame_us,
        outside_sensor=outside,
        largest_gap_us=largest_gap,
    )


def read_events(path: str | Path, *, sensor_size: tuple[int, int] | None = None) -> EventRecording:
    """Read a whole event file (any of :data:`FORMATS`; spike ``.dat`` frames become ON events).

    Args:
        path: the file.
        sensor_size: ``(W, H)``; overrides what the file says (and cuts spike ``.dat`` bits into frames).

    Returns:
        :class:`EventRecording` with ``EVENT_DTYPE`` events in file order.
    """
    path = Path(path)
    fmt = detect_format(path)
    chunks = list(iter_event_chunks(path, sensor_size=sensor_size, fmt=fmt))
    events = np.concatenate(chunks) if chunks else empty_events()
    size = sensor_size or header_sensor_size(path, fmt)
    if size is None:
        size = _fitting_sensor_size(
            int(events["x"].max()) if len(events) else None, int(events["y"].max()) if len(events) else None
        )
    return EventRecording(events=events, sensor_size=(int(size[0]), int(size[1])), format=fmt)


# --------------------------------------------------------------------------------------------------
# writers


def _npy_header(dtype: np.dtype, length: int, header_bytes: int) -> bytes:
    """A version-1.0 ``.npy`` header for a 1-D array of ``length`` records, padded to ``header_bytes``
    so that it can be rewritten in place with the final length."""
    description = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (length,)}
    text = repr(description)
    body_length = header_bytes - len(_NPY_MAGIC) - 4
    if len(text) + 1 > body_length:
        raise ValueError(f"dtype {dtype} needs a header longer than {header_bytes} bytes")
    body = (text.ljust(body_length - 1) + "\n").encode("latin1")
    return _NPY_MAGIC + b"\x01\x00" + struct.pack("<H", body_length) + body


class AppendableArrayFile:
    """A 1-D structured array on disk that grows as records arrive: ``.npy`` or an HDF5 dataset.

    ``.npy``: the header is written with room for any length and rewritten on :meth:`close`, records
    are appended as raw bytes (a crash leaves the records up to the last :meth:`flush`). HDF5: dataset
    ``dataset`` of ``dtype``, chunked and resizable, in the file at ``path`` (opened in append mode), or
    in the already open ``h5_file`` (which then stays open on :meth:`close`) so that several datasets
    can grow in one file.
    """

    def __init__(self, path: str | Path, dtype: np.dtype, *, dataset: str = "events", h5_file=None) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.dataset = dataset
        self.length = 0
        self._h5 = None
        self._owns_h5 = h5_file is None
        self._npy = None
        suffix = self.path.suffix.lower()
        if suffix == ".npy":
            self._header_bytes = 64 * ((len(_npy_header(self.dtype, 10**18, 4096)) + 63) // 64)
            self._npy = self.path.open("wb")
            self._npy.write(_npy_header(self.dtype, 0, self._header_bytes))
        elif suffix in (".h5", ".hdf5"):
            import h5py

            self._h5 = h5py.File(self.path, "a") if h5_file is None else h5_file
            if dataset in self._h5:
                del self._h5[dataset]
            self._h5.create_dataset(dataset, shape=(0,), maxshape=(None,), dtype=self.dtype, chunks=(65536,))
        else:
            raise UserFacingError(
                f"{self.path}: cannot write {suffix or 'extensionless'} files (.npy or .h5)"
            )

    def append(self, records: np.ndarray) -> None:
        """Append ``records`` (cast to this file's dtype by field name when the dtypes differ)."""
        if records.dtype != self.dtype:
            converted = np.empty(len(records), dtype=self.dtype)
            for name in self.dtype.names:
                converted[name] = records[name]
            records = converted
        if len(records) == 0:
            return
        if self._npy is not None:
            self._npy.write(np.ascontiguousarray(records).tobytes())
        else:
            data = self._h5[self.dataset]
            data.resize((self.length + len(records),))
            data[self.length :] = records
        self.length += len(records)

    def set_attributes(self, **attributes: object) -> None:
        """HDF5: set file attributes. ``.npy``: nothing (use a sidecar)."""
        if self._h5 is not None:
            for key, value in attributes.items():
                self._h5.attrs[key] = value

    def flush(self) -> None:
        """Push what was appended to the operating system; an ``.npy`` header then states the records
        written so far, so a process killed later leaves a readable file up to this point."""
        if self._npy is not None:
            self._npy.seek(0)
            self._npy.write(_npy_header(self.dtype, self.length, self._header_bytes))
            self._npy.seek(0, 2)
            self._npy.flush()
        elif self._h5 is not None:
            self._h5.flush()

    def close(self) -> None:
        """Write the final length into the ``.npy`` header / close the HDF5 file. Safe to call twice."""
        if self._npy is not None:
            self._npy.seek(0)
            self._npy.write(_npy_header(self.dtype, self.length, self._header_bytes))
            self._npy.close()
            self._npy = None
        if self._h5 is not None:
            if self._owns_h5:
                self._h5.close()
            self._h5 = None

    def __enter__(self) -> AppendableArrayFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through ``<path>.partial`` and a rename, so that a process killed while
    writing leaves the old file or none, never an empty or half-written one; returns ``path``."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
    return path


def write_sensor_sidecar(path: str | Path, sensor_size: tuple[int, int]) -> Path:
    """Write ``<file>.json`` = ``{"width": W, "height": H}`` beside an ``.npy`` (atomically); returns its
    path."""
    meta = {"width": int(sensor_size[0]), "height": int(sensor_size[1])}
    return write_text_atomically(_sidecar_path(Path(path)), json.dumps(meta) + "\n")


class EventFileWriter:
    """Appends ``EVENT_DTYPE`` events to ``.npy`` (+ ``<file>.json`` sensor sidecar) or ``.h5`` (dataset
    ``events``, attributes ``width``, ``height``). The sensor size may be set late, before :meth:`close`."""

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None) -> None:
        self.path = Path(path)
        self.sensor_size = sensor_size
        self._file = AppendableArrayFile(self.path, EVENT_DTYPE, dataset="events")

    @property
    def count(self) -> int:
        """Events written so far."""
        return self._file.length

    def append(self, events: np.ndarray) -> None:
        """Append events (any structured array with fields x, y, t, p)."""
        self._file.append(as_events(events))

    def flush(self) -> None:
        """Push what was appended to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Finish the file and store the sensor size."""
        if self.sensor_size is not None:
            width, height = (int(v) for v in self.sensor_size)
            self._file.set_attributes(width=width, height=height)
            if self.path.suffix.lower() == ".npy":
                write_sensor_sidecar(self.path, (width, height))
        self._file.close()

    def __enter__(self) -> EventFileWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_events(path: str | Path, events: np.ndarray, sensor_size: tuple[int, int]) -> None:
    """Write events to ``.npy`` (sensor size in the ``<file>.json`` sidecar) or ``.h5`` (dataset
    ``events`` of ``EVENT_DTYPE``, chunked and appendable, file attributes ``width``, ``height``)."""
    with EventFileWriter(path, sensor_size) as writer:
        writer.append(events)


# --------------------------------------------------------------------------------------------------
# PKU spike camera


def _frame_bytes(sensor_size: tuple[int, int]) -> int:
    width, height = sensor_size
    if width <= 0 or height <= 0 or (width * height) % 8:
        raise UserFacingError(f"spike frames need W * H > 0 and a multiple of 8, got {width} x {height}")
    return width * height // 8


def spike_dat_frame_count(path: str | Path, sensor_size: tuple[int, int] = SPIKE_CAMERA_SIZE) -> int:
    """Number of frames in a spike ``.dat``; FileFormatError when the size is not a whole number of frames."""
    path = Path(path)
    size = _check_readable(path)
    frame_bytes = _frame_bytes(sensor_size)
    if size % frame_bytes:
        width, height = sensor_size
        raise FileFormatError(
            path,
            f"truncated or not a {width}x{height} spike-camera file: {size} bytes is not a whole number "
            f"of {frame_bytes}-byte frames",
        )
    return size // frame_bytes


def decode_spike_frames(data: bytes | np.ndarray, sensor_size: tuple[int, int]) -> np.ndarray:
    """Unpack PKU spike frames: LSB-first bits, rows bottom-up -> bool ``[N, H, W]`` with row 0 on top."""
    width, height = sensor_size
    packed = np.frombuffer(data, dtype=np.uint8).reshape(-1, _frame_bytes(sensor_size))
    if width % 8 == 0:
        rows_top_down = packed.reshape(-1, height, width // 8)[:, ::-1, :]
        return np.unpackbits(rows_top_down, axis=-1, bitorder="little").view(bool)
    frames = np.unpackbits(packed, axis=1, bitorder="little").view(bool).reshape(-1, height, width)
    return np.ascontiguousarray(frames[:, ::-1, :])


def encode_spike_frames(frames: np.ndarray) -> bytes:
    """Pack bool ``[N, H, W]`` spike frames (row 0 on top) into PKU ``.dat`` bytes (inverse of
    :func:`decode_spike_frames`)."""
    if frames.ndim != 3:
        raise ValueError(f"expected spike frames [N, H, W], got shape {frames.shape}")
    count, height, width = frames.shape
    _frame_bytes((width, height))
    bits = frames if frames.dtype == bool else frames != 0
    if width % 8 == 0:
        return np.packbits(bits, axis=-1, bitorder="little")[:, ::-1, :].tobytes()
    bottom_up = np.ascontiguousarray(bits[:, ::-1, :]).reshape(count, height * width)
    return np.packbits(bottom_up, axis=1, bitorder="little").tobytes()


def iter_spike_dat(
    path: str | Path, frames_per_chunk: int, sensor_size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Stream a spike ``.dat`` as bool ``[n, H, W]`` chunks of at most ``frames_per_chunk`` frames.

    ``sensor_size`` ``(W, H)`` defaults to the ``<stem>.json`` sidecar, else 400 x 250.
    """
    path = Path(path)
    size = sensor_size or spike_layout(path, None).sensor_size
    spike_dat_frame_count(path, size)
    chunk_bytes = max(1, int(frames_per_chunk)) * _frame_bytes(size)
    with path.open("rb") as file:
        while data := file.read(chunk_bytes):
            yield decode_spike_frames(data, size)


def read_spike_dat(path: str | Path, sensor_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a whole spike ``.dat``: bool ``[N, H, W]``, row 0 on top. Size: argument, sidecar, 400 x 250."""
    path = Path(path)
    size = sensor_size or spike_layout(path, None).sensor_size
    spike_dat_frame_count(path, size)
    return decode_spike_frames(path.read_bytes(), size)


def write_spike_dat(path: str | Path, frames: np.ndarray) -> None:
    """Write bool ``[N, H, W]`` spike frames (row 0 on top) as a PKU ``.dat`` (exact round trip with
    :func:`read_spike_dat` given the same ``(W, H)``)."""
    Path(path).write_bytes(encode_spike_frames(frames))


def spike_frames_to_events(
    frames: np.ndarray, frame_us: float = SPIKE_FRAME_US, t0_us: float = 0
) -> np.ndarray:
    """One ON event per spike: a spike at pixel ``(y, x)`` of frame ``n`` becomes the event
    ``(x, y, t = round(t0_us + n * frame_us), p = True)``; events are ordered by frame, row, column.

    Args:
        frames: bool ``[N, H, W]``, row 0 on top.
        frame_us: frame duration, microseconds.
        t0_us: time stamp of frame 0, microseconds.
    """
    frame_index, y, x = np.nonzero(frames)
    events = np.empty(len(x), dtype=EVENT_DTYPE)
    events["x"] = x
    events["y"] = y
    events["t"] = np.round(t0_us + frame_index * float(frame_us)).astype(np.int64)
    events["p"] = True
    return events
