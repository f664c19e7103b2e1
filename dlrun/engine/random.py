"""Seeded random arrays, drawn from one generator per context."""
from __future__ import annotations

from typing import Any

from .backend import Context, current_context, device_scope, generator
from .backend import seed as _seed
from .ndarray import NDArray, _resolve


def seed(value: int, ctx: Context | None = None) -> None:
    """Seed every context's generator (or only ``ctx``'s)."""
    _seed(value, ctx)


def uniform(low: float = 0.0, high: float = 1.0, shape: Any = (1,), ctx: Context | None = None,
            dtype: Any = None) -> NDArray:
    """Samples from U[low, high)."""
    ctx, dtype = _resolve(ctx, dtype)
    with device_scope(ctx):
        data = generator(ctx).uniform(low, high, size=shape).astype(dtype, copy=False)
    return NDArray(data, ctx)


def normal(loc: float = 0.0, scale: float = 1.0, shape: Any = (1,), ctx: Context | None = None,
           dtype: Any = None) -> NDArray:
    """Samples from N(loc, scale^2)."""
    ctx, dtype = _resolve(ctx, dtype)
    with device_scope(ctx):
        data = generator(ctx).normal(loc, scale, size=shape).astype(dtype, copy=False)
    return NDArray(data, ctx)


__all__ = ["seed", "uniform", "normal", "current_context"]
