"""``streamdet detect``, ``view``, ``launch`` and ``demo``: the running system.

- ``detect --input EP --output EP``: the detector node (``streamdet.detector``).
- ``view EP...``: draw event or spike frames with boxes (window where there is a display, else .mp4 + PNG).
- ``launch FILE.toml``: start a graph of processes (``streamdet.launcher``).
- ``demo``: synthetic maritime scene -> DVS emulation -> detector -> viewer, with a running mAP.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from streamdet.cli.options import (
    add_box_filter_options,
    add_geometry_options,
    box_filter_from_args,
    geometry_from_args,
    parse_classes,
    positive_int,
)
from streamdet.live import (
    COMPILE_CHOICES,
    MEMBRANE_CHOICES,
    PRECISION_CHOICES,
    demo_threads,
    resolve_compile,
)


def _positive_int_or_auto(text: str) -> int | str:
    """``--dt-us`` (microseconds) and ``demo --threads``: a positive integer, or ``auto``."""
    return "auto" if text == "auto" else positive_int(text)


def detector_config_from_args(
    args: argparse.Namespace,
    window_us: int,
    steps_per_s: float | None = None,
    burst: bool | None = None,
    precision: str = "float32",
    compile: bool = False,
):
    """The ``DetectorConfig`` of ``detect`` / ``demo`` options (``--dt-us`` defaults to the model window
    divided by ``DEFAULT_STEPS_PER_WINDOW``, ``--window-steps`` to 50 ms of output). ``--dt-us auto`` is
    the live rule (``streamdet.live.live_step_us``): the shortest step of at least 25 ms that divides the
    window and that a network stepping ``steps_per_s`` times a second alone keeps up with (25 ms when
    ``steps_per_s`` is None). A network of burst neurons (``burst``, default ``--burst``) takes
    ``streamdet.live.burst_steps`` unless ``--dt-us`` is given. ``precision`` is the network's, chosen
    from ``--precision`` when it was loaded (``streamdet.live.choose_precision``), ``compile`` whether it
    was compiled (``--compile``)."""
    from streamdet.detector import (
        DEFAULT_STEPS_PER_WINDOW,
        DetectorConfig,
        default_publish_every,
        resolve_window_steps,
    )
    from streamdet.live import burst_steps, live_step_us, resolve_membranes

    window_steps = args.window_steps
    if args.dt_us == "auto":
        dt_us = live_step_us(window_us, steps_per_s)
    elif args.dt_us is None and (burst if burst is not None else burst_from_args(args)):
        dt_us, burst_window_steps = burst_steps(window_us)
        window_steps = args.window_steps or burst_window_steps
    else:
        dt_us = args.dt_us if args.dt_us is not None else window_us // DEFAULT_STEPS_PER_WINDOW
    return DetectorConfig(
        dt_us=dt_us,
        window_steps=resolve_window_steps(window_us, dt_us, window_steps),
        publish_every=args.publish_every or default_publish_every(dt_us),
        max_backlog_steps=args.max_backlog_steps,
        max_chunk_steps=args.max_chunk_steps,
        device=args.device,
        membrane_bounds=args.membrane_bounds,
        membranes=resolve_membranes(args.membranes, burst if burst is not None else burst_from_args(args)),
        geometry=geometry_from_args(args),
        box_filter=box_filter_from_args(args),
        stream_classes=tuple(args.stream_classes or ()),
        precision=precision,
        compile=compile,
    )


def run_detect(args: argparse.Namespace) -> int:
    """Run the detector node until Ctrl-C (or, with ``--exit-on-eos``, until every stream has ended)."""
    import torch
    from tqdm import tqdm

    from streamdet.cli import bus as curve_options
    from streamdet.detector import DetectorNode, StreamDetector, check_device
    from streamdet.launcher import standby_until_promoted
    from streamdet.live import load_live_model

    check_device(args.device)
    input_curve = curve_options.curve_client_keys(args)
    output_curve = input_curve if args.output_connect else curve_options.curve_server_keys(args)
    torch.set_num_threads(args.threads)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    measure = args.dt_us == "auto" and args.device == "cpu"
    model, snn, rates, _ = load_live_model(
        args.model,
        measure,
        say,
        who="detect",
        burst=burst_from_args(args),
        precision=args.precision,
        device=args.device,
        compile=resolve_compile(args.compile, args.device),
    )
    steps_per_s = rates[model]
    if "bias_calibration" in snn.conversion:
        say(
            f"detect: warning: {model} is bias-calibrated for windows of "
            f"{snn.conversion['bias_calibration']['steps']} steps from a fresh state; a stream never "
            "restarts, and on the validation split such offsets lowered streaming mAP@0.5 "
            '(docs/conversion.md, "Bias calibration"). Convert without --bias-calibration-steps for the '
            "detector node."
        )
    if steps_per_s is not None:
        say(f"detect: the network steps {steps_per_s:.0f} times a second alone")
    config = detector_config_from_args(
        args, snn.spec.window_us, steps_per_s, burst=snn.burst, precision=snn.precision, compile=snn.compiled
    )
    standby_until_promoted(lambda: StreamDetector(snn, config).warm_up())
    node = DetectorNode(
        snn,
        config,
        args.input,
        args.output,
        topics=args.topic or ("events/", "spikes/"),
        output_connect=args.output_connect,
        wait_subscribers=args.wait_subscribers,
        wait_timeout_s=args.wait_timeout,
        exit_on_eos=args.exit_on_eos,
        log=tqdm.write,
        input_curve=input_curve,
        output_curve=output_curve,
    )
    print(
        f"detect: {model} ({snn.spec.modality}, {snn.spec.sensor_size[0]}x{snn.spec.sensor_size[1]}), "
        f"dt {config.dt_us} us, "
        f"window {config.window_steps} steps, publish every {config.publish_every}, "
        f"{'burst IF' if snn.burst else 'IF'} neurons, {config.membranes} membranes, {config.precision}"
        f"{', compiled' if config.compile else ''}; "
        f"{', '.join(args.input)} -> {args.output}",
        file=sys.stderr,
        flush=True,
    )
    bar = tqdm(desc="detect", unit=" windows", file=sys.stderr, disable=None)
    try:
        published = 0
        while node.poll_once():
            if node.stats.published != published:
                bar.update(node.stats.published - published)
                published = node.stats.published
                bar.set_postfix(
                    steps_per_s=f"{node.stats.steps_per_s():.1f}",
                    latency_ms=f"{node.stats.latencies_ms[-1]:.0f}",
                    dropped=node.stats.dropped_steps,
                    refresh=False,
                )
    finally:
        bar.close()
        node.close()
        print(
            f"detect: {node.stats.published} windows, {node.stats.simulated_steps} steps simulated, "
            f"{node.stats.dropped_steps} dropped, {node.stats.rejected} rejected, "
            f"{node.stats.shed} input messages skipped unbinned (too old when read)",
            file=sys.stderr,
        )
    return 0


def run_view(args: argparse.Namespace) -> int:
    """Show or record event / spike frames with boxes until Ctrl-C or end of stream."""
    from streamdet.cli import bus as curve_options
    from streamdet.viewer import ViewerConfig, view

    config = ViewerConfig(
        endpoints=tuple(args.endpoint),
        out_dir=args.out,
        headless=args.headless,
        fps=args.fps,
        snapshot_every_s=args.snapshot_every,
        idle_timeout_s=args.idle_timeout,
        show_truth=not args.no_truth,
        min_score=args.min_score,
        curve=curve_options.curve_client_keys(args),
        latest_only=args.latest_only,
    )
    stats = view(config, progress=True)
    print(stats.summary(), file=sys.stderr)
    return 130 if stats.interrupted else 0


def run_launch(args: argparse.Namespace) -> int:
    """Run a launch file until its processes end, ``--seconds`` pass, or Ctrl-C."""
    from streamdet.launcher import Launcher, load_launch_file

    spec = load_launch_file(args.file)
    if args.check:
        for process in spec.processes:
            print(f"{process.name}: {' '.join(process.cmd)} (restart {process.restart})")
        return 0
    launcher = Launcher(spec)
    exit_codes = launcher.run(seconds=args.seconds)
    if launcher.interrupted:
        return 130
    failed = [name for name, codes in exit_codes.items() if codes and codes[-1] not in (0, 130)]
    return 1 if failed else 0


def run_demo(args: argparse.Namespace) -> int:
    """The end-to-end demo (see ``streamdet.demo``)."""
    from streamdet.demo import YIELD_NICENESS, DemoConfig
    from streamdet.demo import run_demo as demo

    compile = resolve_compile(args.compile, args.device)
    config = DemoConfig(
        seconds=args.seconds,
        model=args.model,
        preset=args.preset,
        seed=args.seed,
        speed=args.speed,
        out_dir=args.out,
        headless=args.headless,
        dt_us=None if args.dt_us == "auto" else args.dt_us,
        window_steps=args.window_steps,
        publish_every=args.publish_every,
        device=args.device,
        membrane_bounds=args.membrane_bounds,
        membranes=args.membranes,
        quiet=args.json,
        threads=demo_threads(compile) if args.threads == "auto" else args.threads,
        geometry=geometry_from_args(args),
        box_filter=box_filter_from_args(args),
        burst=burst_from_args(args),
        precision=args.precision,
        compile=compile,
        yield_viewer=True,
        niceness=YIELD_NICENESS if args.niceness is None else args.niceness,
    )
    started = time.monotonic()
    report = demo(config)
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"demo: {report['detections']} detections in {report['windows']} windows, "
            f"mAP@0.5 {report['map50']:.3f}, latency p50 {report['latency_ms_p50']:.1f} ms / "
            f"p99 {report['latency_ms_p99']:.1f} ms, {report['steps_per_s']:.1f} steps/s, "
            f"{report['dropped']} steps dropped; video {report['video']} ({time.monotonic() - started:.0f} s)"
            + ("; stopped by Ctrl-C" if report["interrupted"] else "")
        )
    return 130 if report["interrupted"] else 0


def _add_detector_options(
    parser: argparse.ArgumentParser, dt_help: str = "window / 4", min_score: float | None = None
) -> None:
    add_geometry_options(parser)
    add_box_filter_options(parser)
    parser.add_argument(
        "--burst",
        choices=("on", "off", "auto"),
        default="auto",
        help="burst IF neurons, up to N spikes per step (N = each Quant-ReLU's levels); they step once per "
        "model window by default (a box message per window); off: plain IF neurons; auto (default): "
        "on, which holds the ANN's accuracy in the stream where IF neurons lose 0.1-0.3 mAP@0.5 "
        "(docs/conversion.md, 'Burst neurons in the stream'); a converted-network file keeps its neurons",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="the network's spike-fed convolutions in float32, bfloat16 (oneDNN; 0.3-0.5 of the time per "
        "convolution on CPUs with AMX) or int8 (spike counts as exact uint8, weights rounded to int8 per "
        "channel; any x86-64 CPU); auto (default): the fastest of bfloat16 and int8 where this CPU runs "
        "the network's spike-fed convolutions at least 1.1 times faster with it, timed at start, else "
        "float32 (docs/conversion.md, 'Precision')",
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        default="auto",
        help="run each step of the network as one graph compiled by torch.compile (its neuron updates "
        "fused; about 0.6 of the step's time on the 2-core CPU; 10-25 s at the first start, cached after); "
        "auto (default): on a CPU with a C++ compiler (docs/conversion.md, 'Compiled steps')",
    )
    if min_score is not None:
        parser.set_defaults(min_score=min_score)
    parser.add_argument(
        "--stream-classes",
        type=parse_stream_classes,
        action="append",
        metavar="STREAM=C1,C2",
        help="publish only these classes for one stream (repeatable), e.g. harbour=boat,buoy",
    )
    parser.add_argument(
        "--dt-us",
        type=_positive_int_or_auto,
        metavar="D",
        help=f"step duration, us, or 'auto': the shortest step of at least 25 ms that divides the model "
        f"window and that this CPU keeps up with, measured at start (default: the model window with burst "
        f"neurons, else {dt_help})",
    )
    parser.add_argument(
        "--window-steps",
        type=positive_int,
        default=None,
        metavar="W",
        help="steps averaged per decode (default: 1 step with burst neurons at their default step, "
        "else 50 ms of output, round(50000 / dt))",
    )
    parser.add_argument(
        "--publish-every",
        type=positive_int,
        default=None,
        metavar="P",
        help="decode and publish every P steps (default: every 50 ms of stream, round(50000 / dt), at least "
        "every step: every window with burst neurons)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--membrane-bounds",
        type=parse_membrane_bounds,
        default=(0.0, 1.0),
        metavar="LO,HI|none",
        help="clamp IF membranes to [LO, HI] thresholds after each reset, or none (default 0,1: see "
        "docs/streaming.md)",
    )
    parser.add_argument(
        "--membranes",
        choices=MEMBRANE_CHOICES,
        default="auto",
        help="keep: membranes run on from step to step (within --membrane-bounds); fresh: every step "
        "starts from the initial membrane, nothing carried to the next step; auto (default): fresh for "
        "burst neurons, which then hold the ANN's accuracy better (docs/streaming.md, 'Fresh "
        "membranes'), keep for IF neurons",
    )


def burst_from_args(args: argparse.Namespace) -> bool:
    """``--burst``: on, off, or auto (the default, on). It applies to networks converted at load (a model
    name, an ANN checkpoint); a converted-network file runs the neurons it was converted with."""
    return getattr(args, "burst", "off") in ("on", "auto")


def parse_stream_classes(text: str) -> tuple[str, tuple[str, ...]]:
    """``--stream-classes``: ``STREAM=C1,C2`` -> ``(STREAM, (C1, C2))``."""
    stream, separator, names = text.partition("=")
    if not separator or not stream.strip():
        raise argparse.ArgumentTypeError(
            f"expected STREAM=CLASS,CLASS such as cam1=car,pedestrian, got {text!r}"
        )
    return stream.strip(), parse_classes(names)


def parse_membrane_bounds(text: str) -> tuple[float, float] | None:
    """``--membrane-bounds``: ``LO,HI`` -> ``(LO, HI)``, ``none`` -> None."""
    if text.strip().lower() == "none":
        return None
    try:
        floor, ceiling = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 0,1) or none, got {text!r}") from None
    if not floor < ceiling:
        raise argparse.ArgumentTypeError(f"expected LO < HI, got {text!r}")
    return floor, ceiling


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``detect``, ``view``, ``launch`` and ``demo`` to the ``streamdet`` parser."""
    from streamdet.cli import bus as curve_options

    detect = subparsers.add_parser("detect", help="run the spiking detector on event or spike streams")
    detect.add_argument(
        "--input", action="append", required=True, metavar="EP", help="endpoint to read (repeatable)"
    )
    detect.add_argument("--output", required=True, metavar="EP", help="endpoint to publish detections on")
    detect.add_argument(
        "--model",
        default="events-default",
        help="model name or file (default events-default; events-perspective for a camera that looks along a "
        "street or into a harbour), or auto: events-default, or events-fast where this CPU keeps up only "
        "with that one (one step per window with burst neurons, 25 ms steps with IF neurons), or the faster "
        "of the two where neither keeps up (timed with --dt-us auto, as the demo does)",
    )
    _add_detector_options(detect)
    detect.add_argument(
        "--max-backlog-steps",
        type=positive_int,
        default=8,
        metavar="N",
        help="complete steps allowed to wait per stream before the oldest are dropped (default 8)",
    )
    detect.add_argument(
        "--max-chunk-steps",
        type=positive_int,
        default=8,
        metavar="K",
        help="steps per network call (default 8)",
    )
    detect.add_argument(
        "--topic", action="append", help="input topic prefix (repeatable; default events/ and spikes/)"
    )
    detect.add_argument(
        "--output-connect",
        action="store_true",
        help="connect the output (to a broker's frontend) instead of binding",
    )
    detect.add_argument(
        "--wait-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="wait for N subscribers of the output before reading the input",
    )
    detect.add_argument(
        "--wait-timeout", type=float, default=10.0, metavar="S", help="give up waiting after S s"
    )
    detect.add_argument("--exit-on-eos", action="store_true", help="exit once every stream has ended")
    detect.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch CPU threads (default 1: see docs/streaming.md)",
    )
    curve_options.add_curve_options(detect, binds=True, connects=True)
    detect.set_defaults(func=run_detect)

    view = subparsers.add_parser("view", help="draw event/spike frames with boxes (window, or .mp4 + PNG)")
    view.add_argument(
        "endpoint", nargs="+", help="endpoint(s): driver (events, truth) and detector (detections)"
    )
    view.add_argument(
        "--out", default="out/view", help="folder for .mp4 and PNG snapshots (default out/view)"
    )
    view.add_argument("--headless", action="store_true", help="never open a window, even with a display")
    view.add_argument("--fps", type=float, default=20.0, help="video frame rate (default 20)")
    view.add_argument(
        "--snapshot-every",
        type=float,
        default=5.0,
        metavar="S",
        help="PNG snapshot every S seconds (default 5)",
    )
    view.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help="stop after S seconds without a message (default never)",
    )
    view.add_argument("--no-truth", action="store_true", help="do not draw ground-truth boxes")
    view.add_argument(
        "--min-score",
        type=float,
        default=0.0,
        help="draw detections scoring at least this (default 0: all that detect publishes, which applies "
        "its own --min-score)",
    )
    view.add_argument(
        "--latest-only",
        action="store_true",
        help="when behind, draw only the newest message of each stream (end-of-stream is never skipped)",
    )
    curve_options.add_curve_options(view, binds=False, connects=True)
    view.set_defaults(func=run_view)

    launch = subparsers.add_parser("launch", help="start a graph of processes from a TOML launch file")
    launch.add_argument("file", help="launch file (see launch/*.toml)")
    launch.add_argument("--seconds", type=float, metavar="S", help="stop everything after S seconds")
    launch.add_argument("--check", action="store_true", help="validate the file and list its processes")
    launch.set_defaults(func=run_launch)

    demo = subparsers.add_parser("demo", help="synthetic maritime scene -> DVS -> spiking detector -> video")
    demo.add_argument("--seconds", type=float, default=20.0, help="scene time to run, seconds (default 20)")
    demo.add_argument(
        "--model",
        default="auto",
        help="model name or file, or auto (the default): events-default, or events-fast where this CPU "
        "keeps up only with that one (one step per window with burst neurons, 25 ms steps with IF neurons)",
    )
    demo.add_argument("--preset", default="maritime", help="scene preset (default maritime)")
    demo.add_argument("--seed", type=int, default=7, help="scene seed (default 7)")
    demo.add_argument(
        "--speed", type=float, default=1.0, help="scene speed, multiple of real time (default 1)"
    )
    demo.add_argument("--out", default="out", help="folder for demo.mp4 and demo.png (default out)")
    demo.add_argument("--headless", action="store_true", help="no window, even with a display")
    demo.add_argument("--json", action="store_true", help="print one JSON object at the end, no live lines")
    demo.add_argument(
        "--threads",
        type=_positive_int_or_auto,
        default="auto",
        help="torch CPU threads of the detector, or auto (default): 2 where its steps are compiled and the "
        "machine has 2 cores or more, else 1 (docs/demo.md)",
    )
    demo.add_argument(
        "--niceness",
        type=int,
        choices=range(20),
        default=None,
        metavar="0-19",
        help="scheduling niceness of the scene driver and the viewer, so that the detector goes first "
        "(default 19)",
    )
    _add_detector_options(
        demo,
        dt_help="auto",
        min_score=0.0,
    )
    demo.set_defaults(func=run_demo)
