"""SqueezeNet 1.0 (Iandola et al. 2016, arXiv:1602.07360) and 1.1 (the official repository's
cheaper variant: 3x3 stem, earlier pooling), as Gluon's model zoo builds them.

A fire module squeezes with a 1x1 convolution, then expands with 1x1 and 3x3 convolutions
whose outputs are concatenated along the channels. The classifier is a 1x1 convolution to
``classes`` maps, ReLU, and average pooling. One difference from Gluon: that pooling is global
where Gluon uses ``AvgPool2D(13)``; on 224x224 images (13x13 final maps) the two are the same,
and global pooling also runs on smaller images (e.g. 64x64), as torchvision's adaptive pooling does.
"""
from __future__ import annotations

from typing import Any

from ... import nn


def _make_fire_conv(channels: int, kernel_size: int, in_channels: int,
                    padding: int = 0) -> nn.HybridSequential:
    out = nn.HybridSequential()
    out.add(nn.Conv2D(channels, kernel_size, padding=padding, in_channels=in_channels),
            nn.Activation("relu"))
    return out


def _make_fire(squeeze_channels: int, expand1x1_channels: int, expand3x3_channels: int,
               in_channels: int) -> nn.HybridSequential:
    out = nn.HybridSequential()
    out.add(_make_fire_conv(squeeze_channels, 1, in_channels))
    paths = nn.HybridConcurrent(axis=1)
    paths.add(_make_fire_conv(expand1x1_channels, 1, squeeze_channels),
              _make_fire_conv(expand3x3_channels, 3, squeeze_channels, padding=1))
    out.add(paths)
    return out


# version -> stem (channels, kernel), then the sequence: ("pool",) or (squeeze, expand) fires
_SPEC = {
    "1.0": ((96, 7), [("pool",), (16, 64), (16, 64), (32, 128), ("pool",), (32, 128), (48, 192),
                      (48, 192), (64, 256), ("pool",), (64, 256)]),
    "1.1": ((64, 3), [("pool",), (16, 64), (16, 64), ("pool",), (32, 128), (32, 128), ("pool",),
                      (48, 192), (48, 192), (64, 256), (64, 256)]),
}


class SqueezeNet(nn.HybridBlock):
    """SqueezeNet ``version`` '1.0' or '1.1': ``features`` (stem, fires, max pools with
    ceil mode, dropout) and ``output`` (1x1 conv to classes, ReLU, global average pool,
    Flatten). ``in_channels``: image channels (0: inferred)."""

    def __init__(self, version: str, classes: int = 1000, in_channels: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        version = str(version)
        if version not in _SPEC:
            raise ValueError(f"SqueezeNet version must be '1.0' or '1.1', got {version!r}")
        (stem, kernel), sequence = _SPEC[version]
        self.features = nn.HybridSequential()
        self.features.add(nn.Conv2D(stem, kernel_size=kernel, strides=2, in_channels=in_channels),
                          nn.Activation("relu"))
        channels = stem
        for item in sequence:
            if item == ("pool",):
                self.features.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True))
            else:
                squeeze, expand = item
                self.features.add(_make_fire(squeeze, expand, expand, channels))
                channels = 2 * expand
        self.features.add(nn.Dropout(0.5))
        self.output = nn.HybridSequential()
        self.output.add(nn.Conv2D(classes, kernel_size=1, in_channels=channels),
                        nn.Activation("relu"),
                        nn.GlobalAvgPool2D(),
                        nn.Flatten())

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))


def squeezenet1_0(**kwargs: Any) -> SqueezeNet:
    return SqueezeNet("1.0", **kwargs)


def squeezenet1_1(**kwargs: Any) -> SqueezeNet:
    return SqueezeNet("1.1", **kwargs)
