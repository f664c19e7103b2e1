"""CIFAR-10 from its binary version (``cifar-10-binary.tar.gz``).

The python version of CIFAR-10 stores pickles, and unpickling a downloaded file can run
arbitrary code, so dlrun reads only the binary batches: each record is one label byte
followed by 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows top to bottom).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .archive import safe_extract
from .dataset import ArrayDataset
from .download import RemoteFile, default_root, fetch
from .errors import CorruptFileError
from .split import carve_val
from .transforms import Transform
from .vision import Splits

# Size 170,052,171 bytes; its MD5 c32a1d4ab5d03f1284b67883e8d87530 is the one published on
# https://www.cs.toronto.edu/~kriz/cifar.html, the SHA-256 the one other projects check.
CIFAR10_FILE = RemoteFile("cifar-10-binary.tar.gz",
                          "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                          ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",))
CIFAR10_FOLDER = "cifar-10-batches-bin"  # the archive's top folder
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = ("test_batch.bin",)
CIFAR10_RECORDS = 10000  # records in each published batch file
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
# per-channel (mean, std) of the [0, 1] pixels of the 50,000 training images
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

RECORD_BYTES = 1 + 3 * 32 * 32


def cifar10(root: str | Path | None = None, augment: Transform | None = None,
            val_fraction: float | None = None, val_size: int | None = 5000) -> Splits:
    """CIFAR-10 from ``root/cifar10`` (root defaults to ``default_root()``).

    Reads ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin``; when one is missing,
    ``cifar-10-binary.tar.gz`` is taken from the folder or downloaded (SHA-256 checked) and
    unpacked with ``safe_extract``. Images are float32 N x 3 x 32 x 32, standardised per
    channel with the training set's mean and standard deviation; labels int32 0..9.
    ``augment`` transforms the training batches (e.g. ``crop_flip(4)``, the standard one).
    45,000 / 5,000 / 10,000 (train / val / test) by default: the validation split is carved
    out of the training batches, stratified (``dlrun.data.split``).
    """
    folder = (default_root() if root is None else Path(root).expanduser()) / "cifar10"
    splits = load_cifar10(folder, CIFAR10_FILE, CIFAR10_RECORDS, augment)
    train, val = carve_val(splits.train, val_fraction, val_size)
    return dataclasses.replace(splits, train=train, val=val)


def load_cifar10(folder: str | Path, archive: RemoteFile = CIFAR10_FILE,
                 records_per_file: int | None = CIFAR10_RECORDS,
                 augment: Transform | None = None) -> Splits:
    """CIFAR-10 batches under ``folder/cifar-10-batches-bin``, unpacked from ``archive`` if
    missing. ``records_per_file``, when given, is the number of records each file must hold."""
    folder = Path(folder)
    batches = folder / CIFAR10_FOLDER
    names = CIFAR10_TRAIN + CIFAR10_TEST
    if not all((batches / n).is_file() for n in names):
        tar = fetch(folder, archive.filename, list(archive.urls), archive.sha256)
        safe_extract(tar, folder, members=[f"{CIFAR10_FOLDER}/{n}" for n in names])
    train = [read_cifar_batch(batches / n, records_per_file) for n in CIFAR10_TRAIN]
    test = [read_cifar_batch(batches / n, records_per_file) for n in CIFAR10_TEST]
    return Splits(_dataset(train), _dataset(test), 10, (3, 32, 32), augment)


def read_cifar_batch(path: str | Path, records: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (N x 3 x 32 x 32) and labels of one binary CIFAR-10 batch file.

    Raises CorruptFileError naming the file when its size is not a whole number of
    3073-byte records (a truncated file), differs from ``records`` records, or a label is
    not a class index below 10.
    """
    path = Path(path)
    raw = path.read_bytes()
    n, extra = divmod(len(raw), RECORD_BYTES)
    if extra or n == 0:
        raise CorruptFileError(
            f"{path}: {len(raw)} bytes is not a whole number of {RECORD_BYTES}-byte records "
            f"(1 label byte + 3072 pixel bytes): the file is truncated or not a CIFAR-10 "
            f"binary batch. Delete it and run again to unpack it afresh.")
    if records is not None and n != records:
        raise CorruptFileError(f"{path}: {n} records, expected {records}: the file is "
                               f"truncated or not a CIFAR-10 batch. Delete it and run again.")
    table = np.frombuffer(raw, dtype=np.uint8).reshape(n, RECORD_BYTES)
    labels = table[:, 0].astype(np.int32)
    if labels.max() >= 10:
        raise CorruptFileError(f"{path}: label {labels.max()} in record "
                               f"{int(np.argmax(labels >= 10))} is not a class index below 10")
    return table[:, 1:].reshape(n, 3, 32, 32), labels


def _dataset(parts: list[tuple[np.ndarray, np.ndarray]]) -> ArrayDataset:
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ArrayDataset(normalise(images), labels)


def normalise(images: np.ndarray, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> np.ndarray:
    """float32 ``(x / 255 - mean[c]) / std[c]`` of uint8 N x C x H x W images."""
    out = images.astype(np.float32)
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).reshape(1, -1, 1, 1)
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(1, -1, 1, 1)
    out *= scale
    out -= shift
    return out
