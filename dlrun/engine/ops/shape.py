"""Shape manipulation, slicing, joining and splitting, gathering and sequence masking."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import scatter_add
from ..registry import register
from ._util import normalize_axes, unbroadcast


__all__ = ["reshape", "transpose", "flatten", "getitem", "swapaxes", "expand_dims", "squeeze",
           "broadcast_to", "concat", "stack", "split", "split_v2", "tile", "repeat", "pad", "flip",
           "reverse", "take", "one_hot", "SequenceMask", "SequenceLast", "slice_axis"]


def _codes(shape: list, src: list) -> list:
    """MXNet's reshape codes resolved left to right; -1 stays for the caller to infer.

    0 copies the input dimension at this position, -1 infers one (and consumes one input
    dimension), -2 copies all remaining input dimensions, -3 merges the next two, -4 splits
    the next one into the two values that follow it (one of which may be -1).
    """
    out, i, k = [], 0, 0
    while k < len(shape):
        code = shape[k]
        if code == 0 or code == -1 or code > 0:
            out.append(src[i] if code == 0 else code)
            i += 1
        elif code == -2:
            out.extend(src[i:])
            i = len(src)
        elif code == -3:
            out.append(src[i] * src[i + 1])
            i += 2
        elif code == -4:
            d1, d2 = shape[k + 1], shape[k + 2]
            d1 = src[i] // d2 if d1 == -1 else d1
            d2 = src[i] // d1 if d2 == -1 else d2
            if d1 * d2 != src[i]:
                raise ValueError(f"-4 splits dimension {src[i]} into {d1} x {d2}, which differ")
            out += [d1, d2]
            i += 1
            k += 2
        else:
            raise ValueError(f"{code} is not a reshape code (0, -1, -2, -3, -4 or a size)")
        k += 1
    return out


def _gluon_shape(shape: tuple, src: tuple, reverse: bool = False) -> tuple:
    """A target shape with MXNet's special codes (see :func:`_codes`) as plain sizes;
    ``reverse`` matches the codes to the input's dimensions from the right."""
    if not any(n <= 0 for n in shape):
        return shape
    if reverse:  # as MXNet: both lists reversed, resolved, and the result reversed back
        return tuple(reversed(_gluon_shape(tuple(reversed(shape)), tuple(reversed(src)))))
    try:
        out = _codes(list(shape), list(src))
    except IndexError:
        raise ValueError("the codes use more input dimensions than there are") from None
    if out.count(-1) == 1:
        known = math.prod(n for n in out if n != -1)
        out[out.index(-1)] = math.prod(src) // known if known else 0
    return tuple(out)


def _axis(axis: int, ndim: int) -> int:
    """One axis (negatives allowed) as a non-negative int, with a clear error when out of range."""
    return normalize_axes(int(axis), ndim)[0]


def _along(axis: int, key: Any) -> tuple:
    """An index that applies ``key`` to ``axis`` and takes everything on the axes before it."""
    return (slice(None),) * axis + (key,)


@register("reshape")
def reshape(xp, x, shape, reverse=False):
    """Reshape with MXNet's codes: 0 (copy), -1 (infer), -2 (the rest), -3 (merge two), -4
    (split one); ``reverse`` reads them from the right."""
    try:
        y = x.reshape(_gluon_shape(tuple(int(n) for n in shape), x.shape, reverse))
    except ValueError as e:
        raise ValueError(f"cannot reshape an array of shape {x.shape} to {tuple(shape)}: {e}") from None
    return y, lambda g: (g.reshape(x.shape),)


@register("transpose")
def transpose(xp, x, axes=None):
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    inverse = tuple(int(i) for i in np.argsort(axes))
    return x.transpose(axes), lambda g: (g.transpose(inverse),)


@register("swapaxes")
def swapaxes(xp, x, dim1=0, dim2=0):
    """``x`` with axes ``dim1`` and ``dim2`` exchanged (its own inverse)."""
    dim1, dim2 = _axis(dim1, x.ndim), _axis(dim2, x.ndim)
    return xp.swapaxes(x, dim1, dim2), lambda g: (xp.swapaxes(g, dim1, dim2),)


@register("flatten")
def flatten(xp, x):
    """Collapse every axis after the first: (N, ...) -> (N, prod(...))."""
    return x.reshape(x.shape[0], -1), lambda g: (g.reshape(x.shape),)


@register("expand_dims")
def expand_dims(xp, x, axis):
    """Insert a size-1 axis at position ``axis`` (of the output; negatives count from its end)."""
    y = xp.expand_dims(x, _axis(axis, x.ndim + 1))
    return y, lambda g: (g.reshape(x.shape),)


@register("squeeze")
def squeeze(xp, x, axis=None):
    """Remove size-1 axes: all of them, or those named by ``axis``."""
    axes = tuple(i for i, n in enumerate(x.shape) if n == 1) if axis is None else normalize_axes(axis, x.ndim)
    if any(x.shape[a] != 1 for a in axes):
        raise ValueError(f"squeeze: axis {axis} of an array of shape {x.shape} does not have size 1")
    return xp.squeeze(x, axis=axes), lambda g: (g.reshape(x.shape),)


@register("broadcast_to")
def broadcast_to(xp, x, shape):
    """``x`` broadcast to ``shape`` (a 0 keeps the input's dimension there, as in MXNet)."""
    lead = len(shape) - x.ndim
    target = tuple(x.shape[i - lead] if n == 0 and i >= lead else int(n) for i, n in enumerate(shape))
    try:
        y = xp.broadcast_to(x, target).copy()
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast an array of shape {x.shape} to "
                         f"{tuple(shape)}") from None
    return y, lambda g: (unbroadcast(g, x.shape),)


def _pieces(x, bounds: list, axis: int, squeeze: bool = False) -> tuple:
    """Views of ``x`` between consecutive ``bounds`` along ``axis`` (squeezed: the single index)."""
    return tuple(x[_along(axis, a if squeeze else slice(a, b))] for a, b in zip(bounds[:-1], bounds[1:]))


@register("concat")
def concat(xp, *arrays, dim=1):
    """Join arrays along axis ``dim``; every other dimension must agree."""
    first = arrays[0]
    axis = _axis(dim, first.ndim)
    rest = first.shape[:axis] + first.shape[axis + 1:]
    for a in arrays[1:]:
        if a.ndim != first.ndim or a.shape[:axis] + a.shape[axis + 1:] != rest:
            raise ValueError(f"concat: shapes {[tuple(b.shape) for b in arrays]} cannot be joined "
                             f"along axis {dim}: they must agree on every other axis")
    bounds = np.cumsum([0] + [a.shape[axis] for a in arrays]).tolist()
    return xp.concatenate(arrays, axis=axis), lambda g: _pieces(g, bounds, axis)


@register("stack")
def stack(xp, *arrays, axis=0):
    """Join equally shaped arrays along a new axis ``axis``."""
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all arrays need the same shape, got {[tuple(a.shape) for a in arrays]}")
    axis = _axis(axis, arrays[0].ndim + 1)
    return xp.stack(arrays, axis=axis), lambda g: _pieces(g, list(range(len(arrays) + 1)), axis, True)


def _split(xp, x, bounds: list, axis: int, squeeze_axis: bool, op: str):
    """The pieces of ``x`` between ``bounds`` (one array alone, else a tuple) and their backward."""
    if squeeze_axis and any(b - a != 1 for a, b in zip(bounds[:-1], bounds[1:])):
        raise ValueError(f"{op}: squeeze_axis=True needs sections of size 1 along axis {axis}, "
                         f"but the array of shape {x.shape} splits at {bounds}")
    parts = _pieces(x, bounds, axis, squeeze_axis)

    def vjp(gs):
        gs = gs if isinstance(gs, tuple) else (gs,)
        if squeeze_axis:
            gs = [xp.expand_dims(g, axis) for g in gs]
        return (xp.concatenate(gs, axis=axis),)
    return (parts if len(parts) > 1 else parts[0]), vjp


def _even_bounds(n: int, sections: int, shape: tuple, axis: int, op: str) -> list:
    if sections < 1 or n % sections:
        raise ValueError(f"{op}: axis {axis} of size {n} (array of shape {shape}) cannot be split "
                         f"into {sections} equal parts")
    return list(range(0, n + 1, n // sections))


@register("split")
def split(xp, x, num_outputs, axis=1, squeeze_axis=False):
    """``num_outputs`` equal parts of ``x`` along ``axis`` (a tuple; one part alone is an array)."""
    axis = _axis(axis, x.ndim)
    bounds = _even_bounds(x.shape[axis], int(num_outputs), x.shape, axis, "split")
    return _split(xp, x, bounds, axis, squeeze_axis, "split")


@register("split_v2")
def split_v2(xp, x, indices_or_sections, axis=0, squeeze_axis=False):
    """Split into equal sections (an int) or at the sorted positions of a sequence of ints."""
    axis = _axis(axis, x.ndim)
    n = x.shape[axis]
    if isinstance(indices_or_sections, int):
        bounds = _even_bounds(n, indices_or_sections, x.shape, axis, "split_v2")
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
        if any(a > b for a, b in zip(bounds[:-1], bounds[1:])):
            raise ValueError(f"split_v2: indices {tuple(indices_or_sections)} must be sorted and "
                             f"within [0, {n}] for axis {axis} of an array of shape {x.shape}")
    return _split(xp, x, bounds, axis, squeeze_axis, "split_v2")


@register("tile")
def tile(xp, x, reps):
    """``x`` repeated ``reps`` times along each axis (as numpy.tile)."""
    reps = (int(reps),) if isinstance(reps, int) else tuple(int(r) for r in reps)
    d = max(len(reps), x.ndim)
    reps = (1,) * (d - len(reps)) + reps
    src = (1,) * (d - x.ndim) + x.shape

    def vjp(g):
        blocks = g.reshape([n for pair in zip(reps, src) for n in pair])  # (r0, s0, r1, s1, ...)
        return (blocks.sum(axis=tuple(range(0, 2 * d, 2))).reshape(x.shape),)
    return xp.tile(x, reps), vjp


@register("repeat")
def repeat(xp, x, repeats, axis=None):
    """Each element repeated ``repeats`` times along ``axis`` (None: of the flattened array)."""
    repeats = int(repeats)
    if axis is None:
        base, axis = (x.size,), 0
    else:
        axis = _axis(axis, x.ndim)
        base = x.shape

    def vjp(g):
        runs = g.reshape(base[:axis] + (base[axis], repeats) + base[axis + 1:])
        return (runs.sum(axis=axis + 1).reshape(x.shape),)
    return xp.repeat(x.reshape(base), repeats, axis=axis), vjp


def _scatter_along(xp, g, idx, axis: int, size: int):
    """The adjoint of ``take(x, idx, axis)``: ``g`` added into ``size`` slots (repeats accumulate)."""
    gx = xp.zeros(g.shape[:axis] + (size,) + g.shape[axis + idx.ndim:], dtype=g.dtype)
    scatter_add(gx, _along(axis, idx), g)
    return gx


@register("pad")
def pad(xp, x, mode="constant", pad_width=None, constant_value=0.0):
    """Pad every axis; ``pad_width`` is MXNet's flat (before_0, after_0, before_1, after_1, ...).

    'constant' fills with ``constant_value``; 'edge' repeats the border element; 'reflect'
    mirrors without repeating it. Their backward adds every copy back to its source element.
    """
    if pad_width is None or len(pad_width) != 2 * x.ndim:
        raise ValueError(f"pad: pad_width needs 2 * ndim = {2 * x.ndim} values (before and after for "
                         f"each axis of an array of shape {x.shape}), got {pad_width!r}")
    pairs = [(int(pad_width[2 * i]), int(pad_width[2 * i + 1])) for i in range(x.ndim)]
    if any(n < 0 for pair in pairs for n in pair):
        raise ValueError(f"pad: pad_width must not be negative, got {tuple(pad_width)}")
    if mode == "constant":
        y = xp.pad(x, pairs, mode="constant", constant_values=constant_value)
        interior = tuple(slice(b, b + n) for (b, _), n in zip(pairs, x.shape))
        return y, lambda g: (g[interior],)
    if mode not in ("edge", "reflect"):
        raise ValueError(f"pad: mode must be 'constant', 'edge' or 'reflect', got {mode!r}")
    # each padded axis is a gather along it; the source positions come from padding an arange
    sources = [(axis, xp.asarray(np.pad(np.arange(n), pair, mode=mode)))
               for axis, (n, pair) in enumerate(zip(x.shape, pairs)) if any(pair)]
    y = x
    for axis, idx in sources:
        y = xp.take(y, idx, axis=axis)

    def vjp(g):
        for axis, idx in sources:
            g = _scatter_along(xp, g, idx, axis, x.shape[axis])
        return (g,)
    return y, vjp


@register("flip")
def flip(xp, x, axis):
    """``x`` reversed along ``axis`` (an int or a sequence of ints); MXNet's ``reverse``."""
    axes = normalize_axes(axis, x.ndim)
    return xp.flip(x, axis=axes), lambda g: (xp.flip(g, axis=axes),)


reverse = flip


@register("take")
def take(xp, a, indices, axis=0, mode="clip"):
    """Slices of ``a`` along ``axis`` at integer ``indices`` (any shape; replaces that axis).

    ``mode`` handles indices outside [0, n): 'clip' to the ends, 'wrap' around, 'raise' an
    error. The backward scatter-adds, so repeated indices accumulate.
    """
    axis = _axis(axis, a.ndim)
    n = a.shape[axis]
    idx = xp.asarray(indices).astype(xp.int64, copy=False)
    if mode == "clip":
        idx = xp.clip(idx, 0, n - 1)
    elif mode == "wrap":
        idx = idx % n
    elif mode != "raise":
        raise ValueError(f"take: mode must be 'clip', 'wrap' or 'raise', got {mode!r}")
    elif idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"take: indices must lie in [0, {n}) along axis {axis} of an array of shape "
                         f"{a.shape} with mode='raise', got values from {int(idx.min())} to "
                         f"{int(idx.max())}; use mode='clip' or mode='wrap' to map them into range")
    return xp.take(a, idx, axis=axis), lambda g: (_scatter_along(xp, g, idx, axis, n), None)


@register("one_hot", differentiable=False)
def one_hot(xp, indices, depth, on_value=1.0, off_value=0.0, dtype="float32"):
    """A new last axis of size ``depth``: ``on_value`` at each index, ``off_value`` elsewhere."""
    hot = xp.asarray(indices).astype(xp.int64)[..., None] == xp.arange(int(depth))
    return xp.where(hot, on_value, off_value).astype(dtype)


def _batch_size(op: str, data, axis: int) -> int:
    """The batch size of sequence data: (T, N, ...) with axis=0, (N, T, ...) with axis=1."""
    if axis not in (0, 1) or data.ndim < 2:
        raise ValueError(f"{op}: axis must be 0 (time-major data (T, N, ...)) or 1 (batch-major "
                         f"(N, T, ...)), got axis={axis} for data of shape {data.shape}")
    return data.shape[1 - axis]


def _lengths(xp, op: str, data, sequence_length, axis: int):
    """The per-sequence lengths as integers, checked against the batch size of ``data``."""
    n = _batch_size(op, data, axis)
    if getattr(sequence_length, "shape", None) != (n,):
        raise ValueError(f"{op}: use_sequence_length=True needs sequence_length of shape ({n},), one "
                         f"length per sequence of data {data.shape} (axis={axis}), got "
                         f"{getattr(sequence_length, 'shape', sequence_length)}")
    return xp.asarray(sequence_length).astype(xp.int64)


@register("SequenceMask")
def SequenceMask(xp, data, sequence_length=None, use_sequence_length=False, value=0.0, axis=0):
    """Set the steps at and after each sequence's length to ``value``; they get no gradient."""
    if not use_sequence_length:
        _batch_size("SequenceMask", data, axis)
        return data, lambda g: (g, None)
    lengths = _lengths(xp, "SequenceMask", data, sequence_length, axis)
    steps = xp.arange(data.shape[axis])
    valid = steps[:, None] < lengths if axis == 0 else steps < lengths[:, None]
    valid = valid.reshape(valid.shape + (1,) * (data.ndim - 2))
    y = xp.where(valid, data, xp.asarray(value, dtype=data.dtype))
    return y, lambda g: (xp.where(valid, g, xp.zeros((), dtype=g.dtype)), None)


@register("SequenceLast")
def SequenceLast(xp, data, sequence_length=None, use_sequence_length=False, axis=0):
    """The last valid step of each sequence: (N, ...) from (T, N, ...) or, with axis=1, (N, T, ...)."""
    n, steps = _batch_size("SequenceLast", data, axis), data.shape[axis]
    if use_sequence_length:
        last = _lengths(xp, "SequenceLast", data, sequence_length, axis) - 1
        if n and (int(last.min()) < 0 or int(last.max()) >= steps):
            raise ValueError(f"SequenceLast: sequence lengths must lie in [1, {steps}] for data of "
                             f"shape {data.shape} (axis={axis}), got {int(last.min()) + 1} to "
                             f"{int(last.max()) + 1}")
    else:
        last = xp.full((n,), steps - 1, dtype=xp.int64)
    batch = xp.arange(n)
    key = (last, batch) if axis == 0 else (batch, last)

    def vjp(g):
        gx = xp.zeros(data.shape, dtype=g.dtype)
        gx[key] = g
        return (gx, None)
    return data[key], vjp


def _is_basic(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in keys)


@register("getitem")
def getitem(xp, x, key):
    """``x[key]`` for slices, integers, None, Ellipsis and integer/boolean index arrays."""
    y = x[key]

    def vjp(g):
        gx = xp.zeros(x.shape, dtype=g.dtype)
        if _is_basic(key):
            gx[key] = g
        else:
            scatter_add(gx, key, g)
        return (gx,)
    return y, vjp


def slice_axis(x, axis: int, begin: int, end: int | None):
    """``x[begin:end]`` along ``axis`` (negative positions count from the end; end None: to it)."""
    return getitem(x, key=_along(_axis(axis, x.ndim), slice(begin, end)))
