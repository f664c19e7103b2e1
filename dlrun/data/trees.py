"""Tree-structured data for Tree-LSTMs: trees, their bracketed format, the Stanford Sentiment
Treebank and ``TreeDataset``.

A ``Tree`` is a labelled node with children; leaves carry a token id. Every builder returns
a ``TreeDataset`` of train/dev/test trees, the vocabulary and the number of classes. A node
whose label is -1 carries no target (neutral nodes of binary SST, operator leaves of ListOps).
The ListOps generator is ``dlrun.data.listops``; the GloVe reader ``dlrun.data.glove``.
"""
from __future__ import annotations

import gc
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .archive import extract_zip_members
from .download import RemoteFile, default_root, fetch, fetch_all
from .errors import CorruptFileError, DatasetNotFoundError
from .glove import embedding_matrix, lookup_keys, read_glove, vector_of
from .text import Vocab, read_utf8

IGNORE = -1  # the label of a node that carries no target


@dataclass(repr=False)
class Tree:
    """A node: its label, its children (none for a leaf) and, for a leaf, its token id."""

    label: int
    children: list["Tree"]
    word: int = -1  # token id for a leaf, -1 for inner nodes

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def leaves(self) -> list["Tree"]:
        """The leaves, left to right."""
        out, stack = [], [self]
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(reversed(node.children))
            else:
                out.append(node)
        return out

    def nodes(self) -> list["Tree"]:
        """Every node in post-order (children before their parent, left to right)."""
        out, stack = [], [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded or not node.children:
                out.append(node)
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.children))
        return out

    def height(self) -> int:
        """0 for a leaf, else 1 + the largest height of the children."""
        heights: dict[int, int] = {}
        for node in self.nodes():
            heights[id(node)] = 1 + max(heights[id(c)] for c in node.children) \
                if node.children else 0
        return heights[id(self)]

    @property
    def num_nodes(self) -> int:
        return len(self.nodes())

    def to_string(self, vocab: Vocab | None = None) -> str:
        """The tree in the bracketed format of SST: ``(label word)`` / ``(label child ...)``."""
        parts: list[str] = []
        stack: list[object] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif item.children:
                parts.append(f"({item.label}")
                stack.append(")")
                for child in reversed(item.children):
                    stack.extend([child, " "])
            else:
                word = vocab.itos[item.word] if vocab is not None else str(item.word)
                parts.append(f"({item.label} {word})")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Tree({self.to_string()})"


@dataclass(eq=False)
class TreeDataset:
    """Trees of the three splits, the vocabulary of their leaf tokens and the class count."""

    train: list[Tree]
    dev: list[Tree]
    test: list[Tree]
    vocab: Vocab
    num_classes: int
    embeddings: np.ndarray | None = None  # (len(vocab), dim) pre-trained word vectors
    task = "tree_sentiment"  # the training loop the runner picks (dlrun.runner.tasks)

    @property
    def model_args(self) -> dict:
        """Model arguments the data decides: a model config's null vocab_size / classes."""
        return {"vocab_size": len(self.vocab), "classes": self.num_classes}


@contextmanager
def gc_paused():
    """Pauses the cyclic garbage collector while many small nodes are built: its passes over
    the growing heap otherwise cost three times the parsing itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---- the bracketed (PTB-style) tree format ----

# words are split at ASCII white space only: SST has words with a no-break space ("8\xa01\\/2")
_TOKEN_RE = re.compile(r"\(|\)|[^ \t\n\r\f\v()]+")


def parse_tree(line: str, num_labels: int = 5, where: str = "tree") -> tuple[Tree, list[str]]:
    """Parses one bracketed tree such as ``(3 (2 It) (4 (2 's) (3 fun)))``.

    Returns the tree, whose leaves have ``word == -1`` for now, and the leaf words left to
    right. Labels must be integers in ``[0, num_labels)``. Raises CorruptFileError starting
    with ``where`` (for instance ``"train.txt, line 12"``) and giving the column.
    """
    # a frame is [label, children, word, column of its '(']
    stack: list[list] = []
    words: list[str] = []
    root: Tree | None = None

    def fail(what: str, column: int) -> CorruptFileError:
        return CorruptFileError(f"{where}, column {column + 1}: {what}")

    for m in _TOKEN_RE.finditer(line):
        tok = m.group()
        if root is not None:
            if tok == ")":
                raise fail("unbalanced brackets: ')' closes nothing, the tree has ended",
                           m.start())
            raise fail(f"unbalanced brackets: {tok!r} after the tree's closing ')'", m.start())
        if tok == "(":
            if stack:
                parent = stack[-1]
                if parent[0] is None:
                    raise fail("a node opens before its label", m.start())
                if parent[2] is not None:
                    raise fail("a node mixes a word and subtrees", m.start())
            stack.append([None, [], None, m.start()])
        elif tok == ")":
            if not stack:
                raise fail("unbalanced brackets: ')' closes nothing", m.start())
            label, children, word, column = stack.pop()
            if label is None:
                raise fail("a node without a label", column)
            if word is not None:
                words.append(word)  # leaves close left to right
            elif not children:
                raise fail("a node without a word or children", column)
            node = Tree(label, children)
            if stack:
                stack[-1][1].append(node)
            else:
                root = node
        else:
            if not stack:
                raise fail(f"text {tok!r} outside brackets", m.start())
            frame = stack[-1]
            if frame[0] is None:
                if not (tok.isascii() and tok.isdigit()):
                    raise fail(f"the label {tok!r} is not an integer", m.start())
                label = int(tok)
                if label >= num_labels:
                    raise fail(f"the label {label} is outside 0..{num_labels - 1}", m.start())
                frame[0] = label
            elif frame[1]:
                raise fail(f"a node mixes subtrees and the word {tok!r}", m.start())
            elif frame[2] is not None:
                raise fail(f"a leaf with two words {frame[2]!r} and {tok!r}", m.start())
            else:
                frame[2] = tok
    if stack:
        raise fail(f"unbalanced brackets: {len(stack)} '(' never closed", stack[-1][3])
    if root is None:
        raise fail("no tree", 0)
    return root, words


def read_trees(path: str | Path, num_labels: int = 5) -> list[tuple[Tree, list[str]]]:
    """Every tree of a file with one bracketed tree per line (blank lines skipped), each with
    its leaf words. Errors name the file and the line."""
    path = Path(path)
    out = []
    with gc_paused():
        for lineno, line in enumerate(read_utf8(path).split("\n"), start=1):
            if line.strip():
                out.append(parse_tree(line, num_labels, where=f"{path}, line {lineno}"))
    if not out:
        raise CorruptFileError(f"{path}: no trees; the file is empty or truncated")
    return out


# ---- Stanford Sentiment Treebank ----

SST_FILENAMES = ("train.txt", "dev.txt", "test.txt")  # SstFiles order
SST_SHA256 = {
    "train.txt": "e2f3f41b0b1e6d4dddc0effe3bfc2d27ed8928079aa9a03d652311614fc5feb7",
    "dev.txt": "0e9336aed6e4730e19f58d00a77b3f0297efdb755f7b5e598c98a05e3f97ea40",
    "test.txt": "6e54806dee95cf80cd918e7dfb3f6770f6df24bf826f289a4d1f709e1c8f6761",
}
# the official archive, whose trees/*.txt members are the files above
SST_ZIP = RemoteFile("trainDevTestTrees_PTB.zip",
                     "5c613a4f673fc74097d523a2c83f38e0cc462984d847b82c7aaf36b01cbbbfcc",
                     ("https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip",))
SST_ZIP_FOLDER = "trees/"


class SstFiles(NamedTuple):
    """The three tree files of SST and the archive that holds them under ``trees/``."""

    train: RemoteFile
    dev: RemoteFile
    test: RemoteFile
    archive: RemoteFile


def sst_files(sha256: dict[str, str] | None = None, archive: RemoteFile | None = None) -> SstFiles:
    """The SST file table: ``sha256`` defaults to ``SST_SHA256``, ``archive`` to ``SST_ZIP``."""
    sha256 = SST_SHA256 if sha256 is None else sha256
    return SstFiles(*(RemoteFile(n, sha256[n], ()) for n in SST_FILENAMES),
                    SST_ZIP if archive is None else archive)


def sst(root: str | Path | None = None, fine_grained: bool = True,
        embeddings: str | Path | None = None) -> TreeDataset:
    """The Stanford Sentiment Treebank from ``root/sst/{train,dev,test}.txt``.

    The files are verified against their published SHA-256; when one is missing the
    official ``trainDevTestTrees_PTB.zip`` is downloaded (SHA-256 checked) and unpacked.
    ``fine_grained``: 5 classes, labels 0..4 on every node. Otherwise binary (Tai et al.
    2015): 0, 1 -> 0 and 3, 4 -> 1, neutral nodes get label -1 (no target), and sentences
    whose root is neutral are dropped. ``embeddings``: a GloVe-format text file, see
    ``load_sst``.
    """
    folder = (default_root() if root is None else Path(root).expanduser()) / "sst"
    return load_sst(folder, sst_files(), fine_grained, embeddings)


def load_sst(folder: str | Path, files: SstFiles, fine_grained: bool = True,
             embeddings: str | Path | None = None, seed: int = 0) -> TreeDataset:
    """SST from ``files`` under ``folder`` (fetched from ``files.archive`` if missing).

    The vocabulary holds ``'<unk>'`` and the words of the training trees, most frequent
    first; leaves of dev/test words outside it get the ``'<unk>'`` id. With ``embeddings``
    (a GloVe-format text file, ``word v1 ... vd`` per line), the vocabulary also takes in
    the dev/test words the file has a vector for (no labels are used), and
    ``TreeDataset.embeddings`` holds one row per vocabulary entry: the file's vector for
    the word (else for its lowercase form), or U(-0.05, 0.05) drawn with ``seed``.
    """
    folder = Path(folder)
    paths = _fetch_sst(folder, files)
    with gc_paused():
        return _build_sst(paths, fine_grained, embeddings, seed)


def _build_sst(paths: list[Path], fine_grained: bool, embeddings: str | Path | None,
               seed: int) -> TreeDataset:
    splits = [read_trees(p) for p in paths]
    if not fine_grained:
        splits = [[(t, w) for t, w in split if _binarise(t)] for split in splits]
    train_words = Counter(w for _, words in splits[0] for w in words)
    vocab = Vocab.build(train_words.elements())
    matrix = None
    if embeddings is not None:
        other = dict.fromkeys(w for split in splits[1:] for _, words in split for w in words
                              if w not in vocab)
        vectors, dim = read_glove(embeddings, lookup_keys(list(vocab.itos) + list(other)))
        vocab = Vocab(vocab.itos + [w for w in other if vector_of(w, vectors) is not None])
        matrix = embedding_matrix(vocab, vectors, dim, seed)
    for split in splits:
        for tree, words in split:
            for leaf, word_id in zip(tree.leaves(), vocab.encode(words).tolist()):
                leaf.word = word_id
    train, dev, test = ([t for t, _ in split] for split in splits)
    return TreeDataset(train, dev, test, vocab, 5 if fine_grained else 2, matrix)


def _fetch_sst(folder: Path, files: SstFiles) -> list[Path]:
    tree_files = [files.train, files.dev, files.test]
    missing = [f for f in tree_files if not (folder / f.filename).exists()]
    if missing:
        try:
            archive = fetch(folder, files.archive.filename, list(files.archive.urls),
                            files.archive.sha256)
        except DatasetNotFoundError as e:
            needed = "\n".join(f"  {f.filename}  sha256 {f.sha256}" for f in missing)
            raise DatasetNotFoundError(
                f"SST tree files missing from {folder}:\n{needed}\nand the archive that holds "
                f"them could not be fetched either:\n{e}") from None
        extract_zip_members(archive, {SST_ZIP_FOLDER + f.filename: folder / f.filename
                                      for f in missing})
    return fetch_all(folder, tree_files)  # verifies every file's SHA-256


def _binarise(tree: Tree) -> bool:
    """Maps the labels of ``tree`` to binary in place; False when its root is neutral."""
    for node in tree.nodes():
        node.label = 0 if node.label < 2 else 1 if node.label > 2 else IGNORE
    return tree.label != IGNORE
