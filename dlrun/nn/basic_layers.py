"""Dense, Dropout and Flatten."""
from __future__ import annotations

import math
from typing import Any

from ..engine import autograd, ops
from .activations import get_activation
from .block import HybridBlock
from .parameter import Parameter


class Dense(HybridBlock):
    """Fully connected layer: ``activation(x @ weight.T + bias)``; in_units inferred on first use."""

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 flatten: bool = True, dtype: Any = "float32", weight_initializer: Any = None,
                 bias_initializer: Any = "zeros", in_units: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self._units, self._flatten, self._act_name = units, flatten, activation
        self._act = get_activation(activation)
        self.weight = Parameter("weight", shape=(units, in_units), dtype=dtype, init=weight_initializer)
        self.bias = Parameter("bias", shape=(units,), dtype=dtype, init=bias_initializer) if use_bias else None

    def forward(self, x: Any) -> Any:
        in_units = math.prod(x.shape[1:]) if self._flatten else x.shape[-1]
        self.weight.shape = (self._units, in_units)
        y = ops.fully_connected(x, self.weight.data(), None if self.bias is None else self.bias.data(),
                                flatten=self._flatten)
        return self._act(y) if self._act else y

    def _extra_repr(self) -> str:
        shape = self.weight.shape
        return f"{shape[1] or None} -> {self._units}" + (f", {self._act_name}" if self._act_name else "")


class Dropout(HybridBlock):
    """Zeroes inputs with probability ``rate`` in training mode; the identity otherwise."""

    def __init__(self, rate: float, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self._rate = rate

    def forward(self, x: Any) -> Any:
        if self._rate == 0 or not autograd.is_training():
            return x
        return ops.dropout(x, p=self._rate)

    def _extra_repr(self) -> str:
        return f"p = {self._rate}"


class Flatten(HybridBlock):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x: Any) -> Any:
        return ops.flatten(x)
