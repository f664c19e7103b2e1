"""ListOps-style nested expressions (``[MAX 2 [MIN 3 4] 9]``), generated offline as trees
for a Tree-LSTM: ``listops`` draws a ``TreeDataset`` of them, ``parse_listops`` /
``format_listops`` go between the bracketed text and a ``Tree``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .text import UNK, Vocab
from .trees import IGNORE, Tree, TreeDataset, gc_paused

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
    with gc_paused():
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


__all__ = ["LISTOPS_OPS", "LISTOPS_VOCAB_TOKENS", "format_listops", "listops", "listops_apply",
           "listops_vocab", "parse_listops"]
