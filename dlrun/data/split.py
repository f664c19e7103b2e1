"""The validation split: carved out of a dataset's training examples, fixed by a seed and,
for classes, stratified (every class keeps its share in both parts), as Lightning's
templates and scikit-learn's ``train_test_split(stratify=...)`` do.

``val_fraction`` (of the training examples) or ``val_size`` (a count) says how many; 0 (or
both null) carves none, and then nothing may monitor a validation metric.
"""
from __future__ import annotations

import numpy as np

from .dataset import ArrayDataset

VAL_SEED = 0  # the split's default seed: the same examples whatever the run's seed


def val_count(n: int, val_fraction: float | None, val_size: int | None) -> int:
    """How many of ``n`` training examples go to validation."""
    if val_fraction is not None and val_size is not None:
        raise ValueError(f"val_fraction={val_fraction} and val_size={val_size} are both set; "
                         "set one of them and the other to null (dataset.val_size=null)")
    if val_size is not None:
        if not 0 <= val_size < n:
            raise ValueError(f"val_size={val_size} must be from 0 to {n - 1} (the training "
                             f"split has {n} examples)")
        return int(val_size)
    fraction = float(val_fraction or 0.0)
    if not 0 <= fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1) (0: no validation split)")
    count = int(round(n * fraction))
    if fraction > 0 and not 0 < count < n:
        raise ValueError(f"val_fraction={val_fraction} of {n} training examples leaves "
                         f"{count} for validation; raise or lower it")
    return count


def holdout(n: int, count: int, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(the kept indices, the ``count`` held-out ones), both sorted, drawn with ``seed``;
    with ``labels``, each class gives its share (largest remainders round the counts)."""
    rng = np.random.default_rng(seed)
    if labels is None or count == 0:
        held = rng.permutation(n)[:count]
    else:
        classes, inverse = np.unique(np.asarray(labels).reshape(n, -1)[:, 0], return_inverse=True)
        members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
        share = np.array([len(m) for m in members], dtype=np.float64) * count / n
        take = np.floor(share).astype(int)
        for c in np.argsort(-(share - take), kind="stable")[:count - take.sum()]:
            take[c] += 1
        held = np.concatenate([rng.permutation(m)[:k] for m, k in zip(members, take)])
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def carve_val(train: ArrayDataset, val_fraction: float | None = None, val_size: int | None = None,
              seed: int = VAL_SEED, stratify: bool = True) -> tuple[ArrayDataset, ArrayDataset | None]:
    """(the training examples left, the validation split or None when none is asked for)."""
    count = val_count(len(train), val_fraction, val_size)
    if count == 0:
        return train, None
    keep, held = holdout(len(train), count, seed, train.label if stratify else None)
    return (ArrayDataset(train.data[keep], train.label[keep]),
            ArrayDataset(train.data[held], train.label[held]))
