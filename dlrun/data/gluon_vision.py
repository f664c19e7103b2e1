"""Gluon's vision datasets: ``MNIST``, ``FashionMNIST``, ``CIFAR10``, ``CIFAR100`` with
``train=`` and ``transform=``, items as Gluon gives them (uint8 H x W x C image NDArray, int32 label),
and ``ImageFolderDataset`` (a folder of PNG/JPEG images per class, decoded with Pillow).

Files are looked for where MXNet caches them (``~/.mxnet/datasets/<name>``, or ``root``),
then in dlrun's data root (``dataset.root``, ``$DLRUN_DATA``, ``~/.cache/dlrun``); when
neither holds them they are downloaded into ``root`` with their checksums verified.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..engine import array
from .archive import safe_extract
from .cifar import CIFAR10_FILE, CIFAR10_FOLDER, CIFAR10_TEST, CIFAR10_TRAIN, read_cifar_batch
from .dataset import Dataset
from .download import check_sha1, default_root, download, fetch, fetch_all
from .errors import CorruptFileError, DatasetNotFoundError
from .idx import read_idx
from .images import read_image
from .vision import (FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256, MNIST_MIRRORS, MNIST_SHA256,
                     idx_files)

MXNET_DATASETS = os.path.join("~", ".mxnet", "datasets")


def _folder(root: str, dlrun_name: str, names: list[str]) -> Path:
    """``root`` when it holds ``names`` (or dlrun's data root does not), else dlrun's folder."""
    mx_root = Path(root).expanduser()
    ours = default_root() / dlrun_name
    if all((mx_root / n).is_file() for n in names) or not all((ours / n).is_file() for n in names):
        return mx_root
    return ours


class _ImageDataset(Dataset):
    """Images (N x H x W x C uint8) and labels, each item through ``transform(data, label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None):
        self._data = array(images, dtype=np.uint8)
        self._label = labels.astype(np.int32)
        self._transform = transform

    def __len__(self) -> int:
        return len(self._label)

    def __getitem__(self, idx: int) -> Any:
        if self._transform is not None:
            return self._transform(self._data[idx], self._label[idx])
        return self._data[idx], self._label[idx]


class MNIST(_ImageDataset):
    """MNIST: 28 x 28 x 1 uint8 images, labels 0..9 (60,000 train, 10,000 test)."""

    _dlrun_name, _mirrors, _sha256 = "mnist", MNIST_MIRRORS, MNIST_SHA256

    def __init__(self, root: str = os.path.join(MXNET_DATASETS, "mnist"), train: bool = True,
                 transform: Callable | None = None):
        files = idx_files(self._mirrors, self._sha256)
        chosen = files[:2] if train else files[2:]
        folder = _folder(root, self._dlrun_name, [f.filename for f in chosen])
        images_path, labels_path = fetch_all(folder, list(chosen))
        images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
        if len(images) != len(labels):
            raise CorruptFileError(f"{images_path} holds {len(images)} images but {labels_path} "
                                   f"holds {len(labels)} labels")
        super().__init__(images[..., None], labels, transform)


class FashionMNIST(MNIST):
    """Fashion-MNIST: MNIST's layout with ten kinds of clothing."""

    _dlrun_name, _mirrors, _sha256 = "fashion_mnist", FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256

    def __init__(self, root: str = os.path.join(MXNET_DATASETS, "fashion-mnist"),
                 train: bool = True, transform: Callable | None = None):
        super().__init__(root, train, transform)


def _mxnet_layout(root: str, names: list[str]) -> Path | None:
    """``root`` when it holds ``names`` as MXNet's own archives unpack them (no top folder)."""
    folder = Path(root).expanduser()
    return folder if all((folder / n).is_file() for n in names) else None


class CIFAR10(_ImageDataset):
    """CIFAR-10: 32 x 32 x 3 uint8 images, labels 0..9, from the binary batches (in ``root``
    as MXNet unpacks them, or under ``cifar-10-batches-bin`` as the official archive does)."""

    def __init__(self, root: str = os.path.join(MXNET_DATASETS, "cifar10"), train: bool = True,
                 transform: Callable | None = None):
        files = list(CIFAR10_TRAIN if train else CIFAR10_TEST)
        folder = _mxnet_layout(root, files)
        if folder is None:
            names = [f"{CIFAR10_FOLDER}/{n}" for n in files]
            folder = _folder(root, "cifar10", names)
            if not all((folder / n).is_file() for n in names):
                tar = fetch(folder, CIFAR10_FILE.filename, list(CIFAR10_FILE.urls), CIFAR10_FILE.sha256)
                safe_extract(tar, folder, members=names)
            folder = folder / CIFAR10_FOLDER
        parts = [read_cifar_batch(folder / n) for n in files]
        images = np.concatenate([p[0] for p in parts]).transpose(0, 2, 3, 1)
        super().__init__(images, np.concatenate([p[1] for p in parts]), transform)


# MXNet 1.9.1's copies (gluon/data/vision/datasets.py): the archive and its two batches' SHA-1
CIFAR100_ARCHIVE = ("cifar-100-binary.tar.gz", "a0bb982c76b83111308126cc779a992fa506b90b")
CIFAR100_SHA1 = {"train.bin": "e207cd2e05b73b1393c74c7f5e7bea451d63e08e",
                 "test.bin": "8fb6623e830365ff53cf14adec797474f5478006"}
MXNET_REPO = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/"


class CIFAR100(_ImageDataset):
    """CIFAR-100: 32 x 32 x 3 uint8 images; labels 0..19 (the coarse classes) or, with
    ``fine_label``, 0..99. Read from ``root`` (``train.bin``/``test.bin``, SHA-1 checked),
    unpacked from MXNet's archive (``$MXNET_GLUON_REPO``) when missing, as MXNet does."""

    def __init__(self, root: str = os.path.join(MXNET_DATASETS, "cifar100"), fine_label: bool = False,
                 train: bool = True, transform: Callable | None = None):
        name = "train.bin" if train else "test.bin"
        folder = Path(root).expanduser()
        if not (folder / name).is_file():
            repo = os.environ.get("MXNET_GLUON_REPO", MXNET_REPO).rstrip("/") + "/"
            archive = download(f"{repo}gluon/dataset/cifar100/{CIFAR100_ARCHIVE[0]}", folder,
                               sha1_hash=CIFAR100_ARCHIVE[1])
            safe_extract(archive, folder, members=list(CIFAR100_SHA1))
        if not check_sha1(folder / name, CIFAR100_SHA1[name]):
            raise CorruptFileError(f"{folder / name} does not have the SHA-1 {CIFAR100_SHA1[name]} "
                                   "of CIFAR-100's batch: delete it to unpack it again")
        raw = np.frombuffer((folder / name).read_bytes(), dtype=np.uint8)
        if raw.size % 3074:
            raise CorruptFileError(f"{folder / name}: {raw.size} bytes is not a whole number of "
                                   "3074-byte records (2 label bytes + 3072 pixels)")
        table = raw.reshape(-1, 3074)
        images = table[:, 2:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        super().__init__(images, table[:, int(fine_label)], transform)


IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png"]


class ImageFolderDataset(Dataset):
    """The images of ``root/<class>/<file>``: ``synsets`` are the sorted class folders (label
    ``i`` is ``synsets[i]``), ``items`` the ``(path, label)`` pairs of their .jpg/.jpeg/.png
    files in name order; other entries are skipped with a warning, as MXNet does. An item is
    (uint8 H x W x 3 NDArray, or H x W x 1 with ``flag=0``; int label), through
    ``transform(data, label)`` when given."""

    def __init__(self, root: str, flag: int = 1, transform: Callable | None = None):
        if flag not in (0, 1):
            raise ValueError(f"flag={flag!r}: give 1 for RGB images or 0 for greyscale")
        self._root = os.path.expanduser(root)
        if not os.path.isdir(self._root):
            raise DatasetNotFoundError(f"{self._root} is not a folder; ImageFolderDataset reads "
                                       "one sub-folder of images per class")
        self._flag = flag
        self._transform = transform
        self._exts = list(IMAGE_EXTENSIONS)
        self.synsets: list[str] = []
        self.items: list[tuple[str, int]] = []
        for folder in sorted(os.listdir(self._root)):
            path = os.path.join(self._root, folder)
            if not os.path.isdir(path):
                warnings.warn(f"Ignoring {path}, which is not a directory.", stacklevel=2)
                continue
            label = len(self.synsets)
            self.synsets.append(folder)
            for name in sorted(os.listdir(path)):
                filename = os.path.join(path, name)
                ext = os.path.splitext(filename)[1]
                if ext.lower() not in self._exts:
                    warnings.warn(f"Ignoring {filename} of type {ext}. Only support "
                                  f"{', '.join(self._exts)}", stacklevel=2)
                    continue
                self.items.append((filename, label))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> Any:
        path, label = self.items[idx]
        img = array(read_image(path, self._flag), dtype=np.uint8)
        if self._transform is not None:
            return self._transform(img, label)
        return img, label


__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "ImageFolderDataset"]
