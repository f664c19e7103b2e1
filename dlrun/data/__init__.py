"""The data layer: dataset readers, checksummed downloads and the DataLoader.

The submodules ``text`` (language-modelling corpora), ``trees`` (trees, SST), ``listops``
(the ListOps generator), ``glove`` (word vectors), ``images`` (PNG files), ``cifar``,
``transforms`` and ``archive`` keep their names here: ``dlrun.data.text`` is the module
(whose builder of any text corpus is ``dlrun.data.text.text``) and ``dlrun.data.listops``
the module (whose builder is ``dlrun.data.listops.listops``), so config targets such as
``dlrun.data.text.ptb`` and ``dlrun.data.listops.listops`` resolve.
"""
from . import archive, cifar, glove, images, listops, text, transforms, trees
from .archive import extract_zip_members, safe_extract
from .cifar import cifar10, load_cifar10, read_cifar_batch
from .dataset import ArrayDataset
from .download import RemoteFile, default_root, fetch, fetch_all, sha256_of
from .errors import ChecksumError, CorruptFileError, DataError, DatasetNotFoundError
from .glove import load_embeddings, read_glove
from .idx import read_idx
from .listops import parse_listops
from .loader import DataLoader
from .text import TextCorpus, Vocab, batchify, load_ptb, ptb, pydoc_corpus
from .transforms import Compose, RandomCrop, RandomFlip, crop_flip
from .trees import Tree, TreeDataset, load_sst, parse_tree, read_trees, sst
from .vision import (Splits, IdxFiles, digits, fashion_mnist, idx_files, load_idx_dataset,
                     mnist)

__all__ = [
    "ArrayDataset", "ChecksumError", "Compose", "CorruptFileError", "DataError", "DataLoader",
    "DatasetNotFoundError", "IdxFiles", "RandomCrop", "RandomFlip", "RemoteFile", "Splits",
    "TextCorpus", "Tree", "TreeDataset", "Vocab", "archive", "batchify", "cifar", "cifar10",
    "crop_flip", "default_root", "digits", "extract_zip_members", "fashion_mnist", "fetch",
    "fetch_all", "glove", "idx_files", "images", "listops", "load_cifar10", "load_embeddings",
    "load_idx_dataset", "load_ptb", "load_sst", "mnist", "parse_listops", "parse_tree", "ptb",
    "pydoc_corpus", "read_cifar_batch", "read_glove", "read_idx", "read_trees", "safe_extract",
    "sha256_of", "sst", "text", "transforms", "trees",
]
