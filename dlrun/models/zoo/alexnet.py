"""AlexNet in the single-tower form of "One weird trick for parallelizing convolutional neural
networks" (Krizhevsky 2014, arXiv:1404.5997), as Gluon's and torchvision's model zoos build it:
five convolutions (64, 192, 384, 256, 256) with three max poolings, then 4096 -> 4096 -> classes.
"""
from __future__ import annotations

from typing import Any

from ... import nn


def alexnet_features(input_size: int) -> int:
    """Side of the last feature map for ``input_size`` x ``input_size`` images (6 for 224)."""
    side = (input_size + 2 * 2 - 11) // 4 + 1       # conv 11x11 / 4, padding 2
    for _ in range(3):                              # three max pools 3x3 / 2 (the 5x5 and 3x3
        side = (side - 3) // 2 + 1                  # convolutions keep the size)
    if side < 1:
        raise ValueError(f"AlexNet needs images of at least 63x63 pixels, got input_size={input_size}")
    return side


class AlexNet(nn.HybridBlock):
    """``features`` (convolutions, Flatten, two Dense 4096 with dropout) and ``output`` (Dense).

    ``in_channels``: image channels (0: inferred from the first batch). ``input_size``: the side
    of the (square) input images; given, the first Dense layer knows its input width (9216
    for 224) without a forward pass; None leaves it to the first batch, as Gluon does.
    """

    def __init__(self, classes: int = 1000, in_channels: int = 0, input_size: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        flat = 256 * alexnet_features(input_size) ** 2 if input_size else 0
        self.features = nn.HybridSequential()
        self.features.add(
            nn.Conv2D(64, kernel_size=11, strides=4, padding=2, activation="relu", in_channels=in_channels),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(192, kernel_size=5, padding=2, activation="relu", in_channels=64),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(384, kernel_size=3, padding=1, activation="relu", in_channels=192),
            nn.Conv2D(256, kernel_size=3, padding=1, activation="relu", in_channels=384),
            nn.Conv2D(256, kernel_size=3, padding=1, activation="relu", in_channels=256),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Flatten(),
            nn.Dense(4096, activation="relu", in_units=flat),
            nn.Dropout(0.5),
            nn.Dense(4096, activation="relu", in_units=4096),
            nn.Dropout(0.5))
        self.output = nn.Dense(classes, in_units=4096)

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))


def alexnet(**kwargs: Any) -> AlexNet:
    return AlexNet(**kwargs)
