"""How often a Ctrl-C is lost by a process receiving a busy stream, with and without the hook.

pyzmq 27 checks for signals in every call, also while it frees a frame (``Frame.__dealloc__``); a
SIGINT landing there raises ``KeyboardInterrupt`` where Python can only print and drop it, and the
process goes on. ``streamdet.bus.keep_swallowed_interrupt`` (the command line's ``sys.unraisablehook``)
keeps it for the next receive. Each try starts a process in which a thread publishes small event
packets as fast as it can to a ``bus.Subscriber`` in the main thread, sends it SIGINT after a random
delay, and counts the try as lost when the process has not ended ``--wait`` seconds later:

    .venv/bin/python bench/ctrl_c_stress.py --tries 40 --json out/ctrl_c_stress.json
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

RECEIVER = """
import signal, sys, threading
import numpy as np
from streamdet import bus, wire
from streamdet.events import EVENT_DTYPE

signal.signal(signal.SIGINT, signal.default_int_handler)
if sys.argv[2] == "hook":
    sys.unraisablehook = bus.keep_swallowed_interrupt
endpoint = sys.argv[1]

def publish_forever():
    publisher = bus.Publisher(endpoint, linger_ms=0)
    events = np.zeros(200, EVENT_DTYPE)
    t_us = 0
    while True:
        publisher.send(wire.events_message("cam", events, (346, 260), t_us, t_us + 1000))
        t_us += 1000

threading.Thread(target=publish_forever, daemon=True).start()
subscriber = bus.Subscriber([endpoint])
print("ready", flush=True)
try:
    while True:
        subscriber.receive(timeout_ms=100)
except KeyboardInterrupt:
    sys.exit(130)
"""


def ctrl_c_is_lost(endpoint: str, hook: bool, delay_s: float, wait_s: float) -> bool:
    """Start one receiver, SIGINT it ``delay_s`` after it is ready: True when it is still running
    ``wait_s`` later (it is killed then)."""
    process = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, endpoint, "hook" if hook else "no-hook"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        process.stdout.readline()
        try:
            process.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            pass
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=wait_s)
            return False
        except subprocess.TimeoutExpired:
            return True
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tries", type=int, default=40, help="tries per arm (with and without the hook)")
    parser.add_argument("--wait", type=float, default=3.0, help="seconds a process gets to end after SIGINT")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random SIGINT delays")
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    delays = [rng.uniform(0.05, 0.3) for _ in range(args.tries)]
    lost = {"no-hook": 0, "hook": 0}
    tries = {"no-hook": 0, "hook": 0}
    with tempfile.TemporaryDirectory(prefix="streamdet-ctrl-c-") as folder:
        progress = tqdm(total=2 * args.tries, desc="ctrl-c tries", unit=" tries")
        try:
            for index, delay_s in enumerate(delays):
                for arm in lost:
                    endpoint = f"ipc://{folder}/{arm}-{index}"
                    lost[arm] += ctrl_c_is_lost(endpoint, arm == "hook", delay_s, args.wait)
                    tries[arm] += 1
                    progress.update()
                    progress.set_postfix(lost=lost, refresh=False)
        except KeyboardInterrupt:
            print("ctrl_c_stress: interrupted; counts so far follow", file=sys.stderr)
        finally:
            progress.close()
    result = {"tries": tries, "lost": lost, "wait_s": args.wait, "seed": args.seed}
    for arm, count in lost.items():
        print(f"{arm:>8}: Ctrl-C lost in {count} of {tries[arm]} tries")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
