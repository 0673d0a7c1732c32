"""Size and CPU cost of the RetinaNet presets: parameters, multiply-accumulates and forward latency.

Run: ``.venv/bin/python bench/model_cost.py [--threads 1] [--repeats 5] [--sizes tiny,small]
[--models events-default,intensity-default]``. ``--models`` adds rows for trained models (shipped names
or checkpoint paths) with their own anchors and input channels. MACs count convolutions on one
346x260 input padded to 352x288; latency is the median wall time of ``repeats`` forward passes of a
batch of one in eval mode (CPU, ``--threads`` torch threads).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from streamdet.model import MODEL_SIZES, build_model, config_for, count_macs, load_detector, pad_input


def cost_row(name: str, model: torch.nn.Module, repeats: int) -> str:
    """``name  params  GMAC  ms/frame`` of one eval-mode model on a zero frame of its own channels."""
    x = pad_input(torch.zeros(1, model.config.in_channels, 260, 346))
    macs = count_macs(model, *x.shape[-2:])
    params = sum(p.numel() for p in model.parameters())
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return f"{name:18} {params:>10,} {macs / 1e9:>7.3f} {1e3 * statistics.median(times):>9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default=",".join(MODEL_SIZES))
    parser.add_argument("--models", default="", help="comma-separated model names or checkpoints")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'size / model':18} {'params':>10} {'GMAC':>7} {'ms/frame':>9}   (torch threads: {args.threads})")
    for size in filter(None, args.sizes.split(",")):
        print(cost_row(size, build_model(config_for("events", size)).eval(), args.repeats))
    for name in filter(None, args.models.split(",")):
        print(cost_row(name, load_detector(name).model.eval(), args.repeats))


if __name__ == "__main__":
    main()
