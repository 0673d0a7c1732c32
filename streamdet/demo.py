"""The end-to-end demo: synthetic maritime scene -> DVS emulation -> spiking detector -> viewer and score.

Three processes talk over real ZeroMQ sockets (``ipc://`` in a temporary folder): the driver and the
detector node in child processes (``multiprocessing``, spawn), the viewer/scorer in the main process (the
running mAP of its live line computed in a fourth, :class:`ScoreProcess`):

- the synthetic driver (``streamdet.drivers.synthetic.drive_synthetic``) renders the scene, emulates a
  DVS, and publishes ``events/maritime`` packets of 10 ms at the scene's real-time pace plus the ground
  truth on ``truth/maritime`` at every publish time of the detector;
- the detector node (``streamdet.detector.DetectorNode``) bins the events into steps of ``dt``, runs the
  converted SNN with its state kept, and publishes ``detections/maritime`` every ``P`` steps;
- the main thread subscribes to both, draws every detections message onto its event frame (boxes in
  class colours, ground truth in thin grey, a HUD), writes ``demo.mp4`` and ``demo.png``, prints a live
  line per second and keeps a running COCO mAP@0.5 of the detections against the truth.

Matching: a detections message covering ``[t0_us, t1_us)`` is scored against the truth at ``t1_us``
(the driver publishes truth at multiples of ``P * dt``, which are exactly the windows' end times). The
model covers all four classes; the demo keeps (draws and scores) the boxes of the scene's classes only
(``streamdet.scenes.PRESET_CLASSES``: boat and buoy at sea), as a deployment at sea would.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from streamdet.contract import EVALUATION_FILTER, BoxFilter, Geometry
from streamdet.errors import UserFacingError
from streamdet.live import burst_steps, live_step_us, load_live_model, resolve_membranes
from streamdet.snn import SpikingDetector

DEMO_STREAM = "maritime"
SCORE_EVERY_S = 5.0
"""The running mAP is asked for every this many seconds, from :class:`ScoreProcess` (a rescore covers
every time stamp so far, so its time grows with the run: it runs beside the drawing loop, not in it)."""


SCORE_REST = 4.0
"""After a rescore that took ``s`` seconds the scorer is not asked again for ``SCORE_REST * s`` seconds,
so it takes at most a fifth of a core however long the run (:class:`ScoreProcess`)."""


YIELD_NICENESS = 19
"""Scheduling niceness of the scene driver's process and, where ``DemoConfig.yield_viewer`` asks for it
(``streamdet demo`` does; a caller's own process is left alone by default), of the viewer once the
detector and the driver run: the renderer has slack within each 10 ms packet and the viewer draws
after the boxes, so when a window completes on a busy 2-core machine the detector runs first. On the
2-core sandbox two demos with a niced driver dropped no step and had p99 latencies of 71-147 ms, two
without it 0-5 steps and 136-260 ms; with the viewer yielding too, p99 34-37 ms against 56-70 ms
(docs/demo.md). 19, the lowest priority, rather than 10: five demos of ``--model events-fast --burst
on`` at each in turn, p50 median 7.6 against 8.3 ms, p99 median 12 against 15 ms
(docs/history/demo-history.md)."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    Attributes:
        seconds: scene time, seconds.
        model: SNN or ANN checkpoint name / path (converted on load, once, in the main process), or
            ``auto``: the first of :data:`streamdet.live.AUTO_MODELS` that this CPU steps at the finest
            step, else the one it steps fastest (:func:`streamdet.live.pick_live_model`;
            ``events-default`` on a GPU or with ``dt_us`` given).
        preset: scene preset (``maritime`` or ``traffic``).
        seed: scene and sensor seed.
        speed: scene pace, multiple of real time.
        out_dir: folder for ``demo.mp4`` and ``demo.png``.
        headless: never open a window.
        dt_us: step duration, microseconds (None: :func:`streamdet.live.live_step_us`, the shortest step
            of at least 25 ms that divides the model window and that this machine keeps up with, measured
            at start on the CPU with :func:`streamdet.live.measure_step_rate`: 25 ms for the 50 and 100 ms
            models on a CPU that steps the network 48 times a second alone, 50 ms on a slower one).
        window_steps: ``W``, steps averaged per decode (None: 50 ms of output,
            :func:`streamdet.detector.default_window_steps`).
        publish_every: ``P``, decode every ``P`` steps (None: every 50 ms of stream time,
            :func:`streamdet.detector.default_publish_every`).
        device: ``cpu`` or ``cuda``.
        membrane_bounds: IF membrane bounds of the detector (``DetectorConfig.membrane_bounds``).
        membranes: ``--membranes`` (``streamdet.live.MEMBRANE_CHOICES``; ``auto``: fresh for burst
            neurons, :func:`streamdet.live.resolve_membranes`).
        quiet: no live lines (``--json``).
        render_fps: scene frames per second fed to the DVS emulator.
        fps: frame rate written into the video file.
        threads: torch CPU threads of the detector.
        geometry: sensor -> network input (``DetectorConfig.geometry``).
        box_filter: boxes published (``DetectorConfig.box_filter``; by default every decoded box, since
            the demo scores them like ``streamdet eval``).
        burst: burst IF neurons (``ConversionConfig.burst``), at :func:`streamdet.live.burst_steps` unless
            ``dt_us`` is given.
        precision: ``float32``, ``bfloat16``, ``int8`` or ``auto`` (:func:`streamdet.live.choose_precision`).
        compile: run the network's steps compiled (``streamdet.compiled``, ``--compile``).
        yield_viewer: lower this process's scheduling priority (to ``niceness``) once the detector and
            driver run, so that they go first; for a process that ends with the demo.
        niceness: scheduling niceness of the scene driver's process, and of this one with
            ``yield_viewer`` (:data:`YIELD_NICENESS`; ``--niceness``).
    """

    seconds: float = 20.0
    model: str = "auto"
    preset: str = "maritime"
    seed: int = 7
    speed: float = 1.0
    out_dir: str = "out"
    headless: bool = False
    dt_us: int | None = None
    window_steps: int | None = None
    publish_every: int | None = None
    device: str = "cpu"
    membrane_bounds: tuple[float, float] | None = (0.0, 1.0)
    membranes: str = "auto"
    quiet: bool = False
    render_fps: float = 100.0
    fps: float = 20.0
    threads: int = 1
    geometry: Geometry = Geometry()
    box_filter: BoxFilter = EVALUATION_FILTER
    burst: bool = False
    precision: str = "float32"
    compile: bool = False
    yield_viewer: bool = False
    niceness: int = YIELD_NICENESS


class RunningScore:
    """Ground truth and detections keyed by time stamp, scored with pycocotools.

    Image ``i`` is time stamp ``t_i`` (microseconds); its ground truth is the truth message at ``t_i``
    and its detections those of the window ending at ``t_i``. Only time stamps with both are scored.
    Truth rows with score 0 (objects the scene marks ignore) are crowd regions (``iscrowd = 1``).
    """

    def __init__(self, class_names: tuple[str, ...]) -> None:
        self.class_names = tuple(class_names)
        self.truth: dict[int, np.ndarray] = {}
        self.detections: dict[int, np.ndarray] = {}
        self.sensor_size: tuple[int, int] = (0, 0)

    def add_truth(self, t_us: int, rows: np.ndarray, sensor_size: tuple[int, int]) -> None:
        self.truth[int(t_us)] = np.array(rows, dtype=np.float32).reshape(-1, 6)
        self.sensor_size = tuple(sensor_size)

    def add_detections(self, t_us: int, rows: np.ndarray) -> None:
        self.detections[int(t_us)] = np.array(rows, dtype=np.float32).reshape(-1, 6)

    def matched_times(self) -> list[int]:
        return sorted(set(self.truth) & set(self.detections))

    def coco_dataset(self, times: list[int]) -> dict[str, Any]:
        """COCO ground truth (``streamdet.evaluate``'s layout): one image per time, category id =
        class index + 1."""
        width, height = self.sensor_size
        images = [{"id": i + 1, "t_us": t, "width": width, "height": height} for i, t in enumerate(times)]
        annotations = []
        for image, t in zip(images, times, strict=True):
            for x1, y1, x2, y2, labelled, label in self.truth[t].tolist():
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image["id"],
                        "category_id": int(label) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0 if labelled else 1,
                    }
                )
        categories = [{"id": i + 1, "name": name} for i, name in enumerate(self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def metrics(self) -> dict[str, Any]:
        """``coco_metrics`` over the matched times: ``map50``, ``map``, per class; plus ``images``."""
        from streamdet.evaluate import coco_from_dict, coco_metrics

        times = self.matched_times()
        if not times:
            return {"images": 0, "map50": 0.0, "map": 0.0, "ap50_per_class": {}, "ap_per_class": {}}
        coco_gt = coco_from_dict(self.coco_dataset(times))
        detections = {i + 1: self.detections[t] for i, t in enumerate(times)}
        return {"images": len(times), **coco_metrics(coco_gt, detections)}


def run_score_process(class_names: tuple[str, ...], requests: Any, results: Any, niceness: int) -> None:
    """The scorer process: a :class:`RunningScore` fed by ``requests`` (``("truth", t_us, rows,
    sensor_size)``, ``("detections", t_us, rows)``, ``("score",)``: put its ``metrics()`` on ``results``;
    None ends it), at scheduling ``niceness``. Ctrl-C ends it quietly: the main process ends the run."""
    os.nice(niceness)
    score = RunningScore(class_names)
    try:
        while (request := requests.get()) is not None:
            kind, *values = request
            if kind == "truth":
                score.add_truth(*values)
            elif kind == "detections":
                score.add_detections(*values)
            elif kind == "score":
                started = time.perf_counter()
                metrics = score.metrics()
                results.put((metrics, time.perf_counter() - started))
    except KeyboardInterrupt:
        return


class ScoreProcess:
    """The running mAP of the live line, scored in a process of its own (:func:`run_score_process`,
    spawned), so that a rescore, which grows with the run, never stalls the drawing loop: the loop hands it
    each truth and detections message and asks for a score every :data:`SCORE_EVERY_S` once the last one
    came back and the process has rested ``rest`` (:data:`SCORE_REST`) times as long as that one took
    (a rescore grows with the run: a long demo rescores less often instead of taking a core from the
    driver). The final score is computed by the main process at the end."""

    def __init__(
        self, spawn: Any, class_names: tuple[str, ...], niceness: int, rest: float = SCORE_REST
    ) -> None:
        self.rest = float(rest)
        self.requests = spawn.Queue()
        self.results = spawn.Queue()
        self.process = spawn.Process(
            target=run_score_process,
            args=(tuple(class_names), self.requests, self.results, niceness),
            daemon=True,
            name="scorer",
        )
        self.pending = False
        self.rested_at = 0.0
        """``time.monotonic()`` before which no rescore is asked for."""

    def start(self) -> None:
        self.process.start()

    def add_truth(self, t_us: int, rows: np.ndarray, sensor_size: tuple[int, int]) -> None:
        self.requests.put(("truth", int(t_us), rows, tuple(sensor_size)))

    def add_detections(self, t_us: int, rows: np.ndarray) -> None:
        self.requests.put(("detections", int(t_us), rows))

    def request(self) -> None:
        """Ask for a score of everything handed in so far, unless one is still being computed or the
        process is resting after the last one."""
        if not self.pending and time.monotonic() >= self.rested_at:
            self.requests.put(("score",))
            self.pending = True

    def latest(self, timeout_s: float = 0.0) -> dict[str, Any] | None:
        """The score asked for last, once it is ready (waiting up to ``timeout_s``), else None."""
        import queue

        try:
            metrics, seconds = self.results.get(timeout=timeout_s) if timeout_s else self.results.get_nowait()
        except queue.Empty:
            return None
        self.pending = False
        self.rested_at = time.monotonic() + self.rest * seconds
        return metrics

    def stop(self) -> None:
        """End the process (5 s to finish a rescore under way, then terminated). Messages it never read
        (it ended on Ctrl-C with the pipe full) are dropped: otherwise the queue's feeder thread would
        wait for a reader forever and hold this process at its exit."""
        if self.process.is_alive():
            self.requests.put(None)
            self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5.0)
        self.requests.cancel_join_thread()
        self.requests.close()


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


STATS_EVERY_S = 1.0
"""The detector process reports its statistics this often."""


def _stats_record(stats: Any) -> dict[str, Any]:
    return {
        "steps_per_s": stats.steps_per_s(),
        "simulated_steps": stats.simulated_steps,
        "dropped_steps": stats.dropped_steps,
        "published": stats.published,
    }


def run_detector_process(
    snn_path: str,
    detector_config: Any,
    events_endpoint: str,
    detections_endpoint: str,
    threads: int,
    stop: Any,
    reports: Any,
) -> None:
    """The demo's detector, in a process of its own: ``DetectorNode`` running the converted network saved
    at ``snn_path``, from ``events_endpoint`` to ``detections_endpoint`` until every stream ended or
    ``stop`` (a multiprocessing Event) is set.

    ``reports`` (a multiprocessing Queue) receives ``("ready", None)`` once the node listens,
    ``("stats", {...})`` every ``STATS_EVERY_S`` and at the end, or ``("error", text)``.
    """
    import torch

    from streamdet.detector import DetectorNode
    from streamdet.loading import load_snn

    try:
        torch.set_num_threads(threads)
        snn = load_snn(snn_path)
        node = DetectorNode(
            snn, detector_config, [events_endpoint], detections_endpoint, exit_on_eos=True, log=lambda _: None
        )
    except BaseException as error:  # reported to the parent, which raises it
        reports.put(("error", f"{type(error).__name__}: {error}"))
        return
    reports.put(("ready", None))
    next_report = time.monotonic() + STATS_EVERY_S
    try:
        while not stop.is_set() and node.poll_once():
            if time.monotonic() >= next_report:
                reports.put(("stats", _stats_record(node.stats)))
                next_report = time.monotonic() + STATS_EVERY_S
    except KeyboardInterrupt:
        pass
    finally:
        reports.put(("stats", _stats_record(node.stats)))
        node.close()


@dataclass(frozen=True)
class LivePlan:
    """What the demo runs: the network chosen (:func:`streamdet.live.load_live_model`) and its steps.

    Attributes:
        model: the model as chosen (a name or path; ``auto`` resolved).
        snn: the converted network.
        rates: steps per second alone of every network loaded (None: not timed).
        dt_us: step duration, microseconds.
        window_steps: ``W``, steps averaged per decode.
        publish_every: ``P``, decode every ``P`` steps.
        precision_ms: ``--precision auto``'s timing of the chosen network, milliseconds of one step's
            spike-fed convolutions per precision (:func:`streamdet.live.choose_precision`; empty where a
            precision was given).
        compile: whether the detector process compiles its steps (``--compile``; False where a compile
            for the timing failed already).
    """

    model: str
    snn: SpikingDetector
    rates: dict[str, float | None]
    dt_us: int
    window_steps: int
    publish_every: int
    precision_ms: dict[str, float] = field(default_factory=dict)
    compile: bool = False

    @property
    def measured(self) -> float | None:
        """Steps per second of the chosen network alone, or None when nothing was timed."""
        return self.rates[self.model]


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the demo for ``config.seconds`` of scene time; returns the summary (see ``streamdet demo``)."""
    import torch

    from streamdet.detector import check_device
    from streamdet.viewer import has_display

    check_device(config.device)
    torch.set_num_threads(config.threads)
    if not config.seconds > 0:
        raise UserFacingError(f"--seconds must be positive, got {config.seconds}")
    say = (lambda line: None) if config.quiet else (lambda line: print(line, flush=True))
    plan = plan_network_and_steps(config, say)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = not config.headless and has_display()
    with tempfile.TemporaryDirectory(prefix="streamdet-demo-") as run_dir:
        view, node_stats, started = _run_processes(config, plan, run_dir, out_dir, window, say)
    png = view.write_best_frame(out_dir / "demo.png")
    final = view.score.metrics()
    elapsed = time.monotonic() - started
    return _summary(config, plan, view, node_stats, final, elapsed, out_dir, png)


def plan_network_and_steps(config: DemoConfig, say: Callable[[str], None]) -> LivePlan:
    """Load (and for ``auto`` choose) the network, then its step: ``config.dt_us``, else the finest step
    this CPU keeps up with (:func:`streamdet.live.live_step_us`), said with the measured rate."""
    from streamdet.detector import default_publish_every, resolve_window_steps

    measure = config.dt_us is None and config.device == "cpu"
    compile_here = config.compile and measure  # time the compiled step; else only the detector compiles
    model, snn, rates, precision_ms = load_live_model(
        config.model, measure, say, who="demo", burst=config.burst, precision=config.precision,
        device=config.device, compile=compile_here,
    )  # fmt: skip
    if snn.spec.modality != "events":
        raise UserFacingError(f"the demo emulates a DVS; {model} takes {snn.spec.modality} input")
    measured = rates[model]
    burst_dt_us, burst_window_steps = burst_steps(snn.spec.window_us) if snn.burst else (None, None)
    dt_us = config.dt_us or burst_dt_us or live_step_us(snn.spec.window_us, measured)
    burst_window = burst_window_steps if dt_us == burst_dt_us else None
    window_steps = resolve_window_steps(snn.spec.window_us, dt_us, config.window_steps or burst_window)
    publish_every = config.publish_every or default_publish_every(dt_us)
    if measured is not None:
        say(
            f"demo: the network steps {measured:.0f} times a second alone on this CPU: steps of "
            f"{dt_us / 1000:g} ms, {window_steps} per output window (--dt-us to choose)"
        )
    compiles = snn.compiled if compile_here else config.compile
    if compiles and not compile_here:
        say(f"demo: the detector compiles {model}'s step as it starts (--compile; 10-25 s the first time)")
    return LivePlan(model, snn, rates, dt_us, window_steps, publish_every, precision_ms, compiles)


def _detector_config(config: DemoConfig, plan: LivePlan):
    """The detector node's ``DetectorConfig`` of the plan."""
    from streamdet.detector import DetectorConfig

    return DetectorConfig(
        dt_us=plan.dt_us,
        window_steps=plan.window_steps,
        publish_every=plan.publish_every,
        device=config.device,
        membrane_bounds=config.membrane_bounds,
        membranes=resolve_membranes(config.membranes, plan.snn.burst),
        geometry=config.geometry,
        box_filter=config.box_filter,
        precision=plan.snn.precision,
        compile=plan.compile,
    )


def _drive_config(config: DemoConfig, plan: LivePlan, events_endpoint: str):
    """The scene driver's ``SyntheticDriveConfig``: truth at every publish time of the detector; it waits
    for its three subscribers (detector, boxes and frames here)."""
    from streamdet.drivers.synthetic import SyntheticDriveConfig

    return SyntheticDriveConfig(
        preset=config.preset,
        endpoint=events_endpoint,
        stream=DEMO_STREAM,
        sensor_size=plan.snn.spec.sensor_size,
        seed=config.seed,
        render_fps=config.render_fps,
        truth_every_us=plan.dt_us * plan.publish_every,
        seconds=config.seconds,
        speed=config.speed,
        wait_subscribers=3,
        wait_timeout_s=60.0,
    )


def _run_processes(
    config: DemoConfig, plan: LivePlan, run_dir: str, out_dir: Path, window: bool, say: Callable[[str], None]
) -> tuple[DemoView, dict[str, Any], float]:
    """Start the detector and driver processes, show and score their messages until the detections end
    (or a process fails), and stop everything. Returns the view, the detector's last statistics and the
    monotonic time the run started."""
    from streamdet import bus
    from streamdet.loading import save_snn

    # The child loads the network converted here instead of converting it a second time.
    snn_path = Path(run_dir) / "detector.snn.pt"
    save_snn(plan.snn, snn_path)
    events_endpoint = f"ipc://{run_dir}/events"
    detections_endpoint = f"ipc://{run_dir}/detections"
    # Boxes (truth, detections: a few messages per window) and events (100 packets/s, only drawn) have
    # separate queues, so that a busy drawing loop may miss event packets but never a box.
    subscriber = bus.Subscriber([events_endpoint, detections_endpoint], topics=("truth/", "detections/"))
    frames_subscriber = bus.Subscriber([events_endpoint], topics=("events/",))
    drive_config = _drive_config(config, plan, events_endpoint)
    # Three processes: the driver renders the scene in numpy with Python loops and the detector runs the
    # network; each in its own process, neither waits for the other's interpreter lock nor for the
    # drawing here (nor the drawing for the running score: ScoreProcess).
    spawn = multiprocessing.get_context("spawn")
    detector = DetectorProcess(
        spawn, snn_path, _detector_config(config, plan), events_endpoint, detections_endpoint, config.threads
    )
    driver = spawn.Process(
        target=_drive_yielding, args=(drive_config, config.niceness), daemon=True, name="driver"
    )
    view = DemoView(config, plan, out_dir, window)
    view.scorer = ScoreProcess(spawn, plan.snn.class_names, config.niceness)
    started = time.monotonic()
    try:
        view.scorer.start()
        detector.start()
        driver.start()
        if config.yield_viewer:
            os.nice(config.niceness)
        try:
            _show_until_the_detections_end(
                view, subscriber, frames_subscriber, detector, driver, started, say
            )
        except KeyboardInterrupt:  # Ctrl-C, or q in the window: the run so far is scored and summed up
            view.interrupted = True
    finally:
        detector.stop(driver)
        view.scorer.stop()
        view.close()
        subscriber.close()
        frames_subscriber.close()
    return view, detector.stats, started


def _show_until_the_detections_end(
    view: DemoView,
    subscriber: Any,
    frames_subscriber: Any,
    detector: DetectorProcess,
    driver: Any,
    started: float,
    say: Callable[[str], None],
) -> None:
    """The main loop: draw event packets, take truth and detections, say a live line every second and ask
    for a rescore every :data:`SCORE_EVERY_S` (:class:`ScoreProcess`), until the detections' end of stream,
    the detector's exit, or Ctrl-C (``q`` in the window: KeyboardInterrupt)."""
    next_line = started + 1.0
    next_score = started + SCORE_EVERY_S
    while True:
        view.draw_event_packets(frames_subscriber)
        message = subscriber.receive(timeout_ms=50)
        now = time.monotonic()
        if now >= next_line:
            detector.read_reports()
            view.current = view.scorer.latest() or view.current
            if now >= next_score:
                view.scorer.request()
                next_score = now + SCORE_EVERY_S
            next_line = now + 1.0
            if view.windows:
                say(view.live_line(detector.stats))
        if message is None:
            if detector.ended(driver):
                break
            continue
        if message.kind == "eos":
            if message.topic.startswith("detections/"):
                _take_the_truth_left(view, subscriber)
                break
            continue
        view.take(message)


def _take_the_truth_left(view: DemoView, subscriber: Any) -> None:
    """After the detections' end of stream: take the truth messages still queued (the scene's truth for a
    window is sent before its detections can be, so it is all sent by now; a loop that fell behind would
    otherwise leave the last windows unscored)."""
    while (message := subscriber.receive(timeout_ms=100)) is not None:
        if message.kind == "truth":
            view.take(message)


def _drive_yielding(drive_config: Any, niceness: int) -> None:
    """The driver process: :func:`streamdet.drivers.synthetic.drive_synthetic` at scheduling
    ``niceness`` (``DemoConfig.niceness``)."""
    from streamdet.drivers.synthetic import drive_synthetic

    os.nice(niceness)
    drive_synthetic(drive_config)


class DetectorProcess:
    """The demo's detector child process (:func:`run_detector_process`, spawned) and the statistics it
    reports over a queue."""

    def __init__(
        self,
        spawn: Any,
        snn_path: Path,
        detector_config: Any,
        events_endpoint: str,
        detections_endpoint: str,
        threads: int,
    ) -> None:
        self.stop_event = spawn.Event()
        self.reports = spawn.Queue()
        self.process = spawn.Process(
            target=run_detector_process,
            args=(
                str(snn_path),
                detector_config,
                events_endpoint,
                detections_endpoint,
                threads,
                self.stop_event,
                self.reports,
            ),
            daemon=True,
            name="detector",
        )
        self.stats: dict[str, Any] = {
            "steps_per_s": 0.0,
            "simulated_steps": 0,
            "dropped_steps": 0,
            "published": 0,
        }

    def start(self) -> None:
        """Start the process and wait (up to 120 s) until its node listens."""
        self.process.start()
        if self.read_reports(timeout_s=120.0) != "ready":
            raise UserFacingError("the detector process did not start within 120 s")

    def read_reports(self, timeout_s: float = 0.0) -> str | None:
        """Take the detector's reports; returns the last kind read (raises on its error)."""
        import queue

        kind = None
        while True:
            try:
                kind, value = self.reports.get(timeout=timeout_s) if timeout_s else self.reports.get_nowait()
            except queue.Empty:
                return kind
            timeout_s = 0.0
            if kind == "error":
                raise UserFacingError(f"the detector process failed: {value}")
            if kind == "stats":
                self.stats.update(value)

    def ended(self, driver: Any) -> bool:
        """Whether the detector has exited cleanly (raises when it or the driver ``driver`` failed)."""
        if driver.exitcode not in (None, 0):
            raise UserFacingError(f"the scene driver failed (exit code {driver.exitcode})")
        if not self.process.is_alive():
            self.read_reports()
            if self.process.exitcode not in (None, 0):
                raise UserFacingError(f"the detector process failed (exit code {self.process.exitcode})")
            return True
        return False

    def stop(self, driver: Any) -> None:
        """Ask the detector to stop (10 s), terminate it and the driver where still alive, and take its
        last reports."""
        self.stop_event.set()
        self.process.join(timeout=10.0)
        for process in (self.process, driver):
            if process.is_alive():
                process.terminate()
            process.join(timeout=5.0)
        self.read_reports()


class DemoView:
    """The main process's side: draws event packets and boxes (the scene's classes only) into the video
    and the window, keeps the running score, the latencies and the frame with the most confident boxes."""

    def __init__(self, config: DemoConfig, plan: LivePlan, out_dir: Path, window: bool) -> None:
        from streamdet.scenes import PRESET_CLASSES
        from streamdet.viewer import FrameComposer, VideoOutput, ViewerConfig

        class_names = plan.snn.class_names
        self.plan = plan
        self.window = window
        self.viewer_config = ViewerConfig(endpoints=(), headless=not window, fps=config.fps)
        self.composer = FrameComposer(self.viewer_config, class_names)
        self.video = VideoOutput(out_dir / "demo.mp4", config.fps)
        self.score = RunningScore(class_names)
        self.interrupted = False
        """Whether Ctrl-C (or ``q`` in the window) ended the run before the scene did."""
        self.scorer: ScoreProcess | None = None
        """Where the running score of the live line is computed (set by the demo; None: not scored live)."""
        self.scene_labels = [class_names.index(name) for name in PRESET_CLASSES[config.preset]]
        self.latencies: list[float] = []
        self.boxes = self.windows = 0
        self.best_frame: tuple[float, np.ndarray] | None = None
        self.current: dict[str, Any] = {"map50": 0.0, "images": 0}
        self.last_header: dict[str, Any] = {}

    def draw_event_packets(self, frames_subscriber: Any) -> None:
        """Draw every event packet waiting (none are waited for)."""
        while (packet := frames_subscriber.receive(timeout_ms=0)) is not None:
            for _, image in self.composer.add(packet):
                self.video.write(image)

    def live_line(self, node_stats: dict[str, Any]) -> str:
        """The line said once a second."""
        return (
            f"t = {self.last_header.get('t1_us', 0) / 1e6:5.1f} s  windows {self.windows:4d}  boxes "
            f"{self.boxes:5d}  latency p50 {_percentile(self.latencies, 50):6.1f} ms  mAP@0.5 "
            f"{self.current['map50']:.3f} ({self.current['images']} frames)  "
            f"{node_stats['steps_per_s']:5.1f} steps/s  dropped {node_stats['dropped_steps']}"
        )

    def take(self, message: Any) -> None:
        """Score a truth or detections message and draw it (``q`` in the window stops the demo)."""
        if message.kind == "truth":
            self.score.add_truth(message.t0_us, message.payload, message.sensor_size)
            if self.scorer is not None:
                self.scorer.add_truth(message.t0_us, message.payload, message.sensor_size)
        elif message.kind == "detections":
            kept = np.isin(message.payload[:, 5], self.scene_labels)
            message = replace(message, payload=message.payload[kept])
            self.windows += 1
            self.boxes += message.count
            self.latencies.append(float(message.extra.get("latency_ms", float("nan"))))
            self.score.add_detections(message.t1_us, message.payload)
            if self.scorer is not None:
                self.scorer.add_detections(message.t1_us, message.payload)
            self.last_header = {"t1_us": message.t1_us}
        self.composer.status_lines = [
            f"spiking RetinaNet  dt {self.plan.dt_us / 1000:g} ms  window {self.plan.window_steps} steps   "
            f"mAP@0.5 {self.current['map50']:.2f}"
        ]
        for _, image in self.composer.add(message):
            self.video.write(image)
            if message.kind == "detections":
                confident = int(np.count_nonzero(message.payload[:, 4] >= self.viewer_config.min_score))
                if self.best_frame is None or confident > self.best_frame[0]:
                    self.best_frame = (confident, image)
            if self.window:
                import cv2

                cv2.imshow("streamdet demo", image)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    raise KeyboardInterrupt

    def close(self) -> None:
        """Finish the video and close the window."""
        self.video.close()
        if self.window:
            import cv2

            cv2.destroyAllWindows()

    def write_best_frame(self, png: Path) -> Path | None:
        """Write the frame with the most confident boxes to ``png``; None when no detections came."""
        if self.best_frame is None:
            return None
        import cv2

        cv2.imwrite(str(png), self.best_frame[1])
        return png


def _summary(
    config: DemoConfig,
    plan: LivePlan,
    view: DemoView,
    node_stats: dict[str, Any],
    final: dict[str, Any],
    elapsed: float,
    out_dir: Path,
    png: Path | None,
) -> dict[str, Any]:
    """The summary ``streamdet demo --json`` prints."""
    measured = plan.measured
    return {
        "detections": view.boxes,
        "windows": view.windows,
        "map50": round(final["map50"], 4),
        "map": round(final["map"], 4),
        "ap50_per_class": {k: round(v, 4) for k, v in final["ap50_per_class"].items()},
        "scored_frames": final["images"],
        "latency_ms_p50": round(_percentile(view.latencies, 50), 2),
        "latency_ms_p99": round(_percentile(view.latencies, 99), 2),
        "steps_per_s": round(node_stats["steps_per_s"], 2),
        "simulated_steps": node_stats["simulated_steps"],
        "dropped": node_stats["dropped_steps"],
        "dt_us": plan.dt_us,
        "measured_steps_per_s": None if measured is None else round(measured, 1),
        "measured_models": {n: None if r is None else round(r, 1) for n, r in plan.rates.items()},
        "window_steps": plan.window_steps,
        "publish_every": plan.publish_every,
        "model": plan.model,
        "neurons": "burst IF" if plan.snn.burst else "IF",
        "membranes": resolve_membranes(config.membranes, plan.snn.burst),
        "precision": plan.snn.precision,
        "measured_precisions": dict(plan.precision_ms),
        "compiled": plan.compile,
        "threads": config.threads,
        "seconds": config.seconds,
        "wall_s": round(elapsed, 2),
        "video": str(out_dir / "demo.mp4"),
        "png": str(png) if png is not None else None,
        "device": config.device,
        "interrupted": view.interrupted,
    }
