"""Activation functions by name, and the activation layers."""
from __future__ import annotations

from typing import Any, Callable

from ..engine import ops
from .block import HybridBlock
from .init import Constant
from .parameter import Parameter

ACTIVATIONS: dict[str, Callable] = {
    "relu": ops.relu,
    "sigmoid": ops.sigmoid,
    "tanh": ops.tanh,
    "softrelu": ops.softrelu,
    "softsign": ops.softsign,
}


def get_activation(name: str | None) -> Callable | None:
    """The op for an activation name (None for no activation)."""
    if name is None:
        return None
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class Activation(HybridBlock):
    """Applies an activation function by name ('relu', 'sigmoid', 'tanh', 'softrelu', 'softsign')."""

    def __init__(self, activation: str, **kwargs: Any):
        super().__init__(**kwargs)
        self._name = activation
        self._fn = get_activation(activation)

    def forward(self, x: Any) -> Any:
        return self._fn(x)

    def _extra_repr(self) -> str:
        return self._name


class LeakyReLU(HybridBlock):
    """x for x > 0, alpha * x otherwise."""

    def __init__(self, alpha: float, **kwargs: Any):
        super().__init__(**kwargs)
        if alpha < 0:
            raise ValueError(f"LeakyReLU slope alpha must be >= 0, got {alpha}")
        self._alpha = alpha

    def forward(self, x: Any) -> Any:
        return ops.leaky_relu(x, slope=self._alpha)


class ELU(HybridBlock):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (Clevert et al. 2016)."""

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self._alpha = alpha

    def forward(self, x: Any) -> Any:
        return ops.elu(x, alpha=self._alpha)


class PReLU(HybridBlock):
    """Leaky ReLU with a learned slope per channel (axis 1), or one shared slope (He et al. 2015)."""

    def __init__(self, alpha_initializer: Any = Constant(0.25), in_channels: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha = Parameter("alpha", shape=(in_channels,), init=alpha_initializer)

    def forward(self, x: Any) -> Any:
        alpha = self.alpha.data()
        if alpha.shape[0] > 1:
            alpha = alpha.reshape((1, -1) + (1,) * (x.ndim - 2))
        return ops.relu(x) + alpha * ops.minimum(x, 0)


class SELU(HybridBlock):
    """Scaled ELU (Klambauer et al. 2017): lambda * (x if x > 0 else alpha * (exp(x) - 1))."""

    def forward(self, x: Any) -> Any:
        return ops.selu(x)


class GELU(HybridBlock):
    """x * Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016), with the exact erf."""

    def forward(self, x: Any) -> Any:
        return ops.gelu(x)


class Swish(HybridBlock):
    """x * sigmoid(beta * x) (Ramachandran et al. 2017)."""

    def __init__(self, beta: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self._beta = beta

    def forward(self, x: Any) -> Any:
        return x * ops.sigmoid(x * self._beta)
