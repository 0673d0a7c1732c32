"""Detector latency and throughput at 346x260: simulation steps per second, and event-in to box-out
latency through a real `streamdet detect` process over ipc sockets.

1. Throughput: ``StreamDetector`` in this process on the synthetic maritime DVS stream, chunks of K
   steps (time folded into the batch); steps/s = steps / (simulation + decode time).
2. Binning: ``StepBinner.push_events`` per packet, the packets that complete a step apart.
3. Latency: the same packets (10 ms each) published at real-time pace from this process to a
   ``streamdet detect`` subprocess; for every detections message, latency = receive time here minus the
   send time of the packet that completed the window's last step (same clock: one machine).

    .venv/bin/python bench/bench_latency.py --seconds 10 --json out/bench_latency.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace

import numpy as np
import torch


def synthetic_packets(seconds: float, sensor_size: tuple[int, int]) -> list:
    from streamdet.drivers.synthetic import SyntheticDriveConfig, iter_synthetic_packets

    config = SyntheticDriveConfig(
        preset="maritime",
        endpoint="unused",
        sensor_size=sensor_size,
        seconds=seconds,
        render_fps=100.0,
        seed=7,
    )
    return list(iter_synthetic_packets(config))


def throughput(snn, packets: list, config, chunk_steps: int) -> dict:
    from streamdet.detector import StreamDetector

    detector = StreamDetector(snn, replace(config, max_chunk_steps=chunk_steps, max_backlog_steps=10**9))
    detector.warm_up()
    for packet in packets:
        detector.add_events("bench", packet.events, snn.spec.sensor_size, packet.t0_us, packet.t1_us)
    detector.process()
    return {
        "chunk_steps": chunk_steps,
        "steps": detector.simulated_steps,
        "steps_per_s": round(detector.simulated_steps / detector.busy_s, 2),
    }


def binning(packets: list, sensor_size: tuple[int, int], dt_us: int, rounds: int = 5) -> dict:
    """Time of ``StepBinner.push_events`` per packet (best of ``rounds`` passes over the stream), apart
    for the packets that complete a step (what a window waits for) and the others (ms, medians)."""
    from streamdet.detector import StepBinner

    completing, other = [], []
    for _ in range(rounds):
        binner = StepBinner("events", sensor_size, dt_us)
        times = []
        for packet in packets:
            started = time.perf_counter()
            counts, _, _ = binner.push_events(packet.events, packet.t0_us, packet.t1_us)
            times.append((time.perf_counter() - started, len(counts) > 0))
        completing.append(np.median([t for t, done in times if done]))
        other.append(np.median([t for t, done in times if not done]))
    return {
        "completing_packet_ms": round(1e3 * float(min(completing)), 3),
        "other_packet_ms": round(1e3 * float(min(other)), 3),
        "events_per_packet": round(float(np.mean([len(p.events) for p in packets]))),
    }


def latency(args: argparse.Namespace, packets: list, sensor_size: tuple[int, int]) -> dict:
    from streamdet import bus, wire

    with tempfile.TemporaryDirectory(prefix="streamdet-bench-") as run_dir:
        events_endpoint, detections_endpoint = f"ipc://{run_dir}/events", f"ipc://{run_dir}/detections"
        command = [
            sys.executable, "-m", "streamdet", "detect", "--input", events_endpoint, "--output",
            detections_endpoint, "--model", args.model, "--window-steps", str(args.window_steps),
            "--publish-every", str(args.publish_every), "--device", args.device, "--exit-on-eos",
            "--wait-subscribers", "1", "--wait-timeout", "300",
        ]  # fmt: skip
        if args.dt_us:
            command += ["--dt-us", str(args.dt_us)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        command += shlex.split(args.detect_options)
        detector = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        publisher = bus.Publisher(events_endpoint)
        subscriber = bus.Subscriber(detections_endpoint)
        sent_at: dict[int, float] = {}
        received: list[tuple[float, object]] = []

        def collect() -> None:
            while True:
                message = subscriber.receive(timeout_ms=120_000)
                if message is None or message.kind == "eos":
                    return
                received.append((time.monotonic(), message))

        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        try:
            waited_s = 0.0
            while not publisher.wait_for_subscribers(1, timeout_s=1.0):
                waited_s += 1.0
                if detector.poll() is not None:
                    raise SystemExit(f"the detector exited ({detector.returncode}): {detector.stderr.read()}")
                if waited_s >= 300:
                    raise SystemExit("the detector did not subscribe within 300 s")
            start = time.monotonic()
            for packet in packets:
                delay = start + packet.t1_us / 1e6 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher.send(
                    wire.events_message("bench", packet.events, sensor_size, packet.t0_us, packet.t1_us)
                )
                sent_at[packet.t1_us] = time.monotonic()
            publisher.send(wire.eos_message("bench", "events", sensor_size))
            collector.join(timeout=300)
            _, log = detector.communicate(timeout=120)
        finally:
            publisher.close()
            subscriber.close()
            if detector.poll() is None:
                detector.kill()
    ends = np.array(sorted(sent_at))
    latencies = []
    for arrived, message in received:
        completing = ends[np.searchsorted(ends, message.t1_us, side="left")]
        latencies.append((arrived - sent_at[int(completing)]) * 1e3)
    node_latency = [float(m.extra.get("latency_ms", np.nan)) for _, m in received]
    return {
        "windows": len(received),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2),
        "node_latency_ms_p50": round(float(np.nanpercentile(node_latency, 50)), 2),
        "dropped_steps": int(received[-1][1].extra.get("dropped", 0)) if received else None,
        "detector_log_tail": log.strip().splitlines()[-1] if log.strip() else "",
    }


def print_results(results: dict, path: str | None) -> None:
    """Print ``results`` as indented JSON, and write them to ``path`` when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if path:
        with open(path, "w") as handle:
            handle.write(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--seconds", type=float, default=10.0, help="stream length, seconds")
    parser.add_argument("--dt-us", type=int, help="step, us (default: model window / 4)")
    parser.add_argument("--window-steps", type=int, default=8)
    parser.add_argument("--publish-every", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument(
        "--detect-options",
        default="",
        help="more options of the streamdet detect process, e.g. '--burst on --compile off'",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from streamdet.detector import DEFAULT_STEPS_PER_WINDOW, DetectorConfig
    from streamdet.loading import load_snn

    snn = load_snn(args.model)
    dt_us = args.dt_us or snn.spec.window_us // DEFAULT_STEPS_PER_WINDOW
    config = DetectorConfig(
        dt_us=dt_us, window_steps=args.window_steps, publish_every=args.publish_every, device=args.device
    )
    packets = synthetic_packets(args.seconds, snn.spec.sensor_size)
    results = {
        "model": args.model,
        "sensor": list(snn.spec.sensor_size),
        "dt_us": dt_us,
        "window_steps": args.window_steps,
        "publish_every": args.publish_every,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "detect_options": args.detect_options,
        "events_per_s": round(sum(len(p.events) for p in packets) / args.seconds),
        "binning": binning(packets, snn.spec.sensor_size, dt_us),
        "throughput": [throughput(snn, packets[:100], config, k) for k in (1, 4, 8)],
        "realtime_steps_per_s": round(1e6 / dt_us, 2),
    }
    results["latency"] = latency(args, packets, snn.spec.sensor_size)
    print_results(results, args.json)


if __name__ == "__main__":
    main()
