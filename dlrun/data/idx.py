"""Reader of IDX files (the MNIST format), gzip-compressed or plain."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import CorruptFileError

UBYTE = 0x08  # the IDX type code of unsigned bytes


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The (read-only) uint8 array of ``ndim`` dimensions stored in an IDX file.

    ``.gz`` files are decompressed. Raises CorruptFileError, naming the file, when it is
    truncated, has another magic number or a payload that does not match its header;
    nothing is returned half-loaded.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise CorruptFileError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", raw[:4])
    expected_magic = UBYTE << 8 | ndim  # 0x0801 for labels, 0x0803 for images
    if magic != expected_magic:
        raise CorruptFileError(f"{path}: magic number 0x{magic:08x}, expected "
                               f"0x{expected_magic:08x} (IDX, {ndim}-d unsigned bytes)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptFileError(f"{path}: truncated header: expected {header} bytes, "
                               f"found {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    found = len(raw) - header
    if found != expected:
        raise CorruptFileError(f"{path}: header gives shape {shape}, so expected {expected} "
                               f"bytes of data, found {found}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if it ends in ``.gz``."""
    if path.suffix != ".gz":
        return path.read_bytes()
    with gzip.open(path, "rb") as f:
        try:
            return f.read()
        except (OSError, EOFError, zlib.error) as e:
            raise CorruptFileError(f"{path}: damaged gzip data ({e}); delete it and fetch "
                                   f"it again") from e
