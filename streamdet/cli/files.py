"""``streamdet info``, ``streamdet replay`` and ``streamdet record``: event files and the wire.

- ``info FILE [--json]``: format, event count, time span and sensor size of a recording (one streamed pass).
- ``replay FILE --endpoint EP``: publish a recording at its own pace, a multiple of it, or as fast as
  possible, on ``events/<stream>`` (or ``spikes/<stream>`` for spike-camera files), then end-of-stream.
- ``record EP OUT``: write what arrives to ``.npy`` / ``.h5`` until end-of-stream or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from streamdet.cli.options import parse_size
from streamdet.errors import UserFacingError


def parse_speed(text: str) -> float | None:
    """``"max"`` -> ``None`` (as fast as possible); a positive number -> that factor of real time."""
    if text.lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise UserFacingError(f"--speed must be a positive number or 'max', got {text!r}") from None
    if not speed > 0:
        raise UserFacingError(f"--speed must be a positive number or 'max', got {text!r}")
    return speed


def run_info(args: argparse.Namespace) -> int:
    """Print the summary of each recording, as text or as one JSON object per file (one per line)."""
    from tqdm import tqdm

    from streamdet.drivers.replay import MAX_GAP_US
    from streamdet.formats import recording_info

    sensor_size = args.sensor_size
    for index, path in enumerate(args.file):
        with tqdm(
            desc=f"reading {path}",
            unit=" events",
            unit_scale=True,
            file=sys.stderr,
            disable=None,
            leave=False,
        ) as bar:
            info = recording_info(
                path, sensor_size=sensor_size, on_chunk=lambda chunk: bar.update(len(chunk))
            )
        if info.outside_sensor:
            print(
                f"streamdet info: warning: {path}: {info.outside_sensor} events lie outside the "
                f"{info.width}x{info.height} sensor (x up to {info.x_max}, y up to {info.y_max}): corrupt "
                "data or a wrong sensor size",
                file=sys.stderr,
            )
        if info.largest_gap_us > MAX_GAP_US:
            print(
                f"streamdet info: warning: {path}: time stamps jump by {info.largest_gap_us} us between two "
                f"events (replay refuses jumps over {MAX_GAP_US} us): corrupt time stamps?",
                file=sys.stderr,
            )
        report = asdict(info)
        report["duration_us"] = None if info.t_first_us is None else info.t_last_us - info.t_first_us
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            if index:
                print()
            for key, value in report.items():
                if value is not None:
                    print(f"{key:12s} {value}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Publish a recording onto the wire (see ``streamdet.drivers.replay``)."""
    from streamdet.cli import bus as curve_options
    from streamdet.drivers.replay import ReplayConfig, replay_file

    config = ReplayConfig(
        path=args.file,
        endpoint=args.endpoint,
        stream=args.stream,
        speed=parse_speed(args.speed),
        loop=args.loop,
        packet_us=args.packet_us,
        wait_subscribers=args.wait_subscribers,
        wait_timeout_s=args.wait_timeout,
        lossless=args.lossless,
        sensor_size=args.sensor_size,
        start_us=args.start_us,
        stop_us=args.stop_us,
        curve=curve_options.curve_server_keys(args),
    )
    stats = replay_file(config, progress=True)
    print(
        f"replayed {stats.packets} packets, {stats.events} events, {stats.frames} frames "
        f"in {stats.wall_s:.2f} s ({stats.loops} pass(es))",
        file=sys.stderr,
    )
    if stats.interrupted:
        raise KeyboardInterrupt  # the summary first; then "interrupted" and exit 130
    return 0


def run_record(args: argparse.Namespace) -> int:
    """Record messages from an endpoint to a file (see ``streamdet.recorder``)."""
    from streamdet.cli import bus as curve_options
    from streamdet.recorder import RecordConfig, record

    config = RecordConfig(
        endpoints=tuple(args.endpoint),
        out=args.out,
        topics=tuple(args.topic) if args.topic else ("",),
        idle_timeout_s=args.idle_timeout,
        sensor_size=args.sensor_size,
        curve=curve_options.curve_client_keys(args),
        max_bytes=None if args.max_bytes == 0 else args.max_bytes,
        gone_after_s=None if args.gone_after == 0 else args.gone_after,
    )
    stats = record(config, progress=True)
    print(stats.summary(), file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``info``, ``replay`` and ``record`` to the ``streamdet`` parser."""
    from streamdet.cli import bus as curve_options
    from streamdet.recorder import DEFAULT_GONE_AFTER_S, DEFAULT_MAX_BYTES

    info = subparsers.add_parser(
        "info", help="format, event count, time span and sensor size of an event file"
    )
    info.add_argument(
        "file", nargs="+", help="event file(s) (.raw EVT2/EVT3, .dat, .aedat4, spike .dat, .npy, .h5)"
    )
    info.add_argument("--json", action="store_true", help="print one JSON object per file, one per line")
    info.add_argument(
        "--sensor-size", type=parse_size, metavar="WxH", help="override the sensor size (e.g. 400x250)"
    )
    info.set_defaults(func=run_info)

    replay = subparsers.add_parser("replay", help="publish an event or spike file onto the wire")
    replay.add_argument("file", help="event file (any format `streamdet info` reads)")
    replay.add_argument(
        "--endpoint",
        required=True,
        help="ZeroMQ endpoint to bind, e.g. ipc:///tmp/cam or tcp://127.0.0.1:5555",
    )
    replay.add_argument("--stream", default="replay", help="stream name; topic is events/NAME or spikes/NAME")
    replay.add_argument("--speed", default="1.0", help="multiple of real time, or 'max' (default 1.0)")
    replay.add_argument(
        "--loop", action="store_true", help="start again at the end (time stamps keep increasing)"
    )
    replay.add_argument(
        "--packet-us", type=int, default=10_000, help="duration of one message, us (default 10000)"
    )
    replay.add_argument(
        "--wait-subscribers", type=int, default=0, metavar="N", help="wait for N subscribers first"
    )
    replay.add_argument(
        "--wait-timeout", type=float, default=10.0, metavar="S", help="give up waiting after S s"
    )
    replay.add_argument(
        "--lossless", action="store_true", help="block instead of dropping when a subscriber lags"
    )
    replay.add_argument("--sensor-size", type=parse_size, metavar="WxH", help="override the sensor size")
    replay.add_argument("--start-us", type=int, metavar="T", help="replay from file time T, us")
    replay.add_argument("--stop-us", type=int, metavar="T", help="replay up to file time T (excluded), us")
    curve_options.add_curve_options(replay, binds=True, connects=False)
    replay.set_defaults(func=run_replay)

    record_parser = subparsers.add_parser("record", help="record messages from the wire to .npy or .h5")
    record_parser.add_argument("endpoint", nargs="+", help="endpoint(s) to connect to")
    record_parser.add_argument(
        "out",
        help="output file: .npy or .h5 (spike frames: also .dat; NAME_bbox.npy: detections as a "
        "Prophesee box file)",
    )
    record_parser.add_argument(
        "--topic", action="append", help="topic prefix to record (repeatable; default all)"
    )
    record_parser.add_argument(
        "--idle-timeout", type=float, metavar="S", help="stop after S s without a message"
    )
    record_parser.add_argument(
        "--sensor-size", type=parse_size, metavar="WxH", help="sensor size if no message states it"
    )
    record_parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help=f"stop once N bytes of records are written (default {DEFAULT_MAX_BYTES}, 64 GiB; 0: no cap)",
    )
    record_parser.add_argument(
        "--gone-after",
        type=float,
        default=DEFAULT_GONE_AFTER_S,
        metavar="S",
        help="a stream silent for S s after its data counts as ended: its publisher is gone and its "
        f"end-of-stream lost (default {DEFAULT_GONE_AFTER_S:g}; 0: wait for end-of-stream for ever)",
    )
    curve_options.add_curve_options(record_parser, binds=False, connects=True)
    record_parser.set_defaults(func=run_record)
