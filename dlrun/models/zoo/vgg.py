"""VGG (Simonyan & Zisserman 2014, arXiv:1409.1556), configurations A/B/D/E = VGG-11/13/16/19,
optionally with BatchNorm after each convolution, as Gluon's model zoo builds them:
``features`` (3x3 convolutions in five blocks, each ending in a 2x2 max pool, then two Dense
4096 with dropout) and ``output`` (Dense). Initializers as in Gluon: Xavier (gaussian, fan-out,
magnitude 2) for the convolutions, N(0, 0.01) for the dense layers.
"""
from __future__ import annotations

from typing import Any, Sequence

from ... import nn
from ...nn import init

# depth -> (convolutions per block, channels per block)
vgg_spec = {11: ([1, 1, 2, 2, 2], [64, 128, 256, 512, 512]),
            13: ([2, 2, 2, 2, 2], [64, 128, 256, 512, 512]),
            16: ([2, 2, 3, 3, 3], [64, 128, 256, 512, 512]),
            19: ([2, 2, 4, 4, 4], [64, 128, 256, 512, 512])}


class VGG(nn.HybridBlock):
    """VGG with ``layers[i]`` 3x3 convolutions of ``filters[i]`` channels in block i.

    ``in_channels``: image channels (0: inferred). ``input_size``: the side of the (square)
    input images; given, the first Dense layer knows its input width (512 * 7 * 7 for 224)
    without a forward pass; None leaves it to the first batch, as Gluon does.
    """

    def __init__(self, layers: Sequence[int], filters: Sequence[int], classes: int = 1000,
                 batch_norm: bool = False, in_channels: int = 0, input_size: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if len(layers) != len(filters):
            raise ValueError(f"VGG needs one channel count per block, got layers={list(layers)} "
                             f"and filters={list(filters)}")
        flat = 0
        if input_size:
            side = input_size >> len(layers)  # each block halves the side (2x2 pooling, floor)
            if side < 1:
                raise ValueError(f"VGG needs images of at least {2 ** len(layers)}x{2 ** len(layers)} "
                                 f"pixels, got input_size={input_size}")
            flat = filters[-1] * side * side
        self.features = nn.HybridSequential()
        channels = in_channels
        for num, width in zip(layers, filters):
            for _ in range(num):
                self.features.add(nn.Conv2D(width, kernel_size=3, padding=1, in_channels=channels,
                                            weight_initializer=init.Xavier("gaussian", "out", 2),
                                            bias_initializer="zeros"))
                if batch_norm:
                    self.features.add(nn.BatchNorm(in_channels=width))
                self.features.add(nn.Activation("relu"))
                channels = width
            self.features.add(nn.MaxPool2D(strides=2))
        self.features.add(nn.Dense(4096, activation="relu", in_units=flat,
                                   weight_initializer="normal", bias_initializer="zeros"),
                          nn.Dropout(rate=0.5),
                          nn.Dense(4096, activation="relu", in_units=4096,
                                   weight_initializer="normal", bias_initializer="zeros"),
                          nn.Dropout(rate=0.5))
        self.output = nn.Dense(classes, in_units=4096, weight_initializer="normal",
                               bias_initializer="zeros")

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))


def get_vgg(num_layers: int, **kwargs: Any) -> VGG:
    """VGG of depth ``num_layers`` (11, 13, 16, 19); ``batch_norm=True`` for the _bn variants."""
    if num_layers not in vgg_spec:
        raise ValueError(f"VGG depth must be one of {sorted(vgg_spec)}, got {num_layers!r}")
    layers, filters = vgg_spec[num_layers]
    return VGG(layers, filters, **kwargs)


def vgg11(**kwargs: Any) -> VGG:
    return get_vgg(11, **kwargs)


def vgg13(**kwargs: Any) -> VGG:
    return get_vgg(13, **kwargs)


def vgg16(**kwargs: Any) -> VGG:
    return get_vgg(16, **kwargs)


def vgg19(**kwargs: Any) -> VGG:
    return get_vgg(19, **kwargs)


def vgg11_bn(**kwargs: Any) -> VGG:
    return get_vgg(11, batch_norm=True, **kwargs)


def vgg13_bn(**kwargs: Any) -> VGG:
    return get_vgg(13, batch_norm=True, **kwargs)


def vgg16_bn(**kwargs: Any) -> VGG:
    return get_vgg(16, batch_norm=True, **kwargs)


def vgg19_bn(**kwargs: Any) -> VGG:
    return get_vgg(19, batch_norm=True, **kwargs)
