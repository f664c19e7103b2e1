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
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, ctx: Context | None = None,
                 transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.ctx = ctx
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

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
            x = data[idx]
            if self.transform is not None:  # skipped batches too: their draws move the generator
                x = self.transform(x, rng)
            if i >= skip:
                yield array(x, ctx=self.ctx), array(label[idx], ctx=self.ctx)
