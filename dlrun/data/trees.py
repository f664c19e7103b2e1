"""Tree-structured data for Tree-LSTMs: the Stanford Sentiment Treebank and ListOps.

A ``Tree`` is a labelled node with children; leaves carry a token id. Every builder returns
a ``TreeDataset`` of train/dev/test trees, the vocabulary and the number of classes. A node
whose label is -1 carries no target (neutral nodes of binary SST, operator leaves of ListOps).
"""
from __future__ import annotations

import gc
import logging
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .archive import extract_zip_members
from .download import RemoteFile, default_root, fetch, fetch_all
from .errors import CorruptFileError, DatasetNotFoundError
from .text import UNK, Vocab, read_utf8

log = logging.getLogger(__name__)

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
def _gc_paused():
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
    with _gc_paused():
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
    with _gc_paused():
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
        vectors, dim = read_glove(embeddings, _lookup_keys(list(vocab.itos) + list(other)))
        vocab = Vocab(vocab.itos + [w for w in other if _vector_of(w, vectors) is not None])
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


# ---- word vectors ----

_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{",
                "-RCB-": "}"}


def _candidates(word: str) -> list[str]:
    out = [word, word.lower()]
    if word in _PTB_ESCAPES:
        out.append(_PTB_ESCAPES[word])
    return out


def _lookup_keys(words) -> set[str]:
    return {c for w in words for c in _candidates(w)}


def _vector_of(word: str, vectors: dict[str, np.ndarray]) -> np.ndarray | None:
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
        vec = _vector_of(word, vectors)
        if vec is not None:
            matrix[i] = vec
            found += 1
    log.info("word vectors: %d of %d vocabulary entries found", found, len(vocab))
    return matrix


def load_embeddings(path: str | Path, vocab: Vocab, seed: int = 0) -> np.ndarray:
    """The (len(vocab), dim) float32 matrix of a GloVe-format file's vectors for ``vocab``."""
    vectors, dim = read_glove(path, _lookup_keys(vocab.itos))
    return embedding_matrix(vocab, vectors, dim, seed)


# ---- ListOps ----

LISTOPS_OPS = ("MAX", "MIN", "MED", "SM")
# digit d has id d, so a digit leaf's word is its value; the operators follow
LISTOPS_VOCAB_TOKENS = tuple(str(d) for d in range(10)) + LISTOPS_OPS + (UNK,)
_BRANCH_P = 0.25  # chance that an argument off the deepest path is itself an expression


def listops_vocab() -> Vocab:
    return Vocab(LISTOPS_VOCAB_TOKENS)


def listops_apply(op: str, values: list[int]) -> int:
    """MAX, MIN, MED (the lower median: ``sorted(values)[(n - 1) // 2]``) or SM (sum mod 10)."""
    if op == "MAX":
        return max(values)
    if op == "MIN":
        return min(values)
    if op == "MED":
        return sorted(values)[(len(values) - 1) // 2]
    if op == "SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {op!r}")


def listops(n_train: int = 2000, n_test: int = 500, max_depth: int = 4, max_args: int = 4,
            seed: int = 0, root: str | Path | None = None) -> TreeDataset:
    """ListOps-style nested expressions such as ``[MAX 2 [MIN 3 4] 9]`` (value 9).

    Operators: MAX, MIN, MED (lower median) and SM (sum mod 10), each over 2..``max_args``
    arguments, nested up to ``max_depth`` operator levels (each expression's depth is drawn
    uniformly from 1..max_depth). Every node's label is its value (10 classes).

    Tree layout: an expression is an inner node (``word == -1``) whose FIRST child is a
    leaf holding the operator token, followed by one child per argument; the operator leaf
    has label -1 (no target). A digit is a leaf whose word is the digit's token id, equal
    to the digit (``listops_vocab()``), and whose label is the digit. So tokens sit only on
    leaves, as in SST, and a Tree-LSTM reads both datasets the same way.

    The dev set has ``n_test`` trees. No expression occurs twice across the three splits.
    The data are fixed by the arguments (each split draws from its own seeded stream).
    ``root`` is unused; it is accepted so that every builder takes the same arguments.
    """
    if max_depth < 1 or max_args < 2:
        raise ValueError(f"listops: max_depth must be >= 1 and max_args >= 2, got "
                         f"{max_depth} and {max_args}")
    with _gc_paused():
        return _draw_listops(n_train, n_test, max_depth, max_args, seed)


def _draw_listops(n_train: int, n_test: int, max_depth: int, max_args: int,
                  seed: int) -> TreeDataset:
    vocab = listops_vocab()
    seen: set[str] = set()
    streams = np.random.SeedSequence(seed).spawn(3)
    splits = []
    for size, stream in zip((n_train, n_test, n_test), streams):
        rng = np.random.default_rng(stream)
        trees, attempts = [], 0
        while len(trees) < size:
            attempts += 1
            if attempts > 100 * size + 1000:
                raise ValueError(f"listops: cannot draw {n_train} + 2 x {n_test} distinct "
                                 f"expressions with max_depth={max_depth}, "
                                 f"max_args={max_args}; ask for fewer")
            expr = _draw(rng, int(rng.integers(1, max_depth + 1)), max_args)
            key = format_listops(expr)
            if key not in seen:
                seen.add(key)
                trees.append(_listops_tree(expr, vocab))
        splits.append(trees)
    return TreeDataset(*splits, vocab=vocab, num_classes=10)


def _draw(rng: np.random.Generator, depth: int, max_args: int) -> list:
    """A nested list [op, arg, ...] with exactly ``depth`` operator levels."""
    op = LISTOPS_OPS[int(rng.integers(len(LISTOPS_OPS)))]
    n = int(rng.integers(2, max_args + 1))
    spine = int(rng.integers(n)) if depth > 1 else -1
    args: list = []
    for i in range(n):
        if i == spine:
            args.append(_draw(rng, depth - 1, max_args))
        elif depth > 1 and rng.random() < _BRANCH_P:
            args.append(_draw(rng, int(rng.integers(1, depth)), max_args))
        else:
            args.append(int(rng.integers(10)))
    return [op, *args]


def format_listops(expr) -> str:
    """``[MAX 2 [MIN 3 4] 9]`` for a nested list, or for a ListOps ``Tree``."""
    if isinstance(expr, Tree):
        expr = _tree_to_expr(expr)
    if isinstance(expr, int):
        return str(expr)
    return "[" + " ".join([expr[0]] + [format_listops(a) for a in expr[1:]]) + "]"


def _tree_to_expr(tree: Tree):
    if not tree.children:
        return int(LISTOPS_VOCAB_TOKENS[tree.word])
    return [LISTOPS_VOCAB_TOKENS[tree.children[0].word],
            *(_tree_to_expr(c) for c in tree.children[1:])]


def parse_listops(text: str) -> Tree:
    """The ListOps tree of an expression such as ``[SM 7 [MED 1 9 4] 8]``, labels computed."""
    tokens = text.replace("[", " [ ").replace("]", " ] ").split()
    stack: list[list] = [[]]
    for i, tok in enumerate(tokens):
        if tok == "[":
            stack.append([])
        elif tok == "]":
            if len(stack) < 2:
                raise ValueError(f"ListOps: unbalanced ']' at token {i} of {text!r}")
            expr = stack.pop()
            if not expr or expr[0] not in LISTOPS_OPS or len(expr) < 2:
                raise ValueError(f"ListOps: bad expression {expr} in {text!r}")
            stack[-1].append(expr)
        elif tok in LISTOPS_OPS:
            stack[-1].append(tok)
        elif tok.isdigit() and len(tok) == 1:
            stack[-1].append(int(tok))
        else:
            raise ValueError(f"ListOps: unknown token {tok!r} in {text!r}")
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ValueError(f"ListOps: {text!r} is not one balanced expression")
    return _listops_tree(stack[0][0], listops_vocab())


def _listops_tree(expr, vocab: Vocab) -> Tree:
    if isinstance(expr, int):
        return Tree(expr, [], word=expr)
    children = [_listops_tree(a, vocab) for a in expr[1:]]
    value = listops_apply(expr[0], [c.label for c in children])
    return Tree(value, [Tree(IGNORE, [], word=vocab.stoi[expr[0]])] + children)


def iter_nodes(trees: list[Tree]) -> Iterator[Tree]:
    """Every node of every tree, each tree in post-order."""
    for tree in trees:
        yield from tree.nodes()
