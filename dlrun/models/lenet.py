"""LeNet (LeCun et al. 1998) as in the Gluon tutorial: two conv/pool stages and two dense layers."""
from __future__ import annotations

from typing import Any, Sequence

from .. import nn


class LeNet(nn.HybridBlock):
    """conv(c1, k) -> pool -> conv(c2, k) -> pool -> flatten -> dense(hidden) -> dense(classes)."""

    def __init__(self, channels: Sequence[int] = (20, 50), kernel_size: int = 5, hidden: int = 500,
                 activation: str = "tanh", pool: str = "avg", classes: int = 10, **kwargs: Any):
        super().__init__(**kwargs)
        pools = {"avg": nn.AvgPool2D, "max": nn.MaxPool2D}
        if pool not in pools:
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.features = nn.HybridSequential()
        for c in channels:
            self.features.add(nn.Conv2D(channels=c, kernel_size=kernel_size, activation=activation),
                              pools[pool](pool_size=2))
        self.features.add(nn.Flatten(), nn.Dense(hidden, activation=activation))
        self.output = nn.Dense(classes)

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))
