"""Matrix products."""
from __future__ import annotations

from ..registry import register
from ._util import unbroadcast


__all__ = ["matmul", "fully_connected"]


@register("matmul")
def matmul(xp, a, b):
    """``a @ b`` with NumPy's rules: 1-D operands and broadcast batch dimensions."""
    y = xp.matmul(a, b)

    def vjp(g):
        a2 = a if a.ndim > 1 else a[None, :]
        b2 = b if b.ndim > 1 else b[:, None]
        g2 = g if a.ndim > 1 else xp.expand_dims(g, -2)
        g2 = g2 if b.ndim > 1 else xp.expand_dims(g2, -1)
        ga = unbroadcast(xp.matmul(g2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        gb = unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb
    return y, vjp


@register("fully_connected")
def fully_connected(xp, x, weight, bias=None, flatten=True):
    """``x @ weight.T + bias`` with Gluon's weight layout (units, in_units).

    ``flatten`` folds all axes after the first into the input features; otherwise the
    product is over the last axis only.
    """
    in_units = weight.shape[1]
    x2 = x.reshape(x.shape[0], -1) if flatten else x.reshape(-1, in_units)
    if x2.shape[1] != in_units:
        raise ValueError(f"fully_connected: input of shape {x.shape} has {x2.shape[1]} features "
                         f"but the weight expects {in_units} (weight shape {weight.shape})")
    y = x2 @ weight.T
    if bias is not None:
        y += bias
    out_shape = (x.shape[0], weight.shape[0]) if flatten else x.shape[:-1] + (weight.shape[0],)
    y = y.reshape(out_shape)

    def vjp(g):
        g2 = g.reshape(-1, weight.shape[0])
        return ((g2 @ weight).reshape(x.shape), g2.T @ x2,
                None if bias is None else g2.sum(axis=0))
    return y, vjp
