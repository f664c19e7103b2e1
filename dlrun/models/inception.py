"""An Inception network for small images, built from the tutorial's blocks.

The blocks are the seed's (Szegedy et al. 2016, Inception-v3's "A" module): a basic conv is
Conv + BatchNorm + ReLU; a branch is an optional pool followed by basic convs; an Inception
block runs a 1x1 branch, a 5x5 branch, a double-3x3 branch and a pooling branch side by side
and concatenates them on the channel axis. ``width`` scales every channel count, so the same
network fits a laptop (0.25) or matches the published block (1.0).
"""
from __future__ import annotations

from typing import Any, Sequence

from .. import nn

SETTING_NAMES = ("channels", "kernel_size", "strides", "padding")


def _make_basic_conv(**kwargs: Any) -> nn.HybridSequential:
    out = nn.HybridSequential()
    out.add(nn.Conv2D(use_bias=False, **kwargs))
    out.add(nn.BatchNorm(epsilon=0.001))
    out.add(nn.Activation("relu"))
    return out


def _make_branch(use_pool: str | None, *conv_settings: tuple) -> nn.HybridSequential:
    out = nn.HybridSequential()
    if use_pool == "avg":
        out.add(nn.AvgPool2D(pool_size=3, strides=1, padding=1))
    elif use_pool == "max":
        out.add(nn.MaxPool2D(pool_size=3, strides=2))
    for setting in conv_settings:
        out.add(_make_basic_conv(**{SETTING_NAMES[i]: v for i, v in enumerate(setting) if v is not None}))
    return out


def _make_A(pool_features: int, width: float = 1.0) -> nn.HybridConcurrent:
    def c(n: int) -> int:
        return max(1, round(n * width))
    out = nn.HybridConcurrent(axis=1)
    out.add(_make_branch(None, (c(64), 1, None, None)))
    out.add(_make_branch(None, (c(48), 1, None, None), (c(64), 5, None, 2)))
    out.add(_make_branch(None, (c(64), 1, None, None), (c(96), 3, None, 1), (c(96), 3, None, 1)))
    out.add(_make_branch("avg", (pool_features, 1, None, None)))
    return out


class Inception(nn.HybridBlock):
    """stem (3x3 convs, 2x2 max pool) -> Inception-A blocks, halving the size between them
    -> global average pool -> dropout -> dense(classes). Sized for 28x28 and 32x32 inputs."""

    def __init__(self, classes: int = 10, width: float = 0.25, pool_features: Sequence[int] = (32, 64),
                 stem_channels: int = 64, dropout: float = 0.2, **kwargs: Any):
        super().__init__(**kwargs)
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.features = nn.HybridSequential()
        stem = max(1, round(stem_channels * width))
        self.features.add(_make_basic_conv(channels=stem, kernel_size=3, padding=1),
                          _make_basic_conv(channels=stem, kernel_size=3, padding=1),
                          nn.MaxPool2D(pool_size=2))
        for i, pf in enumerate(pool_features):
            if i:
                self.features.add(nn.MaxPool2D(pool_size=2))
            self.features.add(_make_A(max(1, round(pf * width)), width))
        self.features.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dropout(dropout))
        self.output = nn.Dense(classes)

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))
