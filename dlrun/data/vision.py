"""Image-classification datasets: embedded UCI digits, MNIST and Fashion-MNIST.

Every builder returns a ``Splits`` of float32 images (N x 1 x 28 x 28, standardised with
fixed per-dataset constants) and int32 labels: train, validation (carved out of the training
examples, stratified, ``dlrun.data.split``) and test.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .dataset import ArrayDataset
from .download import RemoteFile, default_root, fetch_all, remote_files
from .errors import CorruptFileError
from .split import carve_val
from .idx import read_idx
from .transforms import Transform

MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"]
FASHION_MNIST_MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]

IDX_FILENAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # IdxFiles order
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

# (mean, std) of the [0, 1] pixels, used as (x - mean) / std
MNIST_STATS = (0.1307, 0.3081)
FASHION_MNIST_STATS = (0.2860, 0.3530)
DIGITS_STATS = (0.2243, 0.3494)  # over all 1797 digits after resizing to 28 x 28


@dataclass(frozen=True)
class Splits:
    """A dataset's train, test and validation sets (``val``, None: no validation split), its
    number of classes and one example's shape, and the augmentation of its training batches
    (``augment``, a ``dlrun.data.transforms`` transform; None: none)."""

    train: ArrayDataset
    test: ArrayDataset
    num_classes: int
    input_shape: tuple[int, ...]
    augment: Transform | None = None
    val: ArrayDataset | None = None
    task = "classify"  # the training loop the runner picks for this data (dlrun.runner.tasks)

    @property
    def model_args(self) -> dict:
        """Model arguments the data decides (a model config's null ``classes`` or ``image_shape``)."""
        return {"classes": self.num_classes, "image_shape": list(self.input_shape)}


class IdxFiles(NamedTuple):
    """The four files of an MNIST-style dataset."""

    train_images: RemoteFile
    train_labels: RemoteFile
    test_images: RemoteFile
    test_labels: RemoteFile


def idx_files(mirrors: list[str], sha256: dict[str, str]) -> IdxFiles:
    """The standard MNIST file names with their checksums, each fetched from ``mirrors``."""
    return IdxFiles(*remote_files(IDX_FILENAMES, sha256, mirrors))


def mnist(root: str | Path | None = None, augment: Transform | None = None,
          val_fraction: float | None = None, val_size: int | None = 5000) -> Splits:
    """MNIST from ``root/mnist`` (root defaults to ``default_root()``), downloaded if missing:
    55,000 / 5,000 / 10,000 (train / val / test) by default; ``augment`` transforms the
    training batches."""
    return load_idx_dataset(_folder(root, "mnist"), idx_files(MNIST_MIRRORS, MNIST_SHA256),
                            MNIST_STATS, augment=augment, val_fraction=val_fraction,
                            val_size=val_size)


def fashion_mnist(root: str | Path | None = None, augment: Transform | None = None,
                  val_fraction: float | None = None, val_size: int | None = 5000) -> Splits:
    """Fashion-MNIST from ``root/fashion_mnist``, downloaded if missing: 55,000 / 5,000 /
    10,000 by default; ``augment`` transforms the training batches."""
    return load_idx_dataset(_folder(root, "fashion_mnist"),
                            idx_files(FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256),
                            FASHION_MNIST_STATS, augment=augment, val_fraction=val_fraction,
                            val_size=val_size)


def load_idx_dataset(folder: Path, files: IdxFiles, stats: tuple[float, float],
                     num_classes: int = 10, augment: Transform | None = None,
                     val_fraction: float | None = None, val_size: int | None = None) -> Splits:
    """The train and test sets stored in ``files`` under ``folder``, fetched if missing, and
    the validation split carved out of the training set (``dlrun.data.split.carve_val``)."""
    paths = IdxFiles(*fetch_all(Path(folder), list(files)))
    train = _idx_set(paths.train_images, paths.train_labels, stats, num_classes)
    test = _idx_set(paths.test_images, paths.test_labels, stats, num_classes)
    train, val = carve_val(train, val_fraction, val_size)
    return Splits(train, test, num_classes, train.data.shape[1:], augment, val)


def digits(seed: int = 0, test_fraction: float = 0.2, root: str | Path | None = None,
           augment: Transform | None = None, val_fraction: float | None = 0.2,
           val_size: int | None = None) -> Splits:
    """The UCI handwritten digits shipped with scikit-learn, as 1 x 28 x 28 images.

    Each 8 x 8 image (values 0..16) is upsampled 3x to 24 x 24 and padded by 2 pixels. The
    train/test split is stratified and fixed by ``seed``, and so is the validation split
    carved out of the training part (by default 1,150 / 287 / 360 digits). ``root`` is
    unused (nothing is downloaded); it is accepted so that every builder takes the same
    arguments. ``augment`` transforms the training batches.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = np.pad(raw.images.repeat(3, axis=1).repeat(3, axis=2), ((0, 0), (2, 2), (2, 2)))
    data = _standardise(images, 16.0, DIGITS_STATS)
    label = raw.target.astype(np.int32)
    train_idx, test_idx = train_test_split(np.arange(len(label)), test_size=test_fraction,
                                           random_state=seed, stratify=label)
    train, val = carve_val(ArrayDataset(data[train_idx], label[train_idx]), val_fraction,
                           val_size, seed)
    return Splits(train, ArrayDataset(data[test_idx], label[test_idx]), 10, data.shape[1:],
                  augment, val)


def _folder(root: str | Path | None, name: str) -> Path:
    return (default_root() if root is None else Path(root).expanduser()) / name


def _standardise(images: np.ndarray, peak: float, stats: tuple[float, float]) -> np.ndarray:
    """float32 N x 1 x H x W images: pixels divided by ``peak``, then (x - mean) / std."""
    mean, std = stats
    x = images.astype(np.float32)[:, None]
    x *= 1.0 / peak
    x -= mean
    x /= std
    return x


def _idx_set(images_path: Path, labels_path: Path, stats: tuple[float, float],
             num_classes: int) -> ArrayDataset:
    images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise CorruptFileError(f"{images_path} holds {len(images)} images but {labels_path} "
                               f"holds {len(labels)} labels")
    if labels.size and labels.max() >= num_classes:
        raise CorruptFileError(f"{labels_path}: label {labels.max()} is not a class index "
                               f"below {num_classes}")
    return ArrayDataset(_standardise(images, 255.0, stats), labels.astype(np.int32))
