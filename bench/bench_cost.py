"""Per-window cost of the spiking network against the ANN forward on the same input, side by side.

Usage: ``.venv/bin/python bench/bench_cost.py --data data/v3-maritime/test [--models events-default,
events-fast] [--windows 24] [--threads 1] [--json OUT] [--plot PNG]``.

At the stream's settings with burst neurons: each model is converted from its Quant-ReLU clips with
burst neurons (``ConversionConfig(burst=True)``: one step reproduces the Quant-ReLU network), membranes
bounded to [0, 1] and kept from window to window as the detector node keeps them, one step per window.
The inputs are the first ``--windows`` consecutive windows of the split (its first sequence, each the
model's window with its history channels, padded as the detector pads them). Per window, in one process
and interleaved, the ANN's forward pass (``bundle.model``, as shipped) and the SNN's step
(``SpikingNetwork.run`` of one step) are timed in CPU time of this process (wall time on a shared
machine also counts waits for a core); decoding, the same for both, is left out.

Also per model: the operations and energy per window (``streamdet.cost``), and the sparse path
(``streamdet.sparse``): each ``groups = 1`` convolution's crossover (spike-fed or not: the stem reads
the sparse event input) measured at its input shape, the active-site fraction its input really has on
these windows, and, where any layer's input is below its crossover, the SNN timed again with those
layers sparse (outputs checked against the dense ones). Where this CPU has bfloat16 convolutions, the SNN
with bfloat16 spike-fed convolutions (``SpikingNetwork.with_precision``) and the ANN on a bfloat16
channels-last copy of itself are timed in the same interleaved loop, and so is the bfloat16 SNN stepping
from fresh membranes (``fresh``: the detector's ``--membranes auto`` for burst neurons, whose compiled
step reads and writes no membrane); the float32 SNN from fresh membranes is timed on every CPU (the
stream's setting where there is no bfloat16), and, where oneDNN's int8 convolution runs, the SNN with
int8 spike-fed convolutions from fresh membranes (compared with the float32 ANN: the ANN has no int8
copy here). Where a C++ compiler is found, each
of these SNNs is also timed compiled (``streamdet.compiled``, compiled before the loop) and each ANN
compiled by ``torch.compile`` (compiled at its warm-up call); ``ratio_to_partner_ann_mean`` compares each
SNN with the ANN of the same precision, compiled or not.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from streamdet.convert import ConversionConfig, convert_detector
from streamdet.cost import measure_window_cost, plot_window_cost, synaptic_inputs
from streamdet.detector import DetectorConfig, stream_neuron
from streamdet.live import compiler_found
from streamdet.model import load_detector
from streamdet.samples import split_inputs
from streamdet.snn import bfloat16_supported, int8_supported
from streamdet.sparse import active_site_fraction, measure_crossover, with_sparse_layers


def burst_stream_network(bundle):
    """The detector's SNN at the stream's settings: burst neurons, membranes bounded to [0, 1]."""
    snn = convert_detector(bundle, None, ConversionConfig(normalisation="quant", burst=True), progress=False)
    return snn.with_neuron(snn.neuron.with_bounds((0.0, 1.0)))


def bfloat16_forward(model: torch.nn.Module):
    """The ANN's forward on a bfloat16, channels-last copy of ``model`` (input cast on the way in): the
    fair partner of the SNN's bfloat16 convolutions."""
    low = copy.deepcopy(model).to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
    return lambda x: low(x.to(torch.bfloat16, memory_format=torch.channels_last))


def partner_ann(network: str) -> str:
    """The ANN run a network's time is fairly compared with: the same precision, compiled or not."""
    precision = " bfloat16" if "bfloat16" in network else ""
    return "ann" + precision + (" compiled" if "compiled" in network else "")


def time_side_by_side(
    bundle, networks: dict, windows: list[torch.Tensor], anns: dict | None = None
) -> dict[str, list[float]]:
    """CPU milliseconds per window of the ANN forward (``"ann"``, and each of ``anns``: name -> forward)
    and of one step of each network, interleaved window by window (each network keeps its state across
    windows); one warm-up window first."""
    forwards = {"ann": bundle.model, **(anns or {})}
    states = {name: network.initial_state(1) for name, network in networks.items()}
    times: dict[str, list[float]] = {**{name: [] for name in forwards}, **{name: [] for name in networks}}
    with torch.no_grad():
        for forward in forwards.values():
            forward(windows[0])
        for network in networks.values():
            network.run(windows[0][None], network.initial_state(1))
        for x in tqdm(windows, desc="windows", unit="window"):
            for name, forward in forwards.items():
                start = time.process_time()
                forward(x)
                times[name].append((time.process_time() - start) * 1e3)
            for name, network in networks.items():
                start = time.process_time()
                _, states[name] = network.run(x[None], states[name])
                times[name].append((time.process_time() - start) * 1e3)
    return times


def layer_site_fractions(snn, windows: list[torch.Tensor]) -> dict[str, list[float]]:
    """Active-site fraction of each ``groups = 1`` convolution's input (spikes, or the input events and
    the currents of adds), per window (stream state kept)."""
    fractions: dict[str, list[float]] = {}
    handles = []
    for name in synaptic_inputs(snn.graph_module):
        module = snn.graph_module.get_submodule(name)
        if isinstance(module, torch.nn.Conv2d) and module.groups == 1:
            record = fractions.setdefault(name, [])
            handles.append(
                module.register_forward_hook(lambda m, i, o, r=record: r.append(active_site_fraction(i[0])))
            )
    state = snn.initial_state(1)
    with torch.no_grad():
        for x in windows:
            _, state = snn.run(x[None], state)
    for handle in handles:
        handle.remove()
    return fractions


def measure_model(model: str, split: str, count: int, repeats: int) -> dict:
    bundle = load_detector(model)
    bundle.model.eval()
    snn = burst_stream_network(bundle)
    windows = [x for _, x in split_inputs(split, bundle, count, batch_size=1)]
    fractions = layer_site_fractions(snn, windows)
    inputs = synaptic_inputs(snn.graph_module)
    crossovers = {}
    for name, seen in tqdm(fractions.items(), desc="crossovers", unit="layer"):
        module = snn.graph_module.get_submodule(name)
        shape = None

        def grab(m, i, o):
            nonlocal shape
            shape = tuple(i[0].shape)

        handle = module.register_forward_hook(grab)
        with torch.no_grad():
            snn.run(windows[0][None], snn.initial_state(1))
        handle.remove()
        measured = measure_crossover(module, shape, repeats=repeats, layer=name)
        crossovers[name] = {
            "input": "spikes" if inputs[name].is_spikes else "analog",
            "input_shape": list(shape),
            "crossover": measured.crossover,
            "fractions": list(measured.fractions),
            "dense_ms": [round(t, 3) for t in measured.dense_ms],
            "sparse_ms": [round(t, 3) for t in measured.sparse_ms],
            "site_fraction_median": statistics.median(seen),
            "site_fraction_min": min(seen),
        }
    chosen = {
        name: c["crossover"] for name, c in crossovers.items() if c["site_fraction_median"] < c["crossover"]
    }
    fresh = stream_neuron(snn.neuron, DetectorConfig(membranes="fresh"))
    networks = {"snn burst T=1": snn, "snn burst T=1, fresh": snn.with_neuron(fresh)}
    if chosen:
        networks["snn burst T=1, sparse layers"] = with_sparse_layers(snn, chosen)
    anns = {}
    if bfloat16_supported():
        networks["snn burst T=1, bfloat16"] = snn.with_precision("bfloat16")
        networks["snn burst T=1, bfloat16, fresh"] = snn.with_precision("bfloat16").with_neuron(fresh)
        anns["ann bfloat16"] = bfloat16_forward(bundle.model)
    if int8_supported():
        networks["snn burst T=1, int8, fresh"] = snn.with_precision("int8").with_neuron(fresh)
    if compiler_found() is not None:
        for name in list(networks):
            if "sparse" in name:
                continue
            compiled = networks[name].with_compilation(report=print)
            if compiled.prepare_compiled(windows[0][None]):
                networks[name + ", compiled"] = compiled
        for name, forward in [("ann", bundle.model), *anns.items()]:
            anns[name + " compiled"] = torch.compile(forward, dynamic=False)
    times = time_side_by_side(bundle, networks, windows, anns)
    stream = torch.stack(windows)
    cost = measure_window_cost(snn, stream, (len(windows),))[len(windows)].per_step()
    result = {
        "model": model,
        "windows": len(windows),
        "input": list(windows[0].shape),
        "cpu_ms_per_window_median": {name: statistics.median(t) for name, t in times.items()},
        "cpu_ms_per_window_mean": {name: statistics.fmean(t) for name, t in times.items()},
        "ratio_to_ann_mean": {
            name: statistics.fmean(t) / statistics.fmean(times["ann"])
            for name, t in times.items()
            if name != "ann"
        },
        "ratio_to_ann_bfloat16_mean": {
            name: statistics.fmean(t) / statistics.fmean(times["ann bfloat16"])
            for name, t in times.items()
            if "bfloat16" in name and name != "ann bfloat16"
        },
        "ratio_to_partner_ann_mean": {
            name: statistics.fmean(t) / statistics.fmean(times[partner_ann(name)])
            for name, t in times.items()
            if not name.startswith("ann") and partner_ann(name) in times
        },
        "operations_per_window": cost.summary(),
        "sparse": {"layers": crossovers, "chosen": chosen},
    }
    if chosen:
        sparse_network = networks["snn burst T=1, sparse layers"]
        with torch.no_grad():
            dense, _ = snn.run(stream[:4], snn.initial_state(1))
            sparse, _ = sparse_network.run(stream[:4], sparse_network.initial_state(1))
        result["sparse"]["max_abs_output_difference"] = max(
            float((a - b).abs().max()) for a, b in zip(dense, sparse, strict=True)
        )
    return result, cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, metavar="SPLIT_DIR", help="a built split, e.g. data/v3-maritime/test"
    )
    parser.add_argument("--models", default="events-default,events-fast")
    parser.add_argument("--windows", type=int, default=24, help="consecutive windows timed (24)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per crossover point (5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--plot", default=None, metavar="PNG", help="per-layer energy per window beside the ANN's"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "data": args.data,
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "models": {},
    }
    costs = {}
    for model in args.models.split(","):
        result, cost = measure_model(model, args.data, args.windows, args.repeats)
        report["models"][model] = result
        costs[f"{model}, burst, 1 step / window"] = cost
        print(json.dumps({k: v for k, v in result.items() if k != "sparse"}, indent=2), flush=True)
        chosen = result["sparse"]["chosen"]
        print(f"{model}: sparse path chosen for {len(chosen)} layers {sorted(chosen)}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        plot_window_cost(costs, args.plot, title=f"cost of one window, {args.data}")


if __name__ == "__main__":
    main()
