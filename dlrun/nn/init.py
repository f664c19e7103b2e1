"""Parameter initializers (MXNet's names and defaults)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine.backend import cpu, generator

# Parameters named like these get a fixed value whatever the initializer (as in MXNet).
_ZERO_SUFFIXES = ("bias", "beta", "running_mean", "moving_mean")
_ONE_SUFFIXES = ("gamma", "running_var", "moving_var")


class Initializer:
    """Fills a parameter's array. Biases and normalisation shifts get zeros, scales ones."""

    def __call__(self, name: str, shape: tuple, dtype: Any) -> np.ndarray:
        """A host array of ``shape`` for the parameter ``name``."""
        if name.endswith(_ZERO_SUFFIXES):
            return np.zeros(shape, dtype)
        if name.endswith(_ONE_SUFFIXES):
            return np.ones(shape, dtype)
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


_BY_NAME = {"zeros": Zero, "zero": Zero, "ones": One, "one": One, "uniform": Uniform,
            "normal": Normal, "xavier": Xavier}


def create(init: "Initializer | str | None") -> "Initializer | None":
    """An initializer from an instance or its name ('zeros', 'ones', 'xavier', ...)."""
    if init is None or isinstance(init, Initializer):
        return init
    try:
        return _BY_NAME[init.lower()]()
    except KeyError:
        raise ValueError(f"unknown initializer {init!r}; choose one of {sorted(_BY_NAME)}") from None
