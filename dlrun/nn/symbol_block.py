"""SymbolBlock: a block rebuilt from an exported graph, without the model's Python class."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..engine import NDArray, current_context
from ..engine.backend import Context
from ..engine.jit import Graph, GraphFormatError, unflatten_output
from .block import HybridBlock
from .parameter import Parameter

MAX_GRAPH_BYTES = 64 << 20  # a graph file larger than this is refused before parsing


class SymbolBlock(HybridBlock):
    """Runs a :class:`~dlrun.engine.jit.Graph` with its own parameters (named as in the
    exported model, e.g. ``features.0.weight``): inference, and fine-tuning since gradients
    flow to the parameters. Inputs must have the exported shapes and dtypes.
    """

    def __init__(self, graph: Graph):
        super().__init__()
        object.__setattr__(self, "graph", graph)
        for name, (shape, dtype), req in zip(graph.param_names, graph.param_meta, graph.param_grad_reqs):
            self._reg_params[name] = Parameter(name, shape=shape, dtype=dtype, grad_req=req)

    @classmethod
    def imports(cls, symbol_file: str | Path, input_names: str | Sequence[str] | None = None,
                param_file: str | Path | None = None, ctx: Context | None = None) -> "SymbolBlock":
        """The block of ``symbol_file`` (``*-symbol.json`` of ``HybridBlock.export``) with the
        parameters of ``param_file`` (``*-NNNN.params``) on ``ctx``. MXNet 1.x's exported
        files are read too (:mod:`.mxnet_symbol`).

        Only registered op names and plain attribute values are accepted; nothing in the files
        is executed. ``input_names``, when given, must be the exported inputs' names (``data``
        for one input; ``data0``, ``data1``... for several): a check that the file is the model
        the caller means.
        """
        symbol_file = Path(symbol_file)
        try:
            if symbol_file.stat().st_size > MAX_GRAPH_BYTES:
                raise GraphFormatError(f"{symbol_file}: larger than {MAX_GRAPH_BYTES >> 20} MiB; "
                                       "not a graph dlrun wrote")
            spec = json.loads(symbol_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise GraphFormatError(f"cannot read graph file {symbol_file}: {e}") from None
        from .mxnet_symbol import imports as mxnet_imports, is_mxnet_graph
        if is_mxnet_graph(spec):  # MXNet 1.x's own export: its ops run as dlrun's
            return mxnet_imports(symbol_file, spec, input_names, param_file, ctx)
        arrays = _read_params(param_file) if param_file is not None else {}
        consts = spec.get("constants", []) if isinstance(spec, dict) else []
        n_consts = len(consts) if isinstance(consts, list) else 0
        missing = [f"const:{i}" for i in range(n_consts) if f"const:{i}" not in arrays]
        if missing:
            raise GraphFormatError(f"{param_file or 'no parameter file'}: the graph's constants "
                                   f"{', '.join(missing[:5])} are missing; pass the .params file "
                                   "written by export() with the graph")
        graph = Graph.from_json(spec, [arrays[f"const:{i}"] for i in range(n_consts)], str(symbol_file))
        names = [input_names] if isinstance(input_names, str) else list(input_names or graph.input_names)
        if names != graph.input_names:
            raise GraphFormatError(f"{symbol_file}: input names {names} do not match the graph's "
                                   f"inputs {graph.input_names}")
        block = cls(graph)
        ctx = ctx or current_context()
        if ctx.device_type != "cpu":
            graph.consts = [ctx.xp.asarray(c) for c in graph.consts]
        if param_file is not None:
            block.load_arrays(arrays, str(param_file), ctx)
        return block

    def load_arrays(self, arrays: dict[str, np.ndarray], where: str, ctx: Context) -> None:
        """Set every parameter from ``arrays`` (by name), checking shapes and dtypes."""
        problems = []
        for name, p in self._reg_params.items():
            a = arrays.get(name)
            if a is None:
                problems.append(f"{name} is missing")
            elif a.shape != p.shape or a.dtype != p.dtype:
                problems.append(f"{name} is {a.dtype.name}{list(a.shape)}, the graph wants "
                                f"{p.dtype.name}{list(p.shape)}")
            else:
                p.set_data(a, ctx)
        if problems:
            raise GraphFormatError(f"{where} does not fit the graph: {'; '.join(problems[:5])}")

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """A SymbolBlock is a graph already."""

    def forward(self, *inputs: NDArray) -> Any:
        graph = self.graph
        if len(inputs) != len(graph.input_meta):
            raise ValueError(f"the graph takes {len(graph.input_meta)} inputs "
                             f"({', '.join(graph.input_names)}), got {len(inputs)}")
        for name, x, (shape, dtype) in zip(graph.input_names, inputs, graph.input_meta):
            if not isinstance(x, NDArray) or x.shape != shape or x.dtype != dtype:
                got = f"{x.dtype.name}{list(x.shape)}" if isinstance(x, NDArray) else type(x).__name__
                raise ValueError(f"input {name!r} must be {np.dtype(dtype).name}{list(shape)} as "
                                 f"exported, got {got}")
        params = [self._reg_params[n].data() for n in graph.param_names]
        outs = graph.run(list(inputs), params, inputs[0].ctx if inputs else current_context())
        return unflatten_output(graph.output_tree, outs)


def _read_params(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise GraphFormatError(f"cannot read parameter file {path}: {e}") from None
