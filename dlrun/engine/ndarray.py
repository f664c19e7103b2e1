"""NDArray: an imperative array on a device context, with an optional gradient buffer."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import autograd
from .backend import Context, array_module, current_context, device_scope

GRAD_REQS = ("write", "add", "null")


class NDArray:
    """A NumPy (CPU) or CuPy (GPU) array with its context and autograd bookkeeping."""

    __slots__ = ("_data", "_ctx", "_node", "_index", "_grad", "_grad_req", "_fresh_grad",
                 "__weakref__")
    __array_priority__ = 1000.0  # numpy scalars on the left defer to our operators

    def __init__(self, data: Any, ctx: Context):
        self._data = data
        self._ctx = ctx
        self._node: autograd.Node | None = None
        self._index = 0
        self._grad: NDArray | None = None
        self._grad_req = "null"
        self._fresh_grad = False  # written by a backward since a Trainer last used it

    # ---- properties ----
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ctx(self) -> Context:
        return self._ctx

    context = ctx

    @property
    def size(self) -> int:
        return int(self._data.size)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def T(self) -> "NDArray":
        return self.transpose()

    @property
    def grad(self) -> "NDArray | None":
        """The gradient buffer filled by backward(), after attach_grad()."""
        return self._grad

    @property
    def grad_req(self) -> str:
        return self._grad_req

    # ---- data movement ----
    def asnumpy(self) -> np.ndarray:
        """A NumPy copy (host memory) of the data. A one-element array converts to a number
        (``float``, ``'%f' %``) as under NumPy 1.x, which MXNet 1.x code relies on."""
        if autograd._state.tracer is not None:
            autograd._state.tracer.escape(self, "asnumpy()")
        host = self._host()
        return host.view(_OneElement) if host.size == 1 and host.ndim else host

    def _host(self) -> np.ndarray:
        if self._ctx.device_type == "cpu":
            return np.array(self._data)
        return self._data.get()

    def item(self) -> Any:
        """The value of a one-element array as a Python scalar."""
        if self.size != 1:
            raise ValueError(f"item() needs an array of size 1, got shape {self.shape}")
        if autograd._state.tracer is not None:
            autograd._state.tracer.escape(self, "a Python scalar of an array (asscalar, float, int, bool)")
        return self._data.reshape(()).item()

    def asscalar(self) -> Any:
        """The value of a one-element array as a NumPy scalar of its dtype, as MXNet's
        (``np.float32(0.5)`` prints as 0.5, with float32's digits)."""
        return self.dtype.type(self.item())

    def wait_to_read(self) -> None:
        """Block until the array's value is computed (device work is synchronous here)."""
        if self._ctx.device_type == "gpu":
            self._ctx.xp.cuda.Device(self._ctx.device_id).synchronize()

    @property
    def stype(self) -> str:
        """The storage type: always 'default' (dense); dlrun has no sparse arrays."""
        return "default"

    def tostype(self, stype: str) -> "NDArray":
        """This array in storage ``stype``; only 'default' (dense) exists here."""
        if stype != "default":
            raise ValueError(f"tostype({stype!r}): dlrun holds dense arrays only; use 'default'")
        return self

    def broadcast_like(self, other: "NDArray") -> "NDArray":
        """This array broadcast to ``other``'s shape."""
        return _ops().broadcast_to(self, shape=other.shape)

    def reshape_like(self, other: "NDArray") -> "NDArray":
        """This array reshaped to ``other``'s shape."""
        return _ops().reshape(self, shape=other.shape)

    def zeros_like(self) -> "NDArray":
        return zeros(self.shape, self._ctx, self.dtype)

    def ones_like(self) -> "NDArray":
        return ones(self.shape, self._ctx, self.dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of an array of shape {self.shape} is ambiguous; "
                             "use .asscalar() on a one-element array")
        return bool(self.item())

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.asnumpy()
        return out if dtype is None else out.astype(dtype)

    def as_in_context(self, ctx: Context) -> "NDArray":
        """This array on ``ctx`` (itself when already there); gradients flow through the copy."""
        if ctx == self._ctx:
            return self
        return _ops().copy_to_context(self, ctx=ctx)

    def copyto(self, other: "Context | NDArray") -> "NDArray":
        """Copy into another context (a new array) or into an existing array's buffer."""
        if isinstance(other, Context):
            return _ops().copy_to_context(self, ctx=other)
        if other.shape != self.shape:
            raise ValueError(f"copyto: shape {self.shape} does not match target shape {other.shape}")
        copied = _ops().copy_to_context(self, ctx=other._ctx)._data
        with device_scope(other._ctx):
            other._data[...] = copied
        return other

    def copy(self) -> "NDArray":
        return _ops().copy(self)

    def astype(self, dtype: Any, copy: bool = True) -> "NDArray":
        """A cast of this array; float-to-float casts carry gradients."""
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _ops().cast(self, dtype=np.dtype(dtype))

    # ---- autograd ----
    def attach_grad(self, grad_req: str = "write") -> None:
        """Make this array a variable: backward() writes (or adds) its gradient to ``.grad``."""
        if grad_req not in GRAD_REQS:
            raise ValueError(f"grad_req must be one of {GRAD_REQS}, got {grad_req!r}")
        self._grad_req = grad_req
        if grad_req == "null":
            self._grad = None
            self._node = None
            return
        xp = self._ctx.xp
        with device_scope(self._ctx):
            self._grad = NDArray(xp.zeros(self.shape, dtype=self.dtype), self._ctx)
        self._node = autograd.leaf_node(self)
        self._index = 0

    def _write_grad(self, g: Any) -> None:
        self._fresh_grad = True
        if self._grad_req == "add":
            self._grad._data += g
        elif self._grad_req == "write":
            self._grad._data[...] = g

    def detach(self) -> "NDArray":
        """The same data, cut from the recorded graph."""
        if autograd._state.tracer is not None:
            return _ops().stop_gradient(self)
        return NDArray(self._data, self._ctx)

    def backward(self, out_grad: "NDArray | None" = None, retain_graph: bool = False,
                 train_mode: bool = True) -> None:
        """Gradients of this array (times ``out_grad``, ones by default) w.r.t. every variable."""
        autograd.backward([self], None if out_grad is None else [out_grad],
                          retain_graph=retain_graph, train_mode=train_mode)

    # ---- in-place writes (not recorded) ----
    def __setitem__(self, key: Any, value: Any) -> None:
        if autograd._state.tracer is not None:
            autograd._state.tracer.write(self)
        if isinstance(value, NDArray):
            value = value.as_in_context(self._ctx)._data
        with device_scope(self._ctx):  # CuPy writes with a kernel on the current device
            self._data[_raw_key(key)] = value

    def __getitem__(self, key: Any) -> "NDArray":
        """``x[key]``; where NumPy would give a 0-d array, the shape is (1,), as MXNet 1.x's."""
        out = _ops().getitem(self, key=_raw_key(key))
        return _ops().reshape(out, shape=(1,)) if out.ndim == 0 else out

    # ---- MXNet's in-place operators: a += b writes into a (kvstore updaters rely on it) ----
    def _assign(self, result: "NDArray", symbol: str) -> "NDArray":
        if autograd._state.recording and (self._node is not None or self._grad is not None):
            raise RuntimeError(
                f"in-place '{symbol}' on an array that autograd.record() is tracking would corrupt "
                f"its gradient; write a new array instead (x = x {symbol[0]} y)")
        self[...] = result
        return self

    def __iadd__(self, o: Any) -> "NDArray":
        return self._assign(self + o, "+=")

    def __isub__(self, o: Any) -> "NDArray":
        return self._assign(self - o, "-=")

    def __imul__(self, o: Any) -> "NDArray":
        return self._assign(self * o, "*=")

    def __itruediv__(self, o: Any) -> "NDArray":
        return self._assign(self / o, "/=")

    # ---- arithmetic (every one goes through the op registry) ----
    def __add__(self, o: Any) -> "NDArray":
        return _ops().add(self, o)

    def __radd__(self, o: Any) -> "NDArray":
        return _ops().add(o, self)

    def __sub__(self, o: Any) -> "NDArray":
        return _ops().subtract(self, o)

    def __rsub__(self, o: Any) -> "NDArray":
        return _ops().subtract(o, self)

    def __mul__(self, o: Any) -> "NDArray":
        return _ops().multiply(self, o)

    def __rmul__(self, o: Any) -> "NDArray":
        return _ops().multiply(o, self)

    def __truediv__(self, o: Any) -> "NDArray":
        return _ops().divide(self, o)

    def __rtruediv__(self, o: Any) -> "NDArray":
        return _ops().divide(o, self)

    def __pow__(self, o: Any) -> "NDArray":
        return _ops().power(self, o)

    def __rpow__(self, o: Any) -> "NDArray":
        return _ops().power(o, self)

    def __neg__(self) -> "NDArray":
        return _ops().negative(self)

    def __matmul__(self, o: Any) -> "NDArray":
        return _ops().matmul(self, o)

    def __lt__(self, o: Any) -> "NDArray":
        return _ops().lesser(self, o)

    def __le__(self, o: Any) -> "NDArray":
        return _ops().lesser_equal(self, o)

    def __gt__(self, o: Any) -> "NDArray":
        return _ops().greater(self, o)

    def __ge__(self, o: Any) -> "NDArray":
        return _ops().greater_equal(self, o)

    def __eq__(self, o: Any) -> "NDArray":  # type: ignore[override]
        return _ops().equal(self, o)

    def __ne__(self, o: Any) -> "NDArray":  # type: ignore[override]
        return _ops().not_equal(self, o)

    __hash__ = object.__hash__

    # ---- method forms of common ops ----
    def reshape(self, *shape: Any, reverse: bool = False, **kwargs: Any) -> "NDArray":
        """A reshape with MXNet's codes (0, -1, -2, -3, -4; ``reverse`` from the right)."""
        if "shape" in kwargs:
            shape = (kwargs.pop("shape"),)
        if kwargs:
            raise TypeError(f"reshape() got unexpected arguments {sorted(kwargs)}")
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops().reshape(self, shape=shape, reverse=reverse)

    def transpose(self, *axes: Any) -> "NDArray":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops().transpose(self, axes=axes or None)

    def __repr__(self) -> str:
        """MXNet's form: the values as NumPy prints them, then ``<NDArray 2x3 @cpu(0)>``."""
        return f"\n{self._host()}\n<NDArray {'x'.join(map(str, self.shape)) or 'scalar'} @{self._ctx}>"


class _OneElement(np.ndarray):
    """A one-element NumPy array that converts to a Python number, as NumPy 1.x allowed
    (NumPy 2 refuses ``float()`` of a 1-d array): ``'%f' % loss.mean().asnumpy()``."""

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())


def _method(name: str) -> Any:
    def method(self: NDArray, *args: Any, **kwargs: Any) -> Any:
        return getattr(_ops(), name)(self, *args, **kwargs)
    method.__name__ = name
    method.__doc__ = f"``ops.{name}(self, ...)``."
    return method


def full_reduction(name: str) -> Any:
    """The reduction ``ops.<name>`` with MXNet 1.x's shape for a full reduction: (1,), not
    NumPy's () (``x.sum()`` prints ``[6.]``, ``x.sum()[0]`` and ``x.sum().asnumpy()[0]``
    work as in 1.x). The engine's ops keep NumPy's shapes."""
    def reduce(self: NDArray, axis: Any = None, keepdims: bool = False, exclude: bool = False,
               **kwargs: Any) -> NDArray:
        if exclude:  # MXNet's exclude=True: reduce over every axis but ``axis``
            kept = {a % self.ndim for a in ((axis,) if isinstance(axis, int) else axis or ())}
            axis = tuple(a for a in range(self.ndim) if a not in kept)
        out = getattr(_ops(), name)(self, axis=axis, keepdims=keepdims, **kwargs)
        return _ops().reshape(out, shape=(1,)) if out.ndim == 0 else out
    reduce.__name__ = name
    reduce.__doc__ = (f"``ops.{name}(self, ...)``; ``exclude=True`` reduces the axes not named; a "
                      "full reduction has shape (1,), as in MXNet 1.x.")
    return reduce


REDUCTIONS = ("sum", "mean", "max", "min", "prod", "norm")
for _name in REDUCTIONS:
    setattr(NDArray, _name, full_reduction(_name))

# x.op(...) is ops.op(x, ...) for these, as NDArray methods are in MXNet
for _name in ("flatten", "exp", "log", "sqrt", "square", "abs", "sign", "tanh", "sigmoid", "relu",
              "softmax", "log_softmax", "argmax", "argmin",
              "logsumexp", "topk", "clip", "swapaxes", "expand_dims", "squeeze",
              "broadcast_to", "tile", "repeat", "flip", "take", "pick", "one_hot", "split",
              "slice_axis", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
              "tanh", "floor", "ceil", "round", "rint", "fix", "trunc", "reciprocal", "rsqrt",
              "cbrt", "log2", "log10", "log1p", "expm1", "sort", "argsort", "cumsum",
              "softrelu"):
    setattr(NDArray, _name, _method(_name))


def _raw_key(key: Any) -> Any:
    tracer = autograd._state.tracer
    if tracer is not None:
        for k in key if isinstance(key, tuple) else (key,):
            if isinstance(k, NDArray):
                tracer.escape(k, "indexing with an array")
    if isinstance(key, NDArray):
        return key._data
    if isinstance(key, tuple):
        return tuple(k._data if isinstance(k, NDArray) else k for k in key)
    return key


def _ops() -> Any:
    from . import ops
    return ops


# ---- creation ----

def _resolve(ctx: Context | None, dtype: Any) -> tuple[Context, Any]:
    return (ctx or current_context()), np.dtype(dtype if dtype is not None else np.float32)


def array(source: Any, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """An array on ``ctx`` from nested lists, a NumPy/CuPy array or an NDArray.

    The dtype defaults to float32, except that integer and boolean NumPy arrays keep theirs
    (labels and indices stay integers) and NDArrays keep theirs.
    """
    ctx = ctx or current_context()
    if isinstance(source, NDArray):
        dtype = source.dtype if dtype is None else dtype
        source = source.asnumpy() if source._ctx != ctx else source._data
    elif dtype is None:
        kind = getattr(getattr(source, "dtype", None), "kind", "f")
        dtype = source.dtype if kind in "iub" else np.float32
    xp = array_module(ctx)
    with device_scope(ctx):
        data = xp.array(source, dtype=dtype)
    return NDArray(data, ctx)


def zeros(shape: Any, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """An array of zeros."""
    ctx, dtype = _resolve(ctx, dtype)
    with device_scope(ctx):
        return NDArray(array_module(ctx).zeros(shape, dtype=dtype), ctx)


def ones(shape: Any, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """An array of ones."""
    ctx, dtype = _resolve(ctx, dtype)
    with device_scope(ctx):
        return NDArray(array_module(ctx).ones(shape, dtype=dtype), ctx)


def full(shape: Any, val: Any, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """An array filled with ``val``."""
    ctx, dtype = _resolve(ctx, dtype)
    with device_scope(ctx):
        return NDArray(array_module(ctx).full(shape, val, dtype=dtype), ctx)


def arange(start: float, stop: float | None = None, step: float = 1.0,
           ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """Evenly spaced values in [start, stop)."""
    ctx, dtype = _resolve(ctx, dtype)
    if stop is None:
        start, stop = 0, start
    with device_scope(ctx):
        return NDArray(array_module(ctx).arange(start, stop, step, dtype=dtype), ctx)


def zeros_like(x: NDArray) -> NDArray:
    return zeros(x.shape, x.ctx, x.dtype)


def ones_like(x: NDArray) -> NDArray:
    return ones(x.shape, x.ctx, x.dtype)


def waitall() -> None:
    """Block until all pending device work is done (a no-op on CPU)."""
    from . import backend
    if backend._cupy is not None:
        backend._cupy.cuda.Device().synchronize()

