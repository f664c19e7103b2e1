"""MXNet's RecordIO files (``.rec`` with its ``.idx``), read without MXNet: Gluon's
``RecordFileDataset``.

A record is ``uint32 magic 0xced7230a``, ``uint32 (cflag << 29) | length``, the bytes,
padded to 4; a record that contained the magic number was split there into parts
(cflag 1 first, 2 middle, 3 last) that are joined again with the magic between them. The
``.idx`` file lists ``key<TAB>offset`` per line. Every length is checked against the file.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

from .dataset import Dataset
from .errors import CorruptFileError

MAGIC = 0xCED7230A


def read_record(data: bytes, offset: int, where: str = "record file") -> bytes:
    """The record starting at byte ``offset`` of ``data`` (a whole .rec file)."""
    parts, pos = [], offset
    while True:
        if pos + 8 > len(data):
            raise CorruptFileError(f"{where}: a record header at offset {pos} runs past the end")
        magic, lrec = struct.unpack_from("<II", data, pos)
        if magic != MAGIC:
            raise CorruptFileError(f"{where}: no record starts at offset {pos} (magic {magic:#x})")
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        if pos + 8 + length > len(data):
            raise CorruptFileError(f"{where}: the record at offset {pos} claims {length} bytes, "
                                   f"more than the file holds")
        parts.append(data[pos + 8:pos + 8 + length])
        pos += 8 + length + (-length % 4)
        if cflag in (0, 3):
            return struct.pack("<I", MAGIC).join(parts)


class RecordFileDataset(Dataset):
    """The records of ``filename`` (a ``.rec`` with its ``.idx`` beside it), as bytes, in
    the order of the index (Gluon's ``RecordFileDataset``)."""

    def __init__(self, filename: str | os.PathLike):
        self._path = Path(filename)
        index = self._path.with_suffix(".idx")
        try:
            self._data = self._path.read_bytes()
            lines = index.read_text().split("\n")
        except OSError as e:
            raise CorruptFileError(f"cannot read {self._path} and its index {index}: {e}") from None
        try:
            self._offsets = [int(line.split("\t")[1]) for line in lines if line.strip()]
        except (IndexError, ValueError):
            raise CorruptFileError(f"{index}: each line must be 'key<TAB>offset'") from None

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, idx: int) -> bytes:
        return read_record(self._data, self._offsets[idx], str(self._path))
