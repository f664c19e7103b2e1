"""Device contexts and the array module behind them: the one place that knows CuPy exists."""
from __future__ import annotations

import ctypes
import importlib
import os
import platform
import threading
from typing import Any

import numpy as np


class ContextError(RuntimeError):
    """A device context was misused: mixed contexts, or a device that is not there."""


class Context:
    """A device an array lives on: ``cpu(0)`` or ``gpu(i)``."""

    __slots__ = ("device_type", "device_id")

    def __init__(self, device_type: str = "cpu", device_id: int = 0):
        if device_type not in ("cpu", "gpu"):
            raise ValueError(f"unknown device type {device_type!r}: use 'cpu' or 'gpu'")
        self.device_type = device_type
        self.device_id = int(device_id)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Context) and other.device_type == self.device_type
                and other.device_id == self.device_id)

    def __hash__(self) -> int:
        return hash((self.device_type, self.device_id))

    def __repr__(self) -> str:
        return f"{self.device_type}({self.device_id})"

    __str__ = __repr__

    @property
    def xp(self) -> Any:
        """The array module (numpy or cupy) that computes on this device."""
        return array_module(self)

    def __enter__(self) -> "Context":
        _state.stack.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _state.stack.pop()


class _State(threading.local):
    def __init__(self) -> None:
        self.stack: list[Context] = []


_state = _State()
_CPU = Context("cpu", 0)


def cpu(device_id: int = 0) -> Context:
    """The host CPU context."""
    return Context("cpu", device_id)


def gpu(device_id: int = 0) -> Context:
    """The context of CUDA device ``device_id``. As in MXNet, making it never fails: the
    first array allocated on it does, when the device is not there (:func:`require`)."""
    return Context("gpu", device_id)


def require(ctx: Context) -> Context:
    """``ctx`` itself when its device exists; a ContextError that says what to use instead
    when it is a GPU this machine does not have."""
    if ctx.device_type == "gpu":
        count = num_gpus()
        if ctx.device_id >= count:
            raise ContextError(
                f"gpu({ctx.device_id}) was requested but this machine has {count} usable GPU(s)"
                f"{'' if count else ' (CuPy is not installed or finds no CUDA device)'}; "
                "use cpu() (device=cpu on the command line), or install dlrun[gpu] on a machine "
                "with a GPU")
    return ctx


def current_context() -> Context:
    """The innermost ``with ctx:`` context, else ``cpu()``."""
    return _state.stack[-1] if _state.stack else _CPU


# ---- host memory: a pool, as MXNet's pooled CPU storage manager ----

_MMAP_THRESHOLD = 32 << 20   # glibc's largest allowed value on 64-bit
_TRIM_THRESHOLD = 256 << 20


def pool_host_memory() -> bool:
    """Keep freed array memory in the process heap for the next array of that size.

    By default glibc gives every allocation above a few hundred KiB its own ``mmap`` and
    unmaps it on free, so each step's activations and gradients start as fresh pages and
    page-fault on first touch (a third of a LeNet step on two cores). Raising glibc's mmap
    and trim thresholds makes ``free`` keep that memory for reuse: peak memory stays what
    the step needs, the faults go. Done once at import; ``DLRUN_HOST_POOL=0`` leaves
    malloc as it is. Returns whether the pool is on (False off glibc).
    """
    if os.environ.get("DLRUN_HOST_POOL", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return (bool(mallopt(m_mmap_threshold, _MMAP_THRESHOLD))
            and bool(mallopt(m_trim_threshold, _TRIM_THRESHOLD)))


HOST_POOL = pool_host_memory()

_cupy: Any = None
EMULATE_ENV = "DLRUN_EMULATE_GPU"


def emulated_gpus() -> int:
    """``DLRUN_EMULATE_GPU=N``: N emulated GPUs for tests (``dlrun.engine.testing``); 0: off."""
    value = os.environ.get(EMULATE_ENV, "0") or "0"
    if not value.isdigit():
        raise ContextError(f"{EMULATE_ENV}={value!r} is not a number of GPUs: set it to N >= 1 "
                           "to emulate N GPUs in tests, or unset it")
    return int(value)


def _import_cupy() -> Any:
    """CuPy, or its emulation when ``DLRUN_EMULATE_GPU`` asks for one."""
    global _cupy
    if _cupy is None:
        count = emulated_gpus()
        if count:
            from .testing import install
            _cupy = install(count)
        else:
            _cupy = importlib.import_module("cupy")
    return _cupy


def module_of(a: Any) -> Any:
    """The array module (numpy or cupy) that computes on raw array ``a``."""
    return np if isinstance(a, (np.ndarray, np.generic)) else _import_cupy()


def is_device_array(a: Any) -> bool:
    """Whether raw array ``a`` lives on a GPU (a cupy.ndarray)."""
    return _cupy is not None and isinstance(a, _cupy.ndarray)


_gpu_count: int | None = None


def num_gpus() -> int:
    """Number of CUDA devices CuPy can see (0 when CuPy is absent); asked once per process
    (every op on a GPU checks its device against it)."""
    global _gpu_count
    if _gpu_count is None:
        try:
            _gpu_count = int(_import_cupy().cuda.runtime.getDeviceCount())
        except Exception:  # no CuPy, no driver, no device: all mean "no GPU"
            _gpu_count = 0
    return _gpu_count


def array_module(ctx: Context) -> Any:
    """numpy for a CPU context, cupy (imported now, not before) for a GPU one."""
    if ctx.device_type == "cpu":
        return np
    require(ctx)
    return _import_cupy()


def device_scope(ctx: Context) -> Any:
    """A context manager that makes ``ctx``'s device current for raw xp calls."""
    if ctx.device_type == "cpu":
        return _NULL_SCOPE
    require(ctx)
    return _import_cupy().cuda.Device(ctx.device_id)


def scope_of(a: Any) -> Any:
    """A context manager that makes the device of raw array ``a`` current (CuPy allocates and
    launches on the current device, not on the inputs')."""
    if isinstance(a, (np.ndarray, np.generic)):
        return _NULL_SCOPE
    return _import_cupy().cuda.Device(a.device.id)


class _NullScope:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_SCOPE = _NullScope()


# ---- random number generation: one seeded generator per context ----

_seed_value: int | None = None
_generators: dict[Context, Any] = {}


def seed(value: int, ctx: Context | None = None) -> None:
    """Seed the generators of every context (or only ``ctx``) for reproducible runs."""
    global _seed_value
    if ctx is None:
        _seed_value = int(value)
        _generators.clear()
    else:
        _generators[ctx] = _make_generator(ctx, int(value))


def _make_generator(ctx: Context, value: int | None) -> Any:
    if ctx.device_type == "cpu":
        return np.random.default_rng(value)
    cp = _import_cupy()
    with cp.cuda.Device(ctx.device_id):
        return cp.random.default_rng(None if value is None else value + 1000003 * (ctx.device_id + 1))


def generator(ctx: Context) -> Any:
    """The random generator of ``ctx`` (created from the global seed on first use)."""
    gen = _generators.get(ctx)
    if gen is None:
        gen = _generators[ctx] = _make_generator(ctx, _seed_value)
    return gen



def scatter_add(target: Any, key: Any, values: Any) -> None:
    """``target[key] += values`` in place, adding (not overwriting) where indices repeat."""
    if isinstance(target, np.ndarray):
        np.add.at(target, key, values)
    else:
        _import_cupy()  # the emulated cupyx comes with the emulated cupy
        importlib.import_module("cupyx").scatter_add(target, key, values)


def as_strided(x: Any, shape: tuple, strides: tuple) -> Any:
    """A strided view of ``x`` (no copy), for sliding windows of convolution and pooling."""
    if isinstance(x, np.ndarray):
        return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)
    return _import_cupy().lib.stride_tricks.as_strided(x, shape=shape, strides=strides)
