"""Convolution and pooling over any number of spatial dimensions (NC + spatial layout).

Both gather sliding windows as a strided view of the padded input (no copy); convolution
contracts the windows with the weight in one GEMM (im2col), and the backward passes
scatter window gradients back with one strided add per kernel offset.
"""
from __future__ import annotations

import itertools
import math

from ..backend import as_strided
from ..registry import register
from ._util import as_tuple


__all__ = ["convolution", "pooling"]


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


@register("convolution")
def convolution(xp, x, weight, bias=None, stride=1, pad=0, dilation=1, groups=1):
    """Cross-correlation of x (N, C, *S) with weight (O, C/groups, *K), plus bias (O,)."""
    nd = weight.ndim - 2
    if x.ndim != nd + 2:
        raise ValueError(f"convolution: a {nd}-D kernel {weight.shape} needs input of {nd + 2} "
                         f"dimensions (N, C, ...), got shape {x.shape}")
    stride, pad, dilation = (as_tuple(v, nd, n) for v, n in
                             ((stride, "stride"), (pad, "pad"), (dilation, "dilation")))
    C, O, cg = x.shape[1], weight.shape[0], weight.shape[1]
    if C != cg * groups or O % groups:
        raise ValueError(f"convolution: input has {C} channels but weight {weight.shape} with "
                         f"groups={groups} expects {cg * groups}")
    kernel = weight.shape[2:]
    out = tuple(_out_size(x.shape[2 + i], kernel[i], stride[i], pad[i], dilation[i]) for i in range(nd))
    xpad = _pad(xp, x, pad, pad)
    win = _windows(xpad, kernel, stride, dilation, out)
    og = O // groups
    w_axes = [1] + list(range(2, 2 + nd))
    x_axes = [1] + list(range(2 + nd, 2 + 2 * nd))
    parts = [xp.tensordot(win[:, g * cg:(g + 1) * cg], weight[g * og:(g + 1) * og], axes=(x_axes, w_axes))
             for g in range(groups)]
    y = parts[0] if groups == 1 else xp.concatenate(parts, axis=-1)  # (N, *out, O)
    if bias is not None:
        y += bias
    y = xp.ascontiguousarray(xp.moveaxis(y, -1, 1))

    def vjp(gy):
        sp = list(range(2, 2 + nd))
        gw = []
        dcols = []
        for g in range(groups):
            gg = gy[:, g * og:(g + 1) * og]
            gw.append(xp.tensordot(gg, win[:, g * cg:(g + 1) * cg], axes=([0] + sp, [0] + sp)))
            dcols.append(xp.tensordot(gg, weight[g * og:(g + 1) * og], axes=([1], [0])))
        gw = gw[0] if groups == 1 else xp.concatenate(gw, axis=0)
        dcol = dcols[0] if groups == 1 else xp.concatenate(dcols, axis=1 + nd)  # (N, *out, C, *K)
        gxpad = xp.zeros(xpad.shape, dtype=gy.dtype)
        for kidx, sl in _offset_slices(kernel, stride, dilation, out):
            gxpad[sl] += xp.moveaxis(dcol[(Ellipsis,) + kidx], -1, 1)
        gb = None if bias is None else gy.sum(axis=tuple([0] + sp))
        return _unpad(gxpad, pad, x.shape), gw, gb
    return y, vjp


@register("pooling")
def pooling(xp, x, kernel, stride=None, pad=0, pool_type="max", ceil_mode=False,
            count_include_pad=True):
    """Max or average pooling over the spatial axes of x (N, C, *S)."""
    nd = x.ndim - 2
    kernel = as_tuple(kernel, nd, "kernel")
    stride = kernel if stride is None else as_tuple(stride, nd, "stride")
    pad = as_tuple(pad, nd, "pad")
    ones = (1,) * nd
    out = tuple(_out_size(x.shape[2 + i], kernel[i], stride[i], pad[i], 1, ceil_mode) for i in range(nd))
    # ceil mode may need extra room on the far side beyond the symmetric padding
    after = tuple((out[i] - 1) * stride[i] + kernel[i] - x.shape[2 + i] - pad[i] for i in range(nd))
    after = tuple(max(a, p) for a, p in zip(after, pad))
    if pool_type == "max":
        xpad = _pad(xp, x, pad, after, -xp.inf)
        win = _windows(xpad, kernel, stride, ones, out)
        kaxes = tuple(range(2 + nd, 2 + 2 * nd))
        y = win.max(axis=kaxes)

        def vjp(gy):
            flat = win.reshape(win.shape[:2 + nd] + (-1,))
            arg = flat.argmax(axis=-1)  # the first maximum takes the gradient
            gxpad = xp.zeros(xpad.shape, dtype=gy.dtype)
            for j, (_, sl) in enumerate(_offset_slices(kernel, stride, ones, out)):
                gxpad[sl] += gy * (arg == j)
            return (_unpad(gxpad, pad, x.shape),)
        return y, vjp
    if pool_type != "avg":
        raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
    xpad = _pad(xp, x, pad, after)
    win = _windows(xpad, kernel, stride, ones, out)
    kaxes = tuple(range(2 + nd, 2 + 2 * nd))
    if count_include_pad and not any(a > p for a, p in zip(after, pad)):
        divisor = float(math.prod(kernel))
    else:  # count the real (or real + symmetric padding) elements under each window
        valid = xp.zeros((1, 1) + xpad.shape[2:], dtype=x.dtype)
        lo = (0,) * nd if count_include_pad else pad
        hi = tuple(pad[i] + x.shape[2 + i] + (pad[i] if count_include_pad else 0) for i in range(nd))
        valid[(0, 0) + tuple(slice(a, b) for a, b in zip(lo, hi))] = 1
        divisor = _windows(valid, kernel, stride, ones, out).sum(axis=kaxes)
    y = win.sum(axis=kaxes) / divisor

    def vjp(gy):
        gg = gy / divisor
        gxpad = xp.zeros(xpad.shape, dtype=gy.dtype)
        for _, sl in _offset_slices(kernel, stride, ones, out):
            gxpad[sl] += gg
        return (_unpad(gxpad, pad, x.shape),)
    return y, vjp
