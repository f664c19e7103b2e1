"""Convolution and pooling over any number of spatial dimensions (NC + spatial layout).

Both gather sliding windows as a strided view of the padded input (no copy); convolution
contracts the windows with the weight in one GEMM (im2col), and the backward passes
scatter window gradients back with one strided add per kernel offset. Transposed
convolution is that scatter as a forward; its backward is a convolution.
"""
from __future__ import annotations

import itertools
import math

from ..backend import as_strided
from ..registry import register
from ._util import as_tuple


__all__ = ["convolution", "deconvolution", "pooling"]


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    n = (-(-span // s) if ceil else span // s) + 1
    if n <= 0:
        raise ValueError(f"input size {size} is too small for kernel {k} (dilation {d}, padding {p})")
    return n


def _windows(xpad, kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """View (N, C, *out, *kernel) of the padded input's sliding windows."""
    nd = len(kernel)
    st = xpad.strides
    shape = xpad.shape[:2] + out + kernel
    strides = st[:2] + tuple(st[2 + i] * stride[i] for i in range(nd)) + tuple(
        st[2 + i] * dilation[i] for i in range(nd))
    return as_strided(xpad, shape, strides)


def _offset_slices(kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """For each kernel offset, the slice of the padded input its window elements come from."""
    for kidx in itertools.product(*(range(k) for k in kernel)):
        yield kidx, (slice(None), slice(None)) + tuple(
            slice(kidx[i] * dilation[i], kidx[i] * dilation[i] + stride[i] * (out[i] - 1) + 1, stride[i])
            for i in range(len(kernel)))


def _pad(xp, x, before: tuple, after: tuple, value: float = 0.0):
    if not any(before) and not any(after):
        return x
    return xp.pad(x, [(0, 0), (0, 0)] + list(zip(before, after)), constant_values=value)


def _unpad(gpad, before: tuple, shape: tuple):
    return gpad[(slice(None), slice(None)) + tuple(slice(b, b + n) for b, n in zip(before, shape[2:]))]


def _im2col(xp, win):
    """Windows (N, C, *out, *K) as a contiguous matrix (N * prod(out), C, prod(K)): the one copy."""
    nd = (win.ndim - 2) // 2
    order = (0,) + tuple(range(2, 2 + nd)) + (1,) + tuple(range(2 + nd, 2 + 2 * nd))
    cols = xp.ascontiguousarray(win.transpose(order))
    return cols.reshape(-1, win.shape[1], math.prod(win.shape[2 + nd:]))


def _group(a, g: int, size: int, axis: int):
    """The g-th block of ``size`` along ``axis``."""
    return a[(slice(None),) * axis + (slice(g * size, (g + 1) * size),)]


def _correlate(xp, cols, weight, groups: int, out: tuple):
    """im2col matrix (M, C, K) times weight (O, C/groups, *K): output (N, O, *out), one GEMM per group."""
    O, cg = weight.shape[:2]
    og = O // groups
    parts = [_group(cols, g, cg, 1).reshape(cols.shape[0], -1) @ _group(weight, g, og, 0).reshape(og, -1).T
             for g in range(groups)]
    y = parts[0] if groups == 1 else xp.concatenate(parts, axis=1)  # (M, O)
    return xp.ascontiguousarray(xp.moveaxis(y.reshape((-1,) + out + (O,)), -1, 1))


def _correlate_weight_grad(xp, gy, cols, groups: int, kernel: tuple):
    """d(_correlate)/d(weight) for output gradient gy (N, O, *out): (O, C/groups, *K)."""
    O = gy.shape[1]
    og, cg = O // groups, cols.shape[1] // groups
    gy2 = xp.moveaxis(gy, 1, -1).reshape(-1, O)
    gw = [_group(gy2, g, og, 1).T @ _group(cols, g, cg, 1).reshape(cols.shape[0], -1)
          for g in range(groups)]
    gw = gw[0] if groups == 1 else xp.concatenate(gw, axis=0)
    return gw.reshape((O, cg) + tuple(kernel))


def _correlate_input_grad(xp, gy, weight, groups: int, stride: tuple, dilation: tuple, padded_shape: tuple):
    """d(_correlate)/d(padded input) for gy (N, O, *out): every window's gradient added back in place.

    This is also the forward of transposed convolution (gy is then its input).
    """
    og = weight.shape[0] // groups
    # (C, *K, N, *out): the slab of each kernel offset is contiguous over (N, *out), so the
    # scatter below adds whole rows (the (N, *out, C, *K) order strided every element)
    dcols = [xp.tensordot(weight[g * og:(g + 1) * og], gy[:, g * og:(g + 1) * og], axes=([0], [1]))
             for g in range(groups)]
    dcol = dcols[0] if groups == 1 else xp.concatenate(dcols, axis=0)
    gxpad = xp.zeros(padded_shape, dtype=dcol.dtype)
    gview = gxpad.swapaxes(0, 1)  # (C, N, *S), a view
    for kidx, sl in _offset_slices(weight.shape[2:], stride, dilation, gy.shape[2:]):
        gview[sl] += dcol[(slice(None),) + kidx]
    return gxpad


def _add_bias(y, bias):
    """y (N, C, *S) plus a per-channel bias (C,), in place on the fresh y; None adds nothing."""
    if bias is not None:
        y += bias.reshape((-1,) + (1,) * (y.ndim - 2))
    return y


def _bias_grad(gy, bias):
    return None if bias is None else gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))


def _conv_args(op: str, x, weight, stride, pad, dilation) -> tuple:
    """The spatial rank and (stride, pad, dilation) as tuples, after checking x against weight."""
    nd = weight.ndim - 2
    if x.ndim != nd + 2:
        raise ValueError(f"{op}: a {nd}-D kernel {weight.shape} needs input of {nd + 2} "
                         f"dimensions (N, C, ...), got shape {x.shape}")
    return (nd,) + tuple(as_tuple(v, nd, n) for v, n in
                         ((stride, "stride"), (pad, "pad"), (dilation, "dilation")))


@register("convolution", vjp_needs=True)
def convolution(xp, x, weight, bias=None, stride=1, pad=0, dilation=1, groups=1):
    """Cross-correlation of x (N, C, *S) with weight (O, C/groups, *K), plus bias (O,)."""
    nd, stride, pad, dilation = _conv_args("convolution", x, weight, stride, pad, dilation)
    C, O, cg = x.shape[1], weight.shape[0], weight.shape[1]
    if C != cg * groups or O % groups:
        raise ValueError(f"convolution: input has {C} channels but weight {weight.shape} with "
                         f"groups={groups} expects {cg * groups}")
    kernel = weight.shape[2:]
    out = tuple(_out_size(x.shape[2 + i], kernel[i], stride[i], pad[i], dilation[i]) for i in range(nd))
    xpad = _pad(xp, x, pad, pad)
    cols = _im2col(xp, _windows(xpad, kernel, stride, dilation, out))
    y = _add_bias(_correlate(xp, cols, weight, groups, out), bias)

    def vjp(gy, needed):
        gx = None
        if needed[0]:
            gx = _unpad(_correlate_input_grad(xp, gy, weight, groups, stride, dilation, xpad.shape),
                        pad, x.shape)
        gw = _correlate_weight_grad(xp, gy, cols, groups, kernel) if needed[1] else None
        return gx, gw, _bias_grad(gy, bias) if bias is not None and needed[2] else None
    return y, vjp


@register("deconvolution")
def deconvolution(xp, x, weight, bias=None, stride=1, pad=0, dilation=1, output_padding=0, groups=1):
    """Transposed convolution of x (N, C, *S) with weight (C, O/groups, *K), plus bias (O,).

    The adjoint of convolution with the same weight and settings: each input element
    scatters ``x[n, c, i] * w[c, o, k]`` to output position ``i * stride - pad + k * dilation``.
    Output size: (S - 1) * stride - 2 * pad + dilation * (K - 1) + output_padding + 1.
    """
    nd, stride, pad, dilation = _conv_args("deconvolution", x, weight, stride, pad, dilation)
    output_padding = as_tuple(output_padding, nd, "output_padding")
    C = x.shape[1]
    if C != weight.shape[0] or C % groups:
        raise ValueError(f"deconvolution: input has {C} channels but weight {weight.shape} with "
                         f"groups={groups} expects {weight.shape[0]} (a multiple of groups)")
    if any(not 0 <= p < max(s, d) for p, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"deconvolution: output_padding {output_padding} must be non-negative and "
                         f"smaller than stride {stride} or dilation {dilation}")
    kernel, S = weight.shape[2:], x.shape[2:]
    padded = tuple((S[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + output_padding[i] + 1
                   for i in range(nd))
    out_shape = (x.shape[0], weight.shape[1] * groups) + tuple(p - 2 * q for p, q in zip(padded, pad))
    if min(out_shape[2:]) <= 0:
        raise ValueError(f"deconvolution: padding {pad} leaves no output for input {x.shape} and "
                         f"kernel {weight.shape}")
    ypad = _correlate_input_grad(xp, x, weight, groups, stride, dilation, out_shape[:2] + padded)
    y = _add_bias(xp.ascontiguousarray(_unpad(ypad, pad, out_shape)), bias)

    def vjp(gy):
        cols = _im2col(xp, _windows(_pad(xp, gy, pad, pad), kernel, stride, dilation, S))
        return (_correlate(xp, cols, weight, groups, S), _correlate_weight_grad(xp, x, cols, groups, kernel),
                _bias_grad(gy, bias))
    return y, vjp


def _fold_windows(xpad, kernel: tuple, stride: tuple, out: tuple, fold):
    """``fold`` (add or maximum) of every kernel offset's strided slice: one pass per offset,
    each over output-sized arrays, instead of a reduction over a 2*nd-D strided view."""
    acc = None
    for _, sl in _offset_slices(kernel, stride, (1,) * len(kernel), out):
        acc = xpad[sl].copy() if acc is None else fold(acc, xpad[sl], out=acc)
    return acc


@register("pooling")
def pooling(xp, x, kernel=None, stride=None, pad=0, pool_type="max", ceil_mode=False,
            count_include_pad=True, global_pool=False):
    """Max or average pooling over the spatial axes of x (N, C, *S).

    ``global_pool`` pools each whole feature map to (N, C, 1, ...), ignoring kernel, stride and pad.
    """
    if pool_type not in ("max", "avg"):
        raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
    nd = x.ndim - 2
    if global_pool:
        return _global_pooling(xp, x, pool_type)
    if kernel is None:
        raise ValueError("pooling: give a kernel size, or global_pool=True to pool whole feature maps")
    kernel = as_tuple(kernel, nd, "kernel")
    stride = kernel if stride is None else as_tuple(stride, nd, "stride")
    pad = as_tuple(pad, nd, "pad")
    out = tuple(_out_size(x.shape[2 + i], kernel[i], stride[i], pad[i], 1, ceil_mode) for i in range(nd))
    # ceil mode may need extra room on the far side beyond the symmetric padding
    after = tuple((out[i] - 1) * stride[i] + kernel[i] - x.shape[2 + i] - pad[i] for i in range(nd))
    after = tuple(max(a, p) for a, p in zip(after, pad))
    ones = (1,) * nd
    if pool_type == "max":
        xpad = _pad(xp, x, pad, after, -xp.inf)
        y = _fold_windows(xpad, kernel, stride, out, xp.maximum)

        def vjp(gy):
            gxpad = xp.zeros(xpad.shape, dtype=gy.dtype)
            taken = xp.zeros(y.shape, dtype=bool)
            for _, sl in _offset_slices(kernel, stride, ones, out):
                hit = (xpad[sl] == y) & ~taken  # the first maximum of a window takes the gradient
                gxpad[sl] += gy * hit
                taken |= hit
            return (_unpad(gxpad, pad, x.shape),)
        return y, vjp
    xpad = _pad(xp, x, pad, after)
    if count_include_pad and not any(a > p for a, p in zip(after, pad)):
        divisor = float(math.prod(kernel))
    else:  # count the real (or real + symmetric padding) elements under each window
        valid = xp.zeros((1, 1) + xpad.shape[2:], dtype=x.dtype)
        lo = (0,) * nd if count_include_pad else pad
        hi = tuple(pad[i] + x.shape[2 + i] + (pad[i] if count_include_pad else 0) for i in range(nd))
        valid[(0, 0) + tuple(slice(a, b) for a, b in zip(lo, hi))] = 1
        divisor = _fold_windows(valid, kernel, stride, out, xp.add)
    y = _fold_windows(xpad, kernel, stride, out, xp.add) / divisor

    def vjp(gy):
        gg = gy / divisor
        gxpad = xp.zeros(xpad.shape, dtype=gy.dtype)
        for _, sl in _offset_slices(kernel, stride, ones, out):
            gxpad[sl] += gg
        return (_unpad(gxpad, pad, x.shape),)
    return y, vjp


def _global_pooling(xp, x, pool_type: str):
    """Max or mean over all spatial axes, kept as size-1 axes; max ties share the gradient."""
    axes = tuple(range(2, x.ndim))
    if pool_type == "avg":
        count = math.prod(x.shape[2:])
        return x.mean(axis=axes, keepdims=True), lambda gy: (xp.broadcast_to(gy / count, x.shape).copy(),)
    y = x.max(axis=axes, keepdims=True)

    def vjp(gy):
        mask = (x == y).astype(gy.dtype)
        return (mask * (gy / mask.sum(axis=axes, keepdims=True)),)
    return y, vjp
