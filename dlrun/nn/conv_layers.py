"""Convolution and pooling layers in 1, 2 and 3 dimensions (NC + spatial layout)."""
from __future__ import annotations

from typing import Any

from ..engine import ops
from ..engine.ops._util import as_tuple
from .activations import get_activation
from .block import HybridBlock
from .parameter import Parameter


class _Conv(HybridBlock):
    """N-d convolution; in_channels is inferred on first use."""

    ndim = 2
    transposed = False

    def __init__(self, channels: int, kernel_size: Any, strides: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, layout: str | None = None,
                 activation: str | None = None, use_bias: bool = True, weight_initializer: Any = None,
                 bias_initializer: Any = "zeros", in_channels: int = 0, dtype: Any = "float32",
                 output_padding: Any = 0, **kwargs: Any):
        super().__init__(**kwargs)
        nd = self.ndim
        expected = "NC" + "DHW"[3 - nd:]
        if layout not in (None, expected):
            raise ValueError(f"{type(self).__name__} supports layout {expected!r} only, got {layout!r}")
        self._channels, self._groups = channels, groups
        self._kernel = as_tuple(kernel_size, nd, "kernel_size")
        self._strides = as_tuple(strides, nd, "strides")
        self._padding = as_tuple(padding, nd, "padding")
        self._dilation = as_tuple(dilation, nd, "dilation")
        self._output_padding = as_tuple(output_padding, nd, "output_padding")
        self._act_name = activation
        self._act = get_activation(activation)
        self.weight = Parameter("weight", shape=self._weight_shape(in_channels), dtype=dtype,
                                init=weight_initializer)
        self.bias = Parameter("bias", shape=(channels,), dtype=dtype,
                              init=bias_initializer) if use_bias else None

    def _weight_shape(self, in_channels: int) -> tuple:
        if self.transposed:  # (in, out / groups, *kernel), as Gluon's ConvTranspose
            return (in_channels, self._channels // self._groups) + self._kernel
        return (self._channels, in_channels // self._groups) + self._kernel

    def forward(self, x: Any) -> Any:
        self.weight.shape = self._weight_shape(x.shape[1])
        bias = None if self.bias is None else self.bias.data()
        settings = dict(stride=self._strides, pad=self._padding, dilation=self._dilation,
                        groups=self._groups)
        if self.transposed:
            y = ops.deconvolution(x, self.weight.data(), bias, output_padding=self._output_padding,
                                  **settings)
        else:
            y = ops.convolution(x, self.weight.data(), bias, **settings)
        return self._act(y) if self._act else y

    def _extra_repr(self) -> str:
        in_channels = self.weight.shape[0 if self.transposed else 1]
        return (f"{in_channels or None} -> {self._channels}, kernel_size={self._kernel}, "
                f"stride={self._strides}" + (f", {self._act_name}" if self._act_name else ""))


class Conv1D(_Conv):
    ndim = 1


class Conv2D(_Conv):
    ndim = 2


class Conv3D(_Conv):
    ndim = 3


class Conv1DTranspose(_Conv):
    ndim, transposed = 1, True


class Conv2DTranspose(_Conv):
    ndim, transposed = 2, True


class Conv3DTranspose(_Conv):
    ndim, transposed = 3, True


class _Pool(HybridBlock):
    ndim = 2
    pool_type = "max"

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, layout: str | None = None,
                 count_include_pad: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self._kernel = as_tuple(pool_size, self.ndim, "pool_size")
        self._strides = self._kernel if strides is None else as_tuple(strides, self.ndim, "strides")
        self._padding = as_tuple(padding, self.ndim, "padding")
        self._ceil_mode = ceil_mode
        self._count_include_pad = count_include_pad

    def forward(self, x: Any) -> Any:
        return ops.pooling(x, kernel=self._kernel, stride=self._strides, pad=self._padding,
                           pool_type=self.pool_type, ceil_mode=self._ceil_mode,
                           count_include_pad=self._count_include_pad)

    def _extra_repr(self) -> str:
        return f"size={self._kernel}, stride={self._strides}, padding={self._padding}"


class MaxPool1D(_Pool):
    ndim = 1


class MaxPool2D(_Pool):
    ndim = 2


class MaxPool3D(_Pool):
    ndim = 3


class AvgPool1D(_Pool):
    ndim, pool_type = 1, "avg"


class AvgPool2D(_Pool):
    ndim, pool_type = 2, "avg"


class AvgPool3D(_Pool):
    ndim, pool_type = 3, "avg"


class _GlobalPool(HybridBlock):
    """Pools each whole feature map to one value: (N, C, *S) -> (N, C, 1, ...)."""

    pool_type = "max"

    def forward(self, x: Any) -> Any:
        return ops.pooling(x, pool_type=self.pool_type, global_pool=True)


class GlobalMaxPool1D(_GlobalPool):
    pass


class GlobalMaxPool2D(_GlobalPool):
    pass


class GlobalMaxPool3D(_GlobalPool):
    pass


class GlobalAvgPool1D(_GlobalPool):
    pool_type = "avg"


class GlobalAvgPool2D(_GlobalPool):
    pool_type = "avg"


class GlobalAvgPool3D(_GlobalPool):
    pool_type = "avg"
