"""ONNX export of a traced graph (:mod:`dlrun.engine.jit`): each registered op becomes the
ONNX operators that compute it, built with the ``onnx`` package's helpers (opset 17).

    model = to_onnx(graph, params)                  # an onnx.ModelProto, onnx.checker passes
    export_graph_file("run/model-symbol.json", "run/model-0000.params", "run/model.onnx")

The graph's parameters and constants become initializers; its inputs keep their names
(``data``, or ``data0``, ``data1``...) and outputs are ``output`` (``output0``...). The batch
axis (``batch_axis``, 0 by default; 1 for a language model's (T, N) tokens and its states) is
a symbolic dimension ``batch``, so one file serves any batch size. An op without an ONNX
equivalent (tree LSTM cells, top-k...) or with settings ONNX cannot express is refused with
an :class:`OnnxExportError` that names the op. Needs the optional ``onnx`` package
(``pip install 'dlrun[onnx]'``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .jit import Graph

OPSET = 17
BATCH, STEPS = "batch", "steps"   # the symbolic dimensions


class OnnxExportError(ValueError):
    """The graph cannot be written as ONNX; the message names the op and why."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise OnnxExportError("ONNX export needs the onnx package: pip install 'dlrun[onnx]'") from None
    return onnx


class _Builder:
    """The ONNX nodes and initializers of a graph under conversion, and the metadata (shape,
    dtype) of each value slot."""

    def __init__(self, graph: Graph):
        self.onnx = _onnx()
        self.helper = self.onnx.helper
        self.nodes: list = []
        self.inits: list = []
        self.count = 0
        self.meta: dict[int, tuple] = {}
        for s, m in enumerate(list(graph.input_meta) + list(graph.param_meta)
                              + [(c.shape, c.dtype) for c in graph.consts]):
            self.meta[s] = (tuple(m[0]), np.dtype(m[1]))
        self.names = list(graph.input_names) + list(graph.param_names) + [
            f"const{i}" for i in range(len(graph.consts))]

    def name(self, slot: int) -> str:
        return self.names[slot] if slot < len(self.names) else f"v{slot}"

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: Any, dtype: Any = None, hint: str = "c") -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int = 1,
           **attrs: Any) -> list[str]:
        """Adds one ONNX node; returns its output names (fresh ones for a count)."""
        outs = [self.fresh(op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) \
            else list(outputs)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs


class _Node:
    """One graph node as a converter sees it: its inputs (names; a literal becomes a constant
    of the node's first array dtype), their shapes, its attributes and output names."""

    def __init__(self, b: _Builder, node: Any):
        self.b, self.node, self.attrs = b, node, node.attrs
        arrays = [b.meta[s] for s in node.args if s is not None]
        self.dtype = arrays[0][1] if arrays else np.dtype(np.float32)
        self.inputs = [b.name(s) if s is not None else
                       (None if lit is None else b.const(lit, self.dtype))
                       for s, lit in zip(node.args, node.literals)]
        self.shapes = [b.meta[s][0] if s is not None else np.shape(lit)
                       for s, lit in zip(node.args, node.literals)]
        self.outs = [b.name(s) for s in node.outs]

    def refuse(self, why: str) -> OnnxExportError:
        return OnnxExportError(f"op '{self.node.op.name}' cannot be exported to ONNX: {why}")


# --- the converters ------------------------------------------------------------------------
Converter = Callable[[_Builder, _Node], None]
CONVERTERS: dict[str, Converter] = {}


def converts(*names: str) -> Callable[[Converter], Converter]:
    def add(fn: Converter) -> Converter:
        for n in names:
            CONVERTERS[n] = fn
        return fn
    return add


SAME = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "power": "Pow",
        "maximum": "Max", "minimum": "Min", "negative": "Neg", "exp": "Exp", "log": "Log",
        "sqrt": "Sqrt", "abs": "Abs", "sign": "Sign", "tanh": "Tanh", "sigmoid": "Sigmoid",
        "relu": "Relu", "softsign": "Softsign", "softrelu": "Softplus", "copy": "Identity",
        "stop_gradient": "Identity", "where": "Where", "flatten": "Flatten"}


@converts(*SAME)
def _same(b: _Builder, n: _Node) -> None:
    b.op(SAME[n.node.op.name], n.inputs, n.outs)


@converts("square")
def _square(b: _Builder, n: _Node) -> None:
    b.op("Mul", [n.inputs[0], n.inputs[0]], n.outs)


@converts("leaky_relu", "elu")
def _alpha(b: _Builder, n: _Node) -> None:
    kind = n.node.op.name
    alpha = float(n.attrs.get("slope", 0.25) if kind == "leaky_relu" else n.attrs.get("alpha", 1.0))
    b.op("LeakyRelu" if kind == "leaky_relu" else "Elu", n.inputs, n.outs, alpha=alpha)


@converts("clip")
def _clip(b: _Builder, n: _Node) -> None:
    bounds = [b.const(n.attrs[k], n.dtype) if n.attrs.get(k) is not None else ""
              for k in ("a_min", "a_max")]  # given as attributes, or as literal inputs
    b.op("Clip", n.inputs[:1] + [i or bound for i, bound in zip(n.inputs[1:3] + ["", ""], bounds)],
         n.outs)


@converts("cast")
def _cast(b: _Builder, n: _Node) -> None:
    to = b.helper.np_dtype_to_tensor_dtype(np.dtype(n.attrs["dtype"]))
    b.op("Cast", n.inputs[:1], n.outs, to=to)


@converts("softmax", "log_softmax")
def _softmax(b: _Builder, n: _Node) -> None:
    x, t = n.inputs[0], n.attrs.get("temperature")
    if t is not None and float(t) != 1.0:
        (x,) = b.op("Div", [x, b.const(float(t), n.dtype)])
    b.op("Softmax" if n.node.op.name == "softmax" else "LogSoftmax", [x], n.outs,
         axis=int(n.attrs.get("axis", -1)))


@converts("fully_connected")
def _dense(b: _Builder, n: _Node) -> None:
    x, w = n.inputs[0], n.inputs[1]
    bias = n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] else None
    if n.attrs.get("flatten", True):
        if len(n.shapes[0]) != 2:
            (x,) = b.op("Flatten", [x], axis=1)
        b.op("Gemm", [x, w] + ([bias] if bias else []), n.outs, transB=1)
        return
    (wt,) = b.op("Transpose", [w], perm=[1, 0])
    if bias is None:
        b.op("MatMul", [x, wt], n.outs)
    else:
        (y,) = b.op("MatMul", [x, wt])
        b.op("Add", [y, bias], n.outs)


def _spatial(n: _Node, key: str, default: int, nd: int) -> list[int]:
    v = n.attrs.get(key, default)
    return [int(v)] * nd if isinstance(v, (int, np.integer)) else [int(i) for i in v]


@converts("convolution", "deconvolution")
def _conv(b: _Builder, n: _Node) -> None:
    nd = len(n.shapes[1]) - 2
    pad = _spatial(n, "pad", 0, nd)
    attrs = dict(kernel_shape=list(n.shapes[1][2:]), strides=_spatial(n, "stride", 1, nd),
                 pads=pad + pad, dilations=_spatial(n, "dilation", 1, nd),
                 group=int(n.attrs.get("groups", 1)))
    inputs = [i for i in n.inputs[:3] if i]
    if n.node.op.name == "convolution":
        b.op("Conv", inputs, n.outs, **attrs)
    else:
        b.op("ConvTranspose", inputs, n.outs, output_padding=_spatial(n, "output_padding", 0, nd),
             **attrs)


@converts("pooling")
def _pool(b: _Builder, n: _Node) -> None:
    kind = n.attrs.get("pool_type", "max")
    if n.attrs.get("global_pool"):
        b.op("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", n.inputs, n.outs)
        return
    nd = len(n.shapes[0]) - 2
    kernel = _spatial(n, "kernel", 1, nd)
    stride = kernel if n.attrs.get("stride") is None else _spatial(n, "stride", 1, nd)
    pad = _spatial(n, "pad", 0, nd)
    attrs = dict(kernel_shape=kernel, strides=stride, pads=pad + pad,
                 ceil_mode=int(bool(n.attrs.get("ceil_mode", False))))
    if kind == "max":
        b.op("MaxPool", n.inputs, n.outs, **attrs)
    else:
        b.op("AveragePool", n.inputs, n.outs,
             count_include_pad=int(bool(n.attrs.get("count_include_pad", True))), **attrs)


@converts("batch_norm")
def _batch_norm(b: _Builder, n: _Node) -> None:
    if n.attrs.get("training") and not n.attrs.get("use_global_stats"):
        raise n.refuse("it normalises with the batch's statistics (a training-mode graph); "
                       "export the graph of a predict-mode call")
    if int(n.attrs.get("axis", 1)) % len(n.shapes[0]) != 1:
        raise n.refuse(f"ONNX normalises axis 1, this op axis {n.attrs.get('axis')}")
    x, gamma, beta, mean, var = n.inputs[:5]
    if n.attrs.get("fix_gamma"):
        gamma = b.const(np.ones(n.shapes[1], n.dtype))
    b.op("BatchNormalization", [x, gamma, beta, mean, var], n.outs[:1],
         epsilon=float(n.attrs.get("eps", 1e-5)))


@converts("reshape")
def _reshape(b: _Builder, n: _Node) -> None:
    if n.attrs.get("reverse"):
        raise n.refuse("reverse=True has no ONNX equivalent")
    shape = [int(s) for s in n.attrs["shape"]]
    if any(s < -1 for s in shape):
        raise n.refuse(f"the MXNet codes in shape {shape} (-2, -3, -4) have no ONNX equivalent")
    if shape and n.shapes[0] and shape[0] == n.shapes[0][0] and b.batch_axis == 0:
        shape[0] = 0  # the batch axis: copied from the input, whatever its size
    b.op("Reshape", [n.inputs[0], b.const(shape, np.int64)], n.outs)


@converts("transpose", "swapaxes")
def _transpose(b: _Builder, n: _Node) -> None:
    rank = len(n.shapes[0])
    if n.node.op.name == "swapaxes":
        perm = list(range(rank))
        i, j = int(n.attrs.get("dim1", 0)) % rank, int(n.attrs.get("dim2", 0)) % rank
        perm[i], perm[j] = perm[j], perm[i]
    else:
        axes = n.attrs.get("axes")
        perm = list(reversed(range(rank))) if axes is None else [int(a) % rank for a in axes]
    b.op("Transpose", n.inputs[:1], n.outs, perm=perm)


@converts("expand_dims", "squeeze")
def _axes(b: _Builder, n: _Node) -> None:
    axis = n.attrs.get("axis")
    if n.node.op.name == "squeeze" and axis is None:
        b.op("Squeeze", n.inputs[:1], n.outs)
        return
    axes = [int(a) for a in (axis if isinstance(axis, (tuple, list)) else [axis])]
    b.op("Unsqueeze" if n.node.op.name == "expand_dims" else "Squeeze",
         [n.inputs[0], b.const(axes, np.int64)], n.outs)


@converts("concat", "stack")
def _join(b: _Builder, n: _Node) -> None:
    if n.node.op.name == "concat":
        b.op("Concat", n.inputs, n.outs, axis=int(n.attrs.get("dim", 1)))
        return
    axis = int(n.attrs.get("axis", 0)) % (len(n.shapes[0]) + 1)
    axes = b.const([axis], np.int64)
    parts = [b.op("Unsqueeze", [x, axes])[0] for x in n.inputs]
    b.op("Concat", parts, n.outs, axis=axis)


@converts("split")
def _split(b: _Builder, n: _Node) -> None:
    k, axis = int(n.attrs["num_outputs"]), int(n.attrs.get("axis", 1)) % len(n.shapes[0])
    size = n.shapes[0][axis] // k
    squeeze = bool(n.attrs.get("squeeze_axis"))
    parts = b.op("Split", [n.inputs[0], b.const([size] * k, np.int64)],
                 k if squeeze else n.outs, axis=axis)
    if squeeze:
        axes = b.const([axis], np.int64)
        for part, out in zip(parts, n.outs):
            b.op("Squeeze", [part, axes], [out])


@converts("embedding")
def _embedding(b: _Builder, n: _Node) -> None:
    (idx,) = b.op("Cast", n.inputs[:1], to=b.onnx.TensorProto.INT64)
    b.op("Gather", [n.inputs[1], idx], n.outs, axis=0)


@converts("sum", "mean", "max", "min", "prod")
def _reduce(b: _Builder, n: _Node) -> None:
    axis = n.attrs.get("axis")
    axes = list(range(len(n.shapes[0]))) if axis is None else [
        int(a) for a in (axis if isinstance(axis, (tuple, list)) else [axis])]
    kind = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin",
            "prod": "ReduceProd"}[n.node.op.name]
    keep = int(bool(n.attrs.get("keepdims", False)))
    if kind == "ReduceSum":  # opset 13+: axes as an input
        b.op(kind, [n.inputs[0], b.const(axes, np.int64)], n.outs, keepdims=keep)
    else:
        b.op(kind, n.inputs[:1], n.outs, axes=axes, keepdims=keep)


@converts("lstm")
def _lstm(b: _Builder, n: _Node) -> None:
    """dlrun's LSTM takes the input's gate projection (T, N, 4H), gates in the order i, f, u,
    o: ONNX's LSTM gets it as its input through an identity W, with R and the bias in ONNX's
    order i, o, f, c."""
    i2h, h, c, weight, bias = n.inputs[:5]
    hidden = n.shapes[1][-1]
    order = np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in (0, 3, 1, 2)])
    w = b.const(np.eye(4 * hidden, dtype=n.dtype)[order][None])
    perm = b.const(order, np.int64)
    zero = b.const([0], np.int64)
    (r,) = b.op("Gather", [weight, perm], axis=0)
    (r,) = b.op("Unsqueeze", [r, zero])
    (rb,) = b.op("Gather", [bias, perm], axis=0)
    (bb,) = b.op("Concat", [b.const(np.zeros(4 * hidden, n.dtype)), rb], axis=0)
    (bb,) = b.op("Unsqueeze", [bb, zero])
    h0, c0 = (b.op("Unsqueeze", [s, zero])[0] for s in (h, c))
    y, yh, yc = b.op("LSTM", [i2h, w, r, bb, "", h0, c0], 3, hidden_size=hidden,
                     direction="reverse" if n.attrs.get("reverse") else "forward")
    b.op("Squeeze", [y, b.const([1], np.int64)], n.outs[:1])
    for state, out in zip((yh, yc), n.outs[1:]):
        b.op("Squeeze", [state, zero], [out])


# --- the model -------------------------------------------------------------------------------
def to_onnx(graph: Graph, params: Mapping[str, np.ndarray], name: str = "dlrun",
            batch_axis: int | None = 0, step_axis: int | None = None) -> Any:
    """The ONNX model of ``graph`` with ``params`` ({name: array}) as initializers; the
    inputs' and outputs' axis ``batch_axis`` symbolic (None: every shape static), and the
    first input's and output's ``step_axis`` (a language model's time axis) too."""
    b = _Builder(graph)
    b.batch_axis = batch_axis
    for node in graph.nodes:
        for s, m in zip(node.outs, node.out_meta):
            b.meta[s] = (tuple(m[0]), np.dtype(m[1]))
        convert = CONVERTERS.get(node.op.name)
        view = _Node(b, node)
        if convert is None:
            raise view.refuse("ONNX has no equivalent of it in dlrun's exporter (ops it exports: "
                              f"{', '.join(sorted(CONVERTERS))})")
        convert(b, view)
    outs = ["output"] if len(graph.outputs) == 1 else [f"output{i}" for i in range(len(graph.outputs))]
    for s, out in zip(graph.outputs, outs):  # an output slot may be an input, or used twice
        b.op("Identity", [b.name(s)], [out])
    missing = [p for p in graph.param_names if p not in params]
    if missing:
        raise OnnxExportError(f"the parameters {', '.join(missing[:5])} are missing")
    used = {i for node in b.nodes for i in node.input}  # a fixed gamma is read by no node
    for pname, value in [(p, params[p]) for p in graph.param_names] + [
            (f"const{i}", c) for i, c in enumerate(graph.consts)]:
        if pname in used:
            b.inits.append(b.onnx.numpy_helper.from_array(np.asarray(value), pname))
    inputs = [_value_info(b, nm, shape, dtype, batch_axis, step_axis if i == 0 else None)
              for i, (nm, (shape, dtype)) in enumerate(zip(graph.input_names, graph.input_meta))]
    outputs = [_value_info(b, nm, *b.meta[s], batch_axis, step_axis if i == 0 else None)
               for i, (nm, s) in enumerate(zip(outs, graph.outputs))]
    model = b.helper.make_model(
        b.helper.make_graph(b.nodes, name, inputs, outputs, b.inits),
        opset_imports=[b.helper.make_opsetid("", OPSET)], producer_name="dlrun")
    b.onnx.checker.check_model(model, full_check=True)
    return model


def _value_info(b: _Builder, name: str, shape: Sequence[int], dtype: Any, batch_axis: int | None,
                step_axis: int | None) -> Any:
    dims: list[Any] = list(shape)
    for axis, symbol in ((batch_axis, BATCH), (step_axis, STEPS)):
        if axis is not None and len(dims) > axis:
            dims[axis] = symbol
    return b.helper.make_tensor_value_info(name, b.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), dims)


def export_graph_file(symbol_file: str | Path, params_file: str | Path, out: str | Path,
                      batch_axis: int | None = 0, step_axis: int | None = None) -> Path:
    """Converts the export ``symbol_file`` + ``params_file`` (``HybridBlock.export``) to the
    ONNX file ``out``; returns it."""
    return save(*read_export(symbol_file, params_file), out, batch_axis, step_axis)


def read_export(symbol_file: str | Path, params_file: str | Path) -> tuple[Graph, dict]:
    """(the graph, its parameters) of an export, read as ``SymbolBlock.imports`` reads it."""
    import json

    from .jit import GraphFormatError

    try:
        spec = json.loads(Path(symbol_file).read_text(encoding="utf-8"))
        with np.load(params_file, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise GraphFormatError(f"cannot read the export {symbol_file}: {e}") from None
    consts = [arrays[f"const:{i}"] for i in range(len(spec.get("constants", [])))]
    return Graph.from_json(spec, consts, str(symbol_file)), arrays


def save(graph: Graph, params: Mapping[str, np.ndarray], out: str | Path,
         batch_axis: int | None = 0, step_axis: int | None = None) -> Path:
    """Writes the ONNX model of ``graph`` to ``out`` (atomically); returns it."""
    from .files import write_atomic

    model = to_onnx(graph, params, Path(out).stem, batch_axis, step_axis)
    data = model.SerializeToString()
    write_atomic(Path(out), lambda f: f.write(data))
    return Path(out)
