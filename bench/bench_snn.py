"""Speed of the spiking runtime: steps per second of the native chunked engine vs step-by-step snntorch.

Usage: ``.venv/bin/python bench/bench_snn.py [--model events-default] [--steps 32] [--chunks 1,8,16]
[--threads 1] [--device cuda] [--json OUT]``. Converts the model with its learned Quant-ReLU clips (no
data), feeds a random event-like input (10 % of pixels active) at sensor resolution, batch 1, and times
``run`` after one warm-up call. Both engines produce the same spikes (tests/test_snn.py); only the speed
differs.

On ``--device`` (default: the GPU when torch sees one; ``--device cpu`` runs the same section on the CPU)
the ANN's dense forward, the IF engine in chunks of 1, 16 and 64 steps, snntorch step by step, and the
burst-neuron network at one step per window are timed side by side on that device, with the burst
step's cost over the ANN forward's (:func:`device_rates`): the GPU figures of the one-step-per-window
issue.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from streamdet.cli.options import parse_size
from streamdet.convert import ConversionConfig, convert_detector
from streamdet.model import load_detector, pad_input


def calls_per_second(call, calls: int, cuda: bool) -> dict[str, float]:
    """Calls of ``call()`` per second of wall time and per second of this process's CPU time, over
    ``calls`` calls after one warm-up call (synchronised on a GPU). CPU time is the fairer figure on a
    machine shared with other jobs (wall time then includes waiting for a core)."""
    call()
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    if cuda:
        torch.cuda.synchronize()
    return {
        "steps_per_s_wall": calls / (time.perf_counter() - wall),
        "steps_per_cpu_s": calls / (time.process_time() - cpu),
    }


def steps_per_second(snn, inputs: torch.Tensor, steps: int, chunk: int, backend: str) -> dict[str, float]:
    """Simulated steps per second (:func:`calls_per_second`) over at least ``steps`` steps in calls of
    ``chunk`` steps, the state carried from call to call."""
    holder = {"state": snn.initial_state(inputs.shape[1], inputs.device)}

    def step() -> None:
        _, holder["state"] = snn.run(inputs[:chunk], holder["state"], backend=backend)

    rates = calls_per_second(step, -(-steps // chunk), inputs.is_cuda)
    return {name: rate * chunk for name, rate in rates.items()}


def forwards_per_second(model: torch.nn.Module, inputs: torch.Tensor, calls: int) -> dict[str, float]:
    """Dense forwards per second of the ANN ``model`` on ``inputs [1, C, H, W]``
    (:func:`calls_per_second`)."""
    with torch.no_grad():
        return calls_per_second(lambda: model(inputs), calls, inputs.is_cuda)


def device_rates(bundle, snn, burst_snn, inputs: torch.Tensor, device: str, chunks=(1, 16, 64)) -> dict:
    """On ``device``: the ANN's dense forward, the IF engine in ``chunks``, snntorch step by step and the
    burst network one step at a time (one step per window), in steps per second; ``burst step / ANN
    forward`` is the burst step's wall time over the forward's (below 1: cheaper than the ANN)."""
    device_inputs = inputs.to(device)
    model = bundle.model.to(device).eval()
    rates: dict = {"device": torch.cuda.get_device_name(device) if device.startswith("cuda") else device}
    rates["ANN dense forward"] = forwards_per_second(model, device_inputs[0], 4 * max(chunks))
    snn.to(device)
    for chunk in chunks:
        rates[f"IF native K={chunk}"] = steps_per_second(snn, device_inputs, 4 * chunk, chunk, "native")
    rates["IF snntorch step-by-step"] = steps_per_second(snn, device_inputs, 16, 1, "snntorch")
    burst_snn.to(device)
    rates["burst native K=1"] = steps_per_second(burst_snn, device_inputs, 4 * max(chunks), 1, "native")
    ann, burst = rates["ANN dense forward"]["steps_per_s_wall"], rates["burst native K=1"]["steps_per_s_wall"]
    rates["burst step / ANN forward"] = ann / burst
    return rates


def spike_agreement(snn, inputs: torch.Tensor) -> dict[str, float]:
    """Neuron-steps whose spike differs between the native engine (one chunk) and snntorch step by step,
    with the model's float32 weights (the tests show identity with dyadic weights)."""
    spikes: dict[str, dict[str, list[torch.Tensor]]] = {"native": {}, "snntorch": {}}
    for backend, record in spikes.items():
        probe = lambda name, s, record=record: record.setdefault(name, []).append(s)  # noqa: E731
        snn.run(inputs, snn.initial_state(inputs.shape[1]), backend=backend, probe=probe)
    native = {name: torch.cat(parts) for name, parts in spikes["native"].items()}
    stepwise = {name: torch.cat(parts) for name, parts in spikes["snntorch"].items()}
    differing = sum(int((native[n] != stepwise[n]).sum()) for n in native)
    return {
        "steps": inputs.shape[0],
        "neuron_steps": sum(v.numel() for v in native.values()),
        "spikes": float(sum(v.sum() for v in native.values())),
        "differing": differing,
    }


def convolution_share(snn, inputs: torch.Tensor, chunk: int) -> dict[str, float]:
    """Share of the native engine's CPU time per operator (torch profiler, one chunk after a warm-up)."""
    from torch.profiler import profile

    state = snn.initial_state(inputs.shape[1])
    _, state = snn.run(inputs[:chunk], state)
    with profile() as profiler:
        snn.run(inputs[:chunk], state)
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:6]
    return {e.key: e.self_cpu_time_total / total for e in top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="events-default")
    parser.add_argument("--steps", type=int, default=32, help="steps timed per native configuration")
    parser.add_argument("--reference-steps", type=int, default=8, help="steps timed for snntorch")
    parser.add_argument("--chunks", default="1,8,16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--input-size",
        type=parse_size,
        default=None,
        metavar="WxH",
        help="simulate this input size instead of the sensor's",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else None,
        help="also time the ANN, IF and burst engines side by side here (default: cuda when torch sees a "
        "GPU, else skipped; cpu runs that section on the CPU)",
    )
    parser.add_argument("--json", default=None)
    parser.add_argument("--profile", action="store_true", help="also report the CPU time share per operator")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_detector(args.model)
    snn = convert_detector(bundle, None, ConversionConfig(normalisation="quant"), progress=False)
    width, height = bundle.spec.sensor_size
    if args.input_size:
        width, height = args.input_size
    generator = torch.Generator().manual_seed(0)
    channels = bundle.config.in_channels
    chunks = [int(c) for c in args.chunks.split(",")]
    gpu_chunks = (1, 16, 64)
    frames = max(chunks + list(gpu_chunks))
    active = torch.rand(frames, 1, channels, height, width, generator=generator) < 0.1
    inputs = pad_input(active.float().flatten(0, 1)).unflatten(0, (-1, 1))
    result = {
        "model": args.model,
        "input": f"1 x {channels} x {inputs.shape[-2]} x {inputs.shape[-1]} ({width}x{height} padded)",
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "populations": len(snn.populations),
        "cpu": {},
    }
    for chunk in chunks:
        rate = steps_per_second(snn, inputs, args.steps, chunk, "native")
        result["cpu"][f"native K={chunk}"] = rate
        print(f"cpu native K={chunk:3d}: {rate}", flush=True)
    reference = steps_per_second(snn, inputs, args.reference_steps, 1, "snntorch")
    result["cpu"]["snntorch step-by-step"] = reference
    print(f"cpu snntorch step-by-step: {reference}", flush=True)
    best = max(v["steps_per_cpu_s"] for k, v in result["cpu"].items() if k.startswith("native"))
    result["cpu"]["speed-up (CPU time) of best native over snntorch"] = best / reference["steps_per_cpu_s"]
    print(f"speed-up (CPU time): {best / reference['steps_per_cpu_s']:.1f}x")
    if args.profile:
        result["cpu_share_per_operator"] = convolution_share(snn, inputs, max(chunks))
        print(f"cpu share per operator: {result['cpu_share_per_operator']}", flush=True)
    result["spike_agreement"] = spike_agreement(snn, inputs[: args.reference_steps])
    print(f"native vs snntorch spikes: {result['spike_agreement']}", flush=True)
    if args.device:
        burst_snn = convert_detector(
            bundle, None, ConversionConfig(normalisation="quant", burst=True), progress=False
        )
        result["device"] = device_rates(bundle, snn, burst_snn, inputs, args.device, gpu_chunks)
        print(json.dumps(result["device"], indent=2))
    else:
        result["device"] = "no CUDA device on this machine (--device cpu runs this section on the CPU)"
        print("device: no CUDA device on this machine")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
