"""Gluon's DataLoader: batches of any ``Dataset``'s examples, put together by a
``batchify_fn``, optionally by worker processes (or threads).

This is the loader Gluon code builds (``gluon.data.DataLoader``); the runner's own loader of
array datasets, with seeded shuffling and augmentation, is :class:`dlrun.data.DataLoader`.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import numpy as np

from ..engine import NDArray, array, ops
from .dataset import as_numpy
from .sampler import BatchSampler, RandomSampler, SequentialSampler


def default_batchify_fn(data: list) -> Any:
    """Stack a list of examples into a batch: NDArrays with ``nd.stack``, tuples field by
    field (a list of batches), anything else through ``np.asarray`` (its dtype kept)."""
    if isinstance(data[0], NDArray):
        return ops.stack(*data, axis=0)
    if isinstance(data[0], tuple):
        return [default_batchify_fn(list(field)) for field in zip(*data)]
    host = np.asarray(data)
    return array(host, dtype=host.dtype)


def _host_batchify(data: list) -> Any:
    """What default_batchify_fn makes, as NumPy arrays (a worker's result, sent back)."""
    if isinstance(data[0], tuple):
        return [_host_batchify(list(field)) for field in zip(*data)]
    return np.stack([as_numpy(x) for x in data])


def _to_engine(batch: Any) -> Any:
    if isinstance(batch, list):
        return [_to_engine(b) for b in batch]
    return array(batch, dtype=batch.dtype) if isinstance(batch, np.ndarray) else batch


_worker_dataset: Any = None
_worker_batchify: Callable | None = None


def _worker_init(dataset: Any, batchify: Callable | None) -> None:
    global _worker_dataset, _worker_batchify
    _worker_dataset, _worker_batchify = dataset, batchify


def _worker_batch(indices: list[int]) -> Any:
    samples = [_worker_dataset[i] for i in indices]
    return (_worker_batchify or _host_batchify)(samples)


class DataLoader:
    """``DataLoader(dataset, batch_size, shuffle=False, sampler=None, last_batch='keep',
    batch_sampler=None, batchify_fn=None, num_workers=0, pin_memory=False, ...)`` as Gluon's.

    ``shuffle`` draws each pass's order with ``np.random.shuffle`` (seed it with
    ``np.random.seed``). ``num_workers > 0`` loads batches in that many worker processes
    (forked, so the dataset is not pickled) or, with ``thread_pool=True``, threads; the
    batches come in order. ``pin_memory``, ``pin_device_id`` and ``prefetch`` are accepted
    (host memory is what every CPU array uses).
    """

    def __init__(self, dataset: Any, batch_size: int | None = None, shuffle: bool = False,
                 sampler: Any = None, last_batch: str | None = None, batch_sampler: Any = None,
                 batchify_fn: Callable | None = None, num_workers: int = 0,
                 pin_memory: bool = False, pin_device_id: int = 0, prefetch: int | None = None,
                 thread_pool: bool = False, timeout: float = 120, **ignored: Any):
        self._dataset = dataset
        if batch_sampler is None:
            if batch_size is None:
                raise ValueError("DataLoader needs batch_size when no batch_sampler is given")
            if sampler is None:
                sampler = RandomSampler(len(dataset)) if shuffle else SequentialSampler(len(dataset))
            elif shuffle:
                raise ValueError("shuffle must be False when a sampler is given (it orders the examples)")
            batch_sampler = BatchSampler(sampler, batch_size, last_batch or "keep")
        elif batch_size is not None or shuffle or sampler is not None or last_batch is not None:
            raise ValueError("batch_size, shuffle, sampler and last_batch must not be given with "
                             "batch_sampler (it decides the batches)")
        self._batch_sampler = batch_sampler
        self._batchify_fn = batchify_fn
        self._num_workers = max(int(num_workers), 0)
        self._thread_pool = thread_pool
        self._timeout = timeout
        self._pool: Any = None

    def __len__(self) -> int:
        return len(self._batch_sampler)

    def __iter__(self) -> Iterator[Any]:
        if self._num_workers == 0:
            batchify = self._batchify_fn or default_batchify_fn
            for indices in self._batch_sampler:
                yield batchify([self._dataset[i] for i in indices])
            return
        pool = self._workers()
        if self._thread_pool:
            batchify = self._batchify_fn or default_batchify_fn
            yield from pool.map(lambda idx: batchify([self._dataset[i] for i in idx]),
                                self._batch_sampler, timeout=self._timeout)
            return
        for batch in pool.imap(_worker_batch, self._batch_sampler):
            yield batch if self._batchify_fn is not None else _to_engine(batch)

    def _workers(self) -> Any:
        if self._pool is None:
            if self._thread_pool:
                self._pool = ThreadPoolExecutor(self._num_workers)
            else:
                self._pool = multiprocessing.get_context("fork").Pool(
                    self._num_workers, initializer=_worker_init,
                    initargs=(self._dataset, self._batchify_fn))
        return self._pool

    def __del__(self) -> None:
        pool = self.__dict__.get("_pool")
        if pool is not None:
            if self._thread_pool:
                pool.shutdown(wait=False)
            else:
                pool.terminate()
