"""The emulated ``cupy.cuda``: devices, streams, events, the memory pool, and NCCL on MPI."""
from __future__ import annotations

import ctypes
import os
import time
from typing import Any

import numpy as np

from ._array import State, ndarray, peer_error


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``."""

    def __init__(self, status: int, message: str = "cudaErrorInvalidDevice: invalid device ordinal"):
        self.status = status
        super().__init__(message)


class Device:
    """``cupy.cuda.Device(i)``: a context manager that makes device ``i`` current."""

    def __init__(self, device: Any = None):
        self.id = State.current() if device is None else int(device)
        if not 0 <= self.id < State.devices:
            raise CUDARuntimeError(101)

    def __enter__(self) -> "Device":
        State.push(self.id)
        return self

    def __exit__(self, *exc: object) -> None:
        State.pop()

    def use(self) -> None:
        if State._current.stack:
            State._current.stack[-1] = self.id
        else:
            State.push(self.id)

    def synchronize(self) -> None:
        return None

    @property
    def compute_capability(self) -> str:
        """'80' (an A100) unless ``DLRUN_EMULATE_GPU_CC`` says otherwise."""
        return os.environ.get("DLRUN_EMULATE_GPU_CC", "80")

    @property
    def mem_info(self) -> tuple[int, int]:
        total = 80 << 30
        return total - State.used[self.id], total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __int__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


class Stream:
    """``cupy.cuda.Stream``: work runs at once here, so every stream is always done."""

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False,
                 priority: Any = None):
        self.ptr = 0 if null else id(self)
        self.done = True

    def synchronize(self) -> None:
        return None

    def record(self, event: "Event | None" = None) -> "Event":
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event: "Event") -> None:
        return None

    def begin_capture(self, mode: Any = None) -> None:
        """Work runs at once here, so nothing can be captured: refused as CUDA refuses it."""
        raise CUDARuntimeError(900, "cudaErrorStreamCaptureUnsupported: the emulated GPU cannot "
                                    "capture CUDA graphs")

    def end_capture(self) -> None:
        raise CUDARuntimeError(401, "cudaErrorIllegalState: the stream is not capturing")

    def is_capturing(self) -> bool:
        return False

    def use(self) -> "Stream":
        return self

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


Stream.null = Stream(null=True)


class Event:
    """``cupy.cuda.Event``: records the wall-clock time."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False):
        self.done = True
        self._time = time.perf_counter()

    def record(self, stream: Any = None) -> None:
        self._time = time.perf_counter()

    def synchronize(self) -> None:
        return None


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two recorded events."""
    return (end_event._time - start_event._time) * 1e3


def get_current_stream() -> Stream:
    return Stream.null


def is_available() -> bool:
    return State.devices > 0


class MemoryPool:
    """``cupy.get_default_memory_pool()``: its counters follow the live arrays' bytes."""

    def __init__(self) -> None:
        self._limit = 0

    def used_bytes(self) -> int:
        return State.used[State.current()]

    def total_bytes(self) -> int:
        return self.used_bytes()

    def free_bytes(self) -> int:
        return 0

    def n_free_blocks(self) -> int:
        return 0

    def free_all_blocks(self, stream: Any = None) -> None:
        return None

    def get_limit(self) -> int:
        return self._limit

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        self._limit = int(size or 0)


_POOL = MemoryPool()
_PINNED = MemoryPool()


def get_default_memory_pool() -> MemoryPool:
    return _POOL


def get_default_pinned_memory_pool() -> MemoryPool:
    return _PINNED


class runtime:  # noqa: N801 - a module's namespace
    """``cupy.cuda.runtime``."""

    CUDARuntimeError = CUDARuntimeError

    @staticmethod
    def getDeviceCount() -> int:  # noqa: N802 - CUDA's names
        return State.devices

    @staticmethod
    def getDevice() -> int:  # noqa: N802
        return State.current()

    @staticmethod
    def setDevice(device: int) -> None:  # noqa: N802
        Device(device).use()

    @staticmethod
    def deviceCanAccessPeer(device: int, peerDevice: int) -> int:  # noqa: N802, N803
        return 0

    @staticmethod
    def memGetInfo() -> tuple[int, int]:  # noqa: N802
        return Device().mem_info

    @staticmethod
    def deviceSynchronize() -> None:  # noqa: N802
        return None


# ---- NCCL: the collectives of the ranks' devices, carried by MPI ----

_NCCL_TYPES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64,
               6: np.float16, 7: np.float32, 8: np.float64}


class NcclError(RuntimeError):
    """``cupy.cuda.nccl.NcclError``."""


class nccl:  # noqa: N801 - a module's namespace
    """``cupy.cuda.nccl`` on MPI: one rank per device, as NCCL demands."""

    NcclError = NcclError
    NCCL_INT8 = NCCL_CHAR = 0
    NCCL_UINT8 = 1
    NCCL_INT32 = NCCL_INT = 2
    NCCL_UINT32 = 3
    NCCL_INT64 = 4
    NCCL_UINT64 = 5
    NCCL_FLOAT16 = NCCL_HALF = 6
    NCCL_FLOAT32 = NCCL_FLOAT = 7
    NCCL_FLOAT64 = NCCL_DOUBLE = 8
    NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = range(5)

    @staticmethod
    def get_unique_id() -> tuple:
        return tuple(os.urandom(128))

    @staticmethod
    def get_version() -> int:
        return 22700


class NcclCommunicator:
    """``nccl.NcclCommunicator(ndev, commId, rank)`` on MPI's world, bound to the current device."""

    def __init__(self, ndev: int, commId: tuple, rank: int):  # noqa: N803 - CuPy's names
        import socket

        from mpi4py import MPI
        self._comm = MPI.COMM_WORLD.Dup()
        self._mpi = MPI
        self.device = State.current()
        if self._comm.Get_size() != ndev or self._comm.Get_rank() != rank:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: rank {rank} of {ndev}, but MPI has "
                            f"rank {self._comm.Get_rank()} of {self._comm.Get_size()}")
        places = self._comm.allgather((socket.gethostname(), self.device))
        if len(set(places)) < len(places):
            raise NcclError("NCCL_ERROR_INVALID_USAGE: invalid usage (two ranks on one GPU: "
                            f"{sorted(places)})")

    def _view(self, ptr: int, count: int, datatype: int) -> np.ndarray:
        owner = State.pointers.get(ptr)
        if owner is None:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: {ptr:#x} is no device buffer")
        if owner._dev != self.device:
            raise peer_error(owner._dev, self.device)
        dtype = np.dtype(_NCCL_TYPES[datatype])
        raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
        return np.frombuffer(raw, dtype=dtype, count=count)

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int,  # noqa: N802
                  stream: int) -> None:
        ops = {nccl.NCCL_SUM: self._mpi.SUM, nccl.NCCL_PROD: self._mpi.PROD,
               nccl.NCCL_MAX: self._mpi.MAX, nccl.NCCL_MIN: self._mpi.MIN}
        recv = self._view(recvbuf, count, datatype)
        send = self._mpi.IN_PLACE if sendbuf == recvbuf else self._view(sendbuf, count, datatype)
        self._comm.Allreduce(send, recv, op=ops[op])

    def bcast(self, buff: int, count: int, datatype: int, root: int, stream: int) -> None:
        self._comm.Bcast(self._view(buff, count, datatype), root=root)

    def broadcast(self, sendbuff: int, recvbuff: int, count: int, datatype: int, root: int,
                  stream: int) -> None:
        recv = self._view(recvbuff, count, datatype)
        if self._comm.Get_rank() == root and sendbuff != recvbuff:
            recv[...] = self._view(sendbuff, count, datatype)
        self._comm.Bcast(recv, root=root)

    def device_id(self) -> int:
        return self.device

    def rank_id(self) -> int:
        return self._comm.Get_rank()

    def size(self) -> int:
        return self._comm.Get_size()

    def destroy(self) -> None:
        self._comm.Free()


nccl.NcclCommunicator = NcclCommunicator
__all__ = ["Device", "Stream", "Event", "MemoryPool", "ndarray", "runtime", "nccl"]
