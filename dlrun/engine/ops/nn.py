"""Neural-network ops: softmax family, label picking, dropout, normalisation, embedding."""
from __future__ import annotations

from ..backend import scatter_add
from ..registry import register
from ._util import normalize_axes

__all__ = ["log_softmax", "softmax", "softmax_cross_entropy", "pick", "dropout", "stop_gradient", "BlockGrad",
           "batch_norm", "layer_norm", "embedding"]


@register("log_softmax")
def log_softmax(xp, x, axis=-1, temperature=None):
    """log(softmax(x / temperature)) along ``axis``, computed stably (max subtracted first)."""
    t = 1.0 if temperature is None else float(temperature)
    z = x / t if t != 1.0 else x
    shifted = z - z.max(axis=axis, keepdims=True)
    y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return y, lambda g: ((g - xp.exp(y) * g.sum(axis=axis, keepdims=True)) / t,)


@register("softmax")
def softmax(xp, x, axis=-1, temperature=None):
    """exp(x / temperature) normalised along ``axis``, computed stably."""
    t = 1.0 if temperature is None else float(temperature)
    z = x / t if t != 1.0 else x
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)) / t,)


def _index_range(xp, idx) -> tuple[int, int]:
    """The smallest and largest of integer array ``idx``, in one device-to-host transfer."""
    low, high = xp.stack([idx.min(), idx.max()]).tolist()
    return int(low), int(high)


def _class_index(xp, index, x, axis: int, op: str):
    """``index`` (x's shape without ``axis``) as int64 with ``axis`` kept as size 1, range-checked."""
    idx = xp.expand_dims(index.astype(xp.int64, copy=False), axis)
    low, high = _index_range(xp, idx)
    if low < 0 or high >= x.shape[axis]:
        raise IndexError(f"{op}: indices must lie in [0, {x.shape[axis]}) along axis {axis}, "
                         f"got values from {low} to {high}")
    return idx


@register("softmax_cross_entropy")
def softmax_cross_entropy(xp, x, label, axis=-1):
    """``-log softmax(x)[label]`` along ``axis`` (kept, size 1): the loss of every position.

    One op rather than log_softmax then pick: the backward is softmax(x) minus the one-hot
    label, scaled, so the log-probabilities and a dense one-hot gradient are never built
    (three passes over x forward and one backward, instead of a dozen).
    """
    axis = axis % x.ndim
    idx = _class_index(xp, label, x, axis, "softmax_cross_entropy")
    m = x.max(axis=axis, keepdims=True)
    e = x - m
    xp.exp(e, out=e)
    s = e.sum(axis=axis, keepdims=True)
    y = xp.log(s) + m - xp.take_along_axis(x, idx, axis=axis)

    def vjp(g):
        gx = e * (g / s)
        # each position has one label, so this fancy index never repeats an element
        key = tuple(idx if i == axis else xp.arange(n).reshape([-1 if j == i else 1 for j in range(x.ndim)])
                    for i, n in enumerate(x.shape))
        gx[key] -= g
        return gx, None
    return y, vjp


@register("pick")
def pick(xp, x, index, axis=-1, keepdims=False):
    """``x`` at position ``index`` along ``axis`` (index has x's shape without that axis)."""
    axis = axis % x.ndim
    idx = _class_index(xp, index, x, axis, "pick")
    y = xp.take_along_axis(x, idx, axis=axis)
    if not keepdims:
        y = y.squeeze(axis)

    def vjp(g):
        positions = xp.arange(x.shape[axis]).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
        g_kept = g if keepdims else xp.expand_dims(g, axis)
        return (xp.where(positions == idx, g_kept, 0).astype(g.dtype, copy=False), None)
    return y, vjp


@register("dropout", needs_rng=True)
def dropout(xp, x, p, axes=(), rng=None):
    """Inverted dropout: zero elements with probability ``p``, scale the rest by 1/(1-p).

    ``axes`` share one mask value along those axes (e.g. the time axis of a sequence).
    """
    shared = normalize_axes(axes, x.ndim) if axes else ()
    shape = tuple(1 if i in shared else n for i, n in enumerate(x.shape))
    mask = (rng.random(shape, dtype=xp.float32) >= p).astype(x.dtype) * x.dtype.type(1 / (1 - p))
    return x * mask, lambda g: (g * mask,)


@register("stop_gradient")
def stop_gradient(xp, x):
    """The identity in the forward pass; no gradient flows back through it."""
    return x, lambda g: (None,)


BlockGrad = stop_gradient


def _normalize_backward(dxhat, xhat, inv, axes):
    """Gradient w.r.t. x of xhat = (x - mean) * inv, mean and variance taken over ``axes``."""
    return inv * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                  - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))


# sums an xp array over the processes of a data-parallel job, in place: installed by
# dlrun.parallel (the engine knows no MPI); synchronised BatchNorm reduces its statistics with it
_sum_over_workers: list = [None]


def set_worker_sum(fn) -> None:
    """Install ``fn(xp_array)``, the in-place sum over workers that ``batch_norm(sync=True)`` uses."""
    _sum_over_workers[0] = fn


def _worker_sum(xp, parts, dtype):
    """The concatenation of ``parts`` summed over the workers (as it is in one process)."""
    flat = xp.concatenate([xp.ravel(xp.asarray(p, dtype=dtype)) for p in parts])
    if _sum_over_workers[0] is not None:
        _sum_over_workers[0](flat)
    return flat


@register("batch_norm", mutates_inputs=True)
def batch_norm(xp, x, gamma, beta, running_mean, running_var, eps=1e-5, momentum=0.9, axis=1,
               training=False, use_global_stats=False, fix_gamma=False, sync=False):
    """Batch normalisation over every axis but ``axis``.

    In training (and without ``use_global_stats``) it normalises with the batch's mean and
    biased variance and updates ``running_mean``/``running_var`` in place as
    ``running = momentum * running + (1 - momentum) * batch`` (MXNet's rule); otherwise it
    uses the running statistics. With ``sync`` the batch is that of every worker of a
    data-parallel job together (synchronised BatchNorm): the statistics, and in the backward
    the two means the input gradient needs, are summed over the workers.
    """
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = tuple(-1 if i == axis else 1 for i in range(x.ndim))
    batch_stats = training and not use_global_stats
    channels = x.shape[axis]
    count = None
    if batch_stats and sync:
        sums = _worker_sum(xp, [x.sum(axis=red), (x * x).sum(axis=red), [x.size // channels]], x.dtype)
        count = sums[-1]
        mean = sums[:channels] / count
        var = xp.maximum(sums[channels:2 * channels] / count - mean * mean, 0)
    elif batch_stats:
        mean, var = x.mean(axis=red), x.var(axis=red)
    else:
        mean, var = running_mean, running_var
    if batch_stats:
        running_mean *= momentum
        running_mean += (1 - momentum) * mean
        running_var *= momentum
        running_var += (1 - momentum) * var
    inv = (1 / xp.sqrt(var + eps)).reshape(shape)
    xhat = (x - mean.reshape(shape)) * inv
    scale = xp.ones_like(gamma) if fix_gamma else gamma
    y = xhat * scale.reshape(shape) + beta.reshape(shape)
    def vjp(g):
        dxhat = g * scale.reshape(shape)
        if batch_stats and sync:
            sums = _worker_sum(xp, [dxhat.sum(axis=red), (dxhat * xhat).sum(axis=red)], x.dtype)
            dx = inv * (dxhat - (sums[:channels] / count).reshape(shape)
                        - xhat * (sums[channels:] / count).reshape(shape))
        else:
            dx = _normalize_backward(dxhat, xhat, inv, red) if batch_stats else dxhat * inv
        dgamma = xp.zeros_like(gamma) if fix_gamma else (g * xhat).sum(axis=red)
        return dx, dgamma, g.sum(axis=red), None, None
    return y, vjp


@register("layer_norm")
def layer_norm(xp, x, gamma, beta, axis=-1, eps=1e-5):
    """Normalise each sample over ``axis`` (Ba et al. 2016), then scale and shift."""
    axis = axis % x.ndim
    shape = tuple(-1 if i == axis else 1 for i in range(x.ndim))
    mean, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, keepdims=True)
    inv = 1 / xp.sqrt(var + eps)
    xhat = (x - mean) * inv
    y = xhat * gamma.reshape(shape) + beta.reshape(shape)
    red = tuple(i for i in range(x.ndim) if i != axis)

    def vjp(g):
        return (_normalize_backward(g * gamma.reshape(shape), xhat, inv, (axis,)),
                (g * xhat).sum(axis=red), g.sum(axis=red))
    return y, vjp


@register("embedding")
def embedding(xp, data, weight):
    """Rows of ``weight`` (input_dim, output_dim) at the integer positions in ``data``.

    The backward scatter-adds into the rows that were used (repeats accumulate).
    """
    idx = data.astype(xp.int64, copy=False)
    low, high = _index_range(xp, idx) if idx.size else (0, -1)
    if low < 0 or high >= weight.shape[0]:
        raise IndexError(f"embedding: indices must lie in [0, {weight.shape[0]}) (input_dim), got "
                         f"values from {low} to {high}")

    def vjp(g):
        gw = xp.zeros_like(weight)
        scatter_add(gw, idx.reshape(-1), g.reshape(-1, weight.shape[1]))
        return None, gw
    return weight[idx], vjp
