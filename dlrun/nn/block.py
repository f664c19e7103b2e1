"""Block: the unit of a network. Children and parameters register by attribute assignment."""
from __future__ import annotations

import contextlib
import math
import re
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np

from ..engine import autograd
from ..engine.backend import Context, current_context
from ..engine import mxfile
from ..engine.files import write_atomic
from .parameter import Parameter, ParameterDict


class ParameterFileError(ValueError):
    """A parameter file does not fit the network it is loaded into."""


# MXNet 1.9 saves a recurrent layer's parameters under its unfused cells' paths
MXNET_UNFUSED = re.compile(r"(^|\.)_unfused\.(\d+)\.(?:([lr])_cell\.)?(\w+)$")


def mxnet_name(name: str) -> str:
    """The structural name dlrun gives the parameter MXNet 1.9 saved as ``name``:
    '_unfused.1.r_cell.i2h_weight' (a layer of a recurrent layer) is 'r1_i2h_weight'."""
    return MXNET_UNFUSED.sub(lambda m: f"{m[1]}{m[3] or 'l'}{m[2]}_{m[4]}", name)


def _input_context(args: tuple) -> Any:
    """The first input's context as the current one (parameters copied on several contexts
    then give that context's copy, as Gluon's ``with x.context``), or nothing to do."""
    ctx = getattr(args[0], "ctx", None) if args else None
    if isinstance(ctx, Context) and ctx != current_context():
        return ctx
    return contextlib.nullcontext()


def _some(names: list[str], sep: str = ", ", limit: int = 8) -> str:
    """The first ``limit`` of ``names``, and how many more there are."""
    more = f"{sep}... ({len(names) - limit} more)" if len(names) > limit else ""
    return sep.join(names[:limit]) + more


def _read_parameter_file(filename: str) -> dict[str, np.ndarray]:
    """{name: array} of a dlrun .npz or an MXNet NDArray file that names its arrays. The
    graph constants (``const:N``) of an exported model's parameter file are no parameters:
    that file loads like one ``save_parameters`` wrote."""
    if mxfile.is_mxnet_file(filename):
        loaded = mxfile.load(filename)
        if not isinstance(loaded, dict):
            raise ValueError("it holds a list of arrays without names; save a dict of them")
        return {mxnet_name(k): v for k, v in loaded.items() if v is not None}
    with np.load(filename, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if not k.startswith("const:")}


def _match_prefixed_names(loaded: dict, params: ParameterDict) -> dict:
    """A file of Gluon 1.x's prefixed names ('dense0_weight', from ``save_params``) mapped
    onto the structural names in order, when no name matches and every shape agrees."""
    if set(loaded) & set(params) or len(loaded) != len(params) or any("." in k for k in loaded):
        return loaded
    pairs = list(zip(params.items(), loaded.values()))
    if all(p.shape is None or len(p.shape) == v.ndim and all(
            n in (0, m) for n, m in zip(p.shape, v.shape)) for (_, p), v in pairs):
        return {name: v for (name, _), v in pairs}
    return loaded


class Block:
    """Base class of layers and models (Gluon 2.0 style: define ``forward``).

    ``prefix`` and ``params`` of Gluon 1.x are accepted and ignored: parameter names are
    structural, e.g. ``features.0.weight``.
    """

    def __init__(self, prefix: str | None = None, params: Any = None):
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "_reg_params", OrderedDict())
        object.__setattr__(self, "_made_params", ParameterDict())  # made by params.get()
        object.__setattr__(self, "_forward_hooks", [])

    def __setattr__(self, name: str, value: Any) -> None:
        children, params = self.__dict__.get("_children"), self.__dict__.get("_reg_params")
        if children is None:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               "before assigning attributes")
        children.pop(name, None)
        params.pop(name, None)
        if isinstance(value, Block):
            children[name] = value
        elif isinstance(value, Parameter):
            params[name] = value
        object.__setattr__(self, name, value)

    def name_scope(self) -> contextlib.AbstractContextManager:
        """Gluon 1.x naming scope; names are structural now, so this does nothing."""
        return contextlib.nullcontext()

    def register_child(self, block: "Block", name: str | None = None) -> "Block":
        """Add ``block`` as a child under ``name`` (its index by default)."""
        self._children[name or str(len(self._children))] = block
        return block

    @property
    def params(self) -> ParameterDict:
        """This block's own parameters, its children's not included (Gluon 1.x's
        ``block.params``); ``self.params.get('weight', shape=(...))`` makes one, as 1.x
        layers do in their ``__init__``."""
        own = ParameterDict(self._made_params)
        own.update(self._reg_params)
        own.store = self._made_params
        return own

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """Every parameter of this block and its descendants, by structural name.

        ``select`` is a regular expression the names must match (``'.*weight'``).
        """
        out = ParameterDict()
        seen: set[int] = set()
        for path, block in self._descendants():
            prefix = f"{path}." if path else ""
            for name, p in [*block._reg_params.items(), *block._made_params.items()]:
                if id(p) not in seen and (select is None or re.fullmatch(select, prefix + name)):
                    seen.add(id(p))
                    out[prefix + name] = p
        return out

    def initialize(self, init: Any = None, ctx: Context | None = None, verbose: bool = False,
                   force_reinit: bool = False) -> None:
        """Initialize every parameter (on first use where shapes are inferred)."""
        self.collect_params().initialize(init, ctx, force_reinit=force_reinit)

    def zero_grad(self) -> None:
        self.collect_params().zero_grad()

    def cast(self, dtype: Any) -> None:
        """Convert every parameter to ``dtype`` (e.g. 'float64' for gradient checks)."""
        for p in self.collect_params().values():
            p.cast(dtype)

    def reset_ctx(self, ctx: Context) -> None:
        """Move every parameter to ``ctx``."""
        self.collect_params().reset_ctx(ctx)

    def register_forward_hook(self, hook: Callable[["Block", tuple, Any], None]) -> Callable[[], None]:
        """Call ``hook(block, inputs, output)`` after each forward; returns a function removing it."""
        self._forward_hooks.append(hook)
        return lambda: self._forward_hooks.remove(hook)

    def summary(self, *inputs: Any) -> str:
        """A table of every layer's output shape and parameter count for ``inputs`` (also printed)."""
        rows: list[tuple[str, str, int]] = []

        def record(path: str) -> Callable:
            def hook(block: Block, args: tuple, out: Any) -> None:
                outs = out if isinstance(out, (tuple, list)) else (out,)
                shape = ", ".join(str(tuple(o.shape)) for o in outs if hasattr(o, "shape"))
                own = sum(math.prod(p.shape) for p in block._reg_params.values())
                rows.append((f"{path or type(self).__name__} ({type(block).__name__})", shape, own))
            return hook

        removers = [block.register_forward_hook(record(path)) for path, block in self._descendants()]
        try:
            with autograd.pause():
                self(*inputs)
        finally:
            for remove in removers:
                remove()
        width = max(len(r[0]) for r in rows)
        lines = [f"{'Layer (type)':<{width}}  {'Output shape':<24}  {'Param #':>10}", "-" * (width + 38)]
        lines += [f"{name:<{width}}  {shape:<24}  {count:>10,}" for name, shape, count in rows]
        total = sum(math.prod(p.shape) for p in self.collect_params().values())
        trainable = sum(math.prod(p.shape) for p in self.collect_params().values() if p.grad_req != "null")
        lines += ["-" * (width + 38), f"Parameters: {total:,} ({trainable:,} trainable)"]
        text = "\n".join(lines)
        print(text)
        return text

    def _descendants(self) -> list[tuple[str, "Block"]]:
        """(structural path, block) for this block and every descendant, pre-order.

        Iterative, so that very deep models do not hit Python's recursion limit."""
        out, stack = [], [("", self)]
        while stack:
            path, block = stack.pop()
            out.append((path, block))
            stack.extend((f"{path}.{name}" if path else name, child)
                         for name, child in reversed(block._children.items()))
        return out

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """Hybridize every HybridBlock below (a plain Block itself stays imperative)."""
        for child in self._children.values():
            child.hybridize(active, **kwargs)

    def apply(self, fn: Callable[["Block"], None]) -> "Block":
        """Call ``fn`` on every descendant and then on this block."""
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _input_context(args):
            out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            hook(self, args, out)
        return out

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ---- persistence: structural names, never pickle ----
    def save_parameters(self, filename: str) -> None:
        """Write every parameter to ``filename``, atomically: in MXNet 1.x's binary format
        when the name ends with ``.params`` (MXNet's ``load_parameters`` reads it), else as
        .npz. A failed write (a full disk) leaves no temporary file, and its ``OSError``
        names ``filename``."""
        arrays = {name: p.list_data()[0].asnumpy() for name, p in self.collect_params().items()}
        if str(filename).endswith(".params"):
            mxfile.save(filename, arrays)
        else:
            write_atomic(filename, lambda f: np.savez(f, **arrays))

    def load_parameters(self, filename: str, ctx: Context | list[Context] | None = None,
                        allow_missing: bool = False, ignore_extra: bool = False) -> None:
        """Load parameters saved by :meth:`save_parameters`, or by MXNet 1.x (its
        ``save_parameters``, ``save_params``, ``nd.save`` of a dict, model-zoo files);
        mismatches are listed in the error."""
        params = self.collect_params()
        try:
            loaded = _read_parameter_file(filename)
        except (OSError, ValueError) as e:
            raise ParameterFileError(f"cannot read parameter file {filename}: {e}") from None
        loaded = _match_prefixed_names(loaded, params)
        missing = [k for k in params if k not in loaded]
        extra = [k for k in loaded if k not in params]
        wrong = [f"{k}: file {loaded[k].shape} vs network {params[k].shape}" for k in params
                 if k in loaded and params[k].shape is not None and (
                     len(params[k].shape) != loaded[k].ndim or any(
                         n and n != m for n, m in zip(params[k].shape, loaded[k].shape)))]
        problems = []
        if missing and not allow_missing:
            problems.append(f"missing in the file: {_some(missing)} (pass allow_missing=True to skip)")
        if extra and not ignore_extra:
            problems.append(f"not in the network: {_some(extra)} (pass ignore_extra=True to skip)")
        if wrong:
            problems.append(f"shape mismatch: {_some(wrong, '; ')}")
        if problems:
            raise ParameterFileError(f"{filename} does not fit {type(self).__name__}: " + " | ".join(problems))
        for name, p in params.items():
            if name in loaded:
                p.set_data(loaded[name], ctx)

    def save_params(self, filename: str) -> None:
        """Gluon 1.x's older name of :meth:`save_parameters`."""
        self.save_parameters(filename)

    def load_params(self, filename: str, ctx: Context | None = None, allow_missing: bool = False,
                    ignore_extra: bool = False) -> None:
        """Gluon 1.x's older name of :meth:`load_parameters`."""
        self.load_parameters(filename, ctx, allow_missing, ignore_extra)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)" if len(lines) > 1 else f"{type(self).__name__}({self._extra_repr()})"

    def _extra_repr(self) -> str:
        return ""


class HybridBlock(Block):
    """A block that ``hybridize()`` compiles into a graph of registered ops.

    After ``hybridize()``, the first call with a new input signature (shapes, dtypes,
    context, non-array arguments, training mode) runs ``forward`` once while tracing it;
    later calls replay the graph without running the Python ``forward``
    (``dlrun.engine.jit``). A forward that cannot be traced keeps running imperatively, with
    one ``HybridizeWarning``. ``export()`` writes the graph and the parameters.

    Gluon 1.x code that defines ``hybrid_forward(self, F, x, ...)`` runs unchanged: ``F`` is
    ``dlrun.nd`` imperatively and ``dlrun.symbol`` (the same ops) while tracing, so
    ``F.__name__`` tells the two apart; the block's parameters arrive as keyword arguments.
    """

    def hybridize(self, active: bool = True, static_alloc: bool = False, static_shape: bool = False,
                  fuse_elementwise: bool = False, cuda_graph: bool = False, **kwargs: Any) -> None:
        """Compile this block (``active=False``: back to imperative), and its children.

        Replays always free each intermediate value after its last use; ``static_alloc`` and
        ``static_shape`` are accepted for Gluon compatibility (on CPU they change nothing).
        On a GPU, ``fuse_elementwise`` runs chains of elementwise ops as one ``cupy.fuse``
        kernel and ``cuda_graph`` (needs ``static_shape``) replays calls that record no
        gradient as a captured CUDA graph; both are off by default and do nothing on a CPU.
        """
        from ..engine.jit import CachedOp
        if cuda_graph and not static_shape:
            raise ValueError(f"{type(self).__name__}.hybridize(cuda_graph=True) needs static_shape=True: "
                             "a captured CUDA graph replays fixed shapes")
        cached = CachedOp(self.forward, self.collect_params, type(self).__name__,
                          fuse_elementwise=fuse_elementwise, cuda_graph=cuda_graph) if active else None
        object.__setattr__(self, "_cached", cached)
        super().hybridize(active, static_alloc=static_alloc, static_shape=static_shape,
                          fuse_elementwise=fuse_elementwise, cuda_graph=cuda_graph, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cached = self.__dict__.get("_cached")
        if cached is None or kwargs or autograd._state.tracer is not None:
            return super().__call__(*args, **kwargs)  # inside a trace: the outer graph records
        with _input_context(args):
            out = cached(args)
        for hook in self._forward_hooks:
            hook(self, args, out)
        return out

    def export(self, path: str, epoch: int = 0) -> tuple[str, str]:
        """Write ``path-symbol.json`` (the graph of the last predict-mode call) and
        ``path-NNNN.params`` (its parameters, npz); returns the two file names."""
        cached = self.__dict__.get("_cached")
        if cached is None:
            raise RuntimeError(f"cannot export {type(self).__name__}: it is not hybridized; call "
                               "net.hybridize() and run it once on an input first")
        if cached.untraceable:
            raise RuntimeError(f"cannot export {type(self).__name__}: it runs imperatively "
                               f"because {cached.untraceable}")
        graph = cached.last_graph(training=False)
        if graph is None:
            raise RuntimeError(f"cannot export {type(self).__name__}: no predict-mode graph yet; run "
                               "net(x) once outside autograd.record() after hybridize()")
        params = self.collect_params()
        files = (f"{path}-symbol.json", f"{path}-{epoch:04d}.params")
        graph.save(*files, [params[n].data() for n in graph.param_names])
        return files

    def export_onnx(self, path: str, input_shape: Sequence[int] | None = None,
                    batch_axis: int | None = 0, step_axis: int | None = None) -> str:
        """Write the graph of the last predict-mode call as the ONNX model ``path`` (opset
        17, the ``batch_axis`` of inputs and outputs symbolic); with ``input_shape``, of a
        call on zeros of that shape first. Needs ``pip install 'dlrun[onnx]'``."""
        from ..engine.ndarray import zeros
        from ..engine.onnx_export import save
        if input_shape is not None:
            if self.__dict__.get("_cached") is None:
                self.hybridize()
            with autograd.predict_mode():
                self(zeros(tuple(input_shape)))
        cached = self.__dict__.get("_cached")
        graph = cached.last_graph(training=False) if cached is not None else None
        if graph is None:
            raise RuntimeError(f"cannot export {type(self).__name__} to ONNX: no predict-mode graph; "
                               "call net.hybridize() and net(x) once, or give input_shape")
        params = self.collect_params()
        save(graph, {n: params[n].data().asnumpy() for n in graph.param_names}, path, batch_axis, step_axis)
        return str(path)

    def forward(self, *args: Any) -> Any:
        if type(self).hybrid_forward is HybridBlock.hybrid_forward:
            raise NotImplementedError(f"{type(self).__name__} must define forward()")
        from .. import nd, symbol
        params = {name: p.data() for name, p in self._reg_params.items()}
        return self.hybrid_forward(nd if autograd._state.tracer is None else symbol, *args, **params)

    def hybrid_forward(self, F: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class Sequential(Block):
    """Children run one after another; ``add`` appends them (named 0, 1, ...)."""

    def add(self, *blocks: Block) -> None:
        for block in blocks:
            self.register_child(block)

    def forward(self, x: Any, *args: Any) -> Any:
        for block in self._children.values():
            x = block(x, *args)
            args = ()
        return x

    def __getitem__(self, index: int) -> Block:
        return list(self._children.values())[index]

    def __len__(self) -> int:
        return len(self._children)


class HybridSequential(Sequential, HybridBlock):
    """A Sequential of hybridizable blocks."""

    forward = Sequential.forward


class Concurrent(Sequential):
    """Runs every child on the same input and concatenates their outputs along ``axis``.

    ``concat_dim`` is Gluon 1.x's name for ``axis``.
    """

    def __init__(self, axis: int = -1, prefix: str | None = None, params: Any = None,
                 concat_dim: int | None = None):
        super().__init__(prefix, params)
        self._axis = axis if concat_dim is None else concat_dim

    def forward(self, x: Any) -> Any:
        from ..engine import ops
        return ops.concat(*(block(x) for block in self._children.values()), dim=self._axis)


class HybridConcurrent(Concurrent, HybridBlock):
    """A Concurrent of hybridizable blocks (the Inception block's parallel branches)."""

    forward = Concurrent.forward


class Identity(HybridBlock):
    """Returns its input (a placeholder branch, e.g. DenseNet's skip path)."""

    def forward(self, x: Any) -> Any:
        return x


Concatenate = Concurrent  # Gluon 2.0's names
HybridConcatenate = HybridConcurrent
