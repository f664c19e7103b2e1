"""Gradient all-reduce in a few large flat buffers (buckets), as PyTorch's DDP and Horovod do:
one collective per bucket instead of one per parameter."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..engine.backend import module_of, scope_of
from .world import World

BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


def _raw(a: Any) -> Any:
    return getattr(a, "_data", a)  # an NDArray's xp array, or an xp array as it is


class Bucket:
    """Arrays of one device and dtype, copied into one flat buffer for a collective."""

    def __init__(self, arrays: list[Any], extra: int = 0):
        first = arrays[0] if arrays else np.empty(0)
        self.arrays = arrays
        self.xp = module_of(first)
        self.scope = lambda: scope_of(first)  # the arrays' device: CuPy works on the current one
        size = sum(a.size for a in arrays)
        with self.scope():
            self.flat = self.xp.empty(size + extra, dtype=np.float64 if not arrays else first.dtype)
        self.sizes = [a.size for a in arrays]

    def pack(self, extra: Sequence[float] = ()) -> None:
        xp, n = self.xp, sum(self.sizes)
        with self.scope():
            if self.arrays:
                xp.concatenate([a.ravel() for a in self.arrays], out=self.flat[:n])
            if len(extra):
                self.flat[n:] = xp.asarray(extra, dtype=self.flat.dtype)

    def unpack(self) -> np.ndarray:
        """Write the reduced values back; returns the extra values (on the host)."""
        offset = 0
        with self.scope():
            for a, size in zip(self.arrays, self.sizes):
                a[...] = self.flat[offset:offset + size].reshape(a.shape)
                offset += size
            tail = self.flat[offset:]
            return tail if isinstance(tail, np.ndarray) else tail.get()


def make_buckets(arrays: Sequence[Any], bucket_bytes: int = BUCKET_BYTES, extra: int = 0) -> list[Bucket]:
    """Group ``arrays`` (xp arrays) by device and dtype into buckets of about ``bucket_bytes``;
    the first bucket has room for ``extra`` values reduced along with them."""
    groups: dict[tuple, list[Any]] = {}
    for a in arrays:
        key = (str(getattr(a, "device", "cpu")), str(a.dtype))
        groups.setdefault(key, []).append(a)
    buckets: list[Bucket] = []
    for members in groups.values():
        current: list[Any] = []
        nbytes = 0
        for a in members:
            if current and nbytes + a.nbytes > bucket_bytes:
                buckets.append(current)
                current, nbytes = [], 0
            current.append(a)
            nbytes += a.nbytes
        buckets.append(current)
    if not buckets:
        return [Bucket([], extra)] if extra else []
    return [Bucket(b, extra if i == 0 else 0) for i, b in enumerate(buckets)]


class GradientReducer:
    """Sums the gradients of ``params`` (dlrun Parameters) over the ranks of ``world``.

    ``allreduce(extra)`` also sums a few numbers of the caller's (the batch size of each
    rank) in the same collective. ``broadcast_params()`` gives every rank rank 0's values.
    Buckets are laid out on first use, when every parameter has its shape, and again when a
    parameter's arrays were replaced.
    """

    def __init__(self, params: Sequence[Any], world: World, bucket_bytes: int = BUCKET_BYTES):
        self.params, self.world, self.bucket_bytes = list(params), world, int(bucket_bytes)
        self._buckets: list[Bucket] = []
        self._layout: tuple = ()  # the gradient arrays (and extra count) the buckets were laid out for

    def allreduce(self, extra: Sequence[float] = ()) -> np.ndarray:
        """Sum every trainable gradient, and ``extra``, over the ranks; returns the summed extra."""
        grads = [_raw(p.data().grad) for p in self.params if p.grad_req != "null"]
        layout = (len(extra), *map(id, grads))  # set_data or a new grad_req replaces arrays
        if layout != self._layout:
            self._buckets, self._layout = make_buckets(grads, self.bucket_bytes, len(extra)), layout
        out = np.asarray(extra, dtype=np.float64)
        for i, bucket in enumerate(self._buckets):
            bucket.pack(extra if i == 0 else ())
            self.world.allreduce_(bucket.flat)
            tail = bucket.unpack()
            if i == 0 and len(extra):
                out = tail.astype(np.float64)
        return out

    def broadcast_params(self, root: int = 0) -> None:
        """Every rank takes rank ``root``'s parameter values (BatchNorm statistics included)."""
        for bucket in make_buckets([_raw(p.data()) for p in self.params], self.bucket_bytes):
            bucket.pack()
            self.world.broadcast_(bucket.flat, root)
            bucket.unpack()
