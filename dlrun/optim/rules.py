"""Update rules of the optimizers, each as published (MXNet's conventions for wd)."""
from __future__ import annotations

import math
from typing import Any

from ..engine import NDArray
from .optimizer import Optimizer, register


@register
class SGD(Optimizer):
    """SGD with momentum: v = momentum*v - lr*(g + wd*w); w += v (plain: w -= lr*(g + wd*w))."""

    def __init__(self, momentum: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum

    def create_state(self, index: int, weight: NDArray) -> Any:
        if self.momentum == 0:
            return None
        return weight.ctx.xp.zeros_like(weight._data)

    def step(self, xp, w, g, state, lr, wd, t):
        g = g + wd * w if wd else g
        if state is None:
            w -= lr * g
        else:
            state *= self.momentum
            state -= lr * g
            w += state


@register
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with the bias corrections folded into the step size."""

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= b < 1:
                raise ValueError(f"{name} must be in [0, 1), got {b}")
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index: int, weight: NDArray) -> Any:
        xp = weight.ctx.xp
        return xp.zeros_like(weight._data), xp.zeros_like(weight._data)

    def step(self, xp, w, g, state, lr, wd, t):
        m, v = state
        g = g + wd * w if wd else g
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        lr_t = lr * math.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        w -= lr_t * m / (xp.sqrt(v) + self.epsilon)
