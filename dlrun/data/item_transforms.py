"""Gluon's ``vision.transforms``: per-example image transforms (``ToTensor``, ``Normalize``,
``Resize``, crops, flips, ``Cast``, ``Compose``) on H x W x C images (or N x H x W x C).

Each is a callable on an NDArray (or NumPy array) that returns an NDArray; random ones draw
from NumPy's global generator (``np.random.seed`` fixes them) or Python's ``random``.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Sequence

import numpy as np

from ..engine import NDArray, array
from .dataset import as_numpy


class Compose:
    """The transforms applied in order."""

    def __init__(self, transforms: Sequence[Callable]):
        self._transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self._transforms:
            x = t(x)
        return x


class Cast:
    """The image as ``dtype`` (float32 by default)."""

    def __init__(self, dtype: Any = "float32"):
        self._dtype = np.dtype(dtype)

    def __call__(self, x: Any) -> NDArray:
        return array(as_numpy(x).astype(self._dtype), dtype=self._dtype)


class ToTensor:
    """H x W x C uint8 in [0, 255] to C x H x W float32 in [0, 1] (N x H x W x C to N x C x H x W)."""

    def __call__(self, x: Any) -> NDArray:
        host = as_numpy(x).astype(np.float32) / 255.0
        if host.ndim not in (3, 4):
            raise ValueError(f"ToTensor needs an H x W x C or N x H x W x C image, got shape {host.shape}")
        axes = (2, 0, 1) if host.ndim == 3 else (0, 3, 1, 2)
        return array(np.ascontiguousarray(host.transpose(axes)))


class Normalize:
    """``(x - mean) / std`` per channel of a C x H x W (or N x C x H x W) tensor."""

    def __init__(self, mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0):
        self._mean, self._std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def __call__(self, x: Any) -> NDArray:
        host = as_numpy(x).astype(np.float32)
        shape = (-1, 1, 1) if self._mean.ndim else ()
        return array((host - self._mean.reshape(shape)) / self._std.reshape(shape))


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    """Gluon's size argument, (width, height) or one int for both."""
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of an H x W x C image (pixel centres aligned, as OpenCV's INTER_LINEAR),
    rounded back to integers for an integer image."""
    h, w = img.shape[:2]

    def grid(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)

    y0, y1, fy = grid(height, h)
    x0, x1, fx = grid(width, w)
    src = img.astype(np.float32)
    top = src[y0][:, x0] * (1 - fx)[None, :, None] + src[y0][:, x1] * fx[None, :, None]
    bottom = src[y1][:, x0] * (1 - fx)[None, :, None] + src[y1][:, x1] * fx[None, :, None]
    out = top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]
    return np.rint(out).astype(img.dtype) if img.dtype.kind in "ui" else out.astype(img.dtype)


class Resize:
    """The image resized to ``size`` ((width, height) or one int; with ``keep_ratio`` an int
    sets the shorter side)."""

    def __init__(self, size: int | Sequence[int], keep_ratio: bool = False, interpolation: int = 1):
        self._size, self._keep_ratio = size, keep_ratio

    def __call__(self, x: Any) -> NDArray:
        img = _hwc(as_numpy(x))
        h, w = img.shape[:2]
        if self._keep_ratio and isinstance(self._size, (int, np.integer)):
            short = int(self._size)
            width, height = (short, int(h * short / w)) if w < h else (int(w * short / h), short)
        else:
            width, height = _size(self._size)
        return array(resize(img, width, height), dtype=img.dtype)


def _hwc(img: np.ndarray) -> np.ndarray:
    if img.ndim != 3:
        raise ValueError(f"an image transform needs an H x W x C image, got shape {img.shape}")
    return img


class CenterCrop:
    """The centre ``size`` ((width, height) or one int) of the image, resized up when the
    image is smaller."""

    def __init__(self, size: int | Sequence[int], interpolation: int = 1):
        self._size = _size(size)

    def __call__(self, x: Any) -> NDArray:
        img = _hwc(as_numpy(x))
        h, w = img.shape[:2]
        cw, ch = self._size
        x0, y0 = max((w - cw) // 2, 0), max((h - ch) // 2, 0)
        out = img[y0:y0 + ch, x0:x0 + cw]
        if out.shape[:2] != (ch, cw):
            out = resize(out, cw, ch)
        return array(out, dtype=img.dtype)


class RandomFlipLeftRight:
    """The image mirrored left-right with probability 1/2."""

    def __call__(self, x: Any) -> NDArray:
        img = _hwc(as_numpy(x))
        return array(img[:, ::-1] if np.random.random() < 0.5 else img, dtype=img.dtype)


class RandomFlipTopBottom:
    """The image mirrored top-bottom with probability 1/2."""

    def __call__(self, x: Any) -> NDArray:
        img = _hwc(as_numpy(x))
        return array(img[::-1] if np.random.random() < 0.5 else img, dtype=img.dtype)


class RandomResizedCrop:
    """A random crop of ``scale`` of the area and aspect ``ratio``, resized to ``size``
    (Inception's augmentation); the centre crop when ten draws find none."""

    def __init__(self, size: int | Sequence[int], scale: tuple = (0.08, 1.0),
                 ratio: tuple = (3.0 / 4.0, 4.0 / 3.0), interpolation: int = 1):
        self._size, self._scale, self._ratio = _size(size), scale, ratio

    def __call__(self, x: Any) -> NDArray:
        img = _hwc(as_numpy(x))
        h, w = img.shape[:2]
        for _ in range(10):
            area = random.uniform(*self._scale) * h * w
            aspect = math.exp(random.uniform(math.log(self._ratio[0]), math.log(self._ratio[1])))
            cw, ch = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = random.randint(0, w - cw), random.randint(0, h - ch)
                return array(resize(img[y0:y0 + ch, x0:x0 + cw], *self._size), dtype=img.dtype)
        return CenterCrop(self._size)(img)


__all__ = ["Cast", "CenterCrop", "Compose", "Normalize", "RandomFlipLeftRight",
           "RandomFlipTopBottom", "RandomResizedCrop", "Resize", "ToTensor"]
