"""``nd.save`` and ``nd.load``: lists and dicts of arrays in MXNet 1.x's binary format."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from ..engine import NDArray, array, mxfile


def save(fname: str | os.PathLike, data: NDArray | Sequence[NDArray] | Mapping[str, NDArray]) -> None:
    """Write one array, a list or a dict of arrays to ``fname`` as MXNet's ``nd.save`` does
    (MXNet 1.x's ``nd.load`` reads the file)."""
    if isinstance(data, NDArray):
        data = [data]
    if isinstance(data, Mapping):
        mxfile.save(fname, {k: v.asnumpy() for k, v in data.items()})
    else:
        mxfile.save(fname, [v.asnumpy() for v in data])


def load(fname: str | os.PathLike) -> list[NDArray] | dict[str, NDArray]:
    """The arrays of an MXNet NDArray file (``nd.save``, ``save_parameters``, model-zoo
    ``.params``): a dict when it names them, else a list."""
    loaded = mxfile.load(fname)
    if isinstance(loaded, dict):
        return {k: array(v, dtype=v.dtype) for k, v in loaded.items()}
    return [array(v, dtype=v.dtype) for v in loaded]
