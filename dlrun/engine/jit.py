"""hybridize()'s JIT: trace a call through the op registry into a graph, replay it, export it.

Tracing runs the Python function once on real arrays while the registry reports every op it
invokes (its name, inputs and attributes) to a :class:`Tracer`. The result is a
:class:`Graph` of registered ops over numbered value slots: the call's inputs, the
parameters it read, constants, and the ops' outputs. While tracing:

* ops whose inputs are all constants are folded: their traced outputs become constants;
* an array that depends on an input leaving the registry (``asnumpy()``, ``bool(x)``,
  ``x[...] = v``) or a random draw made outside an op marks the call untraceable, because
  the graph could not reproduce it; the caller then stays imperative.

:meth:`Graph.run` replays the ops without the Python that produced them. Values are freed
after their last use, and when autograd is recording the whole replay becomes ONE autograd
node whose backward runs the ops' own vector-Jacobian products (no second implementation of
any gradient). A graph serialises to JSON (op names, attributes, shapes) plus an ``.npz`` of
its parameters and constants; loading accepts only registered op names and the attribute
types below, and never runs code from the file.
"""
from __future__ import annotations

import functools
import inspect
import json
from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import autograd, fusion
from .backend import Context, device_scope, generator, module_of
from .files import write_atomic
from .ndarray import NDArray
from .registry import OPS, Op

FORMAT = "dlrun-graph"
VERSION = 1


class TraceError(RuntimeError):
    """A call cannot be compiled into a graph; it has to run imperatively."""


class GraphFormatError(ValueError):
    """A graph file (JSON + parameters) is not a valid dlrun graph."""


# --- the graph --------------------------------------------------------------------------
class GraphNode:
    """One op call: ``args[i]`` is a value slot, or None where ``literals[i]`` is a constant."""

    __slots__ = ("op", "args", "literals", "attrs", "outs", "out_meta", "frees")

    def __init__(self, op: Op, args: tuple, literals: tuple, attrs: dict, outs: tuple,
                 out_meta: tuple):
        self.op = op
        self.args = args
        self.literals = literals
        self.attrs = attrs
        self.outs = outs
        self.out_meta = out_meta  # ((shape, dtype), ...) per output
        self.frees: tuple = ()    # slots whose last use is this node (set by Graph)


class Graph:
    """A traced computation over value slots numbered inputs, parameters, constants, then
    op outputs. ``outputs`` are slots; ``output_tree`` rebuilds the caller's structure."""

    def __init__(self, input_meta: list, param_names: list[str], param_meta: list,
                 consts: list, nodes: list[GraphNode], outputs: list[int], output_tree: Any,
                 training: bool, input_names: list[str] | None = None,
                 param_grad_reqs: list[str] | None = None):
        self.input_meta = input_meta    # [(shape, dtype)] per input
        self.param_names = param_names
        self.param_meta = param_meta
        self.consts = consts            # xp arrays
        self.nodes = nodes
        self.outputs = outputs
        self.output_tree = output_tree
        self.training = training
        self.input_names = input_names or (
            ["data"] if len(input_meta) == 1 else [f"data{i}" for i in range(len(input_meta))])
        self.param_grad_reqs = param_grad_reqs or ["write"] * len(param_names)
        self.n_leaves = len(input_meta) + len(param_names)
        self.n_slots = self.n_leaves + len(consts) + sum(len(n.outs) for n in nodes)
        self._plan_frees()

    def _plan_frees(self) -> None:
        """Memory planning: each value is dropped right after the last op that reads it."""
        last: dict[int, int] = {}
        for k, node in enumerate(self.nodes):
            for s in node.args:
                if s is not None:
                    last[s] = k
            for s in node.outs:
                last.setdefault(s, k)  # an output nobody reads dies at once
        keep = set(self.outputs) | set(range(self.n_leaves + len(self.consts)))
        frees: list[list[int]] = [[] for _ in self.nodes]
        for s, k in last.items():
            if s not in keep:
                frees[k].append(s)
        for node, f in zip(self.nodes, frees):
            node.frees = tuple(f)
        self._compile_steps()

    def __repr__(self) -> str:
        return (f"<Graph {len(self.input_meta)} inputs, {len(self.param_names)} parameters, "
                f"{len(self.consts)} constants, {len(self.nodes)} ops, {len(self.outputs)} outputs>")

    # --- replay ---------------------------------------------------------------------------
    def run(self, inputs: Sequence[NDArray], params: Sequence[NDArray], ctx: Context) -> list[NDArray]:
        """The outputs for ``inputs`` and ``params`` (in ``param_names`` order), as one
        autograd node when recording and a leaf needs a gradient."""
        leaves = list(inputs) + list(params)
        if autograd._state.tracer is not None:  # inside another trace: let it see every op
            return self._invoke_each(leaves, ctx)
        env: list[Any] = [None] * self.n_slots
        for i, x in enumerate(leaves):
            env[i] = x._data
        env[self.n_leaves:self.n_leaves + len(self.consts)] = self.consts
        mask = tuple(x._node is not None for x in leaves) if autograd._state.recording else ()
        plan, need = self._plan(mask) if any(mask) else (self._no_grads, None)
        tape: list[tuple[GraphNode, Callable, tuple]] = []
        xp = ctx.xp
        steps = self._steps
        if self.fuse_elementwise and need is None and ctx.device_type == "gpu":
            steps = self._fused.get(xp) or self._fused.setdefault(xp, fusion.fused_steps(self, xp))
            plan = [None] * len(steps)
        rng = generator(ctx) if self._needs_rng else None
        with device_scope(ctx):
            for node, (forward, args, lits, attrs, outs, frees, flags), needed in zip(
                    self.nodes, steps, plan):
                raw = [env[s] for s in args] if lits is None else [
                    env[s] if s is not None else lit for s, lit in zip(args, lits)]
                result = forward(xp, *raw, **(dict(attrs, rng=rng) if flags & 1 else attrs))
                if flags & 2:  # differentiable
                    result, vjp = result
                    if needed is not None:
                        tape.append((node, functools.partial(vjp, needed=needed)
                                     if flags & 4 else vjp, needed))
                if len(outs) == 1:
                    env[outs[0]] = result
                else:
                    for s, v in zip(outs, result):
                        env[s] = v
                for s in frees:
                    env[s] = None
        first_op = self.n_leaves + len(self.consts)
        outputs = [leaves[s] if s < self.n_leaves else NDArray(env[s] if s >= first_op else env[s].copy(), ctx)
                   for s in self.outputs]  # a constant output is a copy: the caller may write to it
        if tape:
            self._attach(tape, leaves, outputs, need)
        return outputs

    def _compile_steps(self) -> None:
        """Per node, what the replay loop needs without attribute lookups."""
        self._steps = [
            (n.op.forward, n.args, None if all(s is not None for s in n.args) else n.literals,
             n.attrs, n.outs, n.frees,
             (1 if n.op.needs_rng else 0) | (2 if n.op.differentiable else 0) | (4 if n.op.vjp_needs else 0))
            for n in self.nodes]
        self._needs_rng = any(n.op.needs_rng for n in self.nodes)
        self._no_grads = [None] * len(self.nodes)
        self._plans: dict[tuple, tuple[list, list]] = {}
        self.fuse_elementwise = False  # set by CachedOp: fused chains on a GPU (dlrun.engine.fusion)
        self._fused: dict[Any, list] = {}

    def _plan(self, mask: tuple) -> tuple[list, list]:
        """For the leaves that need gradients (``mask``): per node the inputs that need one
        (None: no gradient flows through the node), and which slots need one."""
        cached = self._plans.get(mask)
        if cached is not None:
            return cached
        need = list(mask) + [False] * (self.n_slots - len(mask))
        plan: list[tuple | None] = []
        for node in self.nodes:
            needed = None
            if node.op.differentiable:
                needed = tuple(s is not None and need[s] for s in node.args)
                if any(needed):
                    for s in node.outs:
                        need[s] = True
                else:
                    needed = None
            plan.append(needed)
        self._plans[mask] = (plan, need)
        return plan, need

    def _invoke_each(self, leaves: list[NDArray], ctx: Context) -> list[NDArray]:
        """Replay op by op through the registry (so autograd and a tracer record each op)."""
        from .registry import invoke
        env: list[Any] = list(leaves) + [NDArray(c, ctx) for c in self.consts]
        env += [None] * (self.n_slots - len(env))
        for node in self.nodes:
            args = tuple(env[s] if s is not None else lit for s, lit in zip(node.args, node.literals))
            out = invoke(node.op, args, node.attrs)
            for s, v in zip(node.outs, out if isinstance(out, tuple) else (out,)):
                env[s] = v
        return [env[s] for s in self.outputs]

    def _attach(self, tape: list, leaves: list[NDArray], outputs: list[NDArray], need: list) -> None:
        """Make the replay one autograd node whose backward runs the tape's vjps in reverse."""
        out_slots = self.outputs
        n_leaves = self.n_leaves
        spent: list[bool] = []

        def vjp(out_grads: Any) -> tuple:
            if spent:
                raise autograd.graph_freed("hybrid_graph")
            if len(out_slots) == 1:
                out_grads = (out_grads,)
            grads: dict[int, Any] = {}
            for s, g in zip(out_slots, out_grads):
                if g is not None:
                    grads[s] = g if s not in grads else grads[s] + g
            if autograd._state.retain_graph:
                entries: Iterator[tuple] = reversed(tape)
            else:  # as autograd frees each node after its vjp: each entry's saved arrays go at once
                spent.append(True)
                entries = _drain(tape)
            for node, node_vjp, needed in entries:
                gs = [grads.pop(s, None) for s in node.outs]
                if all(g is None for g in gs):
                    continue
                if len(gs) == 1:
                    in_grads = node_vjp(gs[0])
                else:
                    xp = module_of(next(g for g in gs if g is not None))
                    in_grads = node_vjp(tuple(xp.zeros(shape, dtype) if g is None else g
                                              for g, (shape, dtype) in zip(gs, node.out_meta)))
                for s, g, wanted in zip(node.args, in_grads, needed):
                    if wanted and g is not None:
                        grads[s] = g if s not in grads else grads[s] + g
            return tuple(grads.get(i) for i in range(n_leaves))

        parents = tuple((x._node, x._index) if need[i] else None for i, x in enumerate(leaves))
        node = autograd.Node("hybrid_graph", vjp, parents, len(outputs),
                             tuple((o.shape, o.dtype) for o in outputs))
        for i, (o, s) in enumerate(zip(outputs, out_slots)):
            if s >= n_leaves and need[s]:  # a leaf returned as it is keeps its own node
                o._node, o._index = node, i

    # --- serialisation --------------------------------------------------------------------
    def to_json(self) -> dict:
        """The graph as a JSON-ready dict (parameters and constants go to the .params file)."""
        def meta(shape: tuple, dtype: Any) -> dict:
            return {"shape": list(shape), "dtype": np.dtype(dtype).name}
        nodes = []
        for k, n in enumerate(self.nodes):
            try:
                attrs = {key: encode_attr(v) for key, v in n.attrs.items()}
                args = [s if s is not None else {"value": encode_attr(lit)}
                        for s, lit in zip(n.args, n.literals)]
            except TypeError as e:
                raise TraceError(f"op {k} ({n.op.name}) cannot be exported: {e}") from None
            nodes.append({"op": n.op.name, "inputs": args, "attrs": attrs,
                          "outputs": [meta(*m) for m in n.out_meta]})
        return {
            "format": FORMAT, "version": VERSION, "training": self.training,
            "inputs": [dict(name=name, **meta(*m)) for name, m in zip(self.input_names, self.input_meta)],
            "params": [dict(name=name, grad_req=req, **meta(*m)) for name, m, req in
                       zip(self.param_names, self.param_meta, self.param_grad_reqs)],
            "constants": [meta(c.shape, c.dtype) for c in self.consts],
            "nodes": nodes, "outputs": list(self.outputs), "output_tree": self.output_tree,
        }

    def save(self, symbol_file: str, param_file: str, params: Sequence[NDArray]) -> None:
        """Write the graph JSON and an npz of ``params`` (and the constants), each atomically."""
        text = json.dumps(self.to_json(), indent=1)
        arrays = {name: p.asnumpy() for name, p in zip(self.param_names, params)}
        arrays.update({f"const:{i}": _host(c) for i, c in enumerate(self.consts)})
        _atomic_write(symbol_file, lambda f: f.write(text.encode()))
        _atomic_write(param_file, lambda f: np.savez(f, **arrays))

    @classmethod
    def from_json(cls, spec: Any, consts: Sequence[Any], where: str = "graph") -> "Graph":
        """Rebuild a graph from :meth:`to_json`'s dict; only registered ops are accepted."""
        def fail(msg: str) -> GraphFormatError:
            return GraphFormatError(f"{where}: {msg}")
        if not isinstance(spec, dict) or spec.get("format") != FORMAT:
            raise fail(f"not a dlrun graph (no \"format\": \"{FORMAT}\" entry)")
        if spec.get("version") != VERSION:
            raise fail(f"graph format version {spec.get('version')!r}; this dlrun reads version {VERSION}")
        try:
            inputs = [(_shape(i["shape"]), _safe_dtype(i["dtype"])) for i in spec["inputs"]]
            names = [str(i["name"]) for i in spec["inputs"]]
            pnames = [str(p["name"]) for p in spec["params"]]
            pmeta = [(_shape(p["shape"]), _safe_dtype(p["dtype"])) for p in spec["params"]]
            reqs = [str(p.get("grad_req", "write")) for p in spec["params"]]
            if not set(reqs) <= {"write", "add", "null"}:
                raise ValueError(f"grad_req values {sorted(set(reqs))} (allowed: write, add, null)")
            n_consts = len(spec["constants"])
            raw_nodes, outputs = spec["nodes"], [int(s) for s in spec["outputs"]]
            if not isinstance(raw_nodes, list) or not isinstance(spec["constants"], list):
                raise ValueError("'nodes' and 'constants' must be lists")
            training = bool(spec.get("training", False))
            tree = _check_tree(spec.get("output_tree"), len(outputs))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise fail(f"malformed header: {e!r}") from None
        if n_consts != len(consts):
            raise fail(f"{n_consts} constants declared but {len(consts)} stored")
        slots = len(inputs) + len(pnames) + n_consts
        nodes = []
        for k, raw in enumerate(raw_nodes):
            if not isinstance(raw, dict):
                raise fail(f"node {k} is not an object")
            name = raw.get("op")
            op = OPS.get(name) if isinstance(name, str) else None
            if op is None:
                raise fail(f"node {k} names op {name!r}, which is not a registered dlrun op; "
                           "only registered ops can be loaded (see dlrun.engine.OPS)")
            try:
                args, lits = [], []
                for a in raw["inputs"]:
                    if isinstance(a, dict):
                        args.append(None)
                        lits.append(decode_attr(a["value"]))
                    elif isinstance(a, int) and 0 <= a < slots:
                        args.append(a)
                        lits.append(None)
                    else:
                        raise ValueError(f"input {a!r} is not an earlier value slot (0..{slots - 1})")
                raw_attrs = raw.get("attrs", {})
                if not isinstance(raw_attrs, dict):
                    raise ValueError("'attrs' must be an object")
                attrs = {str(key): decode_attr(v) for key, v in raw_attrs.items()}
                _check_call(op, len(args), attrs)
                out_meta = tuple((_shape(o["shape"]), _safe_dtype(o["dtype"])) for o in raw["outputs"])
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise fail(f"node {k} ({name}): {e}") from None
            if not out_meta:
                raise fail(f"node {k} ({name}) has no outputs")
            outs = tuple(range(slots, slots + len(out_meta)))
            slots += len(out_meta)
            nodes.append(GraphNode(op, tuple(args), tuple(lits), attrs, outs, out_meta))
        bad = [s for s in outputs if not 0 <= s < slots]
        if bad or not outputs:
            raise fail(f"outputs {outputs} must be value slots 0..{slots - 1}")
        return cls(inputs, pnames, pmeta, list(consts), nodes, outputs, tree, training, names, reqs)


def _host(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.get()


def _shape(v: Any) -> tuple:
    if not isinstance(v, list) or not all(isinstance(d, int) and d >= 0 for d in v):
        raise ValueError(f"shape {v!r} is not a list of non-negative integers")
    return tuple(v)


def _atomic_write(path: str, write: Callable[[Any], Any]) -> None:
    write_atomic(path, write)  # no temporary file left by a failed write, which it names


def _check_call(op: Op, n_inputs: int, attrs: dict) -> None:
    """``op.forward(xp, *inputs, **attrs)`` fits the op's signature (else ValueError)."""
    params = list(inspect.signature(op.forward).parameters.values())[1:]  # after xp
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    if n_inputs > len(positional) and not var_positional:
        raise ValueError(f"{n_inputs} inputs, but op {op.name!r} takes at most {len(positional)}")
    taken = {p.name for p in positional[:n_inputs]}
    missing = [p.name for p in positional[n_inputs:] if p.default is p.empty and p.name not in attrs]
    if missing:
        raise ValueError(f"op {op.name!r} needs {', '.join(missing)}, which the node does not give")
    names = {p.name for p in params if p.kind is not p.VAR_POSITIONAL}
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
    bad = sorted(k for k in attrs if k in taken or k in ("xp", "rng") or (k not in names and not var_keyword))
    if bad:
        raise ValueError(f"attributes {bad} are not arguments of op {op.name!r}")


def _check_tree(tree: Any, n: int) -> Any:
    """The output structure: a slot index, or ["tuple"|"list", [subtrees]]."""
    if isinstance(tree, int):
        if not 0 <= tree < n:
            raise ValueError(f"output_tree refers to output {tree} of {n}")
        return tree
    if (isinstance(tree, list) and len(tree) == 2 and tree[0] in ("tuple", "list")
            and isinstance(tree[1], list)):
        return [tree[0], [_check_tree(t, n) for t in tree[1]]]
    raise ValueError(f"output_tree entry {tree!r} is not an index or [kind, [...]]")


# --- attributes <-> JSON -----------------------------------------------------------------
def encode_attr(v: Any) -> Any:
    """A JSON value for an op attribute; raises TypeError for types a graph cannot hold."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, list):
        return [encode_attr(x) for x in v]
    if isinstance(v, tuple):
        return {"tuple": [encode_attr(x) for x in v]}
    if isinstance(v, slice):
        return {"slice": [encode_attr(v.start), encode_attr(v.stop), encode_attr(v.step)]}
    if v is Ellipsis:
        return {"ellipsis": True}
    if isinstance(v, Context):
        return {"context": [v.device_type, v.device_id]}
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return {"array": v.tolist(), "dtype": v.dtype.name}
    if isinstance(v, (np.dtype, type)) and _is_dtype(v):
        return {"dtype": np.dtype(v).name}
    raise TypeError(f"attribute value {v!r} of type {type(v).__name__} has no graph encoding")


def _is_dtype(v: Any) -> bool:
    try:
        return np.dtype(v).kind in "biuf"
    except TypeError:
        return False


def decode_attr(v: Any) -> Any:
    """The attribute value of :func:`encode_attr`'s JSON; anything else is a ValueError."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [decode_attr(x) for x in v]
    if isinstance(v, dict) and len(v) in (1, 2):
        kind = next(iter(v))
        if kind == "tuple" and isinstance(v[kind], list):
            return tuple(decode_attr(x) for x in v[kind])
        if kind == "slice" and isinstance(v[kind], list) and len(v[kind]) == 3:
            return slice(*(decode_attr(x) for x in v[kind]))
        if kind == "ellipsis":
            return Ellipsis
        if kind == "context" and isinstance(v[kind], list) and len(v[kind]) == 2:
            return Context(str(v[kind][0]), int(v[kind][1]))
        if kind == "dtype" and isinstance(v[kind], str):
            return _safe_dtype(v[kind])
        if kind == "array" and isinstance(v.get("dtype"), str):
            return np.asarray(v["array"], dtype=_safe_dtype(v["dtype"]))
    raise ValueError(f"attribute {json.dumps(v)[:80]} is not a value dlrun graphs hold")


def _safe_dtype(name: str) -> np.dtype:
    dtype = np.dtype(name)
    if dtype.kind not in "biuf":
        raise ValueError(f"dtype {name!r} is not a numeric dtype")
    return dtype


def _drain(items: list) -> Iterator[Any]:
    """``items`` from the last to the first, each removed from the list as it is handed out."""
    while items:
        yield items.pop()


# --- tracing ----------------------------------------------------------------------------
class Tracer:
    """Collects the ops a call invokes (the registry reports to ``autograd._state.tracer``).

    ``param_arrays()`` gives ``{name: NDArray}`` of the parameters the traced function may
    read; an op input that is neither a traced value nor a parameter is a constant.
    """

    def __init__(self, inputs: Sequence[NDArray], param_arrays: Callable[[], Mapping[str, NDArray]]):
        self._param_arrays = param_arrays
        self._param_ids: dict[int, str] = {}
        self.slot_of: dict[int, int] = {}
        self.keep: list[Any] = []       # traced arrays stay alive so that ids are not reused
        self.inputs = list(inputs)
        self.params: list[tuple[str, NDArray]] = []
        self.const_value: dict[int, Any] = {}  # slot -> xp array
        self.nodes: list[GraphNode] = []
        self.escapes: list[str] = []
        for x in self.inputs:
            self.slot_of.setdefault(id(x), len(self.keep))
            self.keep.append(x)
        self._next = len(self.inputs)
        self._pending: list = []  # (kind, key, NDArray), numbered when the trace is finished

    def _slot(self, x: NDArray) -> int:
        s = self.slot_of.get(id(x))
        if s is not None:
            return s
        if id(x) not in self._param_ids:
            self._param_ids = {id(a): n for n, a in self._param_arrays().items()}
        name = self._param_ids.get(id(x))
        s = self._new_slot(x)
        if name is not None:
            self.params.append((name, x))
        else:  # frozen at trace time: a later write to ``x`` does not reach the graph
            self.const_value[s] = x._data.copy()
        return s

    def _new_slot(self, x: Any) -> int:
        # provisional numbering; finish() renumbers inputs, params, consts, then op outputs
        s = self._next
        self._next += 1
        self.slot_of[id(x)] = s
        self.keep.append(x)
        return s

    def record(self, op: Op, inputs: tuple, attrs: dict, outputs: Any) -> None:
        """Called by the registry after ``op`` ran on ``inputs``."""
        args = tuple(self._slot(x) if isinstance(x, NDArray) else None for x in inputs)
        lits = tuple(None if isinstance(x, NDArray) else x for x in inputs)
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        foldable = (not op.needs_rng and not op.mutates_inputs
                    and all(s is None or s in self.const_value for s in args))
        if foldable:  # constant folding: the traced values are the constants
            for o in outs:  # a copy: the caller owns the traced result and may write to it
                self.const_value[self._new_slot(o)] = o._data.copy()
            return
        out_slots = tuple(self._new_slot(o) for o in outs)
        self.nodes.append(GraphNode(op, args, lits, dict(attrs), out_slots,
                                    tuple((o.shape, o.dtype) for o in outs)))

    def escape(self, x: NDArray, what: str) -> None:
        """``x`` leaves the registry (``what``); fatal to the trace if it depends on an input."""
        s = self.slot_of.get(id(x))
        if s is not None and s not in self.const_value:
            self.escapes.append(what)

    def write(self, x: NDArray) -> None:
        """``x`` is written in place: fatal when the graph already reads it (even a constant,
        whose earlier readers would see the new values on replay)."""
        if id(x) in self.slot_of:
            self.escapes.append("an in-place write x[...] = v into an array the graph reads")

    def escape_any(self, what: str) -> None:
        """Something the graph cannot replay happened (a random draw outside an op)."""
        self.escapes.append(what)

    def finish(self, outputs: Sequence[NDArray], output_tree: Any, training: bool) -> Graph:
        """The graph of the trace: dead ops removed and slots renumbered densely."""
        if self.escapes:
            raise TraceError(f"the computation leaves the op registry ({self.escapes[0]}), so a "
                             "graph cannot reproduce it")
        out_slots = []
        for o in outputs:
            s = self.slot_of.get(id(o))
            if s is None:
                raise TraceError("an output was not computed by registered ops from the inputs")
            out_slots.append(s)
        live = set(out_slots)
        kept: list[GraphNode] = []
        for node in reversed(self.nodes):  # dead-node elimination
            if live & set(node.outs) or node.op.needs_rng or node.op.mutates_inputs:
                kept.append(node)
                live.update(s for s in node.args if s is not None)
        kept.reverse()
        param_slots = [self.slot_of[id(a)] for _, a in self.params]
        params = [(n, a, s) for (n, a), s in zip(self.params, param_slots) if s in live]
        const_order = sorted(s for s in self.const_value if s in live)
        new: dict[int, int] = {}
        for i in range(len(self.inputs)):
            new[i] = i
        for _, _, s in params:
            new[s] = len(new)
        for s in const_order:
            new[s] = len(new)
        nodes = []
        for node in kept:
            outs = []
            for s in node.outs:
                new[s] = len(new)
                outs.append(new[s])
            nodes.append(GraphNode(node.op, tuple(None if s is None else new[s] for s in node.args),
                                   node.literals, node.attrs, tuple(outs), node.out_meta))
        return Graph([(x.shape, x.dtype) for x in self.inputs], [n for n, _, _ in params],
                     [(a.shape, a.dtype) for _, a, _ in params],
                     [self.const_value[s] for s in const_order], nodes, [new[s] for s in out_slots],
                     output_tree, training)


def trace(fn: Callable[..., Any], inputs: Sequence[NDArray], rebuild: Callable[[list], tuple],
          param_arrays: Callable[[], Mapping[str, NDArray]]) -> tuple[Graph | None, Any, str | None]:
    """Run ``fn(*rebuild(inputs))`` once, imperatively, while tracing it.

    Returns ``(graph, result, reason)``: the graph (None when the call is untraceable, with
    ``reason`` saying why) and the call's result, which is the imperative one either way.
    """
    tracer = Tracer(inputs, param_arrays)
    previous = autograd._state.tracer
    autograd._state.tracer = tracer
    try:
        result = fn(*rebuild(list(inputs)))
    finally:
        autograd._state.tracer = previous
    try:
        leaves, tree = flatten_output(result)
        graph = tracer.finish(leaves, tree, autograd.is_training())
    except TraceError as e:
        return None, result, str(e)
    return graph, result, None


# --- argument and result structures -------------------------------------------------------
# The walkers below are module functions taking their accumulators as arguments: a nested
# function that calls itself is a reference cycle (function -> closure cell -> function)
# that keeps the arrays it collected alive until the cyclic garbage collector runs.
def flatten_args(args: Sequence[Any]) -> tuple[list[NDArray], tuple]:
    """The arrays of a call's arguments (nested tuples/lists allowed) and a hashable key of
    everything else: shapes, dtypes, contexts of the arrays and the values of the rest."""
    if all(type(a) is NDArray for a in args) and len({id(a) for a in args}) == len(args):
        # the common case, without the walk
        return list(args), tuple(("A", a._data.shape, a._data.dtype.str, a._ctx) for a in args)
    leaves: list[NDArray] = []
    first: dict[int, int] = {}  # an array passed twice is one value of the graph: part of the key
    return leaves, tuple(_arg_key(a, leaves, first) for a in args)


def _arg_key(a: Any, leaves: list[NDArray], first: dict[int, int]) -> Any:
    if isinstance(a, NDArray):
        leaves.append(a)
        return ("A", a.shape, a.dtype.str, a._ctx, first.setdefault(id(a), len(leaves) - 1))
    if isinstance(a, (tuple, list)):
        return (type(a).__name__, tuple(_arg_key(x, leaves, first) for x in a))
    if a is None or isinstance(a, (bool, int, float, str)):
        return ("V", a)
    raise TraceError(f"an argument of type {type(a).__name__} is not an array, a number or "
                     "a tuple/list of them")


def rebuild_args(key: tuple, leaves: list) -> tuple:
    """The arguments of :func:`flatten_args`'s key with ``leaves`` in place of the arrays."""
    it = iter(leaves)
    return tuple(_rebuild_arg(k, it) for k in key)


def _rebuild_arg(k: tuple, leaves: Iterator[Any]) -> Any:
    kind = k[0]
    if kind == "A":
        return next(leaves)
    if kind == "V":
        return k[1]
    items = [_rebuild_arg(x, leaves) for x in k[1]]
    return tuple(items) if kind == "tuple" else items


def flatten_output(out: Any) -> tuple[list[NDArray], Any]:
    """The arrays of a result (an array or nested tuples/lists of arrays) and its tree."""
    leaves: list[NDArray] = []
    return leaves, _output_tree(out, leaves)


def _output_tree(o: Any, leaves: list[NDArray]) -> Any:
    if isinstance(o, NDArray):
        leaves.append(o)
        return len(leaves) - 1
    if isinstance(o, (tuple, list)):
        return ["tuple" if isinstance(o, tuple) else "list", [_output_tree(x, leaves) for x in o]]
    raise TraceError(f"the result holds a {type(o).__name__}; a graph returns arrays only")


def unflatten_output(tree: Any, leaves: Sequence[NDArray]) -> Any:
    if isinstance(tree, int):
        return leaves[tree]
    kind, items = tree
    built = [unflatten_output(t, leaves) for t in items]
    return tuple(built) if kind == "tuple" else built


# --- a compiled callable ------------------------------------------------------------------
class HybridizeWarning(UserWarning):
    """A hybridized block cannot be compiled and keeps running imperatively."""


class CachedOp:
    """``fn`` compiled: one graph per input signature (shapes, dtypes, contexts, the values
    of non-array arguments, training mode), the ``limit`` most recently used kept.

    ``params()`` maps parameter names to objects with a ``data()`` method (NDArray); the
    graph reads the current values on every call. The first call of a signature traces (its
    result is the imperative one); later calls replay. A call that cannot be traced makes
    the CachedOp imperative for good, with one :class:`HybridizeWarning` saying why.

    On a GPU, ``fuse_elementwise`` fuses chains of elementwise ops and ``cuda_graph``
    replays a call that records no gradient as a captured CUDA graph (``dlrun.engine.fusion``);
    on a CPU both change nothing.
    """

    def __init__(self, fn: Callable[..., Any], params: Callable[[], Mapping[str, Any]],
                 name: str, limit: int = 16, fuse_elementwise: bool = False,
                 cuda_graph: bool = False):
        self.fn = fn
        self.params = params
        self.name = name
        self.limit = limit
        self.fuse_elementwise = fuse_elementwise
        self.cuda_graph = cuda_graph
        self.captures: dict[tuple, fusion.Capture] = {}
        self.graphs: "OrderedDict[tuple, tuple[Graph, list]]" = OrderedDict()
        self.untraceable: str | None = None
        self.traces = 0  # how many times a signature was traced

    def __call__(self, args: Sequence[Any]) -> Any:
        if self.untraceable is not None:
            return self.fn(*args)
        try:
            leaves, key = flatten_args(args)
            if not leaves:
                raise TraceError("the call has no array arguments")
        except TraceError as e:
            self._give_up(str(e))
            return self.fn(*args)
        key = (key, autograd.is_training())
        entry = self.graphs.get(key)
        if entry is None:
            return self._trace(key, leaves)
        self.graphs.move_to_end(key)
        graph, objs = entry
        ctx = leaves[0]._ctx
        params = [p.data(ctx) for p in objs]
        if self.cuda_graph and ctx.device_type == "gpu" and not autograd._state.recording:
            outs = self._captured(key, graph, leaves, params, ctx)
        else:
            outs = graph.run(leaves, params, ctx)
        return unflatten_output(graph.output_tree, outs)

    def _captured(self, key: tuple, graph: Graph, leaves: list[NDArray], params: list[NDArray],
                  ctx: Context) -> list[NDArray]:
        """The replay through the CUDA graph of ``key``, captured on first use; where capture
        fails (CUDA's or CuPy's error, :class:`fusion.CaptureRefused`), a plain replay from then
        on (one HybridizeWarning)."""
        capture = self.captures.get(key)
        if capture is None:
            try:
                capture = self.captures[key] = fusion.Capture(graph, leaves, params, ctx)
            except RuntimeError as e:
                import warnings
                self.cuda_graph = False
                warnings.warn(f"{self.name}.hybridize(cuda_graph=True): CUDA-graph capture failed "
                              f"({e}); replays run uncaptured", HybridizeWarning, stacklevel=4)
                return graph.run(leaves, params, ctx)
        return capture(leaves, params)

    def _trace(self, key: tuple, leaves: list[NDArray]) -> Any:
        ctx = leaves[0]._ctx

        def arrays() -> dict[str, NDArray]:
            # the copy on the inputs' context of a parameter held on several (Gluon's ctx=[...])
            return {n: p.data(ctx) if ctx in p.list_ctx() else p._data for n, p in self.params().items()
                    if getattr(p, "_data", None) is not None}
        graph, result, reason = trace(self.fn, leaves, lambda xs: rebuild_args(key[0], xs), arrays)
        self.traces += 1
        if graph is None:
            self._give_up(reason or "untraceable")
            return result
        params = self.params()
        graph.param_grad_reqs = [params[n].grad_req for n in graph.param_names]
        graph.fuse_elementwise = self.fuse_elementwise
        self.graphs[key] = (graph, [params[n] for n in graph.param_names])
        if len(self.graphs) > self.limit:
            self.captures.pop(self.graphs.popitem(last=False)[0], None)
        return result

    def last_graph(self, training: bool | None = None) -> Graph | None:
        """The most recently used graph (of that training mode when given)."""
        for key in reversed(self.graphs):
            if training is None or key[1] == training:
                return self.graphs[key][0]
        return None

    def _give_up(self, reason: str) -> None:
        import warnings
        self.untraceable = reason
        self.graphs.clear()
        self.captures.clear()
        warnings.warn(f"{self.name}.hybridize(): {reason}; the block runs imperatively",
                      HybridizeWarning, stacklevel=4)
