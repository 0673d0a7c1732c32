"""``streamdet drive``: live sources that publish onto the wire.

- ``drive synthetic --preset P --endpoint EP [--sensor dvs|spike]``: a never-ending synthetic scene in
  real time, with its ground truth on ``truth/NAME``;
- ``drive video (FILE | --camera N) --endpoint EP [--encode dvs|spike|poisson]``: a video file or a
  webcam encoded into events or spike frames;
- ``drive dv (--camera [SERIAL] | --address HOST:PORT) --endpoint EP``: a live iniVation camera or a DV
  network event stream.
"""

from __future__ import annotations

import argparse
import sys

from streamdet.cli.options import parse_size
from streamdet.errors import UserFacingError


def _speed(text: str) -> float | None:
    """``"max"`` -> None (as fast as possible); a positive number -> that multiple of real time."""
    if text.lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not speed > 0:
        raise UserFacingError(f"--speed must be a positive number or 'max', got {text!r}")
    return speed


def _report(stats, name: str) -> None:
    print(
        f"drive {name}: sent {stats.packets} packets, {stats.events} events, {stats.frames} spike frames, "
        f"{stats.truths} truth messages in {stats.wall_s:.2f} s",
        file=sys.stderr,
    )
    if stats.interrupted:
        raise KeyboardInterrupt  # the summary first; then "interrupted" and exit 130


def run_synthetic(args: argparse.Namespace) -> int:
    """Publish a synthetic scene (see ``streamdet.drivers.synthetic``)."""
    from streamdet.cli import bus as curve_options
    from streamdet.drivers.synthetic import SyntheticDriveConfig, drive_synthetic
    from streamdet.encoders import DVSParams

    config = SyntheticDriveConfig(
        preset=args.preset,
        endpoint=args.endpoint,
        sensor=args.sensor,
        stream=args.stream or args.preset,
        sensor_size=args.size,
        seed=args.seed,
        render_fps=args.render_fps,
        packet_us=args.packet_us,
        truth_every_us=args.truth_every_us,
        seconds=args.seconds,
        speed=_speed(args.speed),
        episode_s=args.episode_s,
        spike_rate_hz=args.spike_rate_hz,
        dvs=DVSParams(shot_noise_rate_hz=args.noise_hz),
        wait_subscribers=args.wait_subscribers,
        wait_timeout_s=args.wait_timeout,
        lossless=args.lossless,
        curve=curve_options.curve_server_keys(args),
    )
    _report(drive_synthetic(config, progress=True), "synthetic")
    return 0


def run_video(args: argparse.Namespace) -> int:
    """Encode and publish a video file or a webcam (see ``streamdet.drivers.video``)."""
    from streamdet.cli import bus as curve_options
    from streamdet.drivers.video import VideoDriveConfig, drive_video
    from streamdet.encoders import DVSParams

    if (args.file is None) == (args.camera is None):
        raise UserFacingError("give either a video FILE or --camera N")
    config = VideoDriveConfig(
        source=args.camera if args.camera is not None else args.file,
        endpoint=args.endpoint,
        encode=args.encode,
        stream=args.stream,
        size=args.size,
        loop=args.loop,
        speed=_speed(args.speed),
        seconds=args.seconds,
        spike_rate_hz=args.spike_rate_hz,
        seed=args.seed,
        dvs=DVSParams(shot_noise_rate_hz=args.noise_hz),
        wait_subscribers=args.wait_subscribers,
        wait_timeout_s=args.wait_timeout,
        lossless=args.lossless,
        curve=curve_options.curve_server_keys(args),
    )
    _report(drive_video(config, progress=True), "video")
    return 0


def run_dv(args: argparse.Namespace) -> int:
    """Publish a DV camera or network stream (see ``streamdet.drivers.dv``)."""
    from streamdet.cli import bus as curve_options
    from streamdet.drivers.dv import DVDriveConfig, drive_dv

    if (args.address is None) == (args.camera is None):
        raise UserFacingError("give either --camera [SERIAL] or --address HOST:PORT")
    config = DVDriveConfig(
        endpoint=args.endpoint,
        address=args.address,
        camera=args.camera or "",
        stream=args.stream,
        seconds=args.seconds,
        wait_subscribers=args.wait_subscribers,
        wait_timeout_s=args.wait_timeout,
        lossless=args.lossless,
        curve=curve_options.curve_server_keys(args),
    )
    _report(drive_dv(config, progress=True), "dv")
    return 0


def _add_wire_options(parser: argparse.ArgumentParser, default_stream: str | None) -> None:
    from streamdet.cli import bus as curve_options

    parser.add_argument(
        "--endpoint",
        required=True,
        help="ZeroMQ endpoint to bind, e.g. ipc:///tmp/cam or tcp://127.0.0.1:5555",
    )
    parser.add_argument(
        "--stream",
        default=default_stream,
        help=f"stream name in the topics (default {default_stream or 'the preset'})",
    )
    parser.add_argument("--seconds", type=float, help="stop after S seconds (default: run until stopped)")
    parser.add_argument(
        "--wait-subscribers", type=int, default=0, metavar="N", help="wait for N subscribers first"
    )
    parser.add_argument(
        "--wait-timeout", type=float, default=10.0, metavar="S", help="give up waiting after S s"
    )
    parser.add_argument(
        "--lossless", action="store_true", help="block instead of dropping when a subscriber lags"
    )
    curve_options.add_curve_options(parser, binds=True, connects=False)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``drive synthetic``, ``drive video`` and ``drive dv`` to the ``streamdet`` parser."""
    from streamdet.scenes import PRESETS

    drive = subparsers.add_parser(
        "drive", help="publish a live source: synthetic scene, video/webcam, DV camera"
    )
    sources = drive.add_subparsers(dest="drive_source", required=True, metavar="SOURCE")

    synthetic = sources.add_parser(
        "synthetic",
        help="a never-ending synthetic scene as DVS events or spike frames, with ground truth",
        description="Render a procedural scene in real time, emulate a DVS or a spike camera, publish "
        "events/NAME or spikes/NAME packets and the ground truth on truth/NAME.",
    )
    synthetic.add_argument("--preset", required=True, choices=PRESETS, help="scene preset")
    synthetic.add_argument(
        "--sensor", choices=("dvs", "spike"), default="dvs", help="emulated sensor (default dvs)"
    )
    _add_wire_options(synthetic, None)
    synthetic.add_argument(
        "--size",
        "--sensor-size",
        dest="size",
        type=parse_size,
        default="346x260",
        help="sensor size WxH (default 346x260; --sensor-size as in replay, record, info)",
    )
    synthetic.add_argument("--seed", type=int, default=0, help="seed of the scene and the sensor (default 0)")
    synthetic.add_argument(
        "--render-fps",
        type=float,
        default=100.0,
        help="scene frames per second fed to the sensor (default 100)",
    )
    synthetic.add_argument(
        "--packet-us", type=int, default=10_000, help="message duration, us (default 10000)"
    )
    synthetic.add_argument(
        "--truth-every-us", type=int, default=100_000, help="ground-truth spacing, us (default 100000)"
    )
    synthetic.add_argument("--speed", default="1.0", help="multiple of real time, or 'max' (default 1.0)")
    synthetic.add_argument(
        "--episode-s", type=float, default=60.0, help="seconds before the next scene episode (default 60)"
    )
    synthetic.add_argument(
        "--spike-rate-hz", type=float, default=1000.0, help="spike-camera frame rate (default 1000)"
    )
    synthetic.add_argument(
        "--noise-hz", type=float, default=0.1, help="DVS shot-noise events per pixel per second (default 0.1)"
    )
    synthetic.set_defaults(func=run_synthetic)

    video = sources.add_parser(
        "video",
        help="encode a video file or a webcam into DVS events or spike frames",
        description="Read a video file or a camera with OpenCV, convert frames to luminance and encode them "
        "as DVS events (events/NAME) or spike frames (spikes/NAME).",
    )
    video.add_argument("file", nargs="?", help="video file (anything OpenCV reads)")
    video.add_argument("--camera", type=int, metavar="N", help="camera index instead of a file")
    video.add_argument(
        "--encode", choices=("dvs", "spike", "poisson"), default="dvs", help="encoding (default dvs)"
    )
    _add_wire_options(video, "video")
    video.add_argument(
        "--size",
        "--sensor-size",
        dest="size",
        type=parse_size,
        metavar="WxH",
        help="resize frames to WxH (default: the source's size; --sensor-size as in replay, record, info)",
    )
    video.add_argument("--loop", action="store_true", help="start a file again at its end")
    video.add_argument("--speed", default="1.0", help="multiple of the file's pace, or 'max' (default 1.0)")
    video.add_argument(
        "--spike-rate-hz", type=float, default=1000.0, help="spike frame rate of spike/poisson (default 1000)"
    )
    video.add_argument("--seed", type=int, default=0, help="seed of the encoder (default 0)")
    video.add_argument(
        "--noise-hz", type=float, default=0.1, help="DVS shot-noise events per pixel per second (default 0.1)"
    )
    video.set_defaults(func=run_video)

    dv = sources.add_parser(
        "dv",
        help="a live iniVation camera or a DV network event stream (dv-processing)",
        description="Publish the events of an iniVation camera or of a DV network stream as events/NAME.",
    )
    dv.add_argument(
        "--camera", nargs="?", const="", metavar="SERIAL", help="read a camera (the first found, or SERIAL)"
    )
    dv.add_argument("--address", metavar="HOST:PORT", help="read a DV network event stream")
    _add_wire_options(dv, "dv")
    dv.set_defaults(func=run_dv)
