"""The op registry: the single dispatch point every differentiable computation goes through."""
from __future__ import annotations

import functools
from typing import Any, Callable

from . import autograd
from .backend import Context, ContextError, array_module, device_scope, generator
from .ndarray import NDArray

OPS: dict[str, "Op"] = {}
# dlrun.contrib.amp.init(): ``autocast(op, inputs) -> inputs`` casts an op's inputs (None: off)
autocast: Callable[["Op", tuple], tuple] | None = None


class Op:
    """A registered op: ``forward(xp, *inputs, **attrs) -> (outputs, vjp)``.

    ``vjp(output_grad) -> tuple`` gives one gradient per positional input (None where an
    input has none). Ops registered with ``differentiable=False`` return outputs only.
    Calling the Op on NDArrays runs it through :func:`invoke`.
    """

    __slots__ = ("name", "forward", "differentiable", "needs_rng", "moves_context", "vjp_needs",
                 "mutates_inputs", "__dict__")

    def __init__(self, name: str, forward: Callable, differentiable: bool, needs_rng: bool,
                 moves_context: bool, vjp_needs: bool, mutates_inputs: bool = False):
        self.name = name
        self.forward = forward
        self.differentiable = differentiable
        self.needs_rng = needs_rng
        self.moves_context = moves_context  # output lives on attrs['ctx'], not the input's
        self.vjp_needs = vjp_needs  # vjp takes needed=(bool per input) to skip unwanted gradients
        self.mutates_inputs = mutates_inputs  # writes into an input (batch norm's running stats)
        self.__doc__ = forward.__doc__
        self.__wrapped__ = forward

    def __call__(self, *inputs: Any, **attrs: Any) -> Any:
        return invoke(self, inputs, attrs)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def register(name: str, differentiable: bool = True, needs_rng: bool = False,
             moves_context: bool = False, vjp_needs: bool = False,
             mutates_inputs: bool = False) -> Callable[[Callable], Op]:
    """Register ``forward`` under ``name``.

    ``needs_rng`` passes the context's generator as ``rng``; ``vjp_needs`` calls the vjp
    as ``vjp(grad, needed=...)`` so that it can skip costly gradients no input needs (the
    data batch of a first layer, for instance); ``mutates_inputs`` marks an op that writes
    into an input, so that a compiled graph never drops it as dead.
    """
    def wrap(forward: Callable) -> Op:
        if name in OPS:
            raise ValueError(f"op {name!r} is registered twice")
        op = OPS[name] = Op(name, forward, differentiable, needs_rng, moves_context, vjp_needs,
                            mutates_inputs)
        return op
    return wrap


def _context_of(inputs: tuple, op: Op) -> Context:
    ctx = None
    for x in inputs:
        if isinstance(x, NDArray):
            if ctx is None:
                ctx = x._ctx
            elif x._ctx != ctx:
                raise ContextError(
                    f"op '{op.name}' got inputs on two contexts, {ctx} and {x._ctx}; move them "
                    f"to one with x.as_in_context({ctx}) or x.as_in_context({x._ctx})")
    if ctx is None:
        raise TypeError(f"op '{op.name}' needs at least one NDArray input")
    return ctx


def invoke(op: Op, inputs: tuple, attrs: dict) -> Any:
    """Run ``op`` on NDArray (or Python scalar) inputs; record it when autograd is on, and
    report it to the jit's tracer during a trace."""
    if autocast is not None:
        inputs = autocast(op, inputs)
    ctx = _context_of(inputs, op)
    raw = [x._data if isinstance(x, NDArray) else x for x in inputs]
    op_attrs = attrs
    if op.needs_rng:
        attrs = dict(attrs, rng=generator(ctx))
    xp = array_module(ctx)
    with device_scope(ctx):
        result = op.forward(xp, *raw, **attrs)
    if not op.differentiable:
        outputs = _wrap(result, ctx)
        if autograd._state.tracer is not None:
            autograd._state.tracer.record(op, inputs, op_attrs, outputs)
        return outputs
    out, vjp = result
    outputs = _wrap(out, attrs["ctx"] if op.moves_context else ctx)
    if autograd._state.tracer is not None:
        autograd._state.tracer.record(op, inputs, op_attrs, outputs)
    if autograd._state.recording:
        parents = tuple(x._node and (x._node, x._index) if isinstance(x, NDArray) else None
                        for x in inputs)
        if any(parents):
            if op.vjp_needs:
                vjp = functools.partial(vjp, needed=tuple(p is not None for p in parents))
            multi = isinstance(outputs, tuple)
            outs = outputs if multi else (outputs,)
            node = autograd.Node(op.name, vjp, parents, len(outs),
                                 tuple((o.shape, o.dtype) for o in outs))
            for i, o in enumerate(outs):
                o._node = node
                o._index = i
    return outputs


def _wrap(out: Any, ctx: Context) -> Any:
    if isinstance(out, tuple):
        return tuple(NDArray(o, ctx) for o in out)
    return NDArray(out, ctx)
