"""Elementwise arithmetic with broadcasting, comparisons, copies and casts."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Context, array_module, device_scope
from ..registry import register
from ._util import shape_of, unbroadcast


__all__ = ["add", "subtract", "multiply", "divide", "power", "negative", "maximum", "minimum",
           "where", "equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal",
           "logical_and", "logical_or", "logical_xor", "logical_not", "copy", "cast",
           "copy_to_context"]


@register("add")
def add(xp, a, b):
    sa, sb = shape_of(a), shape_of(b)
    return a + b, lambda g: (unbroadcast(g, sa), unbroadcast(g, sb))


@register("subtract")
def subtract(xp, a, b):
    sa, sb = shape_of(a), shape_of(b)
    return a - b, lambda g: (unbroadcast(g, sa), None if sb is None else unbroadcast(-g, sb))


@register("multiply")
def multiply(xp, a, b):
    sa, sb = shape_of(a), shape_of(b)
    return a * b, lambda g: (None if sa is None else unbroadcast(g * b, sa),
                             None if sb is None else unbroadcast(g * a, sb))


@register("divide")
def divide(xp, a, b):
    sa, sb = shape_of(a), shape_of(b)
    y = a / b
    return y, lambda g: (None if sa is None else unbroadcast(g / b, sa),
                         None if sb is None else unbroadcast(-g * y / b, sb))


@register("power")
def power(xp, a, b):
    sa, sb = shape_of(a), shape_of(b)
    y = a ** b

    def vjp(g):
        ga = None if sa is None else unbroadcast(g * b * a ** (b - 1), sa)
        gb = None
        if sb is not None:
            safe_log = xp.log(xp.where(a > 0, a, 1))
            gb = unbroadcast(g * y * safe_log, sb)
        return ga, gb
    return y, vjp


@register("negative")
def negative(xp, a):
    return -a, lambda g: (-g,)


def _select(a, b, y):
    """The vjp of ``y``, elementwise one of ``a`` or ``b``: ties split the gradient in half."""
    sa, sb = shape_of(a), shape_of(b)

    def vjp(g):
        half = 0.5 * g * (a == b)
        return unbroadcast(g * (a == y) - half, sa), unbroadcast(g * (b == y) - half, sb)
    return vjp


@register("maximum")
def maximum(xp, a, b):
    """Elementwise larger of ``a`` and ``b`` (arrays with broadcasting, or an array and a scalar)."""
    y = xp.maximum(a, b)
    return y, _select(a, b, y)


@register("minimum")
def minimum(xp, a, b):
    """Elementwise smaller of ``a`` and ``b`` (arrays with broadcasting, or an array and a scalar)."""
    y = xp.minimum(a, b)
    return y, _select(a, b, y)


@register("where")
def where(xp, cond, a, b):
    """``a`` where ``cond`` is non-zero, ``b`` elsewhere, with broadcasting; no gradient to ``cond``."""
    sa, sb = shape_of(a), shape_of(b)
    mask = cond != 0
    return xp.where(mask, a, b), lambda g: (None, unbroadcast(xp.where(mask, g, 0), sa),
                                            unbroadcast(xp.where(mask, 0, g), sb))


def _compare(name: str, fn: Any) -> Any:
    @register(name, differentiable=False)
    def compare(xp, a, b):
        dtype = a.dtype if hasattr(a, "dtype") else b.dtype
        return fn(a, b).astype(dtype)
    compare.__doc__ = f"Elementwise ``{name}(a, b)`` as 0/1 values of the input dtype (no gradient)."
    return compare


equal = _compare("equal", lambda a, b: a == b)
not_equal = _compare("not_equal", lambda a, b: a != b)
greater = _compare("greater", lambda a, b: a > b)
greater_equal = _compare("greater_equal", lambda a, b: a >= b)
lesser = _compare("lesser", lambda a, b: a < b)
lesser_equal = _compare("lesser_equal", lambda a, b: a <= b)
logical_and = _compare("logical_and", lambda a, b: (a != 0) & (b != 0))
logical_or = _compare("logical_or", lambda a, b: (a != 0) | (b != 0))
logical_xor = _compare("logical_xor", lambda a, b: (a != 0) ^ (b != 0))


@register("logical_not", differentiable=False)
def logical_not(xp, a):
    """1 where ``a`` is zero, 0 elsewhere, in the input dtype (no gradient)."""
    return (a == 0).astype(a.dtype)


@register("copy")
def copy(xp, a):
    return a.copy(), lambda g: (g,)


@register("cast")
def cast(xp, a, dtype):
    src = a.dtype
    differentiable = src.kind == "f" and np.dtype(dtype).kind == "f"
    return a.astype(dtype), lambda g: (g.astype(src) if differentiable else None,)


def _move(data: Any, ctx: Context) -> Any:
    if isinstance(data, np.ndarray):
        if ctx.device_type == "cpu":
            return data.copy()
        with device_scope(ctx):
            return array_module(ctx).asarray(data)
    if ctx.device_type == "cpu":
        return data.get()
    with device_scope(ctx):
        # device to device: CuPy's copy() lands on the current device (asarray would hand
        # back the array itself, still on its own device)
        return data.copy()


@register("copy_to_context", moves_context=True)
def copy_to_context(xp, a, ctx):
    src = Context("cpu") if isinstance(a, np.ndarray) else Context("gpu", a.device.id)
    return _move(a, ctx), lambda g: (_move(g, src),)
