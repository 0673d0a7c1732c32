"""Soak test: ``streamdet replay --loop`` into ``streamdet detect`` and ``streamdet record`` for a long
time, sampling every process's memory (RSS) and the detector's latency, to show that neither grows.

    .venv/bin/python bench/soak.py --minutes 30 --json /tmp/soak.json

Processes (each ``nice``-d, real sockets, ipc://):

- ``replay FILE --loop --lossless --speed S`` publishes ``events/soak`` (time stamps keep increasing);
- ``detect --input <events> --output <detections>`` runs the spiking detector on it;
- ``record <events> <detections> OUT.npy`` writes both (events to ``OUT.npy``, boxes to
  ``OUT.detections.npy``);
- this script subscribes to the detections and reads each header's ``latency_ms`` (arrival of the
  input completing the window -> boxes decoded) and ``input_age_ms`` (publisher's send stamp of that
  input -> boxes published).

Every ``--sample-s`` seconds it reads ``VmRSS`` of the three processes from ``/proc``; per block of
``--block-min`` minutes it reports the RSS range and the latency percentiles, and at the end the RSS
slope from a least-squares line over the samples after the warm-up (MB per hour). Ctrl-C stops
everything cleanly and still reports. The recording is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL_640x480 = REPO.parent / "shared" / "fixtures" / "real" / "prophesee_evt2_640x480.raw"


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope_mb_per_hour(times_s: list[float], values_mb: list[float]) -> float:
    """Least-squares slope of ``values_mb`` against ``times_s``, in MiB per hour (0 for < 2 points)."""
    if len(times_s) < 2:
        return 0.0
    slope, _ = np.polyfit(np.asarray(times_s), np.asarray(values_mb), 1)
    return float(slope * 3600)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    array = np.asarray(values)
    return {
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


def start(name: str, args: list[str], log_dir: Path) -> subprocess.Popen:
    """``nice -n 10 python -m streamdet ARGS`` with its output in ``log_dir/NAME.log``."""
    log = (log_dir / f"{name}.log").open("w")
    return subprocess.Popen(
        ["nice", "-n", "10", sys.executable, "-m", "streamdet", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def run_soak(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from streamdet import bus

    work = Path(tempfile.mkdtemp(prefix="streamdet-soak-"))
    events_ep, detections_ep = f"ipc://{work}/events", f"ipc://{work}/detections"
    out = work / "soak.npy"
    processes = {
        "detect": start(
            "detect",
            ["detect", "--input", events_ep, "--output", detections_ep, "--model", args.model,
             "--threads", "1", *(["--dt-us", str(args.dt_us)] if args.dt_us else [])],
            work,
        ),
        "record": start("record", ["record", events_ep, detections_ep, str(out), "--gone-after", "0"], work),
    }
    subscriber = bus.Subscriber(detections_ep, ["detections/"])
    processes["replay"] = start(
        "replay",
        ["replay", str(args.file), "--endpoint", events_ep, "--stream", "soak", "--loop", "--lossless",
         "--speed", str(args.speed), "--wait-subscribers", "2", "--wait-timeout", "600"],
        work,
    )  # fmt: skip
    samples: list[dict] = []
    latencies: list[tuple[float, float, float]] = []
    dropped_steps = 0
    started = time.monotonic()
    first_box_at = None
    next_sample = started
    deadline = started + args.minutes * 60
    bar = tqdm(total=int(args.minutes * 60), unit="s", desc="soak", file=sys.stderr)
    interrupted = False
    try:
        while time.monotonic() < deadline:
            message = subscriber.receive(timeout_ms=200)
            now = time.monotonic()
            if message is not None and message.kind == "detections":
                first_box_at = first_box_at or now
                latencies.append(
                    (now - started, float(message.extra["latency_ms"]), float(message.extra["input_age_ms"]))
                )
                dropped_steps = int(message.extra.get("dropped", 0))
            if now >= next_sample:
                sample = {"t_s": now - started}
                for name, process in processes.items():
                    sample[name] = rss_mb(process.pid)
                    if process.poll() is not None:
                        raise RuntimeError(f"{name} exited with {process.returncode}; see {work}/{name}.log")
                samples.append(sample)
                next_sample += args.sample_s
                bar.n = int(now - started)
                bar.set_postfix(
                    {name: f"{sample[name]:.0f}MB" for name in processes}, boxes=len(latencies), refresh=True
                )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        subscriber.close()
        for name in ("replay", "detect", "record"):
            process = processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    elapsed_s = time.monotonic() - started
    record_tail = (work / "record.log").read_text().strip().splitlines()[-1:]
    detect_tail = (work / "detect.log").read_text().strip().splitlines()[-1:]
    report = summarise(samples, latencies, args, elapsed_s, first_box_at and first_box_at - started)
    report.update(
        interrupted=interrupted,
        dropped_steps=dropped_steps,
        record_summary=record_tail[0] if record_tail else None,
        detect_summary=detect_tail[0] if detect_tail else None,
        recording_bytes=sum(path.stat().st_size for path in work.glob("soak*.npy")),
    )
    if args.keep:
        report["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return report


def summarise(
    samples: list[dict], latencies: list[tuple[float, float, float]], args: argparse.Namespace,
    elapsed_s: float, first_box_s: float | None,
) -> dict:  # fmt: skip
    """RSS per block and its slope after the warm-up, latency percentiles per block."""
    warm = [sample for sample in samples if sample["t_s"] >= args.warmup_min * 60]
    blocks = []
    block_s = args.block_min * 60
    for start_s in np.arange(0, max(elapsed_s, 1), block_s):
        in_block = [s for s in samples if start_s <= s["t_s"] < start_s + block_s]
        lat = [entry for entry in latencies if start_s <= entry[0] < start_s + block_s]
        blocks.append(
            {
                "from_min": float(start_s / 60),
                "rss_mb": {
                    name: [
                        min(s[name] for s in in_block if s[name] is not None),
                        max(s[name] for s in in_block if s[name] is not None),
                    ]
                    for name in ("replay", "detect", "record")
                    if any(s[name] is not None for s in in_block)
                },
                "windows": len(lat),
                "latency_ms": percentiles([entry[1] for entry in lat]),
                "input_age_ms": percentiles([entry[2] for entry in lat]),
            }
        )
    return {
        "minutes": elapsed_s / 60,
        "file": str(args.file),
        "speed": args.speed,
        "model": args.model,
        "first_boxes_after_s": first_box_s,
        "windows": len(latencies),
        "rss_slope_mb_per_hour_after_warmup": {
            name: slope_mb_per_hour(
                [s["t_s"] for s in warm if s[name] is not None],
                [s[name] for s in warm if s[name] is not None],
            )
            for name in ("replay", "detect", "record")
        },
        "blocks": blocks,
    }


def print_table(report: dict) -> None:
    print(
        f"soak: {report['minutes']:.1f} min, {report['windows']} windows, first boxes after "
        f"{report['first_boxes_after_s']} s, dropped steps {report['dropped_steps']}"
    )
    print("| from (min) | RSS replay (MB) | RSS detect (MB) | RSS record (MB) | windows "
          "| latency p50 / p99 (ms) | input age p50 / p99 (ms) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    def span(rss: dict, name: str) -> str:
        return f"{rss[name][0]:.0f}-{rss[name][1]:.0f}" if name in rss else "-"

    def pair(entry: dict) -> str:
        return "-" if entry["p50"] is None else f"{entry['p50']:.0f} / {entry['p99']:.0f}"

    for block in report["blocks"]:
        rss = block["rss_mb"]
        print(
            f"| {block['from_min']:.1f} | {span(rss, 'replay')} | {span(rss, 'detect')} | "
            f"{span(rss, 'record')} | {block['windows']} | {pair(block['latency_ms'])} | "
            f"{pair(block['input_age_ms'])} |"
        )
    slopes = report["rss_slope_mb_per_hour_after_warmup"]
    print("RSS slope after warm-up (MB/hour): " + ", ".join(f"{k} {v:+.1f}" for k, v in slopes.items()))
    print(report["record_summary"])
    print(report["detect_summary"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument("--file", type=Path, default=REAL_640x480, help="recording to loop")
    parser.add_argument("--speed", type=float, default=0.01, help="replay speed (default 0.01 of real time)")
    parser.add_argument("--model", default="events-default", help="detect --model (default events-default)")
    parser.add_argument("--dt-us", type=int, help="detect --dt-us (default: the detector's)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="RSS sampling period (default 10 s)")
    parser.add_argument("--block-min", type=float, default=5.0, help="report block (default 5 min)")
    parser.add_argument("--warmup-min", type=float, default=2.0, help="excluded from the slope (default 2)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the recording and logs")
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"--file {args.file}: no such file")
    report = run_soak(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return 130 if report["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
