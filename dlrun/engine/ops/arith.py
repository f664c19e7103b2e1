"""Elementwise arithmetic with broadcasting, comparisons, copies and casts."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Context, array_module, device_scope
from ..registry import register
from ._util import shape_of, unbroadcast


__all__ = ["add", "subtract", "multiply", "divide", "power", "negative", "equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal", "copy", "cast", "copy_to_context"]


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


def _compare(name: str, fn: Any) -> Any:
    @register(name, differentiable=False)
    def compare(xp, a, b):
        dtype = a.dtype if hasattr(a, "dtype") else b.dtype
        return fn(a, b).astype(dtype)
    compare.__doc__ = f"Elementwise ``a {name} b`` as 0/1 values of the input dtype (no gradient)."
    return compare


equal = _compare("equal", lambda a, b: a == b)
not_equal = _compare("not_equal", lambda a, b: a != b)
greater = _compare("greater", lambda a, b: a > b)
greater_equal = _compare("greater_equal", lambda a, b: a >= b)
lesser = _compare("lesser", lambda a, b: a < b)
lesser_equal = _compare("lesser_equal", lambda a, b: a <= b)


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
        return array_module(ctx).asarray(data)  # device-to-device copy


@register("copy_to_context", moves_context=True)
def copy_to_context(xp, a, ctx):
    src = Context("cpu") if isinstance(a, np.ndarray) else Context("gpu", a.device.id)
    return _move(a, ctx), lambda g: (_move(g, src),)
