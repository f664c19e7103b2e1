"""Tree-LSTM cells (Tai, Socher & Manning 2015): Child-Sum and N-ary, as in the seed.

Each cell has two entry points that compute the same thing:

- ``forward(x, children_states)`` for the recursive, one-node-at-a-time use of the seed::

      def encode(cell, tree):                      # x[tree.idx]: (1, C)
          states = [encode(cell, child)[1] for child in tree.children]
          return cell(x[tree.idx], states)         # (h, [h, c])

- ``forward_batch(x, child_h, child_c, child_mask)`` for level-by-level evaluation of
  many nodes at once, children padded to a common count and marked by ``child_mask``.

Both return ``(h, [h, c])`` like the recurrent cells.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..engine import NDArray, ones, ops, zeros
from .block import HybridBlock
from .parameter import Parameter

__all__ = ["ChildSumTreeLSTMCell", "BinaryTreeLSTMCell"]


def _check_input(cell: HybridBlock, x: NDArray) -> None:
    if x.ndim != 2:
        raise ValueError(f"{type(cell).__name__} takes node inputs of shape (nodes, features), got "
                         f"{x.shape}; a single node is x.reshape(1, -1)")


def _check_children(cell: HybridBlock, x: NDArray, child_h: NDArray, child_c: NDArray,
                    child_mask: NDArray | None, hidden: int) -> None:
    b = x.shape[0]
    if child_h.ndim != 3 or child_h.shape[0] != b or child_h.shape[2] != hidden \
            or child_c.shape != child_h.shape:
        raise ValueError(f"{type(cell).__name__}: child_h and child_c must both be (nodes={b}, "
                         f"children, hidden={hidden}), got {child_h.shape} and {child_c.shape}")
    if child_mask is not None and tuple(child_mask.shape) != tuple(child_h.shape[:2]):
        raise ValueError(f"{type(cell).__name__}: child_mask must be {tuple(child_h.shape[:2])}, "
                         f"got {child_mask.shape}")


class ChildSumTreeLSTMCell(HybridBlock):
    """Child-Sum Tree-LSTM node (Tai et al. 2015, eq. 2-8) over any number of unordered children.

        h~ = sum_k h_k
        [i, o, u] = [sigmoid, sigmoid, tanh](W_iou x + b_iou + U_iou h~ + b'_iou)
        f_k = sigmoid(W_f x + b_f + U_f h_k + b'_f)
        c = i * u + sum_k f_k * c_k;   h = o * tanh(c)

    Parameters (the seed's layout, ``ops.child_sum_tree_lstm_cell``): i2h_weight (4H, C) in
    gate order i, o, u, f and i2h_bias (4H,); hs2h_weight (3H, H), hs2h_bias (3H,);
    hc2h_weight (H, H), hc2h_bias (H,).
    """

    def __init__(self, hidden_size: int, input_size: int = 0, i2h_weight_initializer: Any = None,
                 hs2h_weight_initializer: Any = None, hc2h_weight_initializer: Any = None,
                 i2h_bias_initializer: Any = "zeros", hs2h_bias_initializer: Any = "zeros",
                 hc2h_bias_initializer: Any = "zeros", dtype: Any = "float32", **kwargs: Any):
        super().__init__(**kwargs)
        H = self._hidden_size = hidden_size
        self.i2h_weight = Parameter("i2h_weight", shape=(4 * H, input_size), dtype=dtype,
                                    init=i2h_weight_initializer)
        self.hs2h_weight = Parameter("hs2h_weight", shape=(3 * H, H), dtype=dtype,
                                     init=hs2h_weight_initializer)
        self.hc2h_weight = Parameter("hc2h_weight", shape=(H, H), dtype=dtype,
                                     init=hc2h_weight_initializer)
        self.i2h_bias = Parameter("i2h_bias", shape=(4 * H,), dtype=dtype, init=i2h_bias_initializer)
        self.hs2h_bias = Parameter("hs2h_bias", shape=(3 * H,), dtype=dtype, init=hs2h_bias_initializer)
        self.hc2h_bias = Parameter("hc2h_bias", shape=(H,), dtype=dtype, init=hc2h_bias_initializer)

    def forward(self, x: NDArray, children_states: Sequence[Sequence[NDArray]] = ()
                ) -> tuple[NDArray, list[NDArray]]:
        """One node (or a batch of nodes with equally many children): x (B, C), children's [h, c]."""
        _check_input(self, x)
        H, b = self._hidden_size, x.shape[0]
        if children_states:
            child_h = ops.stack(*[s[0] for s in children_states], axis=1)
            child_c = ops.stack(*[s[1] for s in children_states], axis=1)
        else:  # a leaf: no children at all
            child_h = child_c = zeros((b, 0, H), ctx=x.ctx, dtype=x.dtype)
        return self.forward_batch(x, child_h, child_c)

    def forward_batch(self, x: NDArray, child_h: NDArray, child_c: NDArray,
                      child_mask: NDArray | None = None) -> tuple[NDArray, list[NDArray]]:
        """B nodes at once: child_h, child_c (B, K, H) padded; child_mask (B, K) 1 for real children."""
        _check_input(self, x)
        _check_children(self, x, child_h, child_c, child_mask, self._hidden_size)
        if child_mask is None:
            child_mask = ones(child_h.shape[:2], ctx=x.ctx, dtype=x.dtype)
        self.i2h_weight.shape = (4 * self._hidden_size, x.shape[1])
        h, c = ops.child_sum_tree_lstm_cell(
            x, child_h, child_c, child_mask, self.i2h_weight.data(), self.i2h_bias.data(),
            self.hs2h_weight.data(), self.hs2h_bias.data(), self.hc2h_weight.data(),
            self.hc2h_bias.data())
        return h, [h, c]

    def _extra_repr(self) -> str:
        return f"{self.i2h_weight.shape[1] or None} -> {self._hidden_size}"


class BinaryTreeLSTMCell(HybridBlock):
    """N-ary Tree-LSTM node (Tai et al. 2015, eq. 9-14; N = ``arity``, 2 by default).

    Children are ordered (left, right, ...) and each position has its own weights; every
    child k gets its own forget gate, which reads all children's h:

        z = W x + b + U [h_1, ..., h_N] + b'
        [i, o, u, f_1..f_N] = [sigmoid, sigmoid, tanh, sigmoid..](z)
        c = i * u + sum_k f_k * c_k;   h = o * tanh(c)

    (The seed's "individual weights" form: W also has its own rows per forget gate, where
    the paper shares W_f between children.) Absent children have zero states.
    Parameters (``ops.nary_tree_lstm_cell``): i2h_weight ((3+N)H, C), i2h_bias ((3+N)H,),
    h2h_weight ((3+N)H, N*H), h2h_bias ((3+N)H,), gate order i, o, u, f_1..f_N.
    """

    def __init__(self, hidden_size: int, input_size: int = 0, arity: int = 2,
                 i2h_weight_initializer: Any = None, h2h_weight_initializer: Any = None,
                 i2h_bias_initializer: Any = "zeros", h2h_bias_initializer: Any = "zeros",
                 dtype: Any = "float32", **kwargs: Any):
        super().__init__(**kwargs)
        if arity < 1:
            raise ValueError(f"arity must be at least 1, got {arity}")
        H = self._hidden_size = hidden_size
        self._arity = arity
        gh = (3 + arity) * H
        self.i2h_weight = Parameter("i2h_weight", shape=(gh, input_size), dtype=dtype,
                                    init=i2h_weight_initializer)
        self.h2h_weight = Parameter("h2h_weight", shape=(gh, arity * H), dtype=dtype,
                                    init=h2h_weight_initializer)
        self.i2h_bias = Parameter("i2h_bias", shape=(gh,), dtype=dtype, init=i2h_bias_initializer)
        self.h2h_bias = Parameter("h2h_bias", shape=(gh,), dtype=dtype, init=h2h_bias_initializer)

    def forward(self, x: NDArray, children_states: Sequence[Sequence[NDArray] | None] = ()
                ) -> tuple[NDArray, list[NDArray]]:
        """One node: x (B, C); children_states: up to ``arity`` [h, c] in order, None where absent."""
        _check_input(self, x)
        if len(children_states) > self._arity:
            raise ValueError(f"BinaryTreeLSTMCell(arity={self._arity}) got {len(children_states)} children")
        H, b = self._hidden_size, x.shape[0]
        states = list(children_states) + [None] * (self._arity - len(children_states))
        zero = zeros((b, H), ctx=x.ctx, dtype=x.dtype)
        child_h = ops.stack(*[zero if s is None else s[0] for s in states], axis=1)
        child_c = ops.stack(*[zero if s is None else s[1] for s in states], axis=1)
        return self.forward_batch(x, child_h, child_c)

    def forward_batch(self, x: NDArray, child_h: NDArray, child_c: NDArray,
                      child_mask: NDArray | None = None) -> tuple[NDArray, list[NDArray]]:
        """B nodes at once: child_h, child_c (B, arity, H); child_mask (B, arity) zeroes absent children."""
        _check_input(self, x)
        _check_children(self, x, child_h, child_c, child_mask, self._hidden_size)
        if child_h.shape[1] != self._arity:
            raise ValueError(f"BinaryTreeLSTMCell(arity={self._arity}) needs child states of shape "
                             f"(B, {self._arity}, H), got {child_h.shape}")
        if child_mask is not None:
            m = ops.expand_dims(child_mask.astype(x.dtype), axis=2)
            child_h, child_c = child_h * m, child_c * m
        self.i2h_weight.shape = ((3 + self._arity) * self._hidden_size, x.shape[1])
        h, c = ops.nary_tree_lstm_cell(x, child_h, child_c, self.i2h_weight.data(),
                                       self.i2h_bias.data(), self.h2h_weight.data(),
                                       self.h2h_bias.data())
        return h, [h, c]

    def _extra_repr(self) -> str:
        return f"{self.i2h_weight.shape[1] or None} -> {self._hidden_size}, arity={self._arity}"
