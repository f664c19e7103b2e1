"""Reductions over any set of axes, with keepdims."""
from __future__ import annotations

import math

from ..registry import register
from ._util import keepdims_shape, normalize_axes


__all__ = ["sum", "mean", "max", "min", "argmax", "norm"]


@register("sum")
def sum(xp, x, axis=None, keepdims=False):
    axes = normalize_axes(axis, x.ndim)
    y = xp.asarray(x.sum(axis=axes, keepdims=keepdims))
    kshape = keepdims_shape(x.shape, axes)
    return y, lambda g: (xp.broadcast_to(g.reshape(kshape), x.shape),)


@register("mean")
def mean(xp, x, axis=None, keepdims=False):
    axes = normalize_axes(axis, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    y = xp.asarray(x.mean(axis=axes, keepdims=keepdims))
    kshape = keepdims_shape(x.shape, axes)
    return y, lambda g: (xp.broadcast_to(g.reshape(kshape) / count, x.shape),)


def _extremum(xp, x, axis, keepdims, reduce):
    axes = normalize_axes(axis, x.ndim)
    y_kept = reduce(x, axis=axes, keepdims=True)
    y = y_kept if keepdims else y_kept.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    def vjp(g):
        # ties share the gradient equally: deterministic, and symmetric in the tied inputs
        mask = (x == y_kept).astype(x.dtype)
        return (mask * (g.reshape(y_kept.shape) / mask.sum(axis=axes, keepdims=True)),)
    return xp.asarray(y), vjp


@register("max")
def max(xp, x, axis=None, keepdims=False):
    return _extremum(xp, x, axis, keepdims, xp.max)


@register("min")
def min(xp, x, axis=None, keepdims=False):
    return _extremum(xp, x, axis, keepdims, xp.min)


@register("argmax", differentiable=False)
def argmax(xp, x, axis=None, keepdims=False):
    """Index of the largest value along ``axis`` (the flat index when axis is None)."""
    return xp.asarray(xp.argmax(x, axis=axis, keepdims=keepdims))


@register("norm")
def norm(xp, x, ord=2, axis=None, keepdims=False):
    """The L2 (``ord=2``) or L1 (``ord=1``) norm over ``axis`` (all axes by default)."""
    axes = normalize_axes(axis, x.ndim)
    kshape = keepdims_shape(x.shape, axes)
    if ord == 2:
        y_kept = xp.sqrt((x * x).sum(axis=axes, keepdims=True))

        def vjp(g):
            safe = xp.where(y_kept > 0, y_kept, 1)
            return (g.reshape(kshape) * xp.where(y_kept > 0, x / safe, 0),)
    elif ord == 1:
        y_kept = xp.abs(x).sum(axis=axes, keepdims=True)

        def vjp(g):
            return (g.reshape(kshape) * xp.sign(x),)
    else:
        raise ValueError(f"norm supports ord=1 and ord=2, got ord={ord!r}")
    y = y_kept if keepdims else y_kept.reshape([n for i, n in enumerate(x.shape) if i not in axes])
    return xp.asarray(y), vjp
