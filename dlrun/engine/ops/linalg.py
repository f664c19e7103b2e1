"""Matrix and tensor products."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import register
from ._util import unbroadcast


__all__ = ["matmul", "batch_dot", "dot", "tensordot", "outer", "fully_connected"]


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


def _swap_last(x, flag: bool):
    return x.swapaxes(-1, -2) if flag else x


@register("batch_dot")
def batch_dot(xp, a, b, transpose_a=False, transpose_b=False):
    """Batched matrix product of (..., n, k) and (..., k, m) arrays with equal batch dimensions.

    ``transpose_a``/``transpose_b`` swap the last two axes of that input first, as MXNet.
    """
    a2, b2 = _swap_last(a, transpose_a), _swap_last(b, transpose_b)
    if (a.ndim < 3 or a.ndim != b.ndim or a2.shape[:-2] != b2.shape[:-2]
            or a2.shape[-1] != b2.shape[-2]):
        raise ValueError(
            f"batch_dot: shapes {a.shape} and {b.shape} (transpose_a={transpose_a}, "
            f"transpose_b={transpose_b}) do not give (..., n, k) x (..., k, m) with the same "
            "batch dimensions")
    y, vjp = matmul.forward(xp, a2, b2)

    def batch_vjp(g):
        ga, gb = vjp(g)
        return _swap_last(ga, transpose_a), _swap_last(gb, transpose_b)
    return y, batch_vjp


def _axes_list(axes: Any, shape: tuple) -> list:
    """One side of tensordot's ``axes`` pair (an int or a sequence) as non-negative ints."""
    axes = [int(a) for a in ([axes] if isinstance(axes, (int, np.integer)) else axes)]
    for a in axes:
        if not -len(shape) <= a < len(shape):
            raise ValueError(f"tensordot: axis {a} is out of range for shape {shape}")
    return [a % len(shape) for a in axes]


def _inverse(perm: list) -> tuple:
    return tuple(int(i) for i in np.argsort(perm))


def _contract(xp, name: str, a, b, axes_a: list, axes_b: list):
    """``tensordot(a, b, (axes_a, axes_b))`` and its vjp; the shared core of dot and tensordot."""
    if len(axes_a) != len(axes_b) or any(
            a.shape[i] != b.shape[j] for i, j in zip(axes_a, axes_b)):
        raise ValueError(f"{name}: cannot contract axes {tuple(axes_a)} of shape {a.shape} with "
                         f"axes {tuple(axes_b)} of shape {b.shape}: the sizes differ")
    y = xp.asarray(xp.tensordot(a, b, axes=(axes_a, axes_b)))
    free_a = [i for i in range(a.ndim) if i not in axes_a]
    free_b = [j for j in range(b.ndim) if j not in axes_b]

    def vjp(g):
        g_free_a = list(range(len(free_a)))
        g_free_b = list(range(len(free_a), g.ndim))
        # tensordot keeps the uncontracted axes in their own order; map them back to a's and b's
        ga = xp.tensordot(g, b, axes=(g_free_b, free_b))
        ga_axes = free_a + [axes_a[axes_b.index(j)] for j in sorted(axes_b)]
        gb = xp.tensordot(a, g, axes=(free_a, g_free_a))
        gb_axes = [axes_b[axes_a.index(i)] for i in sorted(axes_a)] + free_b
        return ga.transpose(_inverse(ga_axes)), gb.transpose(_inverse(gb_axes))
    return y, vjp


@register("tensordot")
def tensordot(xp, a, b, axes=2):
    """Sum of products over axes, as ``numpy.tensordot``.

    ``axes`` is an int N (the last N axes of ``a`` with the first N of ``b``) or a pair
    ``(axes_of_a, axes_of_b)`` of ints or sequences.
    """
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: axes={axes} does not fit shapes {a.shape} and {b.shape}")
        axes_a, axes_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        axes_a, axes_b = _axes_list(axes[0], a.shape), _axes_list(axes[1], b.shape)
    return _contract(xp, "tensordot", a, b, axes_a, axes_b)


@register("dot")
def dot(xp, a, b, transpose_a=False, transpose_b=False):
    """MXNet's dot: the last axis of ``a`` with the first axis of ``b``.

    ``transpose_a`` contracts the first axis of ``a`` instead (its other axes lead the
    output), ``transpose_b`` the last axis of ``b``. Two vectors give a 0-d array.
    """
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"dot needs arrays of at least one dimension, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1 and b.ndim == 1 and (transpose_a or transpose_b):
        raise ValueError("dot: vectors cannot be transposed; use outer() for an outer product")
    return _contract(xp, "dot", a, b, [0 if transpose_a else a.ndim - 1],
                     [b.ndim - 1 if transpose_b else 0])


@register("outer")
def outer(xp, a, b):
    """Outer product of ``a`` and ``b``, each flattened first (as ``numpy.outer``)."""
    a1, b1 = a.reshape(-1), b.reshape(-1)
    return xp.outer(a1, b1), lambda g: ((g @ b1).reshape(a.shape), (a1 @ g).reshape(b.shape))


@register("fully_connected", vjp_needs=True)
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
    # xp.dot, not @: NumPy's matmul takes a slow non-BLAS loop for the rank-1 products of a
    # batch of one (g2.T @ x2 is 10x slower than dot there)
    y = xp.dot(x2, weight.T)
    if bias is not None:
        y += bias
    out_shape = (x.shape[0], weight.shape[0]) if flatten else x.shape[:-1] + (weight.shape[0],)
    y = y.reshape(out_shape)

    def vjp(g, needed):
        g2 = g.reshape(-1, weight.shape[0])
        return (xp.dot(g2, weight).reshape(x.shape) if needed[0] else None,
                xp.dot(g2.T, x2) if needed[1] else None,
                g2.sum(axis=0) if bias is not None and needed[2] else None)
    return y, vjp
