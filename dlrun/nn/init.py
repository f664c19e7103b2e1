"""Parameter initializers (MXNet's names and defaults)."""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..engine.backend import cpu, generator

class Initializer:
    """Fills a parameter's array.

    As in Gluon, a block-wide default fills every parameter that has no initializer of its
    own, whatever its name: the layers give their biases, shifts, scales and running
    statistics their own ('zeros', 'ones'), so ``net.initialize(Xavier())`` leaves those
    alone, while a bias a custom block makes with ``params.get('bias', shape=...)`` gets the
    default, as in MXNet.
    """

    def __call__(self, name: str, shape: tuple, dtype: Any) -> np.ndarray:
        """A host array of ``shape`` for the parameter ``name``."""
        return np.asarray(self.sample(shape), dtype=dtype)

    def sample(self, shape: tuple) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def rng() -> np.random.Generator:
        """The seeded host generator, so that a seed gives the same weights on any device."""
        return generator(cpu())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Zero(Initializer):
    """All zeros."""

    def sample(self, shape: tuple) -> np.ndarray:
        return np.zeros(shape)


class One(Initializer):
    """All ones."""

    def sample(self, shape: tuple) -> np.ndarray:
        return np.ones(shape)


class Constant(Initializer):
    """Every element ``value``."""

    def __init__(self, value: float):
        self.value = value

    def sample(self, shape: tuple) -> np.ndarray:
        return np.full(shape, self.value)


class Uniform(Initializer):
    """U(-scale, scale)."""

    def __init__(self, scale: float = 0.07):
        self.scale = scale

    def sample(self, shape: tuple) -> np.ndarray:
        return self.rng().uniform(-self.scale, self.scale, size=shape)


class Normal(Initializer):
    """N(0, sigma^2)."""

    def __init__(self, sigma: float = 0.01):
        self.sigma = sigma

    def sample(self, shape: tuple) -> np.ndarray:
        return self.rng().normal(0.0, self.sigma, size=shape)


def fans(shape: tuple) -> tuple[float, float]:
    """(fan_in, fan_out) of a weight laid out as (out, in, *kernel)."""
    if len(shape) < 2:
        raise ValueError(f"Xavier-style initializers need a weight of at least 2 dimensions, got {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Xavier(Initializer):
    """Glorot & Bengio (2010): variance magnitude / fan, uniform or gaussian."""

    def __init__(self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3):
        if rnd_type not in ("uniform", "gaussian"):
            raise ValueError(f"rnd_type must be 'uniform' or 'gaussian', got {rnd_type!r}")
        if factor_type not in ("avg", "in", "out"):
            raise ValueError(f"factor_type must be 'avg', 'in' or 'out', got {factor_type!r}")
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def sample(self, shape: tuple) -> np.ndarray:
        fan_in, fan_out = fans(shape)
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[self.factor_type]
        scale = math.sqrt(self.magnitude / factor)
        if self.rnd_type == "uniform":
            return self.rng().uniform(-scale, scale, size=shape)
        return self.rng().normal(0.0, scale, size=shape)


class MSRAPrelu(Xavier):
    """He et al. (2015): gaussian with variance 2 / ((1 + slope^2) * fan)."""

    def __init__(self, factor_type: str = "avg", slope: float = 0.25):
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope ** 2))
        self.slope = slope


class Orthogonal(Initializer):
    """Saxe et al. (2014): a scaled random orthogonal matrix (rows or columns orthonormal)."""

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform"):
        if rand_type not in ("uniform", "normal"):
            raise ValueError(f"rand_type must be 'uniform' or 'normal', got {rand_type!r}")
        self.scale, self.rand_type = scale, rand_type

    def sample(self, shape: tuple) -> np.ndarray:
        flat = (shape[0], math.prod(shape[1:]))
        rng = self.rng()
        tmp = rng.uniform(-1, 1, flat) if self.rand_type == "uniform" else rng.normal(0, 1, flat)
        u, _, v = np.linalg.svd(tmp, full_matrices=False)
        return self.scale * (u if u.shape == flat else v).reshape(shape)


class LSTMBias(Initializer):
    """Zeros, except the forget-gate quarter (gate order i, f, u, o) set to ``forget_bias``."""

    def __init__(self, forget_bias: float = 1.0):
        self.forget_bias = forget_bias

    def sample(self, shape: tuple) -> np.ndarray:
        if len(shape) != 1 or shape[0] % 4:
            raise ValueError(f"LSTMBias needs a bias of 4 * hidden_size elements, got shape {shape}")
        b = np.zeros(shape)
        hidden = shape[0] // 4
        b[hidden:2 * hidden] = self.forget_bias
        return b


class Mixed(Initializer):
    """Picks the initializer of the first regular expression that matches a parameter's name."""

    def __init__(self, patterns: list[str], initializers: list[Initializer]):
        if len(patterns) != len(initializers):
            raise ValueError(f"Mixed needs one initializer per pattern, got {len(patterns)} patterns "
                             f"and {len(initializers)} initializers")
        self.rules = [(re.compile(p), create(i)) for p, i in zip(patterns, initializers)]

    def __call__(self, name: str, shape: tuple, dtype: Any) -> np.ndarray:
        for pattern, init in self.rules:
            if pattern.search(name):
                return init(name, shape, dtype)
        raise ValueError(f"no pattern of Mixed matches parameter '{name}'; add a catch-all '.*'")


_BY_NAME = {"zeros": Zero, "zero": Zero, "ones": One, "one": One, "uniform": Uniform,
            "normal": Normal, "xavier": Xavier, "msraprelu": MSRAPrelu,
            "orthogonal": Orthogonal, "lstmbias": LSTMBias}


def create(init: "Initializer | str | None") -> "Initializer | None":
    """An initializer from an instance or its name ('zeros', 'ones', 'xavier', ...)."""
    if init is None or isinstance(init, Initializer):
        return init
    try:
        return _BY_NAME[init.lower()]()
    except KeyError:
        raise ValueError(f"unknown initializer {init!r}; choose one of {sorted(_BY_NAME)}") from None
