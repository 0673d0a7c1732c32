"""The live demo under several settings, run in turn on the same machine: mAP@0.5, latency, steps dropped.

Each setting is one ``streamdet demo --headless --json`` process (the README's command plus the setting's
options), and the settings alternate round by round, so a slow minute of a shared machine falls on all of
them alike. The defaults compare the demo as it stood before burst neurons (IF neurons, float32) with
burst neurons in float32 and the demo's defaults today (``--burst auto --precision auto``):

    .venv/bin/python bench/demo_latency.py --rounds 3 --seconds 20 --json out/demo_latency.json

Prints one JSON line per run and, at the end, the median of each setting over its rounds.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {
    "IF, float32 (the demo before burst neurons)": "--burst off --precision float32 --compile off",
    "burst, precision auto, not compiled": "--compile off",
    "defaults (burst auto, precision auto, compile auto)": "",
}
"""Name -> extra ``streamdet demo`` options."""

FIELDS = ("model", "neurons", "membranes", "precision", "compiled", "threads", "dt_us", "window_steps",
          "map50", "scored_frames", "windows", "latency_ms_p50", "latency_ms_p99", "dropped",
          "simulated_steps", "measured_steps_per_s")  # fmt: skip


def run_demo(options: str, seconds: float, seed: int, out_dir: Path) -> dict:
    """One demo process with ``options``; its JSON report (UserFacing failure: SystemExit with its log)."""
    command = [sys.executable, "-m", "streamdet", "demo", "--headless", "--json", "--seconds", str(seconds),
               "--seed", str(seed), "--out", str(out_dir), *shlex.split(options)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"demo {options!r} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each setting, alternating (3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="demo length (20 s, the README's)")
    parser.add_argument("--seed", type=int, default=7, help="scene seed (7, the demo's default)")
    parser.add_argument(
        "--setting",
        action="append",
        metavar="NAME=OPTIONS",
        help="a setting of your own (repeatable; replaces the defaults), e.g. 'bf16=--precision bfloat16'",
    )
    parser.add_argument("--out", default="out/demo_latency", help="folder for the demos' videos")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    settings = dict(s.split("=", 1) for s in args.setting) if args.setting else SETTINGS

    runs: dict[str, list[dict]] = {name: [] for name in settings}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        for round_index in range(args.rounds):
            for name, options in settings.items():
                report = run_demo(options, args.seconds, args.seed, Path(args.out))
                row = {"setting": name, "round": round_index + 1, **{k: report.get(k) for k in FIELDS}}
                runs[name].append(row)
                print(json.dumps(row), flush=True)
    except KeyboardInterrupt:
        print("demo_latency: interrupted; the summary covers the runs that finished", file=sys.stderr)
    summary = {
        name: {
            "runs": len(rows),
            "map50_median": statistics.median(r["map50"] for r in rows),
            "latency_ms_p50_median": statistics.median(r["latency_ms_p50"] for r in rows),
            "latency_ms_p99_median": statistics.median(r["latency_ms_p99"] for r in rows),
            "dropped_total": sum(r["dropped"] for r in rows),
        }
        for name, rows in runs.items()
        if rows
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        report = {
            "started": started,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
            "seconds": args.seconds,
            "seed": args.seed,
            "settings": settings,
            "runs": runs,
            "summary": summary,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
