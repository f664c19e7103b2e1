"""``mx.test_utils``: GPU listing, MNIST as arrays, and array comparisons."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .data.download import default_root, fetch_all
from .data.idx import read_idx
from .data.vision import MNIST_MIRRORS, MNIST_SHA256, idx_files
from .engine import Context, cpu, current_context, num_gpus


def list_gpus() -> list[int]:
    """The ids of the GPUs this machine has (empty without CuPy or a CUDA device)."""
    return list(range(num_gpus()))


def default_context() -> Context:
    """The context arrays are made on by default."""
    return current_context()


def get_mnist(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """MNIST as ``train_data``/``test_data`` (N x 1 x 28 x 28 float32 in [0, 1]) and
    ``train_label``/``test_label`` (float32), read from ``path`` (default: dlrun's data root,
    ``$DLRUN_DATA/mnist`` or ``~/.cache/dlrun/mnist``), downloaded there (SHA-256 checked)
    only when missing."""
    folder = Path(path).expanduser() if path is not None else default_root() / "mnist"
    files = fetch_all(folder, list(idx_files(MNIST_MIRRORS, MNIST_SHA256)))
    images = [read_idx(p, ndim=3).reshape(-1, 1, 28, 28).astype(np.float32) / 255 for p in files[0::2]]
    labels = [read_idx(p, ndim=1).astype(np.float32) for p in files[1::2]]
    return {"train_data": images[0], "train_label": labels[0], "test_data": images[1],
            "test_label": labels[1]}


def _host(a: Any) -> np.ndarray:
    return a.asnumpy() if hasattr(a, "asnumpy") else np.asarray(a)


def almost_equal(a: Any, b: Any, rtol: float | None = None, atol: float | None = None,
                 equal_nan: bool = False) -> bool:
    """Whether ``a`` and ``b`` agree within ``rtol``/``atol`` (1e-5 and 1e-20 by default)."""
    return bool(np.allclose(_host(a), _host(b), rtol=1e-5 if rtol is None else rtol,
                            atol=1e-20 if atol is None else atol, equal_nan=equal_nan))


def assert_almost_equal(a: Any, b: Any, rtol: float | None = None, atol: float | None = None,
                        names: tuple = ("a", "b"), equal_nan: bool = False, **ignored: Any) -> None:
    """Raise AssertionError (naming the worst element) unless ``a`` and ``b`` agree."""
    np.testing.assert_allclose(_host(a), _host(b), rtol=1e-5 if rtol is None else rtol,
                               atol=1e-20 if atol is None else atol, equal_nan=equal_nan,
                               err_msg=f"{names[0]} and {names[1]} differ")


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are exactly equal."""
    return bool(np.array_equal(_host(a), _host(b)))


__all__ = ["almost_equal", "assert_almost_equal", "cpu", "default_context", "get_mnist",
           "list_gpus", "same"]
