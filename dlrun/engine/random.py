"""Seeded random arrays, drawn from one generator per context.

Every draw is built from the generator methods NumPy and CuPy share (``random``,
``uniform``, ``integers``, ``standard_normal``), so a seed means the same on either.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import autograd
from .backend import Context, device_scope, generator
from .backend import seed as _seed
from .ndarray import NDArray, _resolve


def seed(value: int, ctx: Context | None = None) -> None:
    """Seed every context's generator (or only ``ctx``'s)."""
    _seed(value, ctx)


def _draw(ctx: Context | None, dtype: Any, default: Any, sample: Any) -> NDArray:
    if autograd._state.tracer is not None:  # a compiled graph would replay the same numbers
        autograd._state.tracer.escape_any("a random draw outside an op (dlrun.random)")
    ctx, dtype = _resolve(ctx, dtype if dtype is not None else default)
    with device_scope(ctx):
        data = sample(generator(ctx)).astype(dtype, copy=False)
    return NDArray(data, ctx)


def uniform(low: float = 0.0, high: float = 1.0, shape: Any = (1,), ctx: Context | None = None,
            dtype: Any = None) -> NDArray:
    """Samples from U[low, high)."""
    return _draw(ctx, dtype, np.float32, lambda g: g.uniform(low, high, size=shape))


def normal(loc: float = 0.0, scale: float = 1.0, shape: Any = (1,), ctx: Context | None = None,
           dtype: Any = None) -> NDArray:
    """Samples from N(loc, scale^2)."""
    return _draw(ctx, dtype, np.float32, lambda g: g.standard_normal(size=shape) * scale + loc)


def bernoulli(prob: float = 0.5, shape: Any = (1,), ctx: Context | None = None,
              dtype: Any = None) -> NDArray:
    """1 with probability ``prob``, else 0."""
    if not 0 <= prob <= 1:
        raise ValueError(f"bernoulli probability must be in [0, 1], got {prob}")
    return _draw(ctx, dtype, np.float32, lambda g: g.random(size=shape) < prob)


def randint(low: int, high: int, shape: Any = (1,), ctx: Context | None = None,
            dtype: Any = None) -> NDArray:
    """Integers drawn uniformly from [low, high)."""
    if high <= low:
        raise ValueError(f"randint needs low < high, got low={low}, high={high}")
    return _draw(ctx, dtype, np.int32, lambda g: g.integers(low, high, size=shape))


def permutation(n: int, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """A random ordering of 0 .. n-1."""
    return _draw(ctx, dtype, np.int64, lambda g: g.random(size=n).argsort())


def shuffle(x: NDArray) -> NDArray:
    """A copy of ``x`` with its first axis randomly reordered."""
    order = permutation(x.shape[0], ctx=x.ctx)
    return NDArray(x._data[order._data], x.ctx)


__all__ = ["seed", "uniform", "normal", "bernoulli", "randint", "permutation", "shuffle"]
