"""Mini-batches of an ArrayDataset as engine arrays."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from dlrun.engine import Context, NDArray, array

from .dataset import ArrayDataset


class DataLoader:
    """Iterates over ``(data, label)`` batches of ``dataset`` on context ``ctx``.

    With ``shuffle`` each pass uses the permutation of ``np.random.default_rng(seed + epoch)``,
    so a seeded run is reproducible and every epoch sees a new order. ``epoch`` counts the
    passes started so far; set it to resume a run mid-way.

    ``transform`` (a callable ``(data_batch, rng) -> data_batch`` on NumPy arrays, see
    ``dlrun.data.transforms``) augments each batch's data before it becomes an engine array.
    Its generator is seeded by ``(seed, epoch)``, so a seeded run augments reproducibly.

    ``shard=(index, count)`` makes this the loader of worker ``index`` of ``count`` in a
    data-parallel job: every worker draws the same global order and batches of
    ``batch_size`` examples (the whole job's batch), and takes part ``index`` of each batch
    (``np.array_split``), so the workers together see every example once per epoch, in the
    order one process would. A last batch smaller than ``count`` cannot give every worker an
    example and is left out.
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, ctx: Context | None = None,
                 transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 shard: tuple[int, int] = (0, 1)):
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"DataLoader: shard must be (index, count) with 0 <= index < count, "
                             f"got {shard!r}")
        if batch_size < count:
            raise ValueError(f"DataLoader: a batch of {batch_size} cannot be split among {count} "
                             "workers; raise batch_size")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.ctx = ctx
        self.transform = transform
        self.shard = (int(index), int(count))
        self.epoch = 0

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        if self.drop_last or 0 < n % b < self.shard[1]:
            return n // b
        return -(-n // b)

    def __iter__(self) -> Iterator[tuple[NDArray, NDArray]]:
        return self.iterate()

    def iterate(self, skip: int = 0) -> Iterator[tuple[NDArray, NDArray]]:
        """The coming pass from its batch ``skip`` on (a run resumed mid-epoch): the order and
        the augmentation are those of the whole pass."""
        order, rng = self._order(), self._augment_rng()
        self.epoch += 1
        return self._batches(order, rng, skip)

    def _order(self) -> np.ndarray:
        """The example indices of the coming pass."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        seed = None if self.seed is None else self.seed + self.epoch
        return np.random.default_rng(seed).permutation(n)

    def _augment_rng(self) -> np.random.Generator | None:
        """The generator of the coming pass's augmentation (None without a transform)."""
        if self.transform is None:
            return None
        return np.random.default_rng(None if self.seed is None else (self.seed, self.epoch, 1))

    def _batches(self, order: np.ndarray, rng: np.random.Generator | None = None, skip: int = 0
                 ) -> Iterator[tuple[NDArray, NDArray]]:
        data, label = self.dataset.data, self.dataset.label
        for i, start in enumerate(range(0, len(self) * self.batch_size, self.batch_size)):
            idx = order[start:start + self.batch_size]
            part = slice(None)
            if self.shard[1] > 1:
                bounds = np.cumsum([0] + [len(a) for a in np.array_split(idx, self.shard[1])])
                part = slice(bounds[self.shard[0]], bounds[self.shard[0] + 1])
            if self.transform is not None:  # skipped batches too: their draws move the generator
                # the whole batch, as one process would, so a worker's part is augmented alike
                x = self.transform(data[idx], rng)[part]
            elif i >= skip:
                x = data[idx[part]]
            if i >= skip:
                yield array(x, ctx=self.ctx), array(label[idx[part]], ctx=self.ctx)
