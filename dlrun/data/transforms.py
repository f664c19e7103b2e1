"""Batch augmentations for images: random crop with padding and horizontal flip.

A transform is a callable ``(batch, rng) -> batch`` on a NumPy batch of N x C x H x W (or
N x H x W) images; it draws every random choice from ``rng`` (a ``np.random.Generator``), so
a seeded generator gives the same augmentation, and it never changes its input in place.
``DataLoader(..., transform=...)`` applies one to every batch; the runner gives it to the
training loader only.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class RandomCrop:
    """Pads each image by ``padding`` pixels on every side and crops it back to its size at a
    random offset (independently per image), as in the standard CIFAR augmentation.

    ``fill`` is the padding value; on standardised images 0 is the mean colour.
    """

    def __init__(self, padding: int = 4, fill: float = 0.0):
        if not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative integer, got {padding!r}")
        self.padding = int(padding)
        self.fill = fill

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.padding
        if p == 0 or len(batch) == 0:
            return batch.copy()
        n, (h, w) = batch.shape[0], batch.shape[-2:]
        x = batch.reshape(n, -1, h, w)
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.fill)
        dy = rng.integers(0, 2 * p + 1, n)
        dx = rng.integers(0, 2 * p + 1, n)
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # n, c, 2p+1, 2p+1, h, w
        out = windows[np.arange(n), :, dy, dx]  # advanced indices split by a slice: n first
        return np.ascontiguousarray(out).reshape(batch.shape)

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding})"


class RandomFlip:
    """Mirrors each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomFlip: p must lie in [0, 1], got {p}")
        self.p = p

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flip = rng.random(len(batch)) < self.p
        out = batch.copy()
        out[flip] = batch[flip][..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


class Compose:
    """Applies ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            batch = t(batch, rng)
        return batch

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


def crop_flip(padding: int = 4, flip: bool = True) -> Compose:
    """The standard augmentation for small images: random crop with ``padding`` and, if
    ``flip``, a horizontal flip with probability 1/2."""
    return Compose([RandomCrop(padding)] + ([RandomFlip()] if flip else []))
