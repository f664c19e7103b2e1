"""The multilayer perceptron of the Gluon tutorial: dense layers with dropout between them."""
from __future__ import annotations

from typing import Any, Sequence

from .. import nn


class MLP(nn.HybridBlock):
    """dense(h1) -> dropout -> dense(h2) -> dropout -> ... -> dense(classes)."""

    def __init__(self, hidden: Sequence[int] = (128, 64), activation: str = "relu",
                 dropout: float = 0.5, classes: int = 10, **kwargs: Any):
        super().__init__(**kwargs)
        self.features = nn.HybridSequential()
        for units in hidden:
            self.features.add(nn.Dense(units, activation=activation))
            if dropout:
                self.features.add(nn.Dropout(dropout))
        self.output = nn.Dense(classes)

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))
