"""The MXNet 1.x names of the ``nd`` namespace that dlrun's ops spell otherwise.

Every function here calls registered ops (so autograd, hybridize and the GPU work as for
the ops themselves); none computes anything of its own. The argument names and defaults
are MXNet 1.9's (``num_hidden``, ``no_bias``, ``act_type``, ``kernel``, ``num_filter``...).
"""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..engine import NDArray, autograd, ops
from ..engine.backend import Context
from ..engine.ndarray import REDUCTIONS, array, full_reduction, zeros

# ---- creation ----


def empty(shape: Any, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """An array of ``shape`` (zeros: dlrun never hands out uninitialised memory)."""
    return zeros(shape, ctx, dtype)


def eye(N: int, M: int = 0, k: int = 0, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """An N x M (M=0: N x N) array with ones on diagonal ``k``."""
    return array(np.eye(N, M or N, k), ctx, dtype or np.float32)


def linspace(start: float, stop: float, num: int, endpoint: bool = True,
             ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    return array(np.linspace(start, stop, int(num), endpoint=endpoint), ctx, dtype or np.float32)


def identity(data: NDArray) -> NDArray:
    """A copy of ``data`` (gradients flow through)."""
    return ops.copy(data)


# ---- reductions with MXNet 1.x's shape (1,) for a full reduction ----
sum, mean, max, min, prod, norm = (full_reduction(n) for n in REDUCTIONS)  # noqa: A001

# ---- broadcasting arithmetic of 1.x: the plain ops already broadcast ----
broadcast_add = broadcast_plus = elemwise_add = ops.add
broadcast_sub = broadcast_minus = elemwise_sub = ops.subtract
broadcast_mul = elemwise_mul = ops.multiply
broadcast_div = elemwise_div = ops.divide
broadcast_power = ops.power
broadcast_maximum = ops.maximum
broadcast_minimum = ops.minimum
broadcast_equal = ops.equal
broadcast_not_equal = ops.not_equal
broadcast_greater = ops.greater
broadcast_greater_equal = ops.greater_equal
broadcast_lesser = ops.lesser
broadcast_lesser_equal = ops.lesser_equal
broadcast_logical_and = ops.logical_and
broadcast_logical_or = ops.logical_or
broadcast_logical_xor = ops.logical_xor
SliceChannel = ops.split
SwapAxis = ops.swapaxes
Concat = ops.concat
Flatten = ops.flatten
Cast = ops.cast
Reshape = ops.reshape


def broadcast_hypot(lhs: NDArray, rhs: NDArray) -> NDArray:
    """``sqrt(lhs**2 + rhs**2)`` with broadcasting."""
    return ops.sqrt(lhs * lhs + rhs * rhs)


def broadcast_like(lhs: NDArray, rhs: NDArray, lhs_axes: Any = None, rhs_axes: Any = None) -> NDArray:
    """``lhs`` broadcast to the shape of ``rhs`` (or only on ``lhs_axes`` to ``rhs_axes``)."""
    if lhs_axes is None:
        return ops.broadcast_to(lhs, shape=rhs.shape)
    shape = list(lhs.shape)
    for a, b in zip(lhs_axes, rhs_axes):
        shape[a] = rhs.shape[b]
    return ops.broadcast_to(lhs, shape=tuple(shape))


def broadcast_axis(data: NDArray, axis: Any = (), size: Any = ()) -> NDArray:
    """``data`` broadcast along its size-1 ``axis`` (an int or tuple) to ``size``."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    sizes = (size,) if isinstance(size, int) else tuple(size)
    shape = list(data.shape)
    for a, n in zip(axes, sizes):
        shape[a] = n
    return ops.broadcast_to(data, shape=tuple(shape))


broadcast_axes = broadcast_axis


def reshape_like(lhs: NDArray, rhs: NDArray) -> NDArray:
    """``lhs`` reshaped to the shape of ``rhs`` (same size)."""
    return ops.reshape(lhs, shape=rhs.shape)


def slice(data: NDArray, begin: Any, end: Any, step: Any = ()) -> NDArray:  # noqa: A001
    """``data[b0:e0:s0, b1:e1:s1, ...]``; None in ``begin``/``end``/``step`` takes the default."""
    steps = tuple(step) + (None,) * (len(begin) - len(step))
    return ops.getitem(data, key=tuple(builtins.slice(b, e, s) for b, e, s in zip(begin, end, steps)))


def modulo(lhs: NDArray, rhs: Any) -> NDArray:
    """``lhs mod rhs`` with the sign of ``rhs`` (as NumPy's and MXNet's)."""
    return lhs - rhs * ops.floor(lhs / rhs)


broadcast_mod = modulo


def linalg_gemm2(A: NDArray, B: NDArray, transpose_a: bool = False, transpose_b: bool = False,
                 alpha: float = 1.0, axis: int = -2) -> NDArray:
    """``alpha * op(A) @ op(B)`` over the last two axes (batched over the others)."""
    a = ops.swapaxes(A, dim1=-1, dim2=-2) if transpose_a else A
    b = ops.swapaxes(B, dim1=-1, dim2=-2) if transpose_b else B
    out = ops.matmul(a, b)
    return out if alpha == 1.0 else out * alpha


def linalg_gemm(A: NDArray, B: NDArray, C: NDArray, transpose_a: bool = False,
                transpose_b: bool = False, alpha: float = 1.0, beta: float = 1.0,
                axis: int = -2) -> NDArray:
    """``alpha * op(A) @ op(B) + beta * C``."""
    return linalg_gemm2(A, B, transpose_a, transpose_b, alpha) + C * beta


# ---- the CamelCase operators of Gluon 1.x layers and hybrid_forward code ----


def FullyConnected(data: NDArray, weight: NDArray, bias: NDArray | None = None,
                   num_hidden: int | None = None, no_bias: bool = False,
                   flatten: bool = True) -> NDArray:
    """``data @ weight.T + bias`` (weight: num_hidden x in_units)."""
    return ops.fully_connected(data, weight, None if no_bias else bias, flatten=flatten)


def _spatial(v: Any, n: int, default: int) -> tuple:
    return (default,) * n if v is None or v == () else tuple(v)


def Convolution(data: NDArray, weight: NDArray, bias: NDArray | None = None, kernel: Any = None,
                stride: Any = None, dilate: Any = None, pad: Any = None, num_filter: int | None = None,
                num_group: int = 1, no_bias: bool = False, layout: str | None = None,
                **ignored: Any) -> NDArray:
    """MXNet's Convolution (NC + spatial layouts)."""
    n = data.ndim - 2
    return ops.convolution(data, weight, None if no_bias else bias,
                           stride=_spatial(stride, n, 1), pad=_spatial(pad, n, 0),
                           dilation=_spatial(dilate, n, 1), groups=num_group)


def Deconvolution(data: NDArray, weight: NDArray, bias: NDArray | None = None, kernel: Any = None,
                  stride: Any = None, dilate: Any = None, pad: Any = None, adj: Any = None,
                  num_filter: int | None = None, num_group: int = 1, no_bias: bool = True,
                  **ignored: Any) -> NDArray:
    """MXNet's Deconvolution (transposed convolution; ``adj`` is the output padding)."""
    n = data.ndim - 2
    return ops.deconvolution(data, weight, None if no_bias else bias,
                             stride=_spatial(stride, n, 1), pad=_spatial(pad, n, 0),
                             dilation=_spatial(dilate, n, 1), output_padding=_spatial(adj, n, 0),
                             groups=num_group)


def Pooling(data: NDArray, kernel: Any = None, pool_type: str = "max", global_pool: bool = False,
            stride: Any = None, pad: Any = None, pooling_convention: str = "valid",
            count_include_pad: bool = True, **ignored: Any) -> NDArray:
    """MXNet's Pooling ('max' or 'avg'; ``pooling_convention='full'`` rounds sizes up)."""
    n = data.ndim - 2
    return ops.pooling(data, kernel=kernel, stride=_spatial(stride, n, 1), pad=_spatial(pad, n, 0),
                       pool_type=pool_type, ceil_mode=pooling_convention == "full",
                       count_include_pad=count_include_pad, global_pool=global_pool)


_ACTIVATIONS = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh,
                "softrelu": ops.softrelu, "softsign": ops.softsign}


def Activation(data: NDArray, act_type: str = "relu") -> NDArray:
    """One of MXNet's activations: relu, sigmoid, tanh, softrelu, softsign."""
    if act_type not in _ACTIVATIONS:
        raise ValueError(f"Activation: act_type {act_type!r} is not one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[act_type](data)


def LeakyReLU(data: NDArray, gamma: NDArray | None = None, act_type: str = "leaky",
              slope: float = 0.25, **ignored: Any) -> NDArray:
    """MXNet's LeakyReLU: 'leaky' (slope), 'prelu' (learned gamma), 'elu' (slope is alpha),
    'selu' and 'gelu'."""
    if act_type == "leaky":
        return ops.leaky_relu(data, slope=slope)
    if act_type == "elu":
        return ops.elu(data, alpha=slope)
    if act_type == "prelu":
        shape = (1, -1) + (1,) * (data.ndim - 2) if gamma.size > 1 else (1,) * data.ndim
        return ops.maximum(data, 0) + ops.reshape(gamma, shape=shape) * ops.minimum(data, 0)
    if act_type == "selu":
        return ops.selu(data)
    if act_type == "gelu":
        return ops.gelu(data)
    raise ValueError(f"LeakyReLU: act_type {act_type!r} is not leaky, prelu, elu, selu or gelu")


def Dropout(data: NDArray, p: float = 0.5, mode: str = "training", axes: Any = (),
            **ignored: Any) -> NDArray:
    """Inverted dropout while training (``mode='always'``: also in predict mode)."""
    if p <= 0 or (mode == "training" and not autograd.is_training()):
        return data
    return ops.dropout(data, p, axes=tuple(axes))


def BatchNorm(data: NDArray, gamma: NDArray, beta: NDArray, moving_mean: NDArray,
              moving_var: NDArray, eps: float = 1e-3, momentum: float = 0.9,
              fix_gamma: bool = True, use_global_stats: bool = False, axis: int = 1,
              **ignored: Any) -> NDArray:
    """MXNet's BatchNorm op (note its defaults: eps 1e-3 and fix_gamma=True)."""
    return ops.batch_norm(data, gamma, beta, moving_mean, moving_var, eps=eps, momentum=momentum,
                          axis=axis, training=autograd.is_training(),
                          use_global_stats=use_global_stats, fix_gamma=fix_gamma)


def Embedding(data: NDArray, weight: NDArray, input_dim: int | None = None,
              output_dim: int | None = None, dtype: Any = None, **ignored: Any) -> NDArray:
    """Rows of ``weight`` at the integer indices ``data``."""
    return ops.embedding(data, weight)


def SoftmaxActivation(data: NDArray, mode: str = "instance") -> NDArray:
    """Softmax over all axes but the first ('instance') or over axis 1 ('channel')."""
    if mode == "channel":
        return ops.softmax(data, axis=1)
    return ops.reshape(ops.softmax(ops.flatten(data), axis=-1), shape=data.shape)


def softmax_cross_entropy(data: NDArray, label: NDArray) -> NDArray:
    """MXNet's op: the cross-entropy of softmax(data) and the class indices ``label``,
    summed over the batch, of shape (1,)."""
    return ops.reshape(ops.sum(ops.softmax_cross_entropy(data, label, axis=-1)), shape=(1,))


def random_normal(loc: float = 0.0, scale: float = 1.0, shape: Any = (1,), dtype: Any = None,
                  ctx: Context | None = None, **ignored: Any) -> NDArray:
    """Samples from N(loc, scale^2) (1.x's ``nd.random_normal``)."""
    from . import random
    return random.normal(loc, scale, shape, dtype, ctx)


def random_uniform(low: float = 0.0, high: float = 1.0, shape: Any = (1,), dtype: Any = None,
                   ctx: Context | None = None, **ignored: Any) -> NDArray:
    """Samples from U[low, high) (1.x's ``nd.random_uniform``)."""
    from . import random
    return random.uniform(low, high, shape, dtype, ctx)


def sample_multinomial(data: NDArray, shape: Any = (), get_prob: bool = False,
                       dtype: Any = "int32") -> Any:
    """Class indices drawn from each row of probabilities ``data``."""
    from . import random
    return random.multinomial(data, shape, get_prob, dtype=dtype)


__all__ = [*REDUCTIONS, "empty", "eye", "linspace", "identity", "broadcast_add", "broadcast_plus",
           "elemwise_add", "broadcast_sub", "broadcast_minus", "elemwise_sub", "broadcast_mul",
           "elemwise_mul", "broadcast_div", "elemwise_div", "broadcast_power", "broadcast_maximum",
           "broadcast_minimum", "broadcast_equal", "broadcast_not_equal", "broadcast_greater",
           "broadcast_greater_equal", "broadcast_lesser", "broadcast_lesser_equal",
           "broadcast_logical_and", "broadcast_logical_or", "broadcast_logical_xor",
           "broadcast_hypot", "broadcast_like", "broadcast_axis", "broadcast_axes", "reshape_like",
           "slice", "modulo", "broadcast_mod", "linalg_gemm", "linalg_gemm2", "SliceChannel",
           "SwapAxis", "Concat", "Flatten", "Cast", "Reshape", "FullyConnected", "Convolution",
           "Deconvolution", "Pooling", "Activation", "LeakyReLU", "Dropout", "BatchNorm",
           "Embedding", "SoftmaxActivation", "softmax_cross_entropy", "random_normal",
           "random_uniform", "sample_multinomial"]
