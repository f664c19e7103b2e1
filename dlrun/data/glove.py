"""Word vectors in the GloVe text format (``word v1 ... vd`` per line; word2vec / fastText
``.vec`` files too): ``read_glove`` reads the vectors of the words asked for, and
``embedding_matrix`` / ``load_embeddings`` turn them into a vocabulary's embedding matrix.
A word is looked up as it is, in lowercase, and for a PTB escape such as ``-LRB-`` as the
bracket it stands for.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .errors import CorruptFileError, DatasetNotFoundError
from .text import Vocab

log = logging.getLogger(__name__)

_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{",
                "-RCB-": "}"}


def _candidates(word: str) -> list[str]:
    out = [word, word.lower()]
    if word in _PTB_ESCAPES:
        out.append(_PTB_ESCAPES[word])
    return out


def lookup_keys(words) -> set[str]:
    return {c for w in words for c in _candidates(w)}


def vector_of(word: str, vectors: dict[str, np.ndarray]) -> np.ndarray | None:
    for c in _candidates(word):
        if c in vectors:
            return vectors[c]
    return None


def read_glove(path: str | Path,
               words: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """The vectors of ``words`` (all words when None) in a GloVe-format text file, and their
    dimension.

    Each line is ``word v1 ... vd`` separated by single spaces; a word may itself contain
    spaces (as a few in glove.840B do). A leading ``count dim`` header line (word2vec /
    fastText ``.vec`` files) is skipped. Raises CorruptFileError with the line number for a
    line with too few values or a value that is not a number.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such word-vector file; point "
                                   f"dataset.embeddings at a GloVe-format text file")
    wanted = None if words is None else {w.encode("utf-8"): w for w in words}
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip()
            if not line:
                continue
            if dim is None:
                fields = line.split()
                if lineno == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                    continue  # "count dim" header
                dim = len(fields) - 1
                if dim < 1:
                    raise CorruptFileError(f"{path}, line {lineno}: a word without a vector")
            if line.count(b" ") < dim:
                raise CorruptFileError(f"{path}, line {lineno}: fewer than {dim} values (the "
                                       f"dimension of the first vector); the file is "
                                       f"truncated or damaged")
            head, _, rest = line.partition(b" ")
            values = rest.split(b" ")
            if len(values) != dim:  # a word with spaces: the vector is the last dim fields
                fields = line.split(b" ")
                head, values = b" ".join(fields[:-dim]), fields[-dim:]
            if wanted is not None and head not in wanted:
                continue
            try:
                vec = np.array([float(v) for v in values], dtype=np.float32)
            except ValueError:
                raise CorruptFileError(f"{path}, line {lineno}: a value that is not a "
                                       f"number") from None
            word = wanted[head] if wanted is not None else head.decode("utf-8", "replace")
            vectors.setdefault(word, vec)
    if dim is None:
        raise CorruptFileError(f"{path}: no word vectors; the file is empty")
    return vectors, dim


def embedding_matrix(vocab: Vocab, vectors: dict[str, np.ndarray], dim: int,
                     seed: int = 0) -> np.ndarray:
    """A float32 (len(vocab), dim) matrix: each word's vector (exact, lowercase, or the
    bracket a PTB escape like ``-LRB-`` stands for), else U(-0.05, 0.05) drawn with ``seed``."""
    matrix = np.random.default_rng(seed).uniform(-0.05, 0.05, (len(vocab), dim))
    matrix = matrix.astype(np.float32)
    found = 0
    for i, word in enumerate(vocab.itos):
        vec = vector_of(word, vectors)
        if vec is not None:
            matrix[i] = vec
            found += 1
    log.info("word vectors: %d of %d vocabulary entries found", found, len(vocab))
    return matrix


def load_embeddings(path: str | Path, vocab: Vocab, seed: int = 0) -> np.ndarray:
    """The (len(vocab), dim) float32 matrix of a GloVe-format file's vectors for ``vocab``."""
    vectors, dim = read_glove(path, lookup_keys(vocab.itos))
    return embedding_matrix(vocab, vectors, dim, seed)


__all__ = ["embedding_matrix", "load_embeddings", "lookup_keys", "read_glove", "vector_of"]
