"""Reductions over any set of axes, with keepdims; arg-extrema and top-k along one axis."""
from __future__ import annotations

import math

from ..registry import register
from ._util import keepdims_shape, normalize_axes


__all__ = ["sum", "mean", "max", "min", "prod", "logsumexp", "argmax", "argmin", "topk", "norm"]


def _drop_kept(xp, y_kept, shape, axes, keepdims):
    """A reduction computed with keepdims=True, as the caller asked for it."""
    return xp.asarray(y_kept if keepdims else y_kept.reshape(
        tuple(n for i, n in enumerate(shape) if i not in axes)))


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

    def vjp(g):
        # ties share the gradient equally: deterministic, and symmetric in the tied inputs
        mask = (x == y_kept).astype(x.dtype)
        return (mask * (g.reshape(y_kept.shape) / mask.sum(axis=axes, keepdims=True)),)
    return _drop_kept(xp, y_kept, x.shape, axes, keepdims), vjp


@register("max")
def max(xp, x, axis=None, keepdims=False):
    return _extremum(xp, x, axis, keepdims, xp.max)


@register("min")
def min(xp, x, axis=None, keepdims=False):
    return _extremum(xp, x, axis, keepdims, xp.min)


def _products_of_others(xp, x, axes):
    """For each element, the product of the other elements of its reduction group.

    Exclusive cumulative products from both ends, so zeros need no special case and
    nothing is divided.
    """
    rest = tuple(i for i in range(x.ndim) if i not in axes)
    order = rest + axes
    grouped = x.transpose(order).reshape(tuple(x.shape[i] for i in rest) + (-1,))
    ones = xp.ones_like(grouped[..., :1])
    before = xp.cumprod(xp.concatenate([ones, grouped[..., :-1]], axis=-1), axis=-1)
    after = xp.flip(xp.cumprod(xp.flip(xp.concatenate([grouped[..., 1:], ones], axis=-1), -1), -1), -1)
    others = (before * after).reshape(tuple(x.shape[i] for i in order))
    return others.transpose(tuple(order.index(i) for i in range(x.ndim)))


@register("prod")
def prod(xp, x, axis=None, keepdims=False):
    """Product over ``axis``; the gradient is exact also where elements are zero."""
    axes = normalize_axes(axis, x.ndim)
    y_kept = x.prod(axis=axes, keepdims=True)
    return (_drop_kept(xp, y_kept, x.shape, axes, keepdims),
            lambda g: (g.reshape(y_kept.shape) * _products_of_others(xp, x, axes),))


@register("logsumexp")
def logsumexp(xp, x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, shifted by the maximum so that nothing overflows."""
    axes = normalize_axes(axis, x.ndim)
    m = x.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or inf) in a group: no shift
    e = xp.exp(x - m)
    total = e.sum(axis=axes, keepdims=True)
    y_kept = xp.log(total) + m
    return (_drop_kept(xp, y_kept, x.shape, axes, keepdims),
            lambda g: (g.reshape(y_kept.shape) * (e / total),))  # softmax: exact ties, no cancellation


@register("argmax", differentiable=False)
def argmax(xp, x, axis=None, keepdims=False):
    """Index of the largest value along ``axis`` (the flat index when axis is None)."""
    return xp.asarray(xp.argmax(x, axis=axis, keepdims=keepdims))


@register("argmin", differentiable=False)
def argmin(xp, x, axis=None, keepdims=False):
    """Index of the smallest value along ``axis`` (the flat index when axis is None)."""
    return xp.asarray(xp.argmin(x, axis=axis, keepdims=keepdims))


_TOPK_RETURNS = ("indices", "value", "both", "mask")


@register("topk")
def topk(xp, x, axis=-1, k=1, ret_typ="indices", is_ascend=False):
    """The ``k`` largest (smallest with ``is_ascend``) elements along ``axis``, as MXNet.

    ``ret_typ``: 'indices' (int64 positions, in rank order), 'value', 'both'
    (``(values, indices)``) or 'mask' (1 at the selected positions, 0 elsewhere, shaped
    like ``x``). ``axis=None`` works on the flattened array; ``k < 1`` selects all. Ties
    keep their original order. Values scatter their gradient back to where they came from.
    """
    if ret_typ not in _TOPK_RETURNS:
        raise ValueError(f"topk: ret_typ must be one of {_TOPK_RETURNS}, got {ret_typ!r}")
    flat = x.reshape(-1) if axis is None else x
    ax = normalize_axes(-1 if axis is None else axis, flat.ndim)[0]
    src = xp.moveaxis(flat, ax, -1)  # the sorted axis last
    n = src.shape[-1]
    k = n if k < 1 else k
    if k > n:
        raise ValueError(f"topk: k={k} is larger than axis {axis} of an array of shape {x.shape}")
    order = xp.argsort(src if is_ascend else -src, axis=-1, kind="stable")
    rank = xp.argsort(order, axis=-1, kind="stable")  # where each element lands in that order

    def back(a):
        return xp.moveaxis(a, -1, ax)

    if ret_typ == "mask":
        return back(rank < k).astype(x.dtype).reshape(x.shape), lambda g: (None,)
    indices = order[..., :k]
    if ret_typ == "indices":
        return back(indices), lambda g: (None,)
    values = xp.take_along_axis(src, indices, axis=-1)

    def vjp(g):
        g = xp.moveaxis(g[0] if ret_typ == "both" else g, ax, -1)
        padded = xp.concatenate([g, xp.zeros(g.shape[:-1] + (n - k,), g.dtype)], axis=-1)
        return (back(xp.take_along_axis(padded, rank, axis=-1)).reshape(x.shape),)
    return ((back(values), back(indices)) if ret_typ == "both" else back(values)), vjp


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
    return _drop_kept(xp, y_kept, x.shape, axes, keepdims), vjp
