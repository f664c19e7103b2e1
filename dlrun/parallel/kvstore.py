"""A Gluon-style key-value store (MXNet 1.x ``mx.kv``) over the job's collectives.

``create(name)`` gives a ``KVStore``: ``init`` a key with an array, ``push`` arrays to it
(several per key, one per device, are summed), ``pull`` the stored value into arrays on any
device. The 'local' and 'device' kinds live in this process; 'nccl', 'dist_sync',
'dist_device_sync' and 'dist' also sum every push over all ranks of ``current()`` (MPI for
host arrays, NCCL for GPU arrays), and ``init`` gives every rank rank 0's value. There is no
parameter server: each rank keeps its own copy of the store, and since every rank pushes the
same summed values through the same updater, the copies stay equal, as synchronous MXNet
training with ``update_on_kvstore`` would keep them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

from ..engine import NDArray, array, zeros_like
from ..engine.backend import device_scope
from .world import World, current

if TYPE_CHECKING:
    from ..optim.optimizer import Optimizer

LOCAL_KINDS = ("local", "device")
DIST_KINDS = ("nccl", "dist_sync", "dist_device_sync", "dist")

Key = Union[int, str]
Updater = Callable[[Key, NDArray, NDArray], None]  # (key, merged pushed value, stored value)
Values = Union[NDArray, Sequence[NDArray]]


def create(name: str = "local") -> "KVStore":
    """A store of kind ``name``: 'local', 'device' (this process) or 'nccl', 'dist_sync',
    'dist_device_sync', 'dist' (summed over every rank of the MPI job)."""
    if name == "dist_async":
        raise ValueError("kvstore 'dist_async' is not supported: dlrun trains synchronously only; "
                         "use 'dist_sync'")
    if name not in LOCAL_KINDS + DIST_KINDS:
        raise ValueError(f"unknown kvstore {name!r}; choose one of {list(LOCAL_KINDS + DIST_KINDS)}")
    return KVStore(name, current() if name in DIST_KINDS else World())


def get_updater(optimizer: "Optimizer") -> Updater:
    """An updater that applies ``optimizer`` to the stored value, with a state per key."""
    states: dict[Key, Any] = {}

    def updater(key: Key, grad: NDArray, weight: NDArray) -> None:
        if key not in states:
            states[key] = optimizer.create_state(key, weight)
        optimizer.update(key, weight, grad, states[key])

    return updater


class KVStore:
    """Arrays by key, summed on push (over devices, and over ranks for the dist kinds).

    ``priority`` and ``ignore_sparse`` are accepted for MXNet compatibility: every call
    completes before it returns, and there are no sparse arrays.
    """

    def __init__(self, name: str, world: World):
        self._type = name
        self._world = world  # a world of one for the local kinds
        self._store: dict[Key, NDArray] = {}
        self._updater: Updater | None = None

    @property
    def type(self) -> str:
        return self._type

    @property
    def rank(self) -> int:
        return self._world.rank

    @property
    def num_workers(self) -> int:
        return self._world.size

    def init(self, key: Key | Sequence[Key], value: Values) -> None:
        """Store a copy of ``value`` under ``key`` (or each value under its key); the dist
        kinds store rank 0's value on every rank."""
        for k, v in _pairs("init", key, value):
            if k in self._store:
                raise ValueError(f"kvstore key {k!r} is already initialized")
            if not isinstance(v, NDArray):
                raise TypeError(f"init({k!r}, ...) takes one NDArray per key, got {type(v).__name__}")
            stored = array(v, ctx=v.ctx)
            self._world.broadcast_(stored._data, 0)
            self._store[k] = stored

    def push(self, key: Key | Sequence[Key], value: Values | Sequence[Values], priority: int = 0) -> None:
        """Sum the value(s) pushed to each key, then update the stored value with the sum
        (the updater's result, or the sum itself when no updater is set)."""
        for k, v in _pairs("push", key, value):
            stored = self._stored(k)
            merged = zeros_like(stored)
            for part in _arrays(v):
                _check_shape("push to", k, part, stored)
                part = part.as_in_context(stored.ctx)
                with device_scope(stored.ctx):  # CuPy computes on the current device
                    merged._data += part._data
            self._world.allreduce_(merged._data)
            if self._updater is None:
                with device_scope(stored.ctx):
                    stored._data[...] = merged._data
            else:
                self._updater(k, merged, stored)

    def pull(self, key: Key | Sequence[Key], out: Values | Sequence[Values] | None = None,
             priority: int = 0, ignore_sparse: bool = True) -> None:
        """Copy the value stored under each key into ``out`` (an array, or one per device)."""
        if out is None:
            raise ValueError("pull needs out=: the array(s) to copy the stored value into")
        for k, o in _pairs("pull", key, out):
            stored = self._stored(k)
            for target in _arrays(o):
                _check_shape("pull from", k, target, stored)
                stored.copyto(target)

    def pushpull(self, key: Key | Sequence[Key], value: Values | Sequence[Values],
                 out: Values | Sequence[Values] | None = None, priority: int = 0) -> None:
        """``push(key, value)`` then ``pull(key, out)``; into ``value`` when ``out`` is None."""
        self.push(key, value, priority)
        self.pull(key, value if out is None else out, priority)

    def set_optimizer(self, optimizer: "Optimizer") -> None:
        """Update the stored values with ``optimizer`` on every push (``update_on_kvstore``)."""
        self._updater = get_updater(optimizer)

    def _set_updater(self, updater: Updater) -> None:
        """Call ``updater(key, merged, stored)`` on every push; it updates ``stored`` in place."""
        self._updater = updater

    def barrier(self) -> None:
        """Wait until every rank reaches this point."""
        self._world.barrier()

    def _stored(self, key: Key) -> NDArray:
        if key not in self._store:
            raise KeyError(f"kvstore key {key!r} is not initialized; call init({key!r}, value) first")
        return self._store[key]

    def __repr__(self) -> str:
        return f"KVStore(type={self._type!r}, rank={self.rank}, num_workers={self.num_workers})"


def _pairs(op: str, key: Key | Sequence[Key], value: Any) -> list[tuple[Key, Any]]:
    """(key, value) pairs from one key and its value, or a list of keys and a list of values."""
    keys = list(key) if isinstance(key, (list, tuple)) else [key]
    for k in keys:
        if not isinstance(k, (int, str)):
            raise TypeError(f"{op}: kvstore keys are int or str, got {type(k).__name__}")
    if not isinstance(key, (list, tuple)):
        return [(key, value)]
    if not isinstance(value, (list, tuple)) or len(value) != len(keys):
        got = f"{len(value)} values" if isinstance(value, (list, tuple)) else type(value).__name__
        raise ValueError(f"{op}: {len(keys)} keys need a list of {len(keys)} values, got {got}")
    return list(zip(keys, value))


def _arrays(value: Values) -> list[NDArray]:
    """One array, or a list of them (one per device), as a list."""
    arrays = list(value) if isinstance(value, (list, tuple)) else [value]
    if not arrays:
        raise ValueError("kvstore values must be an NDArray or a non-empty list of NDArrays")
    for a in arrays:
        if not isinstance(a, NDArray):
            raise TypeError(f"kvstore values are NDArrays, got {type(a).__name__}")
    return arrays


def _check_shape(op: str, key: Key, value: NDArray, stored: NDArray) -> None:
    if value.shape != stored.shape:
        raise ValueError(f"{op} kvstore key {key!r}: array of shape {value.shape} does not match "
                         f"the stored shape {stored.shape}")
