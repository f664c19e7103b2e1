"""Gluon's ``split_data`` / ``split_and_load``: a batch cut into parts along its batch axis,
one part per device context (single-process data parallelism's first step)."""
from __future__ import annotations

from typing import Any, Sequence

from ..engine import Context, NDArray, array


def split_data(data: NDArray, num_slice: int, batch_axis: int = 0, even_split: bool = True) -> list[NDArray]:
    """``data`` cut into ``num_slice`` parts along ``batch_axis``; with ``even_split=False``
    the first ``size % num_slice`` parts take one example more, as MXNet 1.9's (and a batch
    smaller than ``num_slice`` gives one part per example, where MXNet adds empty parts)."""
    size = data.shape[batch_axis]
    if even_split and size % num_slice:
        raise ValueError(
            f"data with shape {data.shape} cannot be evenly split into {num_slice} slices along "
            f"axis {batch_axis}; use a batch size that is a multiple of {num_slice} or set "
            "even_split=False to allow uneven parts")
    if num_slice > size:
        num_slice = size
    step, extra = divmod(size, num_slice)
    bounds = [0]
    for i in range(num_slice):
        bounds.append(bounds[-1] + step + (i < extra))
    lead = (slice(None),) * batch_axis
    return [data[lead + (slice(a, b),)] for a, b in zip(bounds[:-1], bounds[1:])]


def split_and_load(data: Any, ctx_list: Sequence[Context], batch_axis: int = 0,
                   even_split: bool = True) -> list[NDArray]:
    """``data`` (an NDArray or array-like) split into ``len(ctx_list)`` parts, part i copied
    to ``ctx_list[i]``."""
    if not isinstance(data, NDArray):
        data = array(data, ctx=ctx_list[0])
    if len(ctx_list) == 1:
        return [data.as_in_context(ctx_list[0])]
    parts = split_data(data, len(ctx_list), batch_axis, even_split)
    return [p.as_in_context(ctx) for p, ctx in zip(parts, ctx_list)]
