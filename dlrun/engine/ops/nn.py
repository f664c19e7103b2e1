"""Neural-network ops: softmax family, label picking, dropout."""
from __future__ import annotations

from ..registry import register


__all__ = ["log_softmax", "softmax", "pick", "dropout"]


@register("log_softmax")
def log_softmax(xp, x, axis=-1):
    """log(softmax(x)) along ``axis``, computed stably (max subtracted first)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return y, lambda g: (g - xp.exp(y) * g.sum(axis=axis, keepdims=True),)


@register("softmax")
def softmax(xp, x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, computed stably."""
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)),)


@register("pick")
def pick(xp, x, index, axis=-1, keepdims=False):
    """``x`` at position ``index`` along ``axis`` (index has x's shape without that axis)."""
    axis = axis % x.ndim
    idx = xp.expand_dims(index.astype(xp.int64, copy=False), axis)
    if idx.min() < 0 or idx.max() >= x.shape[axis]:
        raise IndexError(f"pick: indices must lie in [0, {x.shape[axis]}) along axis {axis}, "
                         f"got values from {int(idx.min())} to {int(idx.max())}")
    y = xp.take_along_axis(x, idx, axis=axis)
    if not keepdims:
        y = y.squeeze(axis)

    def vjp(g):
        positions = xp.arange(x.shape[axis]).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
        g_kept = g if keepdims else xp.expand_dims(g, axis)
        return (xp.where(positions == idx, g_kept, 0).astype(g.dtype), None)
    return y, vjp


@register("dropout", needs_rng=True)
def dropout(xp, x, p, rng):
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1-p)."""
    mask = (rng.random(x.shape, dtype=xp.float32) >= p).astype(x.dtype) * x.dtype.type(1 / (1 - p))
    return x * mask, lambda g: (g * mask,)
