"""One step of a converted network as a single graph, compiled by ``torch.compile`` (Inductor).

The native engine (``streamdet.snn``) walks the converted graph node by node: every convolution is one
oneDNN call, and every IF population is five or six elementwise passes over its membrane (add, floor,
clamp, subtract, bound, scale), each a separate kernel with its own allocation, plus the casts around
bfloat16 convolutions and the Python dispatch between them. On the 2-core sandbox those passes and casts
are more than half of a step of ``events-fast`` (torch profiler, 12 steps: convolutions 44 %, casts 14 %,
neuron passes about 25 %).

Here one step of the whole network is written as one fx graph (:func:`step_graph`): its inputs are the
step's input ``x [B, C, H, W]`` and the membrane of every population, its outputs the network's outputs
and the new membranes, and each population is ``streamdet.neurons.burst_step`` (burst populations) or
``if_step`` (IF populations), the one-step forms of the scans the native engine runs:

    burst:  v = v + N z;  c = clamp(floor(v / theta), 0, N);  v = v - c theta;  v = bound(v);  s = c / N
    IF:     v = v + z;    s = [v >= theta];  v = v - s theta (or 0 where s, reset to zero);  v = bound(v)

Inductor fuses each population's passes (and the casts beside them) into one C++ loop and leaves the
convolutions on oneDNN: on the sandbox a step of ``events-fast`` (bfloat16) takes 7.1 ms against 10.6 ms
node by node, ``events-default`` 12.8 against 19.7 ms (bench/bench_cost.py; docs/conversion.md,
"Compiled steps").

A network stepping from fresh membranes (both bounds at the initial membrane, ``IFParameters.fresh``: the
detector's ``--membranes fresh``, the default for burst neurons) gets a graph ``x -> (outputs, ())``: each
population starts from the constant initial membrane and nothing is read or written for the next step,
which takes a fifth to a quarter off a compiled bfloat16 step (docs/conversion.md, "Compiled steps").

Compiling needs a C++ compiler (Inductor's CPU backend) and takes 10-25 s per input shape the first
time; torch caches the result on disk (``TORCHINDUCTOR_CACHE_DIR``, by default under the system's
temporary directory), after which a start takes about 4 s. :class:`CompiledStep` compiles one callable
per input shape: synchronously when asked (:meth:`CompiledStep.prepare`, the detector's warm-up at the
model's sensor size), otherwise in a background thread while the caller keeps the node-by-node engine,
so that a stream of a new size never stalls on a compile. A compile that fails (no compiler, an
operation Inductor cannot lower) is reported once and that shape stays on the native engine.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from streamdet.neurons import BurstParameters, IFParameters, IFState, add_channel_offset, burst_step, if_step


def burst_population(
    v: torch.Tensor, current: torch.Tensor, params: BurstParameters
) -> tuple[torch.Tensor, torch.Tensor]:
    """One burst step, ``(counts / N, new membrane)``: ``streamdet.neurons.burst_step`` (the arithmetic
    of ``burst_scan``), and the division by ``N`` of the native engine."""
    counts, state = burst_step(current, IFState(v=v), params)
    return counts / params.max_spikes, state.v


def if_population(
    v: torch.Tensor, current: torch.Tensor, params: IFParameters
) -> tuple[torch.Tensor, torch.Tensor]:
    """One IF step, ``(spikes, new membrane)``: ``streamdet.neurons.if_step``."""
    spikes, state = if_step(current, IFState(v=v), params)
    return spikes, state.v


def step_graph(plan, neuron, populations: list[str]) -> fx.GraphModule:
    """One step of ``plan`` (``streamdet.snn._ExecutionPlan``: its graph and the modules it runs, e.g.
    bfloat16 convolution copies) with the IF ``neuron`` parameters, as a graph ``(x, *membranes) ->
    (outputs, tuple of new membranes)``; ``populations`` names the IF populations (``IFNeurons`` modules:
    ``spikes_per_step``, ``current_offset``), membranes in that order."""
    graph = fx.Graph()
    root = nn.Module()
    x = graph.placeholder("x")
    fresh = neuron.fresh
    names = () if fresh else populations
    membranes = {name: graph.placeholder("v_" + name.replace(".", "_")) for name in names}
    env: dict[fx.Node, Any] = {}
    new_membranes: dict[str, fx.Node] = {}
    for node in plan.nodes:
        if node.op == "placeholder":
            env[node] = x
        elif node.op == "output":
            outputs = fx.node.map_arg(node.args[0], lambda n: _as_float32(graph, env[n]))
            graph.output((outputs, () if fresh else tuple(new_membranes[name] for name in populations)))
            break
        elif node.op == "call_module" and node.target in populations:
            module = plan.modules[node.target]
            current = env[node.args[0]]
            offset = getattr(module, "current_offset", None)
            if offset is not None:
                attribute = "offset_" + node.target.replace(".", "_")
                root.register_buffer(attribute, offset)
                current = graph.call_function(add_channel_offset, (current, graph.get_attr(attribute)))
            burst = module.spikes_per_step
            if fresh:  # every step from the initial membrane: a constant, nothing read or written
                start = neuron.initial_membrane * neuron.threshold
                v = graph.call_function(torch.full_like, (current, start))
            else:
                v = membranes[node.target]
            if burst > 1:
                params = BurstParameters.from_if(neuron, burst)
                pair = graph.call_function(burst_population, (v, current, params))
            else:
                pair = graph.call_function(if_population, (v, current, neuron))
            env[node] = graph.call_function(operator.getitem, (pair, 0))
            if not fresh:
                new_membranes[node.target] = graph.call_function(operator.getitem, (pair, 1))
        elif node.op == "call_module":
            attribute = "m_" + node.target.replace(".", "_")
            if not hasattr(root, attribute):
                root.add_module(attribute, plan.run_modules[node.target])
            args, kwargs = fx.node.map_arg((node.args, node.kwargs), env.__getitem__)
            env[node] = graph.call_module(attribute, args, kwargs)
        elif node.op == "get_attr":
            attribute = "a_" + node.target.replace(".", "_")
            value = plan.graph_module
            for part in node.target.split("."):
                value = getattr(value, part)
            if not hasattr(root, attribute):
                setattr(root, attribute, value)
            env[node] = graph.get_attr(attribute)
        else:
            env[node] = graph.node_copy(node, env.__getitem__)
    return fx.GraphModule(root, graph).eval()


def _as_float32(graph: fx.Graph, node: fx.Node) -> fx.Node:
    """``node`` cast to float32 in the graph: the heads of a bfloat16 network end in bfloat16
    convolutions, and the cast, fused with the concatenation of the pyramid levels before it, saves the
    caller a separate pass (and allocation) over every anchor's outputs."""
    return graph.call_method("float", (node,))


def _shape_key(x: torch.Tensor) -> tuple:
    return (tuple(x.shape), x.dtype, x.device.type)


class CompiledStep:
    """One step of a network, compiled per input shape (module docstring).

    Call it with ``(x [B, C, H, W], membranes {population: tensor})``: it returns ``(outputs, new
    membranes)`` where a compiled callable for ``x``'s shape is ready, else None (and starts compiling
    one in the background). ``report`` receives a line once per failed compile.
    """

    def __init__(
        self, plan, neuron, populations: list[str], report: Callable[[str], None] | None = None
    ) -> None:
        self.populations = list(populations)
        self.fresh = neuron.fresh
        """Every step from the initial membrane: the graph takes and gives back no membranes."""
        self.module = step_graph(plan, neuron, self.populations)
        self.report = report
        self._ready: dict[tuple, Callable] = {}
        self._failed: dict[tuple, str] = {}
        self._pending: dict[tuple, threading.Thread] = {}
        self._lock = threading.Lock()

    def __call__(self, x: torch.Tensor, membranes: dict[str, torch.Tensor]) -> tuple[Any, dict] | None:
        key = _shape_key(x)
        function = self._ready.get(key)
        if function is None:
            self._start(key, x, membranes)
            return None
        if self.fresh:
            outputs, _ = function(x)
            return outputs, membranes
        outputs, new = function(x, *(membranes[name] for name in self.populations))
        return outputs, dict(zip(self.populations, new, strict=True))

    def ready(self, x: torch.Tensor) -> bool:
        """Whether a compiled callable for ``x``'s shape is ready."""
        return _shape_key(x) in self._ready

    def failure(self, x: torch.Tensor) -> str | None:
        """Why compiling for ``x``'s shape failed, or None."""
        return self._failed.get(_shape_key(x))

    def prepare(self, x: torch.Tensor, membranes: dict[str, torch.Tensor]) -> bool:
        """Compile for ``x``'s shape now (waiting for a compile already under way); True when ready."""
        key = _shape_key(x)
        self._start(key, x, membranes)
        thread = self._pending.get(key)
        if thread is not None:
            thread.join()
        return key in self._ready

    def _start(self, key: tuple, x: torch.Tensor, membranes: dict[str, torch.Tensor]) -> None:
        with self._lock:
            if key in self._ready or key in self._failed or key in self._pending:
                return
            kept = () if self.fresh else tuple(membranes[name].clone() for name in self.populations)
            example = (x.clone(), *kept)
            thread = threading.Thread(target=self._compile, args=(key, example), daemon=True)
            self._pending[key] = thread
        thread.start()

    def _compile(self, key: tuple, example: tuple[torch.Tensor, ...]) -> None:
        try:
            function = torch.compile(self.module, dynamic=False, fullgraph=True)
            with torch.no_grad():
                _, membranes = function(*example)
                function(example[0], *membranes)  # membranes in the layout the compiled step returns them
            self._ready[key] = function
        except Exception as error:  # noqa: BLE001 - any failure keeps the native engine for this shape
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            self._failed[key] = f"{type(error).__name__}: {first_line}"
            if self.report is not None:
                self.report(
                    f"compile: input {tuple(key[0])} stays on the node-by-node engine: {self._failed[key]}"
                )
        finally:
            with self._lock:
                self._pending.pop(key, None)
