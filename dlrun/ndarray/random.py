"""``nd.random`` with MXNet 1.x's signatures (``shape, dtype, ctx`` in that order, shape
(1,) by default, NDArray parameters drawing one sample set per element).

Draws come from dlrun's seeded generators (``mx.random.seed``); the numbers differ from
MXNet's for the same seed, their distributions do not.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..engine import NDArray, ops
from ..engine import random as _engine
from ..engine.backend import Context
from ..engine.ndarray import array
from ..engine.random import seed

_DEFAULT = (1,)


def _shape(shape: Any) -> tuple:
    if shape is None or shape == ():
        return ()
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)


def _per_element(param: NDArray, shape: Any) -> tuple:
    """The output shape of a draw with an NDArray parameter: param.shape + shape."""
    return tuple(param.shape) + _shape(shape)


def _expand(param: Any, out_shape: tuple) -> Any:
    if not isinstance(param, NDArray):
        return param
    return ops.reshape(param, shape=param.shape + (1,) * (len(out_shape) - param.ndim))


def _draw(a: Any, b: Any, shape: Any, dtype: Any, ctx: Context | None, out: NDArray | None,
          standard: Any, combine: Any) -> NDArray:
    """``combine(a, b, z)`` of standard samples ``z``; with an NDArray ``a`` or ``b``, ``shape``
    samples per element of it (output shape: its shape + ``shape``)."""
    if isinstance(a, NDArray) or isinstance(b, NDArray):
        ref = a if isinstance(a, NDArray) else b
        size = _per_element(ref, shape)
        z = standard(0.0, 1.0, size, ref.ctx, dtype or ref.dtype)
        return _fill(out, combine(_expand(a, size), _expand(b, size), z))
    return _fill(out, combine(a, b, standard(0.0, 1.0, _shape(shape), ctx, dtype)))


def uniform(low: Any = 0.0, high: Any = 1.0, shape: Any = _DEFAULT, dtype: Any = None,
            ctx: Context | None = None, out: NDArray | None = None, **ignored: Any) -> NDArray:
    """Samples from U[low, high); NDArray ``low``/``high``: ``shape`` samples per element."""
    return _draw(low, high, shape, dtype, ctx, out, _engine.uniform, lambda a, b, u: a + (b - a) * u)


def normal(loc: Any = 0.0, scale: Any = 1.0, shape: Any = _DEFAULT, dtype: Any = None,
           ctx: Context | None = None, out: NDArray | None = None, **ignored: Any) -> NDArray:
    """Samples from N(loc, scale^2); NDArray ``loc``/``scale``: ``shape`` samples per element."""
    return _draw(loc, scale, shape, dtype, ctx, out, _engine.normal, lambda a, b, z: a + b * z)


def randn(*shape: int, loc: float = 0.0, scale: float = 1.0, dtype: Any = None,
          ctx: Context | None = None, **ignored: Any) -> NDArray:
    """Normal samples of shape ``shape`` (given as separate ints)."""
    return normal(loc, scale, shape or _DEFAULT, dtype, ctx)


def randint(low: int, high: int, shape: Any = _DEFAULT, dtype: Any = "int32",
            ctx: Context | None = None, out: NDArray | None = None, **ignored: Any) -> NDArray:
    """Integers drawn uniformly from [low, high)."""
    return _fill(out, _engine.randint(int(low), int(high), _shape(shape), ctx, dtype))


def exponential(scale: float = 1.0, shape: Any = _DEFAULT, dtype: Any = None,
                ctx: Context | None = None, **ignored: Any) -> NDArray:
    """Samples of the exponential distribution of mean ``scale``."""
    u = _engine.uniform(0.0, 1.0, _shape(shape), ctx, dtype)
    return ops.log(1 - u) * (-scale)


def bernoulli(prob: float = 0.5, shape: Any = _DEFAULT, dtype: Any = None,
              ctx: Context | None = None, **ignored: Any) -> NDArray:
    """1 with probability ``prob``, else 0."""
    return _engine.bernoulli(prob, _shape(shape), ctx, dtype)


def multinomial(data: NDArray, shape: Any = (), get_prob: bool = False, out: NDArray | None = None,
                dtype: Any = "int32") -> Any:
    """Class indices drawn from each row of probabilities ``data`` (last axis: the classes);
    ``shape`` draws per row. With ``get_prob``, also the log-probability of each draw."""
    probs = data.asnumpy().astype(np.float64)
    extra = _shape(shape) or ((1,) if data.ndim == 1 else ())  # MXNet: one draw is (1,)
    count = int(np.prod(extra)) if extra else 1
    rows = probs.reshape(-1, probs.shape[-1])
    u = _engine.uniform(0.0, 1.0, (rows.shape[0], count), data.ctx, np.float64).asnumpy()
    cdf = np.cumsum(rows, axis=1)
    cdf /= cdf[:, -1:]
    picks = np.stack([np.searchsorted(c, r, side="right") for c, r in zip(cdf, u)])
    picks = np.minimum(picks, rows.shape[1] - 1).reshape(probs.shape[:-1] + extra)
    result = _fill(out, array(picks, ctx=data.ctx, dtype=dtype))
    if not get_prob:
        return result
    index = result.reshape((-1, count))
    logp = _gathered_log(ops.reshape(data, shape=(-1, data.shape[-1])), index)
    return result, ops.reshape(logp, shape=result.shape)


def _gathered_log(flat: NDArray, index: NDArray) -> NDArray:
    """log of ``flat[i, index[i, j]]`` for every row i and draw j."""
    rows = [ops.pick(flat, index[:, j], axis=-1) for j in range(index.shape[1])]
    return ops.log(ops.stack(*rows, axis=1))


def shuffle(data: NDArray, **ignored: Any) -> NDArray:
    """A copy of ``data`` with its first axis randomly reordered."""
    return _engine.shuffle(data)


def _fill(out: NDArray | None, value: NDArray) -> NDArray:
    if out is None:
        return value
    out[...] = value
    return out


__all__ = ["seed", "uniform", "normal", "randn", "randint", "exponential", "bernoulli",
           "multinomial", "shuffle"]
