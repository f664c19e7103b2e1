"""Generated datasets for the seed's classic examples, deterministic for a seed.

* :func:`linear_synthetic`: ``y = X w* + b* + noise`` with known true weights (the Gluon
  tutorial's w* = [2, -3.4], b* = 4.2), for linear regression.
* :func:`separable`: two linearly separable classes with labels -1/+1 and a margin, for the
  perceptron (and logistic regression).
* :func:`fizzbuzz`: the FizzBuzz features (x % 3, x % 5, x % 15) of the numbers, with the
  classes number / fizz / buzz / fizzbuzz; 1..100 is the test set, 101.. the training set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .dataset import ArrayDataset
from .split import carve_val
from .vision import Splits


@dataclass(frozen=True)
class RegressionData:
    """Train and test sets of a regression problem with known true coefficients."""

    train: ArrayDataset
    test: ArrayDataset
    true_weight: np.ndarray  # (outputs, inputs)
    true_bias: np.ndarray    # (outputs,)
    val: ArrayDataset | None = None
    task = "regression"      # the training loop the runner picks (dlrun.runner.tasks)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.data.shape[1:])

    @property
    def outputs(self) -> int:
        return int(self.true_weight.shape[0])

    @property
    def model_args(self) -> dict:
        """Model arguments the data decides: a null ``outputs`` becomes the target's width."""
        return {"outputs": self.outputs}


@dataclass(frozen=True)
class BinaryData:
    """Two classes labelled -1 and +1, separable by the known hyperplane ``<w*, x> + b* = 0``
    with at least ``margin`` between it and every example."""

    train: ArrayDataset
    test: ArrayDataset
    true_weight: np.ndarray  # (inputs,), unit length
    true_bias: float
    margin: float
    val: ArrayDataset | None = None
    task = "perceptron"      # binary +-1 classification (the perceptron's rule, or SGD)
    num_classes = 2

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.data.shape[1:])

    @property
    def model_args(self) -> dict:
        return {}


def _split(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if n < 2:
        raise ValueError(f"num_examples must be at least 2, got {n}")
    order = rng.permutation(n)
    n_test = min(max(1, int(round(n * test_fraction))), n - 1)
    return order[n_test:], order[:n_test]


def linear_synthetic(num_examples: int = 1000, true_w: Sequence[float] = (2.0, -3.4),
                     true_b: float = 4.2, noise: float = 0.01, test_fraction: float = 0.2,
                     seed: int = 0, val_fraction: float | None = 0.2,
                     val_size: int | None = None) -> RegressionData:
    """The Gluon tutorial's linear-regression data: ``x ~ N(0, I)``,
    ``y = <w*, x> + b* + noise * N(0, 1)``, float32, split into train, val (``val_fraction``
    of the training part) and test."""
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    w = np.asarray(true_w, dtype=np.float64).reshape(-1)
    if w.size == 0:
        raise ValueError("true_w needs at least one weight")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_examples, w.size))
    y = x @ w + true_b + noise * rng.standard_normal(num_examples)
    train, test = _split(num_examples, test_fraction, rng)
    x, y = x.astype(np.float32), y.astype(np.float32)
    fit, val = carve_val(ArrayDataset(x[train], y[train]), val_fraction, val_size, seed,
                         stratify=False)
    return RegressionData(fit, ArrayDataset(x[test], y[test]), w.reshape(1, -1),
                          np.array([float(true_b)]), val)


def separable(num_examples: int = 500, features: int = 2, margin: float = 0.1,
              test_fraction: float = 0.2, seed: int = 0, val_fraction: float | None = 0.2,
              val_size: int | None = None) -> BinaryData:
    """Points ``x ~ N(0, I)`` labelled by ``sign(<w*, x> + b*)`` for a random unit ``w*`` and
    ``b*`` in [-0.5, 0.5], keeping only points at distance >= ``margin`` from the hyperplane
    (so the perceptron converges after a bounded number of mistakes, the seed's theorem).
    The validation split is ``val_fraction`` of the training part, stratified."""
    if features < 1:
        raise ValueError(f"features must be >= 1, got {features}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(features)
    w /= np.linalg.norm(w)
    b = float(rng.uniform(-0.5, 0.5))
    kept: list[np.ndarray] = []
    count = 0
    while count < num_examples:
        x = rng.standard_normal((max(2 * num_examples, 64), features))
        x = x[np.abs(x @ w + b) >= max(margin, 1e-6)]
        kept.append(x)
        count += len(x)
    x = np.concatenate(kept)[:num_examples]
    y = np.where(x @ w + b > 0, 1.0, -1.0)
    train, test = _split(num_examples, test_fraction, rng)
    x, y = x.astype(np.float32), y.astype(np.float32)
    fit, val = carve_val(ArrayDataset(x[train], y[train]), val_fraction, val_size, seed)
    return BinaryData(fit, ArrayDataset(x[test], y[test]), w, b, float(margin), val)


FIZZBUZZ_CLASSES = ("number", "fizz", "buzz", "fizzbuzz")


def fizzbuzz_label(n: int) -> int:
    """0 number, 1 fizz (divisible by 3), 2 buzz (by 5), 3 fizzbuzz (by 15)."""
    return 3 if n % 15 == 0 else 2 if n % 5 == 0 else 1 if n % 3 == 0 else 0


def fizzbuzz_text(n: int, label: int) -> str:
    """What FizzBuzz prints for ``n`` given the class ``label``."""
    return (str(n), "Fizz", "Buzz", "FizzBuzz")[label]


def fizzbuzz_features(numbers: np.ndarray, encoding: str = "raw") -> np.ndarray:
    """The seed's features (x % 3, x % 5, x % 15): as numbers (``raw``) or one-hot (``onehot``,
    3 + 5 + 15 = 23 columns)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    residues = [(numbers % m, m) for m in (3, 5, 15)]
    if encoding == "raw":
        return np.stack([r for r, _ in residues], axis=1).astype(np.float32)
    if encoding == "onehot":
        return np.concatenate([np.eye(m, dtype=np.float32)[r] for r, m in residues], axis=1)
    raise ValueError(f"encoding must be 'raw' or 'onehot', got {encoding!r}")


def fizzbuzz(train_max: int = 1024, test_max: int = 100, encoding: str = "raw",
             val_fraction: float | None = 0.1, val_size: int | None = None) -> Splits:
    """FizzBuzz as classification: test on 1..``test_max``, train on ``test_max``+1..``train_max``
    less the validation split (``val_fraction`` of them, stratified)."""
    if not 1 <= test_max < train_max:
        raise ValueError(f"need 1 <= test_max < train_max, got test_max={test_max}, "
                         f"train_max={train_max}")

    def dataset(numbers: np.ndarray) -> ArrayDataset:
        labels = np.array([fizzbuzz_label(int(n)) for n in numbers], dtype=np.int32)
        return ArrayDataset(fizzbuzz_features(numbers, encoding), labels)

    train, val = carve_val(dataset(np.arange(test_max + 1, train_max + 1)), val_fraction, val_size)
    test = dataset(np.arange(1, test_max + 1))
    return Splits(train, test, len(FIZZBUZZ_CLASSES), train.data.shape[1:], val=val)
