"""Size and CPU cost of the RetinaNet presets: parameters, multiply-accumulates and forward latency.

Run: ``.venv/bin/python bench/model_cost.py [--threads 1] [--repeats 5]``. MACs count convolutions on one
346x260 input padded to 352x288; latency is the median wall time of ``repeats`` forward passes of a
batch of one in eval mode (CPU, ``--threads`` torch threads).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from streamdet.model import MODEL_SIZES, build_model, config_for, count_macs, pad_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default=",".join(MODEL_SIZES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'size':8} {'params':>10} {'GMAC':>7} {'ms/frame':>9}   (torch threads: {args.threads})")
    for size in args.sizes.split(","):
        model = build_model(config_for("events", size)).eval()
        x = pad_input(torch.zeros(1, 2, 260, 346))
        macs = count_macs(model, *x.shape[-2:])
        params = sum(p.numel() for p in model.parameters())
        times = []
        with torch.no_grad():
            model(x)
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        print(f"{size:8} {params:>10,} {macs / 1e9:>7.3f} {1e3 * statistics.median(times):>9.1f}")


if __name__ == "__main__":
    main()
