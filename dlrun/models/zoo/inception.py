"""Inception-v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer
Vision", arXiv:1512.00567) as Gluon's model zoo builds it, for 299x299 images.

Every convolution is a "basic conv": Conv (no bias) -> BatchNorm (eps 0.001) -> ReLU. The
stem reduces 299x299 to 35x35x192; then three A modules (35x35), a B reduction to 17x17,
four C modules with factorised 7x7 convolutions, a D reduction to 8x8 and two E modules with
split 1x3 / 3x1 branches (2048 channels); 8x8 average pooling, dropout, Dense(classes).

Like Gluon's (and unlike torchvision's with ``aux_logits=True``) there is no auxiliary
classifier: 23,834,568 parameters for 1000 classes, torchvision's 27,161,264 less its
3,326,696-parameter AuxLogits head.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from ... import nn

# (channels, kernel_size, strides, padding); None keeps the Conv2D default
ConvSetting = Sequence[Any]


def _make_basic_conv(in_channels: int, channels: int, kernel_size: Any, strides: Any = 1,
                     padding: Any = 0) -> nn.HybridSequential:
    out = nn.HybridSequential()
    out.add(nn.Conv2D(channels, kernel_size, strides=strides, padding=padding, use_bias=False,
                      in_channels=in_channels),
            nn.BatchNorm(epsilon=0.001, in_channels=channels),
            nn.Activation("relu"))
    return out


def _make_branch(use_pool: Optional[str], in_channels: int,
                 *conv_settings: ConvSetting) -> tuple[nn.HybridSequential, int]:
    """A branch (optional pool, then basic convs) and its number of output channels."""
    out = nn.HybridSequential()
    if use_pool == "avg":
        out.add(nn.AvgPool2D(pool_size=3, strides=1, padding=1))
    elif use_pool == "max":
        out.add(nn.MaxPool2D(pool_size=3, strides=2))
    channels = in_channels
    for channels_out, kernel, strides, padding in conv_settings:
        out.add(_make_basic_conv(channels, channels_out, kernel,
                                 1 if strides is None else strides, 0 if padding is None else padding))
        channels = channels_out
    return out, channels


def _concurrent(*branches: tuple[nn.HybridBlock, int]) -> tuple[nn.HybridConcurrent, int]:
    out = nn.HybridConcurrent(axis=1)
    out.add(*(block for block, _ in branches))
    return out, sum(channels for _, channels in branches)


def _make_A(pool_features: int, c: int) -> tuple[nn.HybridConcurrent, int]:
    return _concurrent(
        _make_branch(None, c, (64, 1, None, None)),
        _make_branch(None, c, (48, 1, None, None), (64, 5, None, 2)),
        _make_branch(None, c, (64, 1, None, None), (96, 3, None, 1), (96, 3, None, 1)),
        _make_branch("avg", c, (pool_features, 1, None, None)))


def _make_B(c: int) -> tuple[nn.HybridConcurrent, int]:
    return _concurrent(
        _make_branch(None, c, (384, 3, 2, None)),
        _make_branch(None, c, (64, 1, None, None), (96, 3, None, 1), (96, 3, 2, None)),
        _make_branch("max", c))


def _make_C(channels_7x7: int, c: int) -> tuple[nn.HybridConcurrent, int]:
    c7 = channels_7x7
    return _concurrent(
        _make_branch(None, c, (192, 1, None, None)),
        _make_branch(None, c, (c7, 1, None, None), (c7, (1, 7), None, (0, 3)),
                     (192, (7, 1), None, (3, 0))),
        _make_branch(None, c, (c7, 1, None, None), (c7, (7, 1), None, (3, 0)),
                     (c7, (1, 7), None, (0, 3)), (c7, (7, 1), None, (3, 0)),
                     (192, (1, 7), None, (0, 3))),
        _make_branch("avg", c, (192, 1, None, None)))


def _make_D(c: int) -> tuple[nn.HybridConcurrent, int]:
    return _concurrent(
        _make_branch(None, c, (192, 1, None, None), (320, 3, 2, None)),
        _make_branch(None, c, (192, 1, None, None), (192, (1, 7), None, (0, 3)),
                     (192, (7, 1), None, (3, 0)), (192, 3, 2, None)),
        _make_branch("max", c))


def _split_3x3(c: int) -> tuple[nn.HybridConcurrent, int]:
    return _concurrent(_make_branch(None, c, (384, (1, 3), None, (0, 1))),
                       _make_branch(None, c, (384, (3, 1), None, (1, 0))))


def _make_E(c: int) -> tuple[nn.HybridConcurrent, int]:
    branch_3x3 = nn.HybridSequential()
    first, width = _make_branch(None, c, (384, 1, None, None))
    split, width = _split_3x3(width)
    branch_3x3.add(first, split)
    branch_3x3dbl = nn.HybridSequential()
    first, width_dbl = _make_branch(None, c, (448, 1, None, None), (384, 3, None, 1))
    split, width_dbl = _split_3x3(width_dbl)
    branch_3x3dbl.add(first, split)
    return _concurrent(_make_branch(None, c, (320, 1, None, None)),
                       (branch_3x3, width),
                       (branch_3x3dbl, width_dbl),
                       _make_branch("avg", c, (192, 1, None, None)))


class Inception3(nn.HybridBlock):
    """Inception-v3: ``features`` (stem, A x3, B, C x4, D, E x2, 8x8 average pool, dropout)
    and ``output`` (Dense(classes) on 2048 features).

    ``in_channels``: image channels (0: inferred). The 8x8 pooling expects 299x299 images
    (final maps of 8x8; up to about 530 pixels still pool to 1x1).
    """

    def __init__(self, classes: int = 1000, in_channels: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.features = nn.HybridSequential()
        self.features.add(_make_basic_conv(in_channels, 32, 3, strides=2),
                          _make_basic_conv(32, 32, 3),
                          _make_basic_conv(32, 64, 3, padding=1),
                          nn.MaxPool2D(pool_size=3, strides=2),
                          _make_basic_conv(64, 80, 1),
                          _make_basic_conv(80, 192, 3),
                          nn.MaxPool2D(pool_size=3, strides=2))
        c = 192
        modules = [lambda c: _make_A(32, c), lambda c: _make_A(64, c), lambda c: _make_A(64, c),
                   _make_B,
                   lambda c: _make_C(128, c), lambda c: _make_C(160, c),
                   lambda c: _make_C(160, c), lambda c: _make_C(192, c),
                   _make_D, _make_E, _make_E]
        for make in modules:
            module, c = make(c)
            self.features.add(module)
        self.features.add(nn.AvgPool2D(pool_size=8), nn.Dropout(0.5))
        self.output = nn.Dense(classes, in_units=c)

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))


def inception_v3(**kwargs: Any) -> Inception3:
    return Inception3(**kwargs)
