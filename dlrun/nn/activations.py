"""Activation functions by name, and the Activation layer."""
from __future__ import annotations

from typing import Any, Callable

from ..engine import ops
from .block import HybridBlock

ACTIVATIONS: dict[str, Callable] = {
    "relu": ops.relu,
    "sigmoid": ops.sigmoid,
    "tanh": ops.tanh,
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
    """Applies an activation function by name ('relu', 'sigmoid', 'tanh')."""

    def __init__(self, activation: str, **kwargs: Any):
        super().__init__(**kwargs)
        self._name = activation
        self._fn = get_activation(activation)

    def forward(self, x: Any) -> Any:
        return self._fn(x)

    def _extra_repr(self) -> str:
        return self._name
