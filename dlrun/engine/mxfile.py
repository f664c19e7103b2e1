"""MXNet 1.x's NDArray file format (``.params``, ``.nd``), read and written field by field.

    uint64 0x112, uint64 0              the list header
    uint64 n, then n arrays             each: uint32 magic (V2 0xF993FAC9, V3 0xF993FACA,
                                        V1 0xF993FAC8, else the ndim of the oldest format),
                                        [int32 storage type], shape, int32 device type and
                                        id, int32 dtype flag, the raw little-endian data
    uint64 k, then k names              each: uint64 length, UTF-8 bytes (k is 0 or n)

Nothing is unpickled or executed: every count, length and shape is checked against the
bytes that remain before anything is allocated, so a truncated or hostile file gives a
``MXFileError`` naming the offset and the field, never a huge allocation.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Mapping, Sequence

import numpy as np

from .files import write_atomic

LIST_MAGIC = 0x112
V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
# MXNet's mshadow type flags
DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8,
          6: np.int64, 7: np.bool_}
FLAGS = {np.dtype(t): f for f, t in DTYPES.items()}
_MAX_NDIM = 32


class MXFileError(ValueError):
    """A file is not a well-formed MXNet NDArray file."""


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = memoryview(data), 0, name

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise MXFileError(f"{self.name}: {what} needs {n} bytes at offset {self.pos} but the "
                              f"file has {len(self.data) - self.pos} left; the file is truncated "
                              "or not an MXNet NDArray file")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def shape(self, legacy_ndim: int | None = None, what: str = "shape") -> tuple:
        if legacy_ndim is not None:  # the oldest format: uint32 ndim (already read), uint32 dims
            ndim, fmt = legacy_ndim, "I"
        else:
            ndim, fmt = self.int("i", f"{what}'s ndim"), "q"
        if ndim == -1:
            return (-1,)
        if not 0 <= ndim <= _MAX_NDIM:
            raise MXFileError(f"{self.name}: {what} at offset {self.pos - 4} has {ndim} dimensions")
        dims = struct.unpack(f"<{ndim}{fmt}", self.take(ndim * struct.calcsize(fmt), what))
        if any(d < 0 for d in dims):
            raise MXFileError(f"{self.name}: {what} {dims} at offset {self.pos} has a negative size")
        return tuple(dims)


def _array(r: _Reader, index: int) -> np.ndarray | None:
    where = f"array {index}"
    magic = r.int("I", f"{where}'s magic")
    legacy = magic not in (V1, V2, V3)
    if magic in (V2, V3):
        stype = r.int("i", f"{where}'s storage type")
        if stype != 0:
            raise MXFileError(f"{r.name}: {where} is a sparse array (storage type {stype}); dlrun "
                              "reads dense arrays only: save it with .tostype('default') in MXNet")
    shape = r.shape(magic if legacy else None, f"{where}'s shape")
    if shape == (-1,) or (magic != V3 and len(shape) == 0):
        return None  # MXNet's 'none' array: nothing follows
    r.int("i", f"{where}'s device type")
    r.int("i", f"{where}'s device id")
    flag = r.int("i", f"{where}'s dtype")
    if flag not in DTYPES:
        raise MXFileError(f"{r.name}: {where} has dtype flag {flag}, which dlrun does not read "
                          f"(it reads {sorted(DTYPES)}: float32/64/16, uint8, int32, int8, int64, bool)")
    dtype = np.dtype(DTYPES[flag]).newbyteorder("<")
    count = 1
    for n in shape:
        count *= n
    raw = r.take(count * dtype.itemsize, f"{where}'s {count} values of shape {shape}")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def loads(data: bytes, name: str = "<bytes>") -> list[np.ndarray] | dict[str, np.ndarray]:
    """The arrays of an MXNet NDArray file's bytes: a dict when it names them, else a list."""
    r = _Reader(data, name)
    if len(data) < 16 or r.int("Q", "header") != LIST_MAGIC:
        raise MXFileError(f"{name} is not an MXNet NDArray file (no 0x112 header)")
    r.int("Q", "reserved field")
    n = r.int("Q", "array count")
    if n > len(data) // 8:
        raise MXFileError(f"{name}: it claims {n} arrays, more than its {len(data)} bytes can hold")
    arrays = [_array(r, i) for i in range(n)]
    k = r.int("Q", "name count")
    if k not in (0, n):
        raise MXFileError(f"{name}: {k} names for {n} arrays")
    names = [bytes(r.take(r.int("Q", f"name {i}'s length"), f"name {i}")).decode("utf-8")
             for i in range(k)]
    if r.pos != len(data):
        raise MXFileError(f"{name}: {len(data) - r.pos} bytes follow the last name")
    return dict(zip(names, arrays)) if k else arrays


def load(path: str | os.PathLike) -> list[np.ndarray] | dict[str, np.ndarray]:
    """The arrays of the MXNet NDArray file at ``path`` (see :func:`loads`)."""
    with open(path, "rb") as f:
        return loads(f.read(), os.fspath(path))


def is_mxnet_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the NDArray list header (an .npz starts with 'PK')."""
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) == 8 and struct.unpack("<Q", head)[0] == LIST_MAGIC


def dumps(arrays: Sequence[Any] | Mapping[str, Any]) -> bytes:
    """The bytes MXNet 1.x's ``nd.save`` writes for ``arrays`` (host arrays, V2 format)."""
    names = list(arrays) if isinstance(arrays, Mapping) else []
    values = [np.asarray(a) for a in (arrays.values() if isinstance(arrays, Mapping) else arrays)]
    out = [struct.pack("<QQQ", LIST_MAGIC, 0, len(values))]
    for a in values:
        if a.dtype not in FLAGS:
            raise MXFileError(f"MXNet's format holds no {a.dtype} arrays; cast to float32 first")
        if a.ndim == 0:
            a = a.reshape(1)  # MXNet 1.x reads a 0-d array back as 'none'
        out.append(struct.pack(f"<Iii{a.ndim}qiii", V2, 0, a.ndim, *a.shape, 1, 0, FLAGS[a.dtype]))
        out.append(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    out.append(struct.pack("<Q", len(names)))
    for name in names:
        raw = str(name).encode("utf-8")
        out.append(struct.pack("<Q", len(raw)) + raw)
    return b"".join(out)


def save(path: str | os.PathLike, arrays: Sequence[Any] | Mapping[str, Any]) -> None:
    """Write ``arrays`` (a list, or a dict of names) in MXNet's format, atomically."""
    data = dumps(arrays)
    write_atomic(path, lambda f: f.write(data))
