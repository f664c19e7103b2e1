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


def _offset_slices(kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """For each kernel offset, the spatial slices of the padded input its window elements come from."""
    for kidx in itertools.product(*(range(k) for k in kernel)):
        yield kidx, tuple(
            slice(kidx[i] * dilation[i], kidx[i] * dilation[i] + stride[i] * (out[i] - 1) + 1, stride[i])
            for i in range(len(kernel)))


def _pool_windows(kernel: tuple, stride: tuple, out: tuple):
    """For each offset of a pooling window, the index of its elements in the padded (N, C, *S) input."""
    for _, sl in _offset_slices(kernel, stride, (1,) * len(kernel), out):
        yield (Ellipsis,) + sl


def _pad(xp, x, before: tuple, after: tuple, value: float = 0.0):
    if not any(before) and not any(after):
        return x
    return xp.pad(x, [(0, 0), (0, 0)] + list(zip(before, after)), constant_values=value)


def _unpad(gpad, before: tuple, shape: tuple):
    return gpad[(slice(None), slice(None)) + tuple(slice(b, b + n) for b, n in zip(before, shape[2:]))]


# The GEMMs take (channel, ...) matrices whose columns are (sample, position) in one of two
# orders. Batch first, (C, N, *S): im2col copies and col2im adds whole output rows, and
# moving to and from (N, C, *S) is cheap. Batch last, (C, *S, N): those runs become a whole
# row times the batch, worth the transposes when rows are short (LeNet's second
# convolution: 8-wide rows, 1.5x faster forward, 1.8x backward).
def _batch_last(n: int, kernel: tuple, out: tuple) -> bool:
    """Whether the GEMM layout puts the batch last: for short output rows of a real kernel."""
    return n > 1 and math.prod(kernel) > 1 and out[-1] < 16


def _to_gemm(xp, x, batch_last: bool):
    """(N, C, *S) in the GEMM layout: (C, N, *S) as a view, or (C, *S, N) as a copy."""
    return xp.ascontiguousarray(xp.moveaxis(x, 0, -1)) if batch_last else x.swapaxes(0, 1)


def _from_gemm(xp, y, batch_last: bool):
    """A GEMM-layout array back as a contiguous (N, C, *S) (no copy if it already is)."""
    return xp.ascontiguousarray(xp.moveaxis(y, -1, 0) if batch_last else y.swapaxes(0, 1))


def _gemm_matrix(xp, x, batch_last: bool):
    """(N, C, *S) as the contiguous matrix (C, N * prod(S)) in the GEMM layout."""
    return xp.ascontiguousarray(_to_gemm(xp, x, batch_last)).reshape(x.shape[1], -1)


def _gemm_index(spatial: tuple, batch_last: bool) -> tuple:
    """Index of a GEMM-layout array selecting ``spatial`` slices of every channel and sample."""
    return (slice(None),) + (spatial + (slice(None),) if batch_last else (slice(None),) + spatial)


def _im2col(xp, xpad, kernel: tuple, stride: tuple, dilation: tuple, out: tuple, batch_last: bool):
    """The padded input's sliding windows as a contiguous matrix (C * prod(K), columns), the
    columns (sample, output position) in the GEMM layout: the one copy."""
    xt = _to_gemm(xp, xpad, batch_last)
    nd, n = len(kernel), xpad.shape[0]
    st = xt.strides
    sp, sn = (st[1:1 + nd], st[-1]) if batch_last else (st[2:], st[1])
    shape = kernel + ((out + (n,)) if batch_last else ((n,) + out))
    moves = tuple(sp[i] * stride[i] for i in range(nd))
    strides = tuple(sp[i] * dilation[i] for i in range(nd)) + (moves + (sn,) if batch_last else (sn,) + moves)
    win = as_strided(xt, xt.shape[:1] + shape, st[:1] + strides)
    return xp.ascontiguousarray(win).reshape(xt.shape[0] * math.prod(kernel), -1)


def _group(a, g: int, size: int, axis: int):
    """The g-th block of ``size`` along ``axis``."""
    return a[(slice(None),) * axis + (slice(g * size, (g + 1) * size),)]


def _per_group(xp, parts: list):
    return parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=0)


def _correlate(xp, cols, weight, groups: int, n: int, out: tuple, batch_last: bool):
    """im2col matrix times weight (O, C/groups, *K): output (N, O, *out), one GEMM per group."""
    O = weight.shape[0]
    og, rows = O // groups, cols.shape[0] // groups
    y = _per_group(xp, [_group(weight, g, og, 0).reshape(og, -1) @ _group(cols, g, rows, 0)
                        for g in range(groups)])
    return _from_gemm(xp, y.reshape((O,) + (out + (n,) if batch_last else (n,) + out)), batch_last)


def _correlate_weight_grad(xp, gyt, cols, groups: int, kernel: tuple):
    """d(_correlate)/d(weight) for the output gradient as a GEMM matrix (O, columns): (O, C/groups, *K)."""
    O = gyt.shape[0]
    og, rows = O // groups, cols.shape[0] // groups
    gw = _per_group(xp, [_group(gyt, g, og, 0) @ _group(cols, g, rows, 0).T for g in range(groups)])
    return gw.reshape((O, rows // math.prod(kernel)) + tuple(kernel))


def _correlate_input_grad(xp, gyt, weight, groups: int, stride: tuple, dilation: tuple,
                          out: tuple, padded_shape: tuple, batch_last: bool):
    """d(_correlate)/d(padded input) for the output gradient (spatial size ``out``) as a GEMM
    matrix (O, columns): every window's gradient added back in place.

    This is also the forward of transposed convolution (its input is then gyt).
    """
    og = weight.shape[0] // groups
    kernel, n = weight.shape[2:], padded_shape[0]
    dcol = _per_group(xp, [_group(weight, g, og, 0).reshape(og, -1).T @ _group(gyt, g, og, 0)
                           for g in range(groups)])
    dcol = dcol.reshape((padded_shape[1],) + tuple(kernel) + (out + (n,) if batch_last else (n,) + out))
    C, S = padded_shape[1], padded_shape[2:]
    gxt = (xp.zeros((C,) + S + (n,), dtype=dcol.dtype) if batch_last
           else xp.zeros(padded_shape, dtype=dcol.dtype).swapaxes(0, 1))
    for kidx, sl in _offset_slices(kernel, stride, dilation, out):
        gxt[_gemm_index(sl, batch_last)] += dcol[(slice(None),) + kidx]
    return _from_gemm(xp, gxt, batch_last)


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
    bl = _batch_last(x.shape[0], kernel, out)
    cols = _im2col(xp, xpad, kernel, stride, dilation, out, bl)
    y = _add_bias(_correlate(xp, cols, weight, groups, x.shape[0], out, bl), bias)

    def vjp(gy, needed):
        gyt = _gemm_matrix(xp, gy, bl) if needed[0] or needed[1] else None
        gx = None
        if needed[0]:
            gx = _unpad(_correlate_input_grad(xp, gyt, weight, groups, stride, dilation, out, xpad.shape, bl),
                        pad, x.shape)
        gw = _correlate_weight_grad(xp, gyt, cols, groups, kernel) if needed[1] else None
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
    bl = _batch_last(x.shape[0], kernel, S)
    xt = _gemm_matrix(xp, x, bl)
    ypad = _correlate_input_grad(xp, xt, weight, groups, stride, dilation, S, out_shape[:2] + padded, bl)
    y = _add_bias(xp.ascontiguousarray(_unpad(ypad, pad, out_shape)), bias)

    def vjp(gy):
        cols = _im2col(xp, _pad(xp, gy, pad, pad), kernel, stride, dilation, S, bl)
        return (_correlate(xp, cols, weight, groups, x.shape[0], S, bl),
                _correlate_weight_grad(xp, xt, cols, groups, kernel),
                _bias_grad(gy, bias))
    return y, vjp


def _fold_windows(xpad, kernel: tuple, stride: tuple, out: tuple, fold):
    """``fold`` (add or maximum) of every kernel offset's strided slice: one pass per offset,
    each over output-sized arrays, instead of a reduction over a 2*nd-D strided view."""
    acc = None
    for sl in _pool_windows(kernel, stride, out):
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
    if pool_type == "max":
        xpad = _pad(xp, x, pad, after, -xp.inf)
        y = _fold_windows(xpad, kernel, stride, out, xp.maximum)

        def vjp(gy):
            gxpad = xp.zeros(xpad.shape, dtype=gy.dtype)
            taken = xp.zeros(y.shape, dtype=bool)
            for sl in _pool_windows(kernel, stride, out):
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

    # windows that tile the input exactly give each element one window's share: written, not added
    tiles = stride == kernel and xpad.shape == x.shape and all(
        o * k == n for o, k, n in zip(out, kernel, x.shape[2:]))

    def vjp(gy):
        gg = gy / divisor
        gxpad = (xp.empty if tiles else xp.zeros)(xpad.shape, dtype=gy.dtype)
        for sl in _pool_windows(kernel, stride, out):
            if tiles:
                gxpad[sl] = gg
            else:
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
