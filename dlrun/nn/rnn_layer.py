"""Multi-layer, optionally bidirectional recurrent layers: Gluon's ``rnn.RNN``, ``LSTM``, ``GRU``.

Parameters are named per layer and direction as in Gluon: ``l0_i2h_weight``,
``l0_h2h_weight``, ``l0_i2h_bias``, ``l0_h2h_bias``, then ``r0_...`` for the backward
direction, then ``l1_...``. Each direction of each layer runs the cell's step function of
:mod:`.rnn_cell` over time (a Python loop); the backward direction reads the sequence from
its end, and its outputs are concatenated to the forward ones on the feature axis.
"""
from __future__ import annotations

from typing import Any, Callable

from ..engine import NDArray, autograd, ops, zeros
from .activations import get_activation
from .block import HybridBlock
from .parameter import Parameter
from .rnn_cell import gru_recur, rnn_recur, split_steps, time_axis

__all__ = ["RNN", "LSTM", "GRU"]


class _RNNLayer(HybridBlock):
    """Shared machinery; subclasses set ``_gates``, ``_num_states`` and ``_run``."""

    _gates = 1
    _num_states = 1

    def __init__(self, hidden_size: int, num_layers: int = 1, layout: str = "TNC",
                 dropout: float = 0, bidirectional: bool = False, input_size: int = 0,
                 i2h_weight_initializer: Any = None, h2h_weight_initializer: Any = None,
                 i2h_bias_initializer: Any = "zeros", h2h_bias_initializer: Any = "zeros",
                 dtype: Any = "float32", **kwargs: Any):
        super().__init__(**kwargs)
        time_axis(layout)
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {dropout}")
        self._hidden_size, self._num_layers, self._layout = hidden_size, num_layers, layout
        self._dropout, self._dir, self._input_size = dropout, 2 if bidirectional else 1, input_size
        self._dtype = dtype
        gh, ni = self._gates * hidden_size, input_size
        inits = {"i2h_weight": i2h_weight_initializer, "h2h_weight": h2h_weight_initializer,
                 "i2h_bias": i2h_bias_initializer, "h2h_bias": h2h_bias_initializer}
        for i in range(num_layers):
            for j in "lr"[:self._dir]:
                shapes = {"i2h_weight": (gh, ni), "h2h_weight": (gh, hidden_size),
                          "i2h_bias": (gh,), "h2h_bias": (gh,)}
                for kind, shape in shapes.items():
                    name = f"{j}{i}_{kind}"
                    setattr(self, name, Parameter(name, shape=shape, dtype=dtype, init=inits[kind]))
            ni = hidden_size * self._dir

    def state_info(self, batch_size: int = 0) -> list[dict]:
        shape = (self._num_layers * self._dir, batch_size, self._hidden_size)
        return [{"shape": shape, "__layout__": "LNC", "dtype": self._dtype}] * self._num_states

    def begin_state(self, batch_size: int = 0, func: Callable | None = None, ctx: Any = None,
                    dtype: Any = None, **kwargs: Any) -> list[NDArray]:
        """Initial states, each (num_layers * num_directions, batch_size, hidden_size)."""
        func = func or zeros
        return [func(info["shape"], ctx=ctx, dtype=dtype or self._dtype, **kwargs)
                for info in self.state_info(batch_size)]

    def forward(self, inputs: NDArray, states: Any = None) -> Any:
        """``outputs`` when ``states`` is None, else ``(outputs, new_states)`` (Gluon's convention).

        inputs are (T, N, C) for layout 'TNC', (N, T, C) for 'NTC'; outputs have
        hidden_size * num_directions features in the same layout.
        """
        if inputs.ndim != 3:
            raise ValueError(f"{type(self).__name__} takes a sequence of 3 dimensions in layout "
                             f"{self._layout}, got shape {inputs.shape}")
        x = ops.swapaxes(inputs, dim1=0, dim2=1) if self._layout == "NTC" else inputs
        batch = x.shape[1]
        skip_states = states is None
        if skip_states:
            states = self.begin_state(batch, ctx=inputs.ctx, dtype=inputs.dtype)
        states = [states] if isinstance(states, NDArray) else list(states)
        expected = [info["shape"] for info in self.state_info(batch)]
        if [tuple(s.shape) for s in states] != expected:
            raise ValueError(f"{type(self).__name__}: invalid recurrent state shapes "
                             f"{[tuple(s.shape) for s in states]}, expecting {expected} "
                             "(use begin_state(batch_size))")
        per_layer = [split_steps(s, 0) for s in states]  # [state kind][layer * dirs + d]
        new_states: list[list[NDArray]] = [[] for _ in states]
        for i in range(self._num_layers):
            if i and self._dropout and autograd.is_training():
                x = ops.dropout(x, p=self._dropout)
            getattr(self, f"l{i}_i2h_weight").shape = (self._gates * self._hidden_size, x.shape[2])
            if self._dir == 2:
                getattr(self, f"r{i}_i2h_weight").shape = (self._gates * self._hidden_size, x.shape[2])
            outs = []
            for d, j in enumerate("lr"[:self._dir]):
                w = [getattr(self, f"{j}{i}_{k}").data()
                     for k in ("i2h_weight", "i2h_bias", "h2h_weight", "h2h_bias")]
                seq, final = self._run(x, [s[i * self._dir + d] for s in per_layer], w, reverse=d == 1)
                outs.append(seq)
                for k, f in enumerate(final):
                    new_states[k].append(f)
            x = outs[0] if self._dir == 1 else ops.concat(*outs, dim=2)
        out = ops.swapaxes(x, dim1=0, dim2=1) if self._layout == "NTC" else x
        if skip_states:
            return out
        return out, [ops.stack(*s, axis=0) for s in new_states]

    def _run(self, x: NDArray, states: list[NDArray], w: list[NDArray],
             reverse: bool) -> tuple[NDArray, list[NDArray]]:
        """One direction of one layer over (T, N, C): ((T, N, H) outputs, final states)."""
        raise NotImplementedError

    def _extra_repr(self) -> str:
        ni = self.l0_i2h_weight.shape[1] or None
        return (f"{ni} -> {self._hidden_size}, {self._layout}, num_layers={self._num_layers}"
                + (f", dropout={self._dropout}" if self._dropout else "")
                + (", bidirectional" if self._dir == 2 else ""))


def _loop(steps: list[NDArray], reverse: bool, step: Callable, states: list[NDArray]
          ) -> tuple[NDArray, list[NDArray]]:
    """Apply ``step(x_t, states) -> states`` over time; outputs (h = states[0]) stacked in time order."""
    order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
    outs: list[Any] = [None] * len(steps)
    for t in order:
        states = step(steps[t], states)
        outs[t] = states[0]
    return ops.stack(*outs, axis=0), states


class RNN(_RNNLayer):
    """Multi-layer Elman RNN, h_t = activation(W_i x_t + b_i + W_h h_{t-1} + b_h).

    ``activation`` is 'relu' (Gluon's default) or 'tanh'. States: [h].
    """

    def __init__(self, hidden_size: int, num_layers: int = 1, activation: str = "relu",
                 layout: str = "TNC", dropout: float = 0, bidirectional: bool = False,
                 i2h_weight_initializer: Any = None, h2h_weight_initializer: Any = None,
                 i2h_bias_initializer: Any = "zeros", h2h_bias_initializer: Any = "zeros",
                 input_size: int = 0, dtype: Any = "float32", **kwargs: Any):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, dtype, **kwargs)
        self._act_name = activation
        self._act = get_activation(activation)

    def _run(self, x, states, w, reverse):
        wi, bi, wh, bh = w
        steps = split_steps(ops.fully_connected(x, wi, bi, flatten=False), 0)
        return _loop(steps, reverse, lambda i2h, s: [rnn_recur(i2h, s[0], wh, bh, self._act)], states)

    def _extra_repr(self) -> str:
        return super()._extra_repr() + f", {self._act_name}"


class LSTM(_RNNLayer):
    """Multi-layer LSTM (gate order i, f, u, o as :class:`~.rnn_cell.LSTMCell`). States: [h, c]."""

    _gates = 4
    _num_states = 2

    def _run(self, x, states, w, reverse):
        wi, bi, wh, bh = w
        out, h, c = ops.lstm(ops.fully_connected(x, wi, bi, flatten=False), states[0], states[1], wh, bh,
                             reverse=reverse)
        return out, [h, c]


class GRU(_RNNLayer):
    """Multi-layer GRU (gate order r, z, n; MXNet's formula, see :func:`~.rnn_cell.gru_recur`). States: [h]."""

    _gates = 3

    def _run(self, x, states, w, reverse):
        wi, bi, wh, bh = w
        steps = split_steps(ops.fully_connected(x, wi, bi, flatten=False), 0)
        return _loop(steps, reverse, lambda i2h, s: [gru_recur(i2h, s[0], wh, bh)], states)
