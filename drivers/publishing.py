"""The paced publish loop every driver shares: a driver only says what to send and when.

A driver turns its source (a file, a synthetic scene, a video, a live camera) into :class:`Outgoing`
items: the wire messages to send once stream time ``due_us`` has come. :func:`publish_paced` binds the
endpoint, waits for subscribers, sends each item at ``start + (due_us - start_us) / speed`` of the wall
clock (at once with ``speed`` None: live sources, ``--speed max``), shows progress, and on the end of the
source or Ctrl-C sends the driver's end-of-stream messages and closes the socket.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streamdet.errors import UserFacingError


def packet_due_s(t1_us: int, start_us: int, speed: float | None) -> float:
    """Seconds after the clock started at which the item due at stream time ``t1_us`` goes out:
    ``(t1_us - start_us) / (1e6 * speed)``; 0 when ``speed`` is ``None`` (as fast as possible)."""
    if speed is None:
        return 0.0
    if speed <= 0:
        raise UserFacingError(f"speed must be positive, got {speed}")
    return (t1_us - start_us) / (1e6 * speed)


@dataclass(frozen=True)
class Outgoing:
    """What a driver sends in one turn.

    Attributes:
        due_us: stream time at which the messages go out (microseconds).
        messages: wire messages, sent in order.
        end_us: stream time covered once they are sent (the end-of-stream's time stamp).
        packets, events, frames, truths: what they carry, for the tally.
        progress: units of the progress bar this turn advances.
    """

    due_us: int
    messages: tuple[Any, ...]
    end_us: int
    packets: int = 1
    events: int = 0
    frames: int = 0
    truths: int = 0
    progress: int = 1


@dataclass(frozen=True)
class PublishTarget:
    """Where and how fast a driver publishes.

    Attributes:
        endpoint: ZeroMQ endpoint to bind.
        speed: multiple of real time, or None (as fast as the source gives).
        lossless: block instead of dropping when a subscriber lags.
        curve: CURVE server keys (``streamdet.bus``), or None.
        wait_subscribers: subscribers to wait for before the first message.
        wait_timeout_s: how long to wait for them.
        label: the progress bar's description; ``unit`` its unit.
    """

    endpoint: str
    speed: float | None = 1.0
    lossless: bool = False
    curve: Any = None
    wait_subscribers: int = 0
    wait_timeout_s: float = 10.0
    label: str = "drive"
    unit: str = " packets"

    @classmethod
    def of(cls, config: Any, speed: float | None, label: str, unit: str = " packets") -> PublishTarget:
        """The target of a driver's config (its ``endpoint``, ``lossless``, ``curve``,
        ``wait_subscribers`` and ``wait_timeout_s``) at ``speed``."""
        return cls(
            config.endpoint,
            speed,
            config.lossless,
            config.curve,
            config.wait_subscribers,
            config.wait_timeout_s,
            label,
            unit,
        )


@dataclass
class PublishTally:
    """What went out: packets, events, spike frames, truth messages, the wall time (s) from the clock
    start to the last item sent, the stream time covered, and whether Ctrl-C stopped it."""

    packets: int = 0
    events: int = 0
    frames: int = 0
    truths: int = 0
    wall_s: float = 0.0
    end_us: int = 0
    interrupted: bool = False


def publish_paced(
    target: PublishTarget,
    outgoing: Iterable[Outgoing],
    end_of_stream: Callable[[int], list[Any]],
    start_us: int | None = None,
    end_us: int = 0,
    progress: bool = False,
) -> PublishTally:
    """Send ``outgoing`` on ``target`` paced to the wall clock (module docstring), then the messages
    ``end_of_stream(end_us)`` gives for the stream time reached; Ctrl-C stops the loop, still sends
    them, and is reported in ``interrupted``.

    Args:
        target: where and how fast.
        outgoing: the driver's items, in stream-time order (a generator is advanced only when the
            previous item has gone out).
        end_of_stream: the end-of-stream messages for the stream time reached.
        start_us: stream time at the clock start (default: the first item's ``due_us``).
        end_us: stream time reached if nothing is sent.
        progress: show a progress bar on stderr.
    """
    from tqdm import tqdm

    from streamdet import bus

    publisher = bus.Publisher(target.endpoint, lossless=target.lossless, curve=target.curve)
    tally = PublishTally(end_us=end_us)
    bar = tqdm(desc=target.label, unit=target.unit, file=sys.stderr, disable=None if progress else True)
    try:
        if target.wait_subscribers > 0 and not publisher.wait_for_subscribers(
            target.wait_subscribers, timeout_s=target.wait_timeout_s
        ):
            raise UserFacingError(
                f"{target.endpoint}: fewer than {target.wait_subscribers} subscriber(s) after "
                f"{target.wait_timeout_s} s"
            )
        clock_start = time.monotonic()
        for item in outgoing:
            start_us = item.due_us if start_us is None else start_us
            delay = packet_due_s(item.due_us, start_us, target.speed) - (time.monotonic() - clock_start)
            if delay > 0:
                time.sleep(delay)
            for message in item.messages:
                publisher.send(message)
            tally.packets += item.packets
            tally.events += item.events
            tally.frames += item.frames
            tally.truths += item.truths
            tally.end_us = item.end_us
            tally.wall_s = time.monotonic() - clock_start
            bar.update(item.progress)
    except KeyboardInterrupt:
        tally.interrupted = True
    finally:
        bar.close()
        for message in end_of_stream(tally.end_us):
            publisher.send(message)
        publisher.close()
    return tally
