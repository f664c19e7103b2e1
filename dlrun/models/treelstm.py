"""Tree-LSTM classifier over parse trees (Tai, Socher & Manning 2015).

    word vectors -> Tree-LSTM cell at every node, children first -> dropout -> softmax layer

A leaf reads its word's vector; an inner node reads a zero vector and its children's states
(the constituency Tree-LSTM of Tai et al., where only the leaves carry words). The cell is
the Child-Sum one (any number of unordered children) or the N-ary one (``cell=binary``:
ordered children, each position with its own weights; N = ``arity``). The softmax layer
classifies every node (``classify=all``, as Tai et al. train on SST) or only the root.

A minibatch of trees of any shapes can be evaluated two ways, with the same outputs and
gradients:

* ``batched=False``: the seed's plain recursion, one node at a time (``_encode``), the
  readable reference. Its cost is a few engine ops per node, i.e. Python overhead.
* ``batched=True``: level by level, as TensorFlow Fold and DGL do. A node's level is its
  height (0 for leaves, else 1 + the largest height of its children), so all its children
  are on lower levels: one ``forward_batch`` call evaluates every node of a level across all
  trees of the minibatch, its children's states gathered from a table of the states computed
  so far (row 0 of the table is the zero state of an absent child, kept out by the mask).

Node order: the model's outputs list the nodes tree by tree, each tree in post-order
(``Tree.nodes()``: children before their parent, so a tree's root is its last node);
``TreeBatch`` holds that layout as arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .. import nn
from ..data.trees import Tree
from ..engine import NDArray, array, ops, zeros

__all__ = ["TreeLSTM", "TreeBatch", "FlatTree", "flatten_tree"]

CELLS = ("childsum", "binary")
CLASSIFY = ("all", "root")


@dataclass(frozen=True)
class FlatTree:
    """One tree as arrays over its nodes in post-order."""

    words: np.ndarray     # (n,) token id, -1 where the node has none (inner nodes)
    labels: np.ndarray    # (n,) class, -1 where the node has no target
    heights: np.ndarray   # (n,) 0 for leaves, else 1 + the largest height of the children
    children: np.ndarray  # (n, k) post-order positions of the children, in order; -1 pads


def flatten_tree(tree: Tree) -> FlatTree:
    """The arrays of ``tree`` (nodes in ``Tree.nodes()`` post-order)."""
    nodes = tree.nodes()
    where = {id(node): i for i, node in enumerate(nodes)}
    width = max(len(node.children) for node in nodes)
    children = np.full((len(nodes), width), -1, dtype=np.int64)
    heights = np.zeros(len(nodes), dtype=np.int64)
    for i, node in enumerate(nodes):
        if node.children:
            kids = [where[id(c)] for c in node.children]
            children[i, :len(kids)] = kids
            heights[i] = 1 + heights[kids].max()
    return FlatTree(np.array([n.word for n in nodes], dtype=np.int64),
                    np.array([n.label for n in nodes], dtype=np.int64), heights, children)


@dataclass(frozen=True)
class TreeBatch:
    """A minibatch of trees: their nodes, tree by tree in post-order, as arrays.

    ``children`` holds batch positions (-1 pads); ``roots`` the position of each tree's root;
    ``offsets`` where each tree's nodes start (and, last, the node count).
    """

    trees: tuple[Tree, ...]
    words: np.ndarray
    labels: np.ndarray
    heights: np.ndarray
    children: np.ndarray
    roots: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, trees: Sequence[Tree], flats: Sequence[FlatTree] | None = None) -> "TreeBatch":
        """The batch of ``trees``; ``flats``: their ``flatten_tree`` arrays, when already made."""
        trees = tuple(trees)
        if not trees:
            raise ValueError("TreeBatch: no trees")
        flats = [flatten_tree(t) for t in trees] if flats is None else list(flats)
        sizes = np.array([len(f.words) for f in flats], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        width = max(f.children.shape[1] for f in flats)
        children = np.full((int(offsets[-1]), width), -1, dtype=np.int64)
        for f, start in zip(flats, offsets[:-1]):
            block = children[start:start + len(f.words), :f.children.shape[1]]
            np.copyto(block, np.where(f.children >= 0, f.children + start, -1))
        return cls(trees, np.concatenate([f.words for f in flats]),
                   np.concatenate([f.labels for f in flats]),
                   np.concatenate([f.heights for f in flats]), children, offsets[1:] - 1, offsets)

    def __len__(self) -> int:
        return len(self.trees)

    @property
    def num_nodes(self) -> int:
        return len(self.words)


class TreeLSTM(nn.HybridBlock):
    """Tai et al. (2015) Tree-LSTM classifier; see the module docstring.

    ``hybridize()`` leaves it imperative, saying so once (its input is a tree batch whose
    shape drives the Python recursion or the level loop); its cell and layers are compiled.

    Parameters
    ----------
    vocab_size, classes: decided by the data when the config leaves them null.
    embed_size: word-vector size (that of ``dataset.embeddings`` when a file is given).
    hidden_size: memory dimension of the cell (Tai et al.: 150 for the constituency model).
    cell: ``childsum`` (any number of children) or ``binary`` (N-ary, at most ``arity``).
    classify: ``all`` nodes (every labelled node is a training target) or the ``root`` only.
    dropout: on the cell's output before the softmax layer.
    embedding_dropout: on the word vectors before the cell (as DGL's Tree-LSTM example does).
    batched: level-by-level evaluation (True) or the plain recursion (False).
    freeze_embeddings: keep the word vectors fixed (grad_req null).
    embedding_lr_mult, embedding_wd_mult: the word vectors' learning-rate and weight-decay
        multipliers (Tai et al. train them at lr 0.1 when the rest uses 0.05, unregularised).
    """

    def __init__(self, vocab_size: int | None = None, classes: int | None = None,
                 embed_size: int = 300,
                 hidden_size: int = 150, cell: str = "childsum", arity: int = 2,
                 classify: str = "all", dropout: float = 0.5, batched: bool = True,
                 freeze_embeddings: bool = False, embedding_lr_mult: float = 1.0,
                 embedding_wd_mult: float = 1.0, embedding_dropout: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if vocab_size is None or classes is None:
            raise ValueError("TreeLSTM reads trees: it needs a tree dataset to decide vocab_size "
                             "and classes; choose dataset=listops (embedded, offline) or "
                             "dataset=sst, or set model.vocab_size and model.classes")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if classify not in CLASSIFY:
            raise ValueError(f"classify must be one of {', '.join(CLASSIFY)}, got {classify!r}")
        self.cell_type, self.arity, self.classify, self.batched = cell, arity, classify, batched
        self.embed_size, self.hidden_size, self.classes = embed_size, hidden_size, classes
        self.embedding = nn.Embedding(vocab_size, embed_size,
                                      weight_initializer=nn.init.Uniform(0.05))
        weight = self.embedding.weight
        weight.lr_mult, weight.wd_mult = embedding_lr_mult, embedding_wd_mult
        if freeze_embeddings:
            weight.grad_req = "null"
        if cell == "childsum":
            self.cell = nn.ChildSumTreeLSTMCell(hidden_size, input_size=embed_size)
        else:
            self.cell = nn.BinaryTreeLSTMCell(hidden_size, input_size=embed_size, arity=arity)
        self.dropout = nn.Dropout(dropout)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.output = nn.Dense(classes, in_units=hidden_size)

    def load_embeddings(self, matrix: np.ndarray) -> None:
        """Copies pre-trained word vectors (one row per vocabulary entry) into the embedding."""
        want = self.embedding.weight.shape
        if tuple(matrix.shape) != tuple(want):
            raise ValueError(
                f"the word vectors are {matrix.shape[0]} x {matrix.shape[1]} (vocabulary x "
                f"dimension) but the model's embedding is {want[0]} x {want[1]}; set "
                f"model.embed_size={matrix.shape[1]}")
        self.embedding.weight.set_data(matrix)

    # ---- the forward pass ----
    def forward(self, trees: TreeBatch | Sequence[Tree], nodes: str | None = None) -> NDArray:
        """Logits of the nodes ``nodes`` (default: ``classify``) of every tree.

        ``all``: (nodes of the batch, classes), tree by tree in post-order (``TreeBatch``);
        ``root``: (trees, classes).
        """
        batch = trees if isinstance(trees, TreeBatch) else TreeBatch.of(trees)
        nodes = nodes or self.classify
        if nodes not in CLASSIFY:
            raise ValueError(f"nodes must be one of {', '.join(CLASSIFY)}, got {nodes!r}")
        self.check_children(int((batch.children >= 0).sum(axis=1).max()))
        encode = self.encode_levels if self.batched else self.encode_recursive
        h = encode(batch, nodes)
        return self.output(self.dropout(h))

    def check_children(self, most: int) -> None:
        """Raises ValueError when the cell cannot take nodes with ``most`` children."""
        if self.cell_type == "binary" and most > self.arity:
            raise ValueError(f"cell=binary (arity {self.arity}) takes at most {self.arity} "
                             f"children per node, but a tree has a node with {most}; use "
                             f"model.cell=childsum or model.arity={most}")

    def _zero(self, shape: tuple) -> NDArray:
        weight = self.embedding.weight.data()
        return zeros(shape, ctx=weight.ctx, dtype=weight.dtype)

    # (1) the plain recursion: one node at a time
    def encode_recursive(self, batch: TreeBatch, nodes: str = "all") -> NDArray:
        """Hidden states, node by node: the seed's recursion over each tree."""
        weight = self.embedding.weight.data()
        tokens = batch.words[batch.words >= 0]
        rows: list[NDArray] = []
        if len(tokens):  # one lookup for the batch, then one (1, C) row per token
            vectors = self.embedding_dropout(self.embedding(array(tokens, ctx=weight.ctx, dtype="int64")))
            rows = [vectors] if len(tokens) == 1 else list(ops.split_v2(vectors, len(tokens)))
        no_word = self._zero((1, self.embed_size))
        token_rows, states = iter(rows), []
        roots = [self._encode_tree(tree, token_rows, no_word, states)[0] for tree in batch.trees]
        return ops.concat(*(states if nodes == "all" else roots), dim=0)

    def _encode_tree(self, tree: Tree, token_rows: Iterator[NDArray], no_word: NDArray,
                     states: list[NDArray]) -> list[NDArray]:
        """The cell state of ``tree``'s root, its nodes' hidden states appended to ``states``
        in post-order (a method, not a closure calling itself: that cycle would keep the
        batch's graph alive until the garbage collector ran)."""
        children = [self._encode_tree(child, token_rows, no_word, states) for child in tree.children]
        x = next(token_rows) if tree.word >= 0 else no_word  # post-order, as `tokens`
        h, state = self.cell(x, children)
        states.append(h)
        return state

    # (2) level by level: one batched cell call per height
    def encode_levels(self, batch: TreeBatch, nodes: str = "all") -> NDArray:
        """Hidden states, all nodes of equal height across the batch at once."""
        weight = self.embedding.weight.data()
        ctx, dtype = weight.ctx, weight.dtype
        n = batch.num_nodes
        order = np.argsort(batch.heights, kind="stable")   # the nodes, level by level
        row = np.empty(n, dtype=np.int64)
        row[order] = np.arange(1, n + 1)                    # each node's row in the state table
        starts = np.flatnonzero(np.diff(batch.heights[order])) + 1
        bounds = [0, *starts.tolist(), n]
        # children as table rows: 0 (the zero state) where absent
        kids = np.where(batch.children >= 0, row[np.maximum(batch.children, 0)], 0)[order]
        words = batch.words[order]
        has_word = (words >= 0)
        x = self.embedding_dropout(self.embedding(array(np.maximum(words, 0), ctx=ctx, dtype="int64")))
        x = x * array(has_word[:, None], ctx=ctx, dtype=dtype)  # inner nodes read zeros
        xs = [x] if len(starts) == 0 else list(ops.split_v2(x, starts.tolist(), axis=0))
        H = self.hidden_size
        table_h = table_c = self._zero((1, H))
        for level, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            idx = kids[lo:hi]
            if self.cell_type == "childsum":
                idx = idx[:, :int((idx > 0).sum(axis=1).max())]  # children are packed left
            else:
                idx = np.pad(idx, ((0, 0), (0, self.arity - idx.shape[1])))[:, :self.arity]
            mask = array(idx > 0, ctx=ctx, dtype=dtype)
            if idx.shape[1] == 0:  # a level of leaves for the Child-Sum cell
                child_h = child_c = self._zero((hi - lo, 0, H))
            else:
                where = array(idx, ctx=ctx, dtype="int64")
                child_h, child_c = ops.take(table_h, where), ops.take(table_c, where)
            h, (_, c) = self.cell.forward_batch(xs[level], child_h, child_c, mask)
            table_h = ops.concat(table_h, h, dim=0)
            table_c = ops.concat(table_c, c, dim=0)
        wanted = row if nodes == "all" else row[batch.roots]
        return ops.take(table_h, array(wanted, ctx=ctx, dtype="int64"))

    def _extra_repr(self) -> str:
        return f"{self.cell_type}, classify={self.classify}, batched={self.batched}"
