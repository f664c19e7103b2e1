"""DenseNet-BC (Huang et al. 2017, arXiv:1608.06993) as Gluon's model zoo builds it.

Each dense layer is BN -> ReLU -> conv1x1 (bn_size * k) -> BN -> ReLU -> conv3x3 (k), its
output concatenated to its input; transitions halve the channels (BN -> ReLU -> conv1x1) and
the resolution (2x2 average pool).

One difference from Gluon: the head pools globally where Gluon uses ``AvgPool2D(7)``. On
224x224 images (7x7 final maps) the two are the same; global pooling also runs on smaller
images (32x32 and up), as torchvision's adaptive pooling does.
"""
from __future__ import annotations

from typing import Any, Sequence

from ... import nn


def _make_dense_layer(growth_rate: int, bn_size: int, dropout: float,
                      in_channels: int) -> nn.HybridConcurrent:
    new_features = nn.HybridSequential()
    new_features.add(nn.BatchNorm(in_channels=in_channels),
                     nn.Activation("relu"),
                     nn.Conv2D(bn_size * growth_rate, kernel_size=1, use_bias=False,
                               in_channels=in_channels),
                     nn.BatchNorm(in_channels=bn_size * growth_rate),
                     nn.Activation("relu"),
                     nn.Conv2D(growth_rate, kernel_size=3, padding=1, use_bias=False,
                               in_channels=bn_size * growth_rate))
    if dropout:
        new_features.add(nn.Dropout(dropout))
    out = nn.HybridConcurrent(axis=1)
    out.add(nn.Identity(), new_features)
    return out


def _make_dense_block(num_layers: int, bn_size: int, growth_rate: int, dropout: float,
                      in_channels: int) -> nn.HybridSequential:
    block = nn.HybridSequential()
    for i in range(num_layers):
        block.add(_make_dense_layer(growth_rate, bn_size, dropout, in_channels + i * growth_rate))
    return block


def _make_transition(num_output_features: int, in_channels: int) -> nn.HybridSequential:
    out = nn.HybridSequential()
    out.add(nn.BatchNorm(in_channels=in_channels),
            nn.Activation("relu"),
            nn.Conv2D(num_output_features, kernel_size=1, use_bias=False, in_channels=in_channels),
            nn.AvgPool2D(pool_size=2, strides=2))
    return out


class DenseNet(nn.HybridBlock):
    """DenseNet-BC: stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool), dense blocks of
    ``block_config[i]`` layers with transitions between them, BN -> ReLU -> global average
    pool, Dense(classes).

    ``growth_rate`` is k of the paper; ``bn_size * k`` the bottleneck width; ``dropout`` the
    rate after each dense layer; ``in_channels`` the image channels (0: inferred).
    """

    def __init__(self, num_init_features: int, growth_rate: int, block_config: Sequence[int],
                 bn_size: int = 4, dropout: float = 0.0, classes: int = 1000, in_channels: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.features = nn.HybridSequential()
        self.features.add(nn.Conv2D(num_init_features, kernel_size=7, strides=2, padding=3,
                                    use_bias=False, in_channels=in_channels),
                          nn.BatchNorm(in_channels=num_init_features),
                          nn.Activation("relu"),
                          nn.MaxPool2D(pool_size=3, strides=2, padding=1))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add(_make_dense_block(num_layers, bn_size, growth_rate, dropout, num_features))
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add(_make_transition(num_features // 2, num_features))
                num_features //= 2
        self.features.add(nn.BatchNorm(in_channels=num_features),
                          nn.Activation("relu"),
                          nn.GlobalAvgPool2D(),
                          nn.Flatten())
        self.output = nn.Dense(classes, in_units=num_features)

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))


# depth -> (stem channels, growth rate k, layers per dense block)
densenet_spec = {121: (64, 32, [6, 12, 24, 16]),
                 161: (96, 48, [6, 12, 36, 24]),
                 169: (64, 32, [6, 12, 32, 32]),
                 201: (64, 32, [6, 12, 48, 32])}


def get_densenet(num_layers: int, **kwargs: Any) -> DenseNet:
    """DenseNet-BC of depth ``num_layers`` (121, 161, 169, 201)."""
    if num_layers not in densenet_spec:
        raise ValueError(f"DenseNet depth must be one of {sorted(densenet_spec)}, got {num_layers!r}")
    num_init_features, growth_rate, block_config = densenet_spec[num_layers]
    return DenseNet(num_init_features, growth_rate, block_config, **kwargs)


def densenet121(**kwargs: Any) -> DenseNet:
    return get_densenet(121, **kwargs)


def densenet161(**kwargs: Any) -> DenseNet:
    return get_densenet(161, **kwargs)


def densenet169(**kwargs: Any) -> DenseNet:
    return get_densenet(169, **kwargs)


def densenet201(**kwargs: Any) -> DenseNet:
    return get_densenet(201, **kwargs)
