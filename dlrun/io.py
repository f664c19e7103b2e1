"""``mx.io``: ``NDArrayIter`` over in-memory arrays, with ``DataBatch`` and ``DataDesc``."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .engine import NDArray, array

LAST_BATCH = ("pad", "discard", "roll_over")


class DataDesc(NamedTuple):
    """The name, shape and dtype of one input of a batch."""

    name: str
    shape: tuple
    dtype: Any = np.float32
    layout: str = "NCHW"


class DataBatch:
    """One batch: ``data`` and ``label`` (lists of NDArrays); ``pad`` examples at its end
    repeat the first ones to fill a short last batch."""

    def __init__(self, data: list, label: list | None = None, pad: int = 0, index: Any = None):
        self.data, self.label, self.pad, self.index = data, label or [], pad, index


def _named(source: Any, default: str) -> list[tuple[str, np.ndarray]]:
    if source is None:
        return []
    if isinstance(source, dict):
        items = sorted(source.items())
    elif isinstance(source, (list, tuple)):
        items = [(default if len(source) == 1 else f"_{i}_{default}", v) for i, v in enumerate(source)]
    else:
        items = [(default, source)]
    return [(k, v.asnumpy() if isinstance(v, NDArray) else np.asarray(v)) for k, v in items]


class NDArrayIter:
    """Batches of ``data`` (and ``label``): an array, a list or a dict of arrays, cut along
    the first axis. ``shuffle`` orders the examples with ``np.random.shuffle`` at creation
    and each ``reset``. ``last_batch_handle``: 'pad' a short last batch with the first
    examples (``batch.pad`` says how many), 'discard' it, or 'roll_over' it into the next
    epoch's first batch."""

    def __init__(self, data: Any, label: Any = None, batch_size: int = 1, shuffle: bool = False,
                 last_batch_handle: str = "pad", data_name: str = "data",
                 label_name: str = "softmax_label"):
        if last_batch_handle not in LAST_BATCH:
            raise ValueError(f"last_batch_handle must be one of {LAST_BATCH}, got {last_batch_handle!r}")
        self.data, self.label = _named(data, data_name), _named(label, label_name)
        self.num_data = len(self.data[0][1])
        self.batch_size, self.shuffle, self.last_batch_handle = int(batch_size), shuffle, last_batch_handle
        if last_batch_handle == "discard":
            self.num_data -= self.num_data % self.batch_size
        self._carry = np.zeros(0, dtype=np.int64)
        self._idx = np.arange(len(self.data[0][1]))
        self._order = self._idx.copy()  # the examples in their current order
        self._shuffle()
        self.cursor = 0

    def _shuffle(self) -> None:
        """As MXNet's: shuffle the index in place and reorder the already reordered data by
        it (so a seeded run sees MXNet's order)."""
        if self.shuffle:
            np.random.shuffle(self._idx)
            self._order = self._order[self._idx]

    @property
    def provide_data(self) -> list[DataDesc]:
        return [DataDesc(k, (self.batch_size, *v.shape[1:]), v.dtype) for k, v in self.data]

    @property
    def provide_label(self) -> list[DataDesc]:
        return [DataDesc(k, (self.batch_size, *v.shape[1:]), v.dtype) for k, v in self.label]

    def reset(self) -> None:
        """Start the next pass (a rolled-over remainder leads it)."""
        self._shuffle()
        self.cursor = 0

    def hard_reset(self) -> None:
        """Start again, dropping any rolled-over remainder."""
        self._carry = np.zeros(0, dtype=np.int64)
        self.reset()

    def __iter__(self) -> "NDArrayIter":
        return self

    def __next__(self) -> DataBatch:
        return self.next()

    def next(self) -> DataBatch:
        """The next batch; StopIteration at the end of the pass."""
        need = self.batch_size - len(self._carry)
        if self.cursor >= self.num_data:
            raise StopIteration
        idx = np.concatenate([self._carry, self._order[self.cursor:min(self.cursor + need, self.num_data)]])
        self.cursor += need
        carried, pad = len(self._carry), 0
        self._carry = np.zeros(0, dtype=np.int64)
        if len(idx) < self.batch_size:
            if self.last_batch_handle == "roll_over":
                self._carry = idx
                raise StopIteration
            pad = self.batch_size - len(idx)
            idx = np.concatenate([idx, np.resize(self._order, pad)])
        batch = DataBatch([array(v[idx], dtype=v.dtype) for _, v in self.data],
                          [array(v[idx], dtype=v.dtype) for _, v in self.label], pad)
        batch.pad = pad or carried
        return batch


__all__ = ["DataBatch", "DataDesc", "NDArrayIter"]
