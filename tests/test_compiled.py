"""Compiled steps (streamdet.compiled): one graph per step, compiled by torch.compile (Inductor), the
same simulation as the node-by-node engine; compiled in the background for a new input size."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_detector import CONFIG, DT_US, feed_in_packets, random_events, tiny_spiking_detector
from test_snn import burst_network, converted_network, random_stream, run_recording

from streamdet.compiled import step_graph
from streamdet.detector import StreamDetector
from streamdet.live import compiler_found, resolve_compile
from streamdet.snn import bfloat16_supported, int8_supported

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif(compiler_found() is None, reason="no C++ compiler for torch.compile's CPU backend"),
]


def compiled_recording(network, stream: torch.Tensor, chunks: list[int]) -> tuple:
    """``run_recording`` of the compiled network, compiled first for the stream's step shape, without a
    probe (a probe runs node by node): (outputs, membranes of the final state)."""
    compiled = network.with_compilation()
    assert compiled.prepare_compiled(stream[:1])
    state = compiled.initial_state(stream.shape[1])
    outputs = []
    for chunk in torch.split(stream, chunks):
        out, state = compiled.run(chunk, state)
        outputs.append(out)
    return tuple(torch.cat([o[i] for o in outputs]) for i in range(len(outputs[0]))), state


def fresh(network):
    """``network`` with every step from the initial membrane (``DetectorConfig.membranes = "fresh"``)."""
    return network.with_neuron(network.neuron.with_bounds((0.5, 0.5)))


@pytest.mark.parametrize(
    "make",
    [lambda: burst_network(4), lambda: converted_network(), lambda: converted_network("zero"),
     lambda: fresh(burst_network(4)), lambda: fresh(converted_network())],
    ids=["burst-bounded", "if-subtract", "if-zero", "burst-fresh", "if-fresh"],
)  # fmt: skip
def test_compiled_steps_equal_the_node_by_node_engine(make) -> None:
    """With dyadic parameters and inputs (every sum exact, docs of tests/test_snn.py) the compiled steps
    give the node-by-node engine's outputs and membranes bit for bit, over chunks of several steps:
    burst neurons with bounded membranes, IF neurons with reset by subtraction and to zero, and both
    stepping from fresh membranes (a graph that reads and writes no membrane)."""
    network = make()
    stream = random_stream(10, seed=11)
    (reference_outputs, _, reference_state) = run_recording(network, stream, "native", [3, 7])
    outputs, state = compiled_recording(network, stream, [3, 7])
    assert network.compiled_step() is None and state.steps == reference_state.steps == 10
    for a, b in zip(reference_outputs, outputs, strict=True):
        assert torch.equal(a, b)
    for name, v in reference_state.membranes.items():
        assert torch.equal(v, state.membranes[name]), name
    assert any(torch.count_nonzero(o) for o in outputs)
    placeholders = [n for n in step_graph(network._plan, network.neuron, network.populations).graph.nodes
                    if n.op == "placeholder"]  # fmt: skip
    assert len(placeholders) == (1 if network.neuron.fresh else 1 + len(network.populations))


def test_current_offsets_are_part_of_the_compiled_step() -> None:
    """A bias-calibrated population's per-channel offset is added in the compiled graph as in the
    node-by-node engine (same outputs), and changes the outputs against no offset."""
    network = burst_network(4)
    first = network._plan.modules[network.populations[0]]
    first.set_current_offset(torch.full((first_channels(network),), 0.25))
    stream = random_stream(4, seed=12)
    reference, _, _ = run_recording(network, stream, "native", [4])
    outputs, _ = compiled_recording(network, stream, [4])
    for a, b in zip(reference, outputs, strict=True):
        assert torch.equal(a, b)
    first.set_current_offset(None)
    plain, _ = compiled_recording(network, stream, [4])
    assert not torch.equal(plain[0], outputs[0])


def first_channels(network) -> int:
    """Channels of the first population (its current's axis 1), from one probed step."""
    seen = {}
    network.run(random_stream(1), network.initial_state(2), probe=lambda n, s: seen.setdefault(n, s))
    return seen[network.populations[0]].shape[2]


def test_a_new_input_size_compiles_in_the_background_and_runs_node_by_node_meanwhile() -> None:
    """Prepared for one size, a chunk of another size is simulated node by node at once (same outputs as
    the plain engine) while it compiles; once ready, that size runs compiled. The step graph has one
    membrane input per population."""
    network = burst_network(4)
    graph = step_graph(network._plan, network.neuron, network.populations)
    placeholders = [node for node in graph.graph.nodes if node.op == "placeholder"]
    assert len(placeholders) == 1 + len(network.populations)
    compiled = network.with_compilation()
    small = random_stream(3, seed=13)
    assert compiled.prepare_compiled(small[:1])
    large = torch.nn.functional.pad(random_stream(3, seed=14), (0, 8, 0, 8))
    state = compiled.initial_state(2)
    _, state = compiled.run(large[:1], state)  # first step: makes the membranes
    step = compiled.compiled_step()
    assert not step.ready(large[1])
    out, _ = compiled.run(large[1:2], state)  # not ready: node by node, compiling in the background
    want, _ = network.run(large[1:2], state)
    assert all(torch.equal(a, b) for a, b in zip(out, want, strict=True))
    deadline = time.monotonic() + 300
    while not step.ready(large[1]) and step.failure(large[1]) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert step.ready(large[1]), step.failure(large[1])


def test_the_detector_compiles_at_warm_up_and_publishes_the_same_boxes() -> None:
    """``DetectorConfig.compile``: warm-up compiles the step for the model's sensor size, and the node
    publishes the same windows with the same boxes as node by node (within float rounding: the fused
    arithmetic may differ in the last bits; the top box within 0.5 px and 0.02 in score)."""
    snn = tiny_spiking_detector("events")
    events = random_events(6000, 12 * DT_US, seed=4)
    bounds = [0, 3000, 9000, 15_000, 24_000]
    plain = feed_in_packets(StreamDetector(snn, CONFIG), events, bounds, "cam")
    detector = StreamDetector(snn, replace(CONFIG, compile=True))
    detector.warm_up()
    assert detector.snn.compiled and not snn.compiled
    step = detector.snn.compiled_step()
    assert step is not None and len(step._ready) == 1
    compiled = feed_in_packets(detector, events, bounds, "cam")
    assert [r.step for r in compiled] == [r.step for r in plain]
    for a, b in zip(plain, compiled, strict=True):
        assert len(a.rows) > 0 and len(b.rows) > 0
        best = a.rows[np.argmax(a.rows[:, 4])]
        distance = np.abs(b.rows[:, :4] - best[:4]).max(axis=1)
        assert distance.min() < 0.5 and abs(b.rows[np.argmin(distance), 4] - best[4]) < 0.02


def test_compile_choice(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """``--compile``: on and off as said; auto on a CPU where a C++ compiler is on the PATH (or $CXX),
    off on a GPU and where none is found; anything else refused."""
    assert resolve_compile("on") and not resolve_compile("off")
    assert resolve_compile("auto", "cpu") and not resolve_compile("auto", "cuda")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    assert compiler_found() is None and not resolve_compile("auto")
    with pytest.raises(ValueError, match="compile must be one of"):
        resolve_compile("maybe")


@pytest.mark.skipif(not bfloat16_supported(), reason="no bfloat16 convolutions on this CPU")
def test_one_step_per_call_gives_float32_outputs_equal_to_the_node_by_node_engine() -> None:
    """The live node's call: one step from fresh membranes on a bfloat16 network, whose heads end in
    bfloat16 convolutions. The compiled graph casts its outputs to float32 itself and the step axis is
    added without a copy; the outputs are the node-by-node engine's, step by step, bit for bit."""
    network = fresh(burst_network(4)).with_precision("bfloat16")
    stream = random_stream(4, seed=12)
    (reference_outputs, _, _) = run_recording(network, stream, "native", [1, 1, 1, 1])
    outputs, state = compiled_recording(network, stream, [1, 1, 1, 1])
    assert state.steps == 4
    for a, b in zip(reference_outputs, outputs, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b)
    assert any(torch.count_nonzero(o) for o in outputs)


@pytest.mark.skipif(not int8_supported(), reason="no oneDNN int8 convolution in this torch build")
@pytest.mark.parametrize(
    "make", [lambda: fresh(burst_network(4)), lambda: burst_network(4)], ids=["fresh", "kept"]
)
def test_int8_steps_compile_to_the_node_by_node_engine(make) -> None:
    """The int8 convolutions (oneDNN's qconv, their prepacked weights constants of the graph) compile with
    the fused neurons around them: the outputs and membranes of the node-by-node int8 engine, bit for
    bit, one step per call from fresh membranes and chunks of steps with membranes kept."""
    network = make().with_precision("int8")
    stream = random_stream(6, seed=14)
    chunks = [1] * 6 if network.neuron.fresh else [2, 4]
    (reference_outputs, _, reference_state) = run_recording(network, stream, "native", chunks)
    outputs, state = compiled_recording(network, stream, chunks)
    for a, b in zip(reference_outputs, outputs, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b)
    for name, v in reference_state.membranes.items():
        assert torch.equal(v, state.membranes[name]), name
    assert any(torch.count_nonzero(o) for o in outputs)
