"""MXNet 1.x's exported models (``-symbol.json`` + ``.params`` of ``HybridBlock.export``) as
a dlrun block: ``gluon.SymbolBlock.imports`` hands MXNet's files here.

The graph is interpreted node by node with the ``nd`` functions of the same names
(``Convolution``, ``FullyConnected``, ``BatchNorm``, ``Activation``, ``Pooling``...), so its
outputs and gradients are dlrun's ops'. Only the ops of :data:`SCALAR_OPS` and the public
functions of :mod:`dlrun.ndarray` are accepted, and attribute values are read with
``ast.literal_eval`` (numbers, tuples, booleans) or kept as strings: nothing in the files
is executed. An op dlrun does not have is refused by name.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Callable, Sequence

from ..engine import NDArray, mxfile
from ..engine.backend import Context
from ..engine.jit import GraphFormatError
from .block import HybridBlock
from .parameter import Parameter

# MXNet's operators with a scalar attribute, and the binary ops of its symbol API
SCALAR_OPS: dict[str, Callable[[Any, float], Any]] = {
    "_plus_scalar": lambda x, s: x + s, "_minus_scalar": lambda x, s: x - s,
    "_rminus_scalar": lambda x, s: s - x, "_mul_scalar": lambda x, s: x * s,
    "_div_scalar": lambda x, s: x / s, "_rdiv_scalar": lambda x, s: s / x,
    "_power_scalar": lambda x, s: x ** s, "_rpower_scalar": lambda x, s: s ** x,
    "_maximum_scalar": lambda x, s: _nd().maximum(x, s),
    "_minimum_scalar": lambda x, s: _nd().minimum(x, s),
}
BINARY_OPS = {"_plus": "add", "_Plus": "add", "elemwise_add": "add", "_minus": "subtract",
              "_Minus": "subtract", "elemwise_sub": "subtract", "_mul": "multiply",
              "_Mul": "multiply", "elemwise_mul": "multiply", "_div": "divide", "_Div": "divide",
              "elemwise_div": "divide", "_copy": "copy", "identity": "copy"}


def _nd() -> Any:
    from .. import ndarray
    return ndarray


def is_mxnet_graph(spec: Any) -> bool:
    """Whether ``spec`` (a parsed JSON) is an MXNet symbol file (nodes, heads, mxnet_version)."""
    return isinstance(spec, dict) and "heads" in spec and "mxnet_version" in spec.get("attrs", {})


def _value(text: Any) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class MXNetSymbolBlock(HybridBlock):
    """A block running an MXNet 1.x symbol graph with dlrun's ops (see the module)."""

    def __init__(self, spec: dict, input_names: Sequence[str], where: str):
        super().__init__()
        nodes = spec.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            raise GraphFormatError(f"{where}: no nodes")
        object.__setattr__(self, "_nodes", nodes)
        object.__setattr__(self, "_heads", spec["heads"])
        object.__setattr__(self, "_inputs", list(input_names))
        object.__setattr__(self, "_where", where)
        names = [n.get("name") for n in nodes if n.get("op") == "null"]
        unknown = [n for n in input_names if n not in names]
        if unknown:
            raise GraphFormatError(f"{where}: no input named {unknown[0]!r}; its variables are "
                                   f"{', '.join(map(str, names[:8]))}")
        for node in nodes:
            op = node.get("op")
            known = op == "null" or op in SCALAR_OPS or op in BINARY_OPS or op in _nd().__all__
            if not known:
                raise GraphFormatError(f"{where}: node {node.get('name')!r} uses op {op!r}, which "
                                       "dlrun does not have")
        for name in names:
            if name not in self._inputs:
                self._reg_params[name] = Parameter(name, shape=None, grad_req="write")

    def load_mxnet_params(self, param_file: str | Path, ctx: Context | list | None) -> None:
        """The parameters (``arg:``/``aux:`` names) of MXNet's ``.params`` file."""
        loaded = mxfile.load(param_file)
        if not isinstance(loaded, dict):
            raise GraphFormatError(f"{param_file} holds no parameter names")
        arrays = {k.split(":", 1)[-1]: v for k, v in loaded.items() if v is not None}
        missing = [n for n in self._reg_params if n not in arrays]
        if missing:
            raise GraphFormatError(f"{param_file} does not hold {', '.join(missing[:5])}")
        for name, p in self._reg_params.items():
            if loaded.get(f"aux:{name}") is not None:
                p.grad_req = "null"
            p.set_data(arrays[name], ctx)

    def forward(self, *inputs: NDArray) -> Any:
        if len(inputs) != len(self._inputs):
            raise ValueError(f"the graph takes {len(self._inputs)} inputs ({', '.join(self._inputs)}), "
                             f"got {len(inputs)}")
        given = dict(zip(self._inputs, inputs))
        values: list[Any] = []
        for node in self._nodes:
            values.append(self._run(node, given, values))
        outs = [self._pick(values, h) for h in self._heads]
        return outs[0] if len(outs) == 1 else tuple(outs)

    @staticmethod
    def _pick(values: list, ref: list) -> Any:
        out = values[ref[0]]
        return out[ref[1]] if isinstance(out, (list, tuple)) else out

    def _run(self, node: dict, given: dict, values: list) -> Any:
        op, name = node["op"], node["name"]
        if op == "null":
            return given[name] if name in given else self._reg_params[name].data()
        args = [self._pick(values, ref) for ref in node.get("inputs", [])]
        attrs = {k: _value(v) for k, v in (node.get("attrs") or {}).items() if not k.startswith("__")}
        if op in SCALAR_OPS:
            return SCALAR_OPS[op](args[0], float(attrs["scalar"]))
        if op in BINARY_OPS:
            return getattr(_nd(), BINARY_OPS[op])(*args)
        attrs.pop("num_args", None)
        return getattr(_nd(), op)(*args, **attrs)


def imports(symbol_file: str | Path, spec: dict, input_names: str | Sequence[str] | None,
            param_file: str | Path | None, ctx: Context | list | None) -> MXNetSymbolBlock:
    """The block of MXNet's ``symbol_file`` (already parsed as ``spec``) with ``param_file``."""
    names = [input_names] if isinstance(input_names, str) else list(input_names or ["data"])
    block = MXNetSymbolBlock(spec, names, str(symbol_file))
    if param_file is not None:
        block.load_mxnet_params(param_file, ctx)
    return block
