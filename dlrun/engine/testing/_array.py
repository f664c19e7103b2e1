"""The emulated device array: a NumPy array held apart from NumPy, on a device id."""
from __future__ import annotations

import operator
import threading
import weakref
from typing import Any, Callable

import numpy as np

from . import COUNTS

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.")


class _Device(threading.local):
    def __init__(self) -> None:
        self.stack: list[int] = []


class State:
    """The emulation's settings: its devices, the snapshot, the current device (per thread)."""

    devices = 0
    snapshot: dict = {}
    _current = _Device()
    pointers: "weakref.WeakValueDictionary[int, ndarray]" = weakref.WeakValueDictionary()
    used = [0] * 64  # bytes held by live arrays, per device

    @classmethod
    def current(cls) -> int:
        return cls._current.stack[-1] if cls._current.stack else 0

    @classmethod
    def push(cls, device: int) -> None:
        cls._current.stack.append(device)

    @classmethod
    def pop(cls) -> None:
        cls._current.stack.pop()


def check_kwargs(qualname: str, params: list | None, nargs: int, kwargs: dict) -> None:
    """Raise CuPy's TypeError for a keyword (or one positional too many) the snapshot lacks."""
    if params is None:
        return
    kinds = dict((name, kind) for name, kind in params)
    if "**" not in kinds.values():
        bad = [k for k in kwargs if kinds.get(k) not in ("PK", "K")]
        if bad:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {bad[0]!r} "
                            f"(CuPy {State.snapshot.get('cupy')} has no such parameter)")
    if "*" not in kinds.values():
        most = sum(kind in ("P", "PK") for kind in kinds.values())
        if nargs > most:
            raise TypeError(f"{qualname}() takes at most {most} positional arguments "
                            f"({nargs} given) in CuPy {State.snapshot.get('cupy')}")


def peer_error(where: int, current: int) -> ValueError:
    return ValueError(f"The device where the array resides ({where}) is different from the "
                      f"current device ({current}). Peer access is unavailable between these devices.")


def unwrap(value: Any, device: int, host_ok: bool = False) -> Any:
    """The NumPy data of ``value`` (arrays in lists, tuples and dicts too) for a kernel on
    ``device``; arrays of another device raise, NumPy arrays raise unless ``host_ok``."""
    if isinstance(value, ndarray):
        if value._dev != device:
            raise peer_error(value._dev, device)
        return value._a
    if isinstance(value, np.ndarray):
        if not host_ok:
            raise TypeError(f"Unsupported type {type(value)}")
        COUNTS.to_device += 1
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v, device, host_ok) for v in value)
    if isinstance(value, slice):
        return slice(*(unwrap(v, device, host_ok) for v in (value.start, value.stop, value.step)))
    return value


def wrap(value: Any, device: int) -> Any:
    """``value`` with NumPy arrays (and NumPy scalars, as 0-d arrays) back on ``device``."""
    if isinstance(value, (np.ndarray, np.generic)):
        return ndarray._of(np.asarray(value), device)
    if isinstance(value, tuple):
        return tuple(wrap(v, device) for v in value)
    if isinstance(value, list):
        return [wrap(v, device) for v in value]
    return value


# matrix products: cuBLAS multiplies float16 with float32 accumulation (NumPy's float16
# products have no BLAS and would make a float16 test minutes long)
_GEMMS = {np.matmul, np.dot, np.tensordot, np.inner, np.outer, np.einsum, operator.matmul}


def _gemm16(func: Callable) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        up = [a.astype(np.float32) if getattr(a, "dtype", None) == np.float16 else a for a in args]
        return np.asarray(func(*up, **kwargs)).astype(np.float16)
    return call


def launch(func: Callable, args: tuple, kwargs: dict, host_ok: bool = False) -> Any:
    """Run ``func`` as one kernel on the current device."""
    device = State.current()
    args, kwargs = unwrap(args, device, host_ok), {k: unwrap(v, device, host_ok) for k, v in kwargs.items()}
    COUNTS.launches += 1
    if getattr(func, "__wrapped__", func) in _GEMMS and "out" not in kwargs and all(
            getattr(a, "dtype", np.float16) == np.float16 for a in args if isinstance(a, np.ndarray)) \
            and any(isinstance(a, np.ndarray) for a in args):
        func = _gemm16(func)
    return wrap(func(*args, **kwargs), device)


class MemoryPointer:
    """``x.data``: the device pointer of an array (its NCCL buffer)."""

    def __init__(self, owner: "ndarray"):
        self.ptr = owner._a.__array_interface__["data"][0] if owner._a.size else 0
        self.device_id = owner._dev
        if self.ptr:
            State.pointers[self.ptr] = owner

    @property
    def device(self) -> Any:
        from ._cuda import Device
        return Device(self.device_id)


class ndarray:  # noqa: N801 - CuPy's name
    """A device array (``cupy.ndarray``): NumPy's data, refused to NumPy."""

    __slots__ = ("_a", "_dev", "__weakref__")
    __array_priority__ = 100.0

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C"):
        self._a = np.empty(shape, dtype=dtype, order=order)
        self._dev = State.current()
        _account(self)

    @classmethod
    def _of(cls, a: np.ndarray, device: int) -> "ndarray":
        out = object.__new__(cls)
        out._a, out._dev = a, device
        if a.base is None:
            _account(out)
        return out

    # ---- what CuPy refuses: implicit conversion to NumPy ----
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(IMPLICIT)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        entry = State.snapshot["modules"]["cupy"].get(ufunc.__name__)
        if entry is None or entry["kind"] != "ufunc" or (
                method != "__call__" and method not in State.snapshot["classes"]["cupy.ufunc"]):
            return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            kwargs["out"] = tuple(unwrap(o, State.current()) for o in out)
            launch(getattr(ufunc, method), inputs, kwargs)
            return out[0] if len(out) == 1 else out
        result = launch(getattr(ufunc, method), inputs, kwargs)
        return None if method == "at" else result

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        from ._module import lookup
        module = func.__module__.replace("numpy", "cupy", 1)
        emulated = lookup(module, func.__name__)
        return NotImplemented if emulated is None else emulated(*args, **kwargs)

    # ---- explicit transfers (counted) ----
    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> np.ndarray:
        """A host copy (``cupy.ndarray.get``)."""
        COUNTS.to_host += 1
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Copy host ``arr`` into this array (same shape and dtype, as CuPy requires)."""
        if not isinstance(arr, np.ndarray) or arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(f"set() needs a numpy.ndarray of shape {self.shape} and dtype "
                             f"{self.dtype}, got {type(arr).__name__} {getattr(arr, 'shape', '')}")
        COUNTS.to_device += 1
        self._a[...] = arr

    def item(self) -> Any:
        COUNTS.to_host += 1
        return self._a.item()

    def tolist(self) -> Any:
        COUNTS.to_host += 1
        return self._a.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous. Use a.any() or a.all()")
        return bool(self.item())

    def __repr__(self) -> str:
        COUNTS.to_host += 1
        return repr(self._a)

    def __str__(self) -> str:
        COUNTS.to_host += 1
        return str(self._a)

    # ---- attributes ----
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T, self._dev))
    mT = property(lambda self: ndarray._of(self._a.mT, self._dev))
    real = property(lambda self: ndarray._of(self._a.real, self._dev))
    imag = property(lambda self: ndarray._of(self._a.imag, self._dev))
    data = property(MemoryPointer)

    @property
    def device(self) -> Any:
        from ._cuda import Device
        return Device(self._dev)

    @property
    def base(self) -> "ndarray | None":
        return None if self._a.base is None else ndarray._of(self._a.base, self._dev)

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.data.ptr, False),
                "version": 3, "strides": None if self._a.flags.c_contiguous else self.strides}

    def copy(self, order: str = "C") -> "ndarray":
        """A copy on the current device (CuPy copies across devices here)."""
        COUNTS.launches += 1
        return ndarray._of(self._a.copy(order=order), State.current())

    def __len__(self) -> int:
        if not self.ndim:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Any:
        if not self.ndim:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key: Any) -> "ndarray":
        return wrap(self._a[unwrap(key, self._dev, host_ok=True)], self._dev)

    def __setitem__(self, key: Any, value: Any) -> None:
        if State.current() != self._dev:  # a copy kernel, launched on the current device
            raise peer_error(self._dev, State.current())
        COUNTS.launches += 1
        self._a[unwrap(key, self._dev, host_ok=True)] = unwrap(value, self._dev, host_ok=True)

    __hash__ = None  # type: ignore[assignment]


def _account(array: ndarray) -> None:
    State.used[array._dev] += array._a.nbytes
    weakref.finalize(array, _release, array._dev, array._a.nbytes)


def _release(device: int, nbytes: int) -> None:
    State.used[device] -= nbytes


def _method(name: str) -> Callable:
    params = State.snapshot["classes"]["cupy.ndarray"][name]["params"]

    def method(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        check_kwargs(f"cupy.ndarray.{name}", params, len(args), kwargs)
        if State.current() != self._dev and name not in ("reshape", "view", "ravel", "transpose", "squeeze"):
            raise peer_error(self._dev, State.current())
        args = unwrap(args, self._dev)
        kwargs = {k: unwrap(v, self._dev) for k, v in kwargs.items()}
        COUNTS.launches += 1
        return wrap(getattr(self._a, name)(*args, **kwargs), self._dev)
    method.__name__ = name
    return method


_OPERATORS = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lshift", "rshift", "divmod")


def _binary(name: str, reflected: bool) -> Callable:
    func = divmod if name == "divmod" else getattr(operator, f"{name}_" if name in ("and", "or") else name)

    def op(self: ndarray, other: Any) -> Any:
        pair = (other, self) if reflected else (self, other)
        return launch(func, pair, {})
    return op


def _inplace(name: str) -> Callable:
    func = getattr(operator, f"i{name}")

    def op(self: ndarray, other: Any) -> ndarray:
        launch(func, (self, other), {})
        return self
    return op


def _compare(func: Callable) -> Callable:
    return lambda self, other: launch(func, (self, other), {})


def _unary(func: Callable) -> Callable:
    return lambda self: launch(func, (self,), {})


def finish_class(snapshot: dict) -> None:
    """Give ``ndarray`` the snapshot's methods (and CuPy's operators)."""
    State.snapshot = snapshot
    members = snapshot["classes"]["cupy.ndarray"]
    own = set(vars(ndarray))
    for name, entry in members.items():
        if entry["kind"] == "method" and not name.startswith("_") and name not in own \
                and hasattr(np.ndarray, name):
            setattr(ndarray, name, _method(name))
    for name in _OPERATORS:
        for dunder, reflected in ((f"__{name}__", False), (f"__r{name}__", True)):
            if dunder in members:
                setattr(ndarray, dunder, _binary(name, reflected))
        if f"__i{name}__" in members:
            setattr(ndarray, f"__i{name}__", _inplace(name))
    for name in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(ndarray, f"__{name}__", _compare(getattr(operator, name)))
    for name in ("neg", "pos", "abs", "invert"):
        setattr(ndarray, f"__{name}__", _unary(getattr(operator, name)))
