"""Image files: a grid of images as uint8 pixels, a dependency-free PNG writer, and a
PNG/JPEG reader (Pillow) that decodes as MXNet's ``image.imread`` (OpenCV) does.

``image_grid`` tiles N x C x H x W images with values in [-1, 1] (the range of a
generator's tanh) into one greyscale or RGB picture; ``png_bytes`` encodes uint8 pixels as
an 8-bit PNG (greyscale or RGB, filter 0, zlib level 6) and ``write_png`` writes one
atomically. The GAN task writes its per-epoch sample grids with them.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np

from .errors import CorruptFileError


def image_grid(images: np.ndarray, columns: int = 8, pad: int = 2) -> np.ndarray:
    """uint8 grid of ``images`` (N x C x H x W, values in [-1, 1]): H' x W' (one channel) or
    H' x W' x 3 (three channels), ``pad`` black pixels between and around the tiles."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"image_grid needs N x C x H x W images, got shape {images.shape}")
    n, c, h, w = images.shape
    if c not in (1, 3):
        images, c = images[:, :1], 1
    rows = -(-n // columns)
    grid = np.zeros((c, pad + rows * (h + pad), pad + columns * (w + pad)), dtype=np.uint8)
    pixels = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    for i in range(n):
        r, k = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top:top + h, left:left + w] = pixels[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG file (8-bit greyscale for H x W, RGB for H x W x 3) of uint8 ``pixels``."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        color = 0
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        color = 2
    else:
        raise ValueError(f"png_bytes needs H x W or H x W x 3 pixels, got shape {pixels.shape}")
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rows], axis=1)  # filter 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b""))


def write_png(path: str | Path, pixels: np.ndarray) -> Path:
    """Writes ``png_bytes(pixels)`` to ``path`` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png_bytes(pixels))
    tmp.replace(path)
    return path


def pillow() -> ModuleType:
    """``PIL.Image``, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("decoding images needs Pillow: pip install 'dlrun[images]'") from None
    return Image


# libpng's weights (png_set_rgb_to_gray 0.299, 0.587 as OpenCV asks, in 1/32768, truncated)
_GREY_WEIGHTS = np.array([9797, 19234, 32768 - 9797 - 19234], dtype=np.int64)


def read_image(path: str | Path, flag: int = 1) -> np.ndarray:
    """uint8 H x W x 3 RGB (``flag`` 1) or H x W x 1 grey (``flag`` 0) pixels of a PNG/JPEG
    file, the values MXNet's ``image.imread`` gives: alpha dropped, 16-bit samples cut to
    their high byte, colour made grey with libpng's weights (JPEG: libjpeg's own grey)."""
    image = pillow()
    try:
        with image.open(path) as im:
            if flag == 0 and im.format == "JPEG":
                im.draft("L", None)
            if im.mode.startswith("I;16"):
                pixels = (np.asarray(im) >> 8).astype(np.uint8)
            elif im.mode in ("1", "L", "LA"):
                pixels = np.asarray(im.convert("L"))
            else:
                pixels = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise CorruptFileError(f"cannot read image {path}: {e}; replace it with a valid "
                               "PNG/JPEG file or remove it") from None
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3 if flag else 1, axis=2)
    if flag:
        return pixels
    return ((pixels.astype(np.int64) @ _GREY_WEIGHTS) >> 15).astype(np.uint8)[..., None]


__all__ = ["image_grid", "pillow", "png_bytes", "read_image", "write_png"]
