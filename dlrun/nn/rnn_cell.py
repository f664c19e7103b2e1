"""Recurrent cells (Gluon's ``rnn.RNNCell``, ``LSTMCell``, ``GRUCell``...) and ``unroll``.

A cell computes one time step: ``output, new_states = cell(x, states)`` with x (N, C) and
states a list of (N, H) arrays. ``unroll`` runs it over a sequence. The step functions
below are shared with the fused multi-layer layers of :mod:`.rnn_layer`, so that a layer
and its cells compute the same thing by construction.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..engine import NDArray, array, autograd, ops, zeros
from .activations import get_activation
from .block import HybridBlock
from .parameter import Parameter

__all__ = ["RecurrentCell", "RNNCell", "LSTMCell", "GRUCell", "SequentialRNNCell", "DropoutCell"]


# ---- one step, given the input projection i2h = x @ i2h_weight.T + i2h_bias ----

def rnn_recur(i2h: NDArray, h: NDArray, h2h_weight: NDArray, h2h_bias: NDArray,
              activation: Callable) -> NDArray:
    """Elman RNN: h' = act(W_i x + b_i + W_h h + b_h)."""
    return activation(i2h + ops.fully_connected(h, h2h_weight, h2h_bias, flatten=False))


def gru_recur(i2h: NDArray, h: NDArray, h2h_weight: NDArray, h2h_bias: NDArray) -> NDArray:
    """GRU step, gate order r, z, n with the reset gate applied to the h2h product (MXNet, cuDNN).

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Cho et al. (2014) write n = tanh(W x + U (r * h)); MXNet and cuDNN move r after the
    product (and its bias), which lets all h2h gates share one GEMM.
    """
    h2h = ops.fully_connected(h, h2h_weight, h2h_bias, flatten=False)
    i_r, i_z, i_n = ops.split(i2h, num_outputs=3, axis=1)
    h_r, h_z, h_n = ops.split(h2h, num_outputs=3, axis=1)
    r = ops.sigmoid(i_r + h_r)
    z = ops.sigmoid(i_z + h_z)
    n = ops.tanh(i_n + r * h_n)
    return n + z * (h - n)


# ---- sequences: splitting along time and putting back together ----

def time_axis(layout: str) -> int:
    """0 for 'TNC', 1 for 'NTC'."""
    if layout not in ("TNC", "NTC"):
        raise ValueError(f"layout must be 'TNC' (time major) or 'NTC' (batch major), got {layout!r}")
    return layout.index("T")


def split_steps(x: NDArray, axis: int) -> list[NDArray]:
    """The time steps of a sequence tensor, squeezed (one op, one backward)."""
    if x.shape[axis] == 0:
        raise ValueError(f"cannot unroll an empty sequence (shape {x.shape}, time axis {axis})")
    steps = ops.split(x, num_outputs=x.shape[axis], axis=axis, squeeze_axis=True)
    return list(steps) if isinstance(steps, tuple) else [steps]


def _as_steps(inputs: Any, length: int, axis: int) -> tuple[list[NDArray], bool]:
    """(list of (N, C) steps, whether ``inputs`` was one merged tensor)."""
    if isinstance(inputs, NDArray):
        if inputs.ndim != 3 or inputs.shape[axis] != length:
            raise ValueError(f"unroll(length={length}) needs inputs of 3 dimensions with {length} "
                             f"steps on the time axis {axis}, got shape {inputs.shape}")
        return split_steps(inputs, axis), True
    steps = list(inputs)
    if len(steps) != length:
        raise ValueError(f"unroll(length={length}) got a list of {len(steps)} steps")
    return steps, False


class RecurrentCell(HybridBlock):
    """Base of the cells: ``begin_state``, ``state_info`` and ``unroll``.

    Subclasses define ``state_info`` and ``forward(x, states) -> (output, new_states)``.
    """

    def __init__(self, hidden_size: int = 0, dtype: Any = "float32", **kwargs: Any):
        super().__init__(**kwargs)
        self._hidden_size = hidden_size
        self._dtype = dtype

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """One dict per state: its shape and layout."""
        raise NotImplementedError

    def reset(self) -> None:
        """Gluon 1.x cells counted steps between resets; nothing to reset here."""

    def begin_state(self, batch_size: int = 0, func: Callable | None = None, ctx: Any = None,
                    dtype: Any = None, **kwargs: Any) -> list[NDArray]:
        """Initial states (zeros by default; ``func(shape, ctx=, dtype=)`` otherwise)."""
        func = func or zeros
        return [func(info["shape"], ctx=ctx, dtype=dtype or self._dtype, **kwargs)
                for info in self.state_info(batch_size)]

    def unroll(self, length: int, inputs: Any, begin_state: Sequence[NDArray] | None = None,
               layout: str = "NTC", merge_outputs: bool | None = None,
               valid_length: NDArray | None = None) -> tuple[Any, list[NDArray]]:
        """Run the cell over ``length`` steps: ``(outputs, states)``.

        ``inputs`` is one tensor in ``layout`` or a list of (N, C) steps; the outputs are one
        tensor in ``layout`` when ``merge_outputs`` (default: the form of ``inputs``), else a
        list. With ``valid_length`` (N,), outputs at and after each sequence's length are
        zero and the states are those after its last valid step.
        """
        axis = time_axis(layout)
        steps, merged = _as_steps(inputs, length, axis)
        states = list(begin_state) if begin_state is not None else self.begin_state(
            steps[0].shape[0], ctx=steps[0].ctx, dtype=steps[0].dtype)
        outputs, history = [], []
        for x in steps:
            out, states = self(x, states)
            outputs.append(out)
            history.append(states)
        merge = merged if merge_outputs is None else merge_outputs
        if valid_length is None:
            return (ops.stack(*outputs, axis=axis) if merge else outputs), states
        if not isinstance(valid_length, NDArray):
            valid_length = array(valid_length, ctx=steps[0].ctx)
        states = [ops.SequenceLast(ops.stack(*s, axis=0), valid_length, use_sequence_length=True, axis=0)
                  for s in zip(*history)]
        out = ops.SequenceMask(ops.stack(*outputs, axis=axis), valid_length,
                               use_sequence_length=True, axis=axis)
        return (out if merge else split_steps(out, axis)), states

class _GatedCell(RecurrentCell):
    """A cell with Gluon's four parameters i2h/h2h weight/bias over ``gates`` gate blocks."""

    _gates = 1
    _num_states = 1

    def __init__(self, hidden_size: int, i2h_weight_initializer: Any = None,
                 h2h_weight_initializer: Any = None, i2h_bias_initializer: Any = "zeros",
                 h2h_bias_initializer: Any = "zeros", input_size: int = 0, dtype: Any = "float32",
                 **kwargs: Any):
        super().__init__(hidden_size, dtype, **kwargs)
        gh = self._gates * hidden_size
        self._input_size = input_size
        self.i2h_weight = Parameter("i2h_weight", shape=(gh, input_size), dtype=dtype,
                                    init=i2h_weight_initializer)
        self.h2h_weight = Parameter("h2h_weight", shape=(gh, hidden_size), dtype=dtype,
                                    init=h2h_weight_initializer)
        self.i2h_bias = Parameter("i2h_bias", shape=(gh,), dtype=dtype, init=i2h_bias_initializer)
        self.h2h_bias = Parameter("h2h_bias", shape=(gh,), dtype=dtype, init=h2h_bias_initializer)

    def state_info(self, batch_size: int = 0) -> list[dict]:
        return [{"shape": (batch_size, self._hidden_size), "__layout__": "NC"}] * self._num_states

    def _params(self, x: NDArray) -> tuple[NDArray, ...]:
        if x.ndim != 2:
            raise ValueError(f"{type(self).__name__} takes one step of shape (batch, features), "
                             f"got {x.shape}; use unroll() for sequences")
        self.i2h_weight.shape = (self._gates * self._hidden_size, x.shape[1])
        return (self.i2h_weight.data(), self.i2h_bias.data(), self.h2h_weight.data(),
                self.h2h_bias.data())

    def _states(self, states: Any) -> list[NDArray]:
        states = [states] if isinstance(states, NDArray) else list(states)
        if len(states) != self._num_states:
            raise ValueError(f"{type(self).__name__} needs {self._num_states} state(s), got {len(states)}")
        return states

    def _extra_repr(self) -> str:
        return f"{self.i2h_weight.shape[1] or None} -> {self._hidden_size}"


class RNNCell(_GatedCell):
    """Elman RNN cell: h' = activation(W_i x + b_i + W_h h + b_h). Output and state: h'."""

    def __init__(self, hidden_size: int, activation: str = "tanh", **kwargs: Any):
        super().__init__(hidden_size, **kwargs)
        self._activation = get_activation(activation)

    def forward(self, x: NDArray, states: Any) -> tuple[NDArray, list[NDArray]]:
        wi, bi, wh, bh = self._params(x)
        (h,) = self._states(states)
        h = rnn_recur(ops.fully_connected(x, wi, bi), h, wh, bh, self._activation)
        return h, [h]


class LSTMCell(_GatedCell):
    """LSTM cell (Hochreiter & Schmidhuber 1997, with forget gate), MXNet's gate order i, f, u, o.

        [z_i, z_f, z_u, z_o] = W_i x + b_i + W_h h + b_h
        c' = sigmoid(z_f) * c + sigmoid(z_i) * tanh(z_u);  h' = sigmoid(z_o) * tanh(c')

    States [h, c]; output h'. A step is the input's projection and the one-step ``ops.lstm``.
    """

    _gates = 4
    _num_states = 2

    def forward(self, x: NDArray, states: Any) -> tuple[NDArray, list[NDArray]]:
        wi, bi, wh, bh = self._params(x)
        h, c = self._states(states)
        i2h = ops.fully_connected(x, wi, bi)
        _, h, c = ops.lstm(ops.expand_dims(i2h, axis=0), h, c, wh, bh)
        return h, [h, c]


class GRUCell(_GatedCell):
    """GRU cell (Cho et al. 2014) as MXNet/cuDNN compute it; see :func:`gru_recur`.

    Gate order r, z, n in the (3H, ...) weights. State [h]; output h'.
    """

    _gates = 3

    def forward(self, x: NDArray, states: Any) -> tuple[NDArray, list[NDArray]]:
        wi, bi, wh, bh = self._params(x)
        (h,) = self._states(states)
        h = gru_recur(ops.fully_connected(x, wi, bi), h, wh, bh)
        return h, [h]


class SequentialRNNCell(RecurrentCell):
    """Cells stacked on each other: each step runs them in order; states concatenated."""

    def add(self, cell: RecurrentCell) -> None:
        self.register_child(cell)

    def __getitem__(self, index: int) -> RecurrentCell:
        return list(self._children.values())[index]

    def __len__(self) -> int:
        return len(self._children)

    def state_info(self, batch_size: int = 0) -> list[dict]:
        return [info for cell in self._children.values() for info in cell.state_info(batch_size)]

    def begin_state(self, batch_size: int = 0, func: Callable | None = None, ctx: Any = None,
                    dtype: Any = None, **kwargs: Any) -> list[NDArray]:
        return [s for cell in self._children.values()
                for s in cell.begin_state(batch_size, func, ctx=ctx, dtype=dtype, **kwargs)]

    def forward(self, x: NDArray, states: Any) -> tuple[NDArray, list[NDArray]]:
        states, new_states, start = list(states), [], 0
        for cell in self._children.values():
            n = len(cell.state_info())
            x, cell_states = cell(x, states[start:start + n])
            new_states.extend(cell_states)
            start += n
        if start != len(states):
            raise ValueError(f"SequentialRNNCell needs {start} states, got {len(states)}")
        return x, new_states


class DropoutCell(RecurrentCell):
    """Dropout on each step's input in training mode (stack it between cells); no states."""

    def __init__(self, rate: float, axes: tuple = (), **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self._rate, self._axes = rate, axes

    def state_info(self, batch_size: int = 0) -> list[dict]:
        return []

    def forward(self, x: NDArray, states: Any) -> tuple[NDArray, list[NDArray]]:
        if self._rate and autograd.is_training():
            x = ops.dropout(x, p=self._rate, axes=self._axes)
        return x, list(states)

    def _extra_repr(self) -> str:
        return f"p = {self._rate}"
