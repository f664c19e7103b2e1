"""ResNet v1 (He et al. 2015, arXiv:1512.03385) and v2 (He et al. 2016, arXiv:1603.05027),
laid out as in Gluon's model zoo (``gluon.model_zoo.vision.resnet``).

Structure: ``features`` (stem, four stages of residual blocks, global average pooling) and
``output`` (Dense). v1 normalises after each convolution and adds before the last ReLU;
v2 pre-activates (BN -> ReLU -> conv) and ends with BN -> ReLU before pooling.

One deliberate difference from Gluon: the 1x1 convolutions of ``BottleneckV1`` have no bias
(Gluon leaves ``use_bias`` at its default, True). A bias before BatchNorm is cancelled by the
normalisation, the paper's released Caffe model has none, and without it ResNet-50 v1 has the
published 25,557,032 parameters (Gluon's own: 25,575,912).

``thumbnail=True`` (as in Gluon) replaces the 7x7/2 stem convolution and its max pooling by a
single 3x3/1 convolution, for 32x32 (CIFAR) or 28x28 (MNIST) images.
"""
from __future__ import annotations

from typing import Any, Sequence

from ... import nd, nn


def _conv3x3(channels: int, stride: int, in_channels: int) -> nn.Conv2D:
    return nn.Conv2D(channels, kernel_size=3, strides=stride, padding=1, use_bias=False,
                     in_channels=in_channels)


class BasicBlockV1(nn.HybridBlock):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the (projected) input, then ReLU (ResNet-18/34)."""

    def __init__(self, channels: int, stride: int, downsample: bool = False, in_channels: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.body = nn.HybridSequential()
        self.body.add(_conv3x3(channels, stride, in_channels),
                      nn.BatchNorm(in_channels=channels),
                      nn.Activation("relu"),
                      _conv3x3(channels, 1, channels),
                      nn.BatchNorm(in_channels=channels))
        if downsample:
            self.downsample = nn.HybridSequential()
            self.downsample.add(nn.Conv2D(channels, kernel_size=1, strides=stride, use_bias=False,
                                          in_channels=in_channels),
                                nn.BatchNorm(in_channels=channels))
        else:
            self.downsample = None

    def forward(self, x: Any) -> Any:
        residual = self.downsample(x) if self.downsample is not None else x
        return nd.relu(self.body(x) + residual)


class BottleneckV1(nn.HybridBlock):
    """1x1 (stride) -> 3x3 -> 1x1 (4x wider), each followed by BN, ReLU between (ResNet-50+).

    The stride sits on the first 1x1 convolution, as in the paper and Gluon (torchvision's
    "v1.5" moves it to the 3x3; the parameter count is the same).
    """

    def __init__(self, channels: int, stride: int, downsample: bool = False, in_channels: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        mid = channels // 4
        self.body = nn.HybridSequential()
        self.body.add(nn.Conv2D(mid, kernel_size=1, strides=stride, use_bias=False,
                                in_channels=in_channels),
                      nn.BatchNorm(in_channels=mid),
                      nn.Activation("relu"),
                      _conv3x3(mid, 1, mid),
                      nn.BatchNorm(in_channels=mid),
                      nn.Activation("relu"),
                      nn.Conv2D(channels, kernel_size=1, strides=1, use_bias=False, in_channels=mid),
                      nn.BatchNorm(in_channels=channels))
        if downsample:
            self.downsample = nn.HybridSequential()
            self.downsample.add(nn.Conv2D(channels, kernel_size=1, strides=stride, use_bias=False,
                                          in_channels=in_channels),
                                nn.BatchNorm(in_channels=channels))
        else:
            self.downsample = None

    def forward(self, x: Any) -> Any:
        residual = self.downsample(x) if self.downsample is not None else x
        return nd.relu(self.body(x) + residual)


class BasicBlockV2(nn.HybridBlock):
    """Pre-activation basic block: BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3, plus the input.

    The projection shortcut (a bare 1x1 convolution) takes the pre-activated input, as in Gluon.
    """

    def __init__(self, channels: int, stride: int, downsample: bool = False, in_channels: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.bn1 = nn.BatchNorm(in_channels=in_channels)
        self.conv1 = _conv3x3(channels, stride, in_channels)
        self.bn2 = nn.BatchNorm(in_channels=channels)
        self.conv2 = _conv3x3(channels, 1, channels)
        self.downsample = nn.Conv2D(channels, 1, stride, use_bias=False,
                                    in_channels=in_channels) if downsample else None

    def forward(self, x: Any) -> Any:
        residual = x
        x = nd.relu(self.bn1(x))
        if self.downsample is not None:
            residual = self.downsample(x)
        x = self.conv1(x)
        x = self.conv2(nd.relu(self.bn2(x)))
        return x + residual


class BottleneckV2(nn.HybridBlock):
    """Pre-activation bottleneck: (BN -> ReLU -> conv) for 1x1, 3x3 (stride), 1x1, plus the input."""

    def __init__(self, channels: int, stride: int, downsample: bool = False, in_channels: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        mid = channels // 4
        self.bn1 = nn.BatchNorm(in_channels=in_channels)
        self.conv1 = nn.Conv2D(mid, kernel_size=1, strides=1, use_bias=False, in_channels=in_channels)
        self.bn2 = nn.BatchNorm(in_channels=mid)
        self.conv2 = _conv3x3(mid, stride, mid)
        self.bn3 = nn.BatchNorm(in_channels=mid)
        self.conv3 = nn.Conv2D(channels, kernel_size=1, strides=1, use_bias=False, in_channels=mid)
        self.downsample = nn.Conv2D(channels, 1, stride, use_bias=False,
                                    in_channels=in_channels) if downsample else None

    def forward(self, x: Any) -> Any:
        residual = x
        x = nd.relu(self.bn1(x))
        if self.downsample is not None:
            residual = self.downsample(x)
        x = self.conv1(x)
        x = self.conv2(nd.relu(self.bn2(x)))
        x = self.conv3(nd.relu(self.bn3(x)))
        return x + residual


def _make_stage(block: type, layers: int, channels: int, stride: int,
                in_channels: int) -> nn.HybridSequential:
    stage = nn.HybridSequential()
    stage.add(block(channels, stride, channels != in_channels, in_channels=in_channels))
    for _ in range(layers - 1):
        stage.add(block(channels, 1, False, in_channels=channels))
    return stage


class ResNetV1(nn.HybridBlock):
    """ResNet v1: stem, stages of ``block`` (``layers[i]`` blocks of ``channels[i + 1]`` channels,
    stride 2 from the second stage on), global average pooling, Dense(classes).

    ``in_channels`` is the number of image channels (0: inferred from the first batch).
    """

    def __init__(self, block: type, layers: Sequence[int], channels: Sequence[int],
                 classes: int = 1000, thumbnail: bool = False, in_channels: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if len(layers) != len(channels) - 1:
            raise ValueError(f"ResNet needs one more channel count than stages, got layers={list(layers)} "
                             f"and channels={list(channels)}")
        self.features = nn.HybridSequential()
        if thumbnail:
            self.features.add(_conv3x3(channels[0], 1, in_channels))
        else:
            self.features.add(nn.Conv2D(channels[0], 7, 2, 3, use_bias=False, in_channels=in_channels),
                              nn.BatchNorm(in_channels=channels[0]),
                              nn.Activation("relu"),
                              nn.MaxPool2D(3, 2, 1))
        for i, num_layers in enumerate(layers):
            self.features.add(_make_stage(block, num_layers, channels[i + 1], 1 if i == 0 else 2,
                                          in_channels=channels[i]))
        self.features.add(nn.GlobalAvgPool2D())
        self.output = nn.Dense(classes, in_units=channels[-1])

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))


class ResNetV2(nn.HybridBlock):
    """ResNet v2: input BN (no scale or shift), stem, pre-activation stages, BN -> ReLU,
    global average pooling, Dense(classes)."""

    def __init__(self, block: type, layers: Sequence[int], channels: Sequence[int],
                 classes: int = 1000, thumbnail: bool = False, in_channels: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if len(layers) != len(channels) - 1:
            raise ValueError(f"ResNet needs one more channel count than stages, got layers={list(layers)} "
                             f"and channels={list(channels)}")
        self.features = nn.HybridSequential()
        self.features.add(nn.BatchNorm(scale=False, center=False, in_channels=in_channels))
        if thumbnail:
            self.features.add(_conv3x3(channels[0], 1, in_channels))
        else:
            self.features.add(nn.Conv2D(channels[0], 7, 2, 3, use_bias=False, in_channels=in_channels),
                              nn.BatchNorm(in_channels=channels[0]),
                              nn.Activation("relu"),
                              nn.MaxPool2D(3, 2, 1))
        for i, num_layers in enumerate(layers):
            self.features.add(_make_stage(block, num_layers, channels[i + 1], 1 if i == 0 else 2,
                                          in_channels=channels[i]))
        self.features.add(nn.BatchNorm(in_channels=channels[-1]),
                          nn.Activation("relu"),
                          nn.GlobalAvgPool2D(),
                          nn.Flatten())
        self.output = nn.Dense(classes, in_units=channels[-1])

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))


# depth -> (block kind, blocks per stage, channels: stem then each stage)
resnet_spec = {18: ("basic", [2, 2, 2, 2], [64, 64, 128, 256, 512]),
               34: ("basic", [3, 4, 6, 3], [64, 64, 128, 256, 512]),
               50: ("bottleneck", [3, 4, 6, 3], [64, 256, 512, 1024, 2048]),
               101: ("bottleneck", [3, 4, 23, 3], [64, 256, 512, 1024, 2048]),
               152: ("bottleneck", [3, 8, 36, 3], [64, 256, 512, 1024, 2048])}

_VERSIONS = {1: (ResNetV1, {"basic": BasicBlockV1, "bottleneck": BottleneckV1}),
             2: (ResNetV2, {"basic": BasicBlockV2, "bottleneck": BottleneckV2})}


def get_resnet(version: int, num_layers: int, **kwargs: Any) -> nn.HybridBlock:
    """ResNet ``version`` (1 or 2) of depth ``num_layers`` (18, 34, 50, 101, 152)."""
    if version not in _VERSIONS:
        raise ValueError(f"ResNet version must be 1 or 2, got {version!r}")
    if num_layers not in resnet_spec:
        raise ValueError(f"ResNet depth must be one of {sorted(resnet_spec)}, got {num_layers!r}")
    kind, layers, channels = resnet_spec[num_layers]
    net_class, blocks = _VERSIONS[version]
    return net_class(blocks[kind], layers, channels, **kwargs)


def resnet18_v1(**kwargs: Any) -> ResNetV1:
    return get_resnet(1, 18, **kwargs)


def resnet34_v1(**kwargs: Any) -> ResNetV1:
    return get_resnet(1, 34, **kwargs)


def resnet50_v1(**kwargs: Any) -> ResNetV1:
    return get_resnet(1, 50, **kwargs)


def resnet101_v1(**kwargs: Any) -> ResNetV1:
    return get_resnet(1, 101, **kwargs)


def resnet152_v1(**kwargs: Any) -> ResNetV1:
    return get_resnet(1, 152, **kwargs)


def resnet18_v2(**kwargs: Any) -> ResNetV2:
    return get_resnet(2, 18, **kwargs)


def resnet34_v2(**kwargs: Any) -> ResNetV2:
    return get_resnet(2, 34, **kwargs)


def resnet50_v2(**kwargs: Any) -> ResNetV2:
    return get_resnet(2, 50, **kwargs)


def resnet101_v2(**kwargs: Any) -> ResNetV2:
    return get_resnet(2, 101, **kwargs)


def resnet152_v2(**kwargs: Any) -> ResNetV2:
    return get_resnet(2, 152, **kwargs)
