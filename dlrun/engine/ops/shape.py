"""Shape manipulation and slicing."""
from __future__ import annotations

import numpy as np

from ..backend import scatter_add
from ..registry import register


__all__ = ["reshape", "transpose", "flatten", "getitem"]


def _gluon_shape(shape: tuple, src: tuple) -> tuple:
    """Resolve Gluon's 0 ("keep this input dimension") in a target shape; -1 is left to xp."""
    return tuple(src[i] if n == 0 else n for i, n in enumerate(shape))


@register("reshape")
def reshape(xp, x, shape):
    """Reshape with -1 (infer) and Gluon's 0 (copy this dimension from the input)."""
    try:
        y = x.reshape(_gluon_shape(tuple(shape), x.shape))
    except ValueError as e:
        raise ValueError(f"cannot reshape an array of shape {x.shape} to {tuple(shape)}: {e}") from None
    return y, lambda g: (g.reshape(x.shape),)


@register("transpose")
def transpose(xp, x, axes=None):
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    inverse = tuple(int(i) for i in np.argsort(axes))
    return x.transpose(axes), lambda g: (g.transpose(inverse),)


@register("flatten")
def flatten(xp, x):
    """Collapse every axis after the first: (N, ...) -> (N, prod(...))."""
    return x.reshape(x.shape[0], -1), lambda g: (g.reshape(x.shape),)


def _is_basic(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in keys)


@register("getitem")
def getitem(xp, x, key):
    """``x[key]`` for slices, integers, None, Ellipsis and integer/boolean index arrays."""
    y = x[key]

    def vjp(g):
        gx = xp.zeros(x.shape, dtype=g.dtype)
        if _is_basic(key):
            gx[key] = g
        else:
            scatter_add(gx, key, g)
        return (gx,)
    return y, vjp
