"""Gluon's samplers: which example indices, and which batches of them, a DataLoader takes."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np

LAST_BATCH = ("keep", "discard", "rollover")


class Sampler:
    """An iterable of example indices."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., length-1 (from ``start``)."""

    def __init__(self, length: int, start: int = 0):
        self._length, self._start = int(length), int(start)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._start, self._start + self._length))

    def __len__(self) -> int:
        return self._length


class RandomSampler(Sampler):
    """A new permutation of 0..length-1 each pass, drawn with ``np.random.shuffle`` (NumPy's
    global generator, as in Gluon: ``np.random.seed`` fixes the order)."""

    def __init__(self, length: int):
        self._length = int(length)

    def __iter__(self) -> Iterator[int]:
        indices = np.arange(self._length)
        np.random.shuffle(indices)
        return iter(indices)

    def __len__(self) -> int:
        return self._length


class FilterSampler(Sampler):
    """The indices of the examples of ``dataset`` for which ``fn(example)`` is true."""

    def __init__(self, fn: Callable[[Any], bool], dataset: Any):
        self._indices = [i for i in range(len(dataset)) if fn(dataset[i])]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


class BatchSampler(Sampler):
    """Batches of ``batch_size`` indices of ``sampler``; ``last_batch`` says what to do with
    a short last batch: 'keep' it, 'discard' it, or 'rollover' it into the next pass."""

    def __init__(self, sampler: Iterable[int], batch_size: int, last_batch: str = "keep"):
        if last_batch not in LAST_BATCH:
            raise ValueError(f"last_batch must be one of {LAST_BATCH}, got {last_batch!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._sampler, self._batch_size, self._last_batch = sampler, int(batch_size), last_batch
        self._prev: list[int] = []

    def __iter__(self) -> Iterator[list[int]]:
        batch, self._prev = self._prev, []
        for i in self._sampler:
            batch.append(int(i))
            if len(batch) == self._batch_size:
                yield batch
                batch = []
        if batch:
            if self._last_batch == "keep":
                yield batch
            elif self._last_batch == "rollover":
                self._prev = batch

    def __len__(self) -> int:
        n = len(self._sampler)
        if self._last_batch == "keep":
            return -(-n // self._batch_size)
        if self._last_batch == "discard":
            return n // self._batch_size
        return (len(self._prev) + n) // self._batch_size


class IntervalSampler(Sampler):
    """0, k, 2k, ..., then 1, k+1, ... (every ``interval``-th index, each offset in turn;
    only offset 0 when ``rollover`` is False); Gluon's ``contrib.data.IntervalSampler``."""

    def __init__(self, length: int, interval: int, rollover: bool = True):
        if not 0 < interval <= length:
            raise ValueError(f"interval must lie in (0, {length}], got {interval}")
        self._length, self._interval, self._rollover = length, interval, rollover

    def __iter__(self) -> Iterator[int]:
        for offset in range(self._interval if self._rollover else 1):
            yield from range(offset, self._length, self._interval)

    def __len__(self) -> int:
        return self._length if self._rollover else len(range(0, self._length, self._interval))
