"""Publish a live iniVation camera or a DV network event stream through dv-processing.

Sources: a camera found by ``dv_processing.io.camera.discover()`` (the first one, or the one whose name
is given), or a DV network stream (``dv_processing.io.NetworkReader``: the TCP output of DV software or
of a ``NetworkWriter``) at ``HOST:PORT``. Every event batch the source delivers goes out as one
``events/<stream>`` message, unchanged: ``x``, ``y``, ``t = timestamp`` (microseconds, the camera's
clock), ``p = polarity``. A message spans ``[t0_us, t1_us)`` with ``t0_us`` the end of the previous
message (the first batch's first time stamp for the first) and ``t1_us`` one past its last event. When
a network stream ends (the sender closed it), end-of-stream is sent and the driver returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from streamdet.errors import UserFacingError
from streamdet.events import EVENT_DTYPE

from .publishing import Outgoing, PublishTarget, publish_paced
from .synthetic import DriveStats

if TYPE_CHECKING:
    from streamdet.bus import CurveServerKeys


@dataclass(frozen=True)
class DVDriveConfig:
    """Where the DV driver reads events and where it publishes them.

    Attributes:
        endpoint: ZeroMQ endpoint to bind.
        address: ``HOST:PORT`` of a DV network event stream; None reads a camera.
        camera: serial number of the camera to open; ``""`` = the first one found.
        stream: stream name; topic ``events/NAME``.
        seconds: stop after this many seconds of wall time; None = until the source ends.
        poll_s: sleep between polls when no batch is waiting, seconds.
        wait_subscribers: wait for that many subscribers before the first message.
        wait_timeout_s: how long to wait for them, seconds.
        lossless: block instead of dropping when a subscriber lags.
        curve: CURVE server keys of the bound endpoint (`streamdet.bus.CurveServerKeys`), or None.
    """

    endpoint: str
    address: str | None = None
    camera: str = ""
    stream: str = "dv"
    seconds: float | None = None
    poll_s: float = 0.001
    wait_subscribers: int = 0
    wait_timeout_s: float = 10.0
    lossless: bool = False
    curve: CurveServerKeys | None = None


def parse_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; UserFacingError when it is not that."""
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserFacingError(f"DV stream address must look like 127.0.0.1:7777, got {address!r}")
    return host, int(port)


def dv_to_events(batch: np.ndarray) -> np.ndarray:
    """A dv-processing event array (fields ``timestamp``, ``x``, ``y``, ``polarity``) as ``EVENT_DTYPE``."""
    events = np.empty(len(batch), dtype=EVENT_DTYPE)
    events["x"] = batch["x"]
    events["y"] = batch["y"]
    events["t"] = batch["timestamp"]
    events["p"] = batch["polarity"] != 0
    return events


def open_dv_source(config: DVDriveConfig):
    """An opened dv-processing reader (``getNextEventBatch``, ``isRunning``, ``getEventResolution``).

    UserFacingError when the network stream cannot be reached, carries no events, or no camera is found.
    """
    import dv_processing as dv

    if config.address is not None:
        host, port = parse_address(config.address)
        try:
            reader = dv.io.NetworkReader(host, port)
        except RuntimeError as error:
            reason = str(error).split(" [", 1)[0]
            raise UserFacingError(f"cannot read the DV stream at {config.address}: {reason}") from None
        if not reader.isEventStreamAvailable():
            raise UserFacingError(f"the DV stream at {config.address} carries no events")
        return reader
    found = list(dv.io.camera.discover())
    if not found:
        raise UserFacingError("no iniVation camera found (is it plugged in, with USB access rights?)")
    serials = [str(device.serialNumber) for device in found]
    if config.camera and config.camera not in serials:
        raise UserFacingError(f"camera {config.camera!r} not found; found: {', '.join(serials)}")
    chosen = found[serials.index(config.camera)] if config.camera else found[0]
    try:
        camera = dv.io.camera.open(chosen)
    except (RuntimeError, IndexError) as error:
        raise UserFacingError(f"cannot open camera {chosen.serialNumber!r}: {error}") from None
    if not camera.isEventStreamAvailable():
        raise UserFacingError(f"camera {camera.getCameraName()!r} gives no events")
    return camera


def drive_dv(config: DVDriveConfig, *, progress: bool = False) -> DriveStats:
    """Publish the events of a DV camera or network stream on ``config.endpoint`` (binds it).

    Runs until the source ends, ``config.seconds`` have passed, or Ctrl-C (KeyboardInterrupt: it sends
    end-of-stream and returns what was sent, ``interrupted`` set).
    """
    reader = open_dv_source(config)

    from streamdet import wire

    resolution = reader.getEventResolution()
    sensor_size = (int(resolution[0]), int(resolution[1]))

    def outgoing() -> Iterator[Outgoing]:
        started = time.monotonic()
        t0_us: int | None = None
        while config.seconds is None or time.monotonic() - started < config.seconds:
            batch = reader.getNextEventBatch()
            if batch is None:
                if not reader.isRunning():
                    return
                time.sleep(config.poll_s)
                continue
            batch_events = dv_to_events(batch.numpy())
            if len(batch_events) == 0:
                continue
            t0_us = int(batch_events["t"][0]) if t0_us is None else t0_us
            t1_us = int(batch_events["t"][-1]) + 1
            message = wire.events_message(config.stream, batch_events, sensor_size, t0_us=t0_us, t1_us=t1_us)
            yield Outgoing(t1_us, (message,), t1_us, events=len(batch_events), progress=len(batch_events))
            t0_us = t1_us

    # a live source: each batch goes out as it comes (no pace)
    target = PublishTarget.of(config, None, "drive dv", unit=" events")
    tally = publish_paced(
        target,
        outgoing(),
        lambda end_us: [wire.eos_message(config.stream, "events", sensor_size, end_us)],
        progress=progress,
    )
    return DriveStats(tally.packets, tally.events, 0, 0, tally.wall_s, tally.interrupted)
