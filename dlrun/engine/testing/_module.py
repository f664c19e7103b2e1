"""The emulated ``cupy`` and ``cupyx`` modules, built from the CuPy API snapshot."""
from __future__ import annotations

import functools
import sys
import types
from typing import Any, Callable

import numpy as np

from . import COUNTS, _cuda
from ._array import State, check_kwargs, launch, ndarray, peer_error, unwrap

_NUMPY = {"cupy": np, "cupy.linalg": np.linalg, "cupy.fft": np.fft, "cupy.random": np.random,
          "cupy.lib.stride_tricks": np.lib.stride_tricks}
_MODULES: dict[str, types.ModuleType] = {}
# Generator methods whose NumPy counterpart takes no dtype: drawn in float64, then cast
_NO_DTYPE = ("uniform", "normal", "exponential", "gamma", "beta", "poisson", "binomial")


def _host_data(obj: Any) -> Any:
    """``obj``'s data for a copy to the current device (arrays of any device may be copied)."""
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, (list, tuple)):
        return type(obj)(_host_data(o) for o in obj)
    return obj


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False,
          ndmin: int = 0, *, blocking: bool = False) -> ndarray:
    """``cupy.array``: a copy on the current device (from the host, or from any device)."""
    if not isinstance(obj, ndarray):
        COUNTS.to_device += 1
    COUNTS.launches += 1
    data = np.array(_host_data(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin)
    return ndarray._of(data, State.current())


def asarray(a: Any, dtype: Any = None, order: Any = None, *, copy: Any = None,
            blocking: bool = False) -> ndarray:
    """``cupy.asarray``: ``a`` itself when it is a device array of that dtype (on whatever device)."""
    if isinstance(a, ndarray) and (dtype is None or np.dtype(dtype) == a.dtype) and not copy:
        return a
    return array(a, dtype=dtype, order=order or "K")


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    if isinstance(a, ndarray) and a._a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return array(a, dtype=dtype, order="C")


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, *,
            blocking: bool = True) -> np.ndarray:
    """``cupy.asnumpy``: the host copy of a device array (NumPy input as it is)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args: Any) -> Any:
    return _MODULES["cupy"] if any(isinstance(a, ndarray) for a in args) else np


def fuse(*args: Any, **kwargs: Any) -> Any:
    """``cupy.fuse``: here the function runs unfused, op by op."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda func: func


def is_available() -> bool:
    return State.devices > 0


def _scatter(ufunc: Any, a: ndarray, slices: Any, value: Any) -> None:
    """``a[slices] (op)= value`` with repeats applied each; NumPy index arrays are taken, as
    CuPy takes them in indices."""
    device = State.current()
    if a._dev != device:
        raise peer_error(a._dev, device)
    COUNTS.launches += 1
    ufunc.at(a._a, unwrap(slices, device, host_ok=True), unwrap(value, device))


def scatter_add(a: ndarray, slices: Any, value: Any) -> None:
    """``cupyx.scatter_add``: ``a[slices] += value``, repeated indices adding up."""
    _scatter(np.add, a, slices, value)


def scatter_max(a: ndarray, slices: Any, value: Any) -> None:
    _scatter(np.maximum, a, slices, value)


def scatter_min(a: ndarray, slices: Any, value: Any) -> None:
    _scatter(np.minimum, a, slices, value)


class Generator:
    """``cupy.random.Generator`` (from ``default_rng``): NumPy's PCG64 draws, on the device."""

    def __init__(self, bit_generator: Any = None):
        self._rng = np.random.default_rng(bit_generator)

    def _draw(self, name: str, args: tuple, kwargs: dict) -> ndarray:
        check_kwargs(f"cupy.random.Generator.{name}",
                     State.snapshot["classes"]["cupy.random.Generator"][name]["params"], len(args), kwargs)
        dtype = kwargs.pop("dtype", None) if name in _NO_DTYPE else None
        out = kwargs.pop("out", None)
        COUNTS.launches += 1
        data = np.asarray(getattr(self._rng, name)(*unwrap(args, State.current()), **kwargs))
        data = data if dtype is None else data.astype(dtype)
        if out is not None:
            out[...] = ndarray._of(data, out._dev)
            return out
        return ndarray._of(data, State.current())


def _generator_method(name: str) -> Callable:
    def method(self: Generator, *args: Any, **kwargs: Any) -> ndarray:
        return self._draw(name, args, kwargs)
    method.__name__ = name
    return method


def default_rng(seed: Any = None) -> Generator:
    return Generator(seed)


def _generic(qualname: str, func: Callable, params: list | None) -> Callable:
    """A snapshot function computed by its NumPy counterpart, as one kernel."""
    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        check_kwargs(qualname, params, len(args), kwargs)
        return launch(func, args, kwargs)
    return call


_SPECIAL: dict[str, dict[str, Any]] = {
    "cupy": {"array": array, "asarray": asarray, "asanyarray": asarray,
             "ascontiguousarray": ascontiguousarray, "asnumpy": asnumpy,
             "get_array_module": get_array_module, "fuse": fuse, "is_available": is_available,
             "ndarray": ndarray, "get_default_memory_pool": _cuda.get_default_memory_pool,
             "get_default_pinned_memory_pool": _cuda.get_default_pinned_memory_pool},
    "cupy.random": {"default_rng": default_rng, "Generator": Generator},
    "cupyx": {"scatter_add": scatter_add, "scatter_max": scatter_max, "scatter_min": scatter_min,
              "errstate": np.errstate, "seterr": np.seterr, "geterr": np.geterr},
    "cupy.cuda": {"Device": _cuda.Device, "Stream": _cuda.Stream, "Event": _cuda.Event,
                  "MemoryPool": _cuda.MemoryPool, "get_current_stream": _cuda.get_current_stream,
                  "get_elapsed_time": _cuda.get_elapsed_time, "is_available": _cuda.is_available,
                  "get_device_id": State.current},
    "cupy.cuda.runtime": dict(vars(_cuda.runtime)),
    "cupy.cuda.nccl": dict(vars(_cuda.nccl)),
}


def _member(module: str, name: str, entry: dict) -> Any:
    """The emulated ``module.name``, or None where the emulation has none."""
    special = _SPECIAL.get(module, {})
    if name in special:
        value = special[name]
        return value.__func__ if isinstance(value, staticmethod) else value
    numpy_module = _NUMPY.get(module)
    found = getattr(numpy_module, name, None) if numpy_module is not None else None
    if found is None or entry["kind"] == "module":
        return None
    if entry["kind"] in ("function", "ufunc") and callable(found):
        return _generic(f"{module}.{name}", found, entry.get("params"))
    return found  # dtypes, constants (pi, inf, newaxis), finfo, iinfo


class _Namespace(types.ModuleType):
    """A module of the snapshot: a name the emulation lacks says so, one CuPy lacks as CuPy does."""

    def __init__(self, name: str, known: dict):
        super().__init__(name, f"Emulated {name} (dlrun.engine.testing).")
        self.__known = known

    def __getattr__(self, name: str) -> Any:
        if name in self.__known:
            raise AttributeError(f"{self.__name__}.{name} is CuPy {State.snapshot['cupy']} API that "
                                 "the emulated GPU lacks: add it to dlrun/engine/testing")
        raise AttributeError(f"module '{self.__name__}' has no attribute '{name}'")


def lookup(module: str, name: str) -> Callable | None:
    """The emulated function ``module.name`` (None where the snapshot or emulation lacks it)."""
    namespace = _MODULES.get(module)
    return None if namespace is None else namespace.__dict__.get(name)


def build(devices: int, snapshot: dict) -> types.ModuleType:
    """Make the emulated modules for ``devices`` GPUs and put them in ``sys.modules``."""
    from ._array import finish_class
    State.devices = devices
    if _MODULES:
        return _MODULES["cupy"]
    finish_class(snapshot)
    for name, entry in snapshot["classes"]["cupy.random.Generator"].items():
        if not name.startswith("_") and entry["kind"] == "method":
            setattr(Generator, name, _generator_method(name))
    modules = dict(snapshot["modules"], **{"cupy.lib": {"stride_tricks": {"kind": "module"}}})
    for module, members in modules.items():
        namespace = _MODULES[module] = _Namespace(module, members)
        for name, entry in members.items():
            value = _member(module, name, entry)
            if value is not None:
                setattr(namespace, name, value)
    for module, namespace in _MODULES.items():
        parent, _, child = module.rpartition(".")
        if parent in _MODULES:
            setattr(_MODULES[parent], child, namespace)
        sys.modules[module] = namespace
    _cuda.nccl.NcclCommunicator = _cuda.NcclCommunicator
    return _MODULES["cupy"]
