"""Dense, Dropout, Flatten, Embedding, BatchNorm, LayerNorm and Lambda layers."""
from __future__ import annotations

import math
from typing import Any, Callable

from ..engine import autograd, ops
from .activations import get_activation
from .block import Block, HybridBlock
from .parameter import Parameter


class Dense(HybridBlock):
    """Fully connected layer: ``activation(x @ weight.T + bias)``; in_units inferred on first use."""

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 flatten: bool = True, dtype: Any = "float32", weight_initializer: Any = None,
                 bias_initializer: Any = "zeros", in_units: int = 0, drop_connect: float = 0.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= drop_connect < 1:
            raise ValueError(f"drop_connect rate must be in [0, 1), got {drop_connect}")
        self._units, self._flatten, self._act_name = units, flatten, activation
        self._drop_connect = drop_connect  # DropConnect (Wan et al. 2013): dropout on the weights
        self._act = get_activation(activation)
        self.weight = Parameter("weight", shape=(units, in_units), dtype=dtype, init=weight_initializer)
        self.bias = Parameter("bias", shape=(units,), dtype=dtype, init=bias_initializer) if use_bias else None

    def forward(self, x: Any) -> Any:
        in_units = math.prod(x.shape[1:]) if self._flatten else x.shape[-1]
        self.weight.shape = (self._units, in_units)
        weight = self.weight.data()
        if self._drop_connect and autograd.is_training():
            weight = ops.dropout(weight, p=self._drop_connect)
        y = ops.fully_connected(x, weight, None if self.bias is None else self.bias.data(),
                                flatten=self._flatten)
        return self._act(y) if self._act else y

    def _extra_repr(self) -> str:
        shape = self.weight.shape
        return f"{shape[1] or None} -> {self._units}" + (f", {self._act_name}" if self._act_name else "")


class Dropout(HybridBlock):
    """Zeroes inputs with probability ``rate`` in training mode; the identity otherwise."""

    def __init__(self, rate: float, axes: tuple = (), **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self._rate, self._axes = rate, tuple(axes)

    def forward(self, x: Any) -> Any:
        if self._rate == 0 or not autograd.is_training():
            return x
        return ops.dropout(x, p=self._rate, axes=self._axes)

    def _extra_repr(self) -> str:
        return f"p = {self._rate}"


class Flatten(HybridBlock):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x: Any) -> Any:
        return ops.flatten(x)


class Embedding(HybridBlock):
    """Maps integer indices (any shape) to rows of a (input_dim, output_dim) weight."""

    def __init__(self, input_dim: int, output_dim: int, dtype: Any = "float32",
                 weight_initializer: Any = None, sparse_grad: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self._dims = (input_dim, output_dim)
        self.weight = Parameter("weight", shape=(input_dim, output_dim), dtype=dtype,
                                init=weight_initializer)

    def forward(self, x: Any) -> Any:
        return ops.embedding(x, self.weight.data())

    def _extra_repr(self) -> str:
        return f"{self._dims[0]} -> {self._dims[1]}"


class BatchNorm(HybridBlock):
    """Batch normalisation (Ioffe & Szegedy 2015) over every axis but ``axis``.

    Training mode normalises with batch statistics and updates the running averages
    (``running = momentum * running + (1 - momentum) * batch``); predict mode, or
    ``use_global_stats``, uses the running averages. With ``sync`` (or as ``SyncBatchNorm``)
    the batch statistics are those of every worker of a data-parallel job together.
    """

    def __init__(self, axis: int = 1, momentum: float = 0.9, epsilon: float = 1e-5,
                 center: bool = True, scale: bool = True, use_global_stats: bool = False,
                 beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 running_mean_initializer: Any = "zeros", running_variance_initializer: Any = "ones",
                 in_channels: int = 0, sync: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"BatchNorm momentum must be in [0, 1), got {momentum}")
        self.sync = sync
        self._axis, self._momentum, self._eps = axis, momentum, epsilon
        self._scale, self._use_global_stats = scale, use_global_stats
        self.gamma = Parameter("gamma", shape=(in_channels,), init=gamma_initializer,
                               grad_req="write" if scale else "null")
        self.beta = Parameter("beta", shape=(in_channels,), init=beta_initializer,
                              grad_req="write" if center else "null")
        self.running_mean = Parameter("running_mean", shape=(in_channels,), grad_req="null",
                                      init=running_mean_initializer)
        self.running_var = Parameter("running_var", shape=(in_channels,), grad_req="null",
                                     init=running_variance_initializer)

    def forward(self, x: Any) -> Any:
        channels = x.shape[self._axis]
        for p in (self.gamma, self.beta, self.running_mean, self.running_var):
            p.shape = (channels,)
        return ops.batch_norm(x, self.gamma.data(), self.beta.data(), self.running_mean.data(),
                              self.running_var.data(), eps=self._eps, momentum=self._momentum,
                              axis=self._axis, training=autograd.is_training(),
                              use_global_stats=self._use_global_stats, fix_gamma=not self._scale,
                              sync=self.sync)

    def _extra_repr(self) -> str:
        return (f"axis={self._axis}, eps={self._eps}, momentum={self._momentum}, "
                f"in_channels={self.gamma.shape[0] or None}{', sync' if self.sync else ''}")


class SyncBatchNorm(BatchNorm):
    """BatchNorm whose batch statistics are those of all workers of a data-parallel job
    (Gluon's ``contrib.nn.SyncBatchNorm``); in one process, plain BatchNorm."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("sync", True)
        super().__init__(*args, **kwargs)


class LayerNorm(HybridBlock):
    """Layer normalisation (Ba et al. 2016) over ``axis`` of each sample."""

    def __init__(self, axis: int = -1, epsilon: float = 1e-5, center: bool = True, scale: bool = True,
                 beta_initializer: Any = "zeros", gamma_initializer: Any = "ones", in_channels: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._axis, self._eps = axis, epsilon
        self.gamma = Parameter("gamma", shape=(in_channels,), init=gamma_initializer,
                               grad_req="write" if scale else "null")
        self.beta = Parameter("beta", shape=(in_channels,), init=beta_initializer,
                              grad_req="write" if center else "null")

    def forward(self, x: Any) -> Any:
        self.gamma.shape = self.beta.shape = (x.shape[self._axis],)
        return ops.layer_norm(x, self.gamma.data(), self.beta.data(), axis=self._axis, eps=self._eps)


class Lambda(Block):
    """Wraps a function of its inputs (or the name of an op in ``dlrun.nd``) as a block."""

    def __init__(self, function: Callable | str, **kwargs: Any):
        super().__init__(**kwargs)
        self._fn = _resolve_function(function)

    def forward(self, *args: Any) -> Any:
        return self._fn(*args)


class HybridLambda(HybridBlock):
    """Wraps ``function(F, *inputs)`` (Gluon 1.x style) or an op name as a hybridizable block."""

    def __init__(self, function: Callable | str, **kwargs: Any):
        super().__init__(**kwargs)
        from .. import nd

        fn = function
        self._fn = _resolve_function(fn) if isinstance(fn, str) else (lambda *args: fn(nd, *args))

    def forward(self, *args: Any) -> Any:
        return self._fn(*args)


def _resolve_function(function: Callable | str) -> Callable:
    if callable(function):
        return function
    from .. import nd

    fn = getattr(nd, function, None)
    if not callable(fn):
        raise ValueError(f"Lambda: {function!r} is not a function of dlrun.nd")
    return fn
