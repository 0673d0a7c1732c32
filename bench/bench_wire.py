"""Events per second through ``streamdet.bus`` (Publisher -> Subscriber, with ``wire.pack``/``unpack``
and full validation) against raw pyzmq XPUB/SUB sending the same bytes, in one process.

A sender thread publishes ``--messages`` event packets of each size; the main thread receives them.
Both sides use lossless delivery (``ZMQ_XPUB_NODROP``) and the same high-water mark, so the sender is
paced by the receiver and nothing is dropped. The rate is counted from the first to the last message
received. ``unpack Mev/s`` is ``wire.unpack`` alone (header checks and event bounds) on the same
bytes, without sockets. Each (transport, size) pair runs raw and ours alternately ``--repeats``
times; the table shows the best run of each (the machine is shared, so slower runs mostly measure
other processes) and the JSON keeps every run.

    .venv/bin/python bench/bench_wire.py --json bench/results/wire.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import zmq

from streamdet import bus, wire
from streamdet.events import EVENT_DTYPE

SENSOR_SIZE = (1280, 720)


def random_events(count: int, seed: int = 0) -> np.ndarray:
    """``count`` events uniformly over the sensor, sorted times over one second (microseconds)."""
    rng = np.random.default_rng(seed)
    events = np.empty(count, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, SENSOR_SIZE[0], count)
    events["y"] = rng.integers(0, SENSOR_SIZE[1], count)
    events["t"] = np.sort(rng.integers(0, 1_000_000, count))
    events["p"] = rng.integers(0, 2, count).astype(bool)
    return events


def endpoint_for(transport: str) -> str:
    if transport == "ipc":
        return f"ipc://{tempfile.gettempdir()}/streamdet-bench-{uuid.uuid4().hex[:10]}"
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def rate(first_at: float, last_at: float, messages: int, events_per_message: int) -> float:
    """Events per second between the first and the last of ``messages`` received messages."""
    return (messages - 1) * events_per_message / (last_at - first_at)


def run_raw(transport: str, frames: list, messages: int, hwm: int) -> float:
    """Raw pyzmq: XPUB (NODROP) -> SUB, ``send_multipart(copy=False)`` / ``recv_multipart(copy=False)``,
    each socket with a context (an I/O thread) of its own, like ``bus.Publisher`` and ``bus.Subscriber``."""
    endpoint = endpoint_for(transport)
    publisher_context, subscriber_context = zmq.Context(), zmq.Context()
    publisher = publisher_context.socket(zmq.XPUB)
    publisher.setsockopt(zmq.SNDHWM, hwm)
    publisher.setsockopt(zmq.XPUB_NODROP, 1)
    publisher.bind(endpoint)
    subscriber = subscriber_context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.RCVHWM, hwm)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.connect(endpoint)
    publisher.recv()

    def send_all() -> None:
        for _ in range(messages):
            publisher.send_multipart(frames, copy=False)

    sender = threading.Thread(target=send_all)
    sender.start()
    subscriber.recv_multipart(copy=False)
    first_at = time.perf_counter()
    for _ in range(messages - 1):
        subscriber.recv_multipart(copy=False)
    last_at = time.perf_counter()
    sender.join()
    publisher.close(linger=0)
    subscriber.close(linger=0)
    publisher_context.term()
    subscriber_context.term()
    count = len(frames[2]) // EVENT_DTYPE.itemsize
    return rate(first_at, last_at, messages, count)


def run_ours(transport: str, message: wire.Message, messages: int, hwm: int) -> tuple[float, dict]:
    """``bus.Publisher(lossless=True)`` -> ``bus.Subscriber``: pack, send, receive, unpack, validate."""
    endpoint = endpoint_for(transport)
    publisher = bus.Publisher(endpoint, hwm=hwm, lossless=True, linger_ms=0)
    subscriber = bus.Subscriber(endpoint, ["events/bench"], hwm=hwm)
    publisher.wait_for_subscribers(1, timeout_s=10)

    def send_all() -> None:
        for _ in range(messages):
            publisher.send(message)

    sender = threading.Thread(target=send_all)
    sender.start()
    subscriber.receive()
    first_at = time.perf_counter()
    for _ in range(messages - 1):
        subscriber.receive()
    last_at = time.perf_counter()
    sender.join()
    stats = subscriber.stats.as_dict()
    publisher.close()
    subscriber.close()
    return rate(first_at, last_at, messages, message.count), stats


def unpack_rate(frames: list, count: int, repeats: int) -> float:
    """Events per second of ``wire.unpack`` alone (validation included) on received-style frames."""
    frames = [bytes(frame) for frame in frames]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(10):
            wire.unpack(frames)
        best = min(best, (time.perf_counter() - started) / 10)
    return count / best


def bounds_check_ms(count: int, repeats: int) -> dict[str, float]:
    """Milliseconds per packet of the event bounds check: the two pair views of ``wire._check_events``
    against one strided maximum per field (``wire._check_event_fields``), cache-warm."""
    events = random_events(count)
    payload = memoryview(events.tobytes())

    def best_ms(check) -> float:
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(10):
                check()
            runs.append((time.perf_counter() - started) / 10 * 1e3)
        return min(runs)

    return {
        "pair_views_ms": best_ms(lambda: wire._check_events(payload, events, *SENSOR_SIZE)),
        "per_field_ms": best_ms(lambda: wire._check_event_fields(events, *SENSOR_SIZE)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--messages", type=int, default=0, help="messages per run (0: 50 M events' worth)")
    parser.add_argument("--transports", nargs="+", default=["ipc", "tcp"], choices=["ipc", "tcp"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hwm", type=int, default=8, help="high-water mark, messages (both sides)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    rows = []
    print(
        f"{'transport':>9} {'events/msg':>10} {'raw Mev/s':>10} {'ours Mev/s':>10} {'ratio':>6} "
        f"{'unpack Mev/s':>12}"
    )
    for transport in args.transports:
        for count in args.events:
            messages = args.messages or max(10, 50_000_000 // count)
            message = wire.events_message("bench", random_events(count), SENSOR_SIZE).with_seq(0)
            frames = [bytes(frame) for frame in wire.pack(message)[:2]] + [message.payload.view(np.uint8)]
            raw_rates, our_rates = [], []
            for _ in range(args.repeats):
                raw_rates.append(run_raw(transport, frames, messages, args.hwm))
                our_rate, stats = run_ours(transport, message, messages, args.hwm)
                our_rates.append(our_rate)
                if stats["received"] != messages or stats["rejected"] or stats["dropped"]:
                    raise SystemExit(f"lost or rejected messages: {stats}")
            raw, ours = max(raw_rates), max(our_rates)
            unpack_only = unpack_rate(frames, count, args.repeats)
            rows.append(
                {
                    "transport": transport,
                    "events_per_message": count,
                    "messages": messages,
                    "raw_events_per_s": raw,
                    "ours_events_per_s": ours,
                    "ratio": ours / raw,
                    "median_ratio": statistics.median(our_rates) / statistics.median(raw_rates),
                    "unpack_events_per_s": unpack_only,
                    "raw_runs": raw_rates,
                    "ours_runs": our_rates,
                }
            )
            print(
                f"{transport:>9} {count:>10} {raw / 1e6:>10.1f} {ours / 1e6:>10.1f} {ours / raw:>6.2f} "
                f"{unpack_only / 1e6:>12.1f}"
            )
    bounds = {count: bounds_check_ms(count, args.repeats) for count in args.events}
    for count, timing in bounds.items():
        print(
            f"event bounds check, {count} events: pair views {timing['pair_views_ms']:.3f} ms, "
            f"per-field maxima {timing['per_field_ms']:.3f} ms"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"hwm": args.hwm, "repeats": args.repeats, "rows": rows, "bounds_check": bounds}
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
