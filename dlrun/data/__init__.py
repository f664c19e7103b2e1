"""The data layer: dataset readers, checksummed downloads and the DataLoader."""
from .dataset import ArrayDataset
from .download import RemoteFile, default_root, fetch, fetch_all, sha256_of
from .errors import ChecksumError, CorruptFileError, DataError, DatasetNotFoundError
from .idx import read_idx
from .loader import DataLoader
from .vision import (Splits, IdxFiles, digits, fashion_mnist, idx_files, load_idx_dataset,
                     mnist)

__all__ = [
    "ArrayDataset", "ChecksumError", "CorruptFileError", "DataError", "DataLoader",
    "DatasetNotFoundError", "IdxFiles", "RemoteFile", "Splits", "default_root", "digits",
    "fashion_mnist", "fetch", "fetch_all", "idx_files", "load_idx_dataset", "mnist",
    "read_idx", "sha256_of",
]
