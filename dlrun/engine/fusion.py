"""GPU-only options of a replay (``hybridize(fuse_elementwise=True)``, ``cuda_graph=True``).

Elementwise fusion: a chain of elementwise ops in a traced graph, each reading the previous
one's output that nothing else reads, becomes one ``cupy.fuse`` kernel. Fused steps replace
the chain's steps only in replays that record no gradient; a replay that records keeps the
ops' own steps, whose vjps the backward needs.

CUDA-graph capture: a replay that records no gradient is captured once on a stream, reading
static input and parameter buffers; later calls copy into those buffers, launch the graph
and copy the outputs out. Where capture fails (the device refuses it, the graph draws random
numbers), replays run uncaptured.
"""
from __future__ import annotations

from typing import Any, Callable

from .backend import Context, device_scope
from .ndarray import NDArray

ELEMENTWISE = frozenset({
    "add", "subtract", "multiply", "divide", "power", "negative", "maximum", "minimum",
    "exp", "log", "sqrt", "square", "abs", "sign", "log1p", "expm1", "tanh", "sigmoid", "relu",
    "leaky_relu", "elu", "softrelu", "softsign", "clip", "sin", "cos", "tan", "arcsin",
    "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "degrees", "radians",
    "reciprocal", "rsqrt", "cbrt", "rcbrt", "log2", "log10", "floor", "ceil", "fix", "trunc",
})


def chains(graph: Any) -> list[list[int]]:
    """The node indices of each fusable chain (two ops or more), in graph order."""
    readers: dict[int, int] = {}
    for node in graph.nodes:
        for s in node.args:
            if s is not None:
                readers[s] = readers.get(s, 0) + 1
    outputs = set(graph.outputs)
    found: list[list[int]] = []
    run: list[int] = []
    for k, node in enumerate(graph.nodes):
        fusable = node.op.name in ELEMENTWISE and len(node.outs) == 1
        if fusable and run:
            prev = graph.nodes[run[-1]].outs[0]
            if prev in node.args and readers[prev] == 1 and prev not in outputs:
                run.append(k)
                continue
        if len(run) > 1:
            found.append(run)
        run = [k] if fusable else []
    if len(run) > 1:
        found.append(run)
    return found


def fused_steps(graph: Any, xp: Any) -> list[tuple]:
    """``graph._steps`` with each chain replaced by one step running a ``xp.fuse`` kernel."""
    steps: list[tuple] = []
    chain_at = {run[0]: run for run in chains(graph)}
    k = 0
    while k < len(graph.nodes):
        run = chain_at.get(k)
        if run is None:
            steps.append(graph._steps[k])
            k += 1
            continue
        members = [graph._steps[i] for i in run]
        inner = {m[4][0] for m in members}
        ext = tuple(dict.fromkeys(s for m in members for s in m[1] if s is not None and s not in inner))
        frees = tuple(s for m in members for s in m[5])
        steps.append((_fused(xp, members, ext), ext, None, {}, members[-1][4], frees, 0))
        k = run[-1] + 1
    return steps


def _fused(xp: Any, members: list[tuple], ext: tuple) -> Callable:
    """One kernel computing the chain ``members`` from the values of the slots ``ext``."""
    def chain(*values: Any) -> Any:
        env = dict(zip(ext, values))
        for forward, args, lits, attrs, outs, _, flags in members:
            raw = [env[s] for s in args] if lits is None else [
                env[s] if s is not None else lit for s, lit in zip(args, lits)]
            y = forward(xp, *raw, **attrs)
            env[outs[0]] = y[0] if flags & 2 else y
        return env[members[-1][4][0]]
    kernel = xp.fuse(chain)
    return lambda _xp, *values: kernel(*values)


class CaptureRefused(RuntimeError):
    """A graph that a CUDA graph cannot replay faithfully."""


class Capture:
    """One graph's replay captured as a CUDA graph over static buffers (predict only)."""

    def __init__(self, graph: Any, leaves: list[NDArray], params: list[NDArray], ctx: Context):
        if graph._needs_rng:
            raise CaptureRefused("the graph draws random numbers, which a captured graph would "
                                 "repeat on every launch")
        self.ctx = ctx
        self.inputs = [NDArray(x._data.copy(), ctx) for x in leaves]
        self.params = [NDArray(p._data.copy(), ctx) for p in params]
        self.stream = ctx.xp.cuda.Stream(non_blocking=True)
        with device_scope(ctx), self.stream:
            graph.run(self.inputs, self.params, ctx)  # warm-up: kernels compiled, pool filled
            self.stream.begin_capture()
            try:
                self.outputs = graph.run(self.inputs, self.params, ctx)
            finally:
                self.cuda_graph = self.stream.end_capture()

    def __call__(self, leaves: list[NDArray], params: list[NDArray]) -> list[NDArray]:
        xp = self.ctx.xp
        with device_scope(self.ctx), self.stream:
            for buf, x in zip(self.inputs + self.params, leaves + params):
                xp.copyto(buf._data, x._data)
            self.cuda_graph.launch(self.stream)
            outs = [NDArray(o._data.copy(), self.ctx) for o in self.outputs]
        self.stream.synchronize()
        return outs
