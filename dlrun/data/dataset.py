"""Datasets: Gluon's ``Dataset`` protocol (``len`` and ``[i]``, lazy ``transform``) and the
in-memory ``ArrayDataset`` and ``SimpleDataset``."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


class Dataset:
    """An indexable collection of examples: subclasses define ``__getitem__`` and ``__len__``."""

    def __getitem__(self, idx: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def transform(self, fn: Callable, lazy: bool = True) -> "Dataset":
        """This dataset with ``fn`` applied to each example (``fn(*example)`` for a tuple);
        ``lazy=False`` applies it to every example now."""
        out = _Transformed(self, fn)
        return SimpleDataset([out[i] for i in range(len(out))]) if not lazy else out

    def transform_first(self, fn: Callable, lazy: bool = True) -> "Dataset":
        """This dataset with ``fn`` applied to the first element of each example (the data)."""
        return self.transform(_First(fn), lazy)

    def take(self, count: int | None) -> "Dataset":
        """The first ``count`` examples (all when None)."""
        n = len(self) if count is None else min(int(count), len(self))
        return SimpleDataset([self[i] for i in range(n)])

    def filter(self, fn: Callable[[Any], bool]) -> "Dataset":
        """The examples for which ``fn(example)`` is true."""
        return SimpleDataset([self[i] for i in range(len(self)) if fn(self[i])])


class _Transformed(Dataset):
    def __init__(self, data: Dataset, fn: Callable):
        self._data, self._fn = data, fn

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, idx: int) -> Any:
        item = self._data[idx]
        return self._fn(*item) if isinstance(item, tuple) else self._fn(item)


class _First:
    def __init__(self, fn: Callable):
        self._fn = fn

    def __call__(self, x: Any, *rest: Any) -> Any:
        return (self._fn(x), *rest) if rest else self._fn(x)


class SimpleDataset(Dataset):
    """Any sequence (a list, an array) as a dataset."""

    def __init__(self, data: Any):
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, idx: int) -> Any:
        return self._data[idx]


class ArrayDataset(Dataset):
    """Examples ``(a[i], b[i], ...)`` of equally long arrays (``a[i]`` alone for one array).

    ``data`` and ``label`` are the first two arrays (the runner's loaders read them). As in
    Gluon, a one-dimensional NDArray is held as a NumPy array, so its items are scalars.
    """

    def __init__(self, *args: Any):
        if not args:
            raise ValueError("ArrayDataset needs at least one array")
        for i, a in enumerate(args[1:], 1):
            if len(a) != len(args[0]):
                raise ValueError(f"ArrayDataset: array 0 has {len(args[0])} examples but array {i} "
                                 f"has {len(a)}")
        self._arrays = [a.asnumpy() if getattr(a, "ndim", 0) == 1 and hasattr(a, "asnumpy") else a
                        for a in args]

    @property
    def data(self) -> Any:
        return self._arrays[0]

    @property
    def label(self) -> Any:
        return self._arrays[1]

    def __len__(self) -> int:
        return len(self._arrays[0])

    def __getitem__(self, i: int) -> Any:
        if len(self._arrays) == 1:
            return self._arrays[0][i]
        return tuple(a[i] for a in self._arrays)


def as_numpy(item: Any) -> np.ndarray:
    """An example (an NDArray, a NumPy array, a number) as a NumPy array."""
    return item.asnumpy() if hasattr(item, "asnumpy") else np.asarray(item)
