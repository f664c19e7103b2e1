"""Every layer of gluon.nn and gluon.rnn in MXNet 1.9.1 and dlrun, with the same weights:
outputs in training (under autograd.record) and predict mode, the input's and every
weight's gradient, and BatchNorm's running statistics after a training step."""
from __future__ import annotations

import numpy as np
import pytest

from .harness import compare, run_dlrun

_rng = np.random.default_rng(1)
INPUTS = {
    "v": _rng.normal(size=(4, 6)).astype(np.float32),
    "seq": _rng.normal(size=(5, 3, 4)).astype(np.float32),      # T, N, C
    "c1": _rng.normal(size=(2, 3, 9)).astype(np.float32),
    "c2": _rng.normal(size=(2, 3, 8, 8)).astype(np.float32),
    "c3": _rng.normal(size=(2, 2, 5, 5, 5)).astype(np.float32),
    "ids": np.array([[0, 3, 1], [2, 2, 4]], np.float32),
}

TRAIN = """
net = {ctor}
net.initialize()
x = nd.array(inputs['{x}'])
net(x)
fill(net)
x.attach_grad()
with autograd.record():
    y = net(x)
head = nd.array(np.random.RandomState(1).uniform(-1, 1, y.shape))
y.backward(head)
out = dict(y=y, dx=x.grad, pred=net(x), **grads(net){extra})
"""
LAYERS = {
    "dense": ("gluon.nn.Dense(5)", "v"),
    "dense_relu": ("gluon.nn.Dense(5, activation='relu')", "v"),
    "dense_no_bias": ("gluon.nn.Dense(5, use_bias=False, activation='tanh')", "v"),
    "dense_no_flatten": ("gluon.nn.Dense(5, flatten=False)", "seq"),
    "dense_flatten": ("gluon.nn.Dense(5)", "c2"),
    "conv1d": ("gluon.nn.Conv1D(4, 3, strides=2, padding=1)", "c1"),
    "conv2d": ("gluon.nn.Conv2D(4, 3, strides=2, padding=1, activation='relu')", "c2"),
    "conv2d_dilated": ("gluon.nn.Conv2D(3, (3, 2), dilation=2, groups=3)", "c2"),
    "conv3d": ("gluon.nn.Conv3D(2, 2, strides=(1, 2, 2))", "c3"),
    "conv1d_transpose": ("gluon.nn.Conv1DTranspose(2, 3, strides=2)", "c1"),
    "conv2d_transpose": ("gluon.nn.Conv2DTranspose(3, 3, strides=2, padding=1, output_padding=1)", "c2"),
    "maxpool1d": ("gluon.nn.MaxPool1D(3, 2)", "c1"),
    "maxpool2d": ("gluon.nn.MaxPool2D()", "c2"),
    "maxpool2d_ceil": ("gluon.nn.MaxPool2D(3, 2, ceil_mode=True)", "c2"),
    "avgpool2d": ("gluon.nn.AvgPool2D(3, 2, padding=1)", "c2"),
    "avgpool2d_no_pad": ("gluon.nn.AvgPool2D(3, 2, padding=1, count_include_pad=False)", "c2"),
    "maxpool3d": ("gluon.nn.MaxPool3D(2)", "c3"),
    "avgpool3d": ("gluon.nn.AvgPool3D(2)", "c3"),
    "global_avg": ("gluon.nn.GlobalAvgPool2D()", "c2"),
    "global_max": ("gluon.nn.GlobalMaxPool2D()", "c2"),
    "global_avg1d": ("gluon.nn.GlobalAvgPool1D()", "c1"),
    "batchnorm": ("gluon.nn.BatchNorm()", "c2"),
    "batchnorm_momentum": ("gluon.nn.BatchNorm(momentum=0.5, epsilon=1e-3, center=False)", "c1"),
    "layernorm": ("gluon.nn.LayerNorm()", "v"),
    "flatten": ("gluon.nn.Flatten()", "c2"),
    "activation_relu": ("gluon.nn.Activation('relu')", "v"),
    "activation_softrelu": ("gluon.nn.Activation('softrelu')", "v"),
    "leaky": ("gluon.nn.LeakyReLU(0.1)", "v"),
    "prelu": ("gluon.nn.PReLU()", "v"),
    "elu": ("gluon.nn.ELU(0.7)", "v"),
    "gelu": ("gluon.nn.GELU()", "v"),
    "swish": ("gluon.nn.Swish(1.5)", "v"),
    "dropout_zero": ("gluon.nn.Dropout(0.0)", "v"),
    "sequential": ("gluon.nn.HybridSequential()\nnet.add(gluon.nn.Conv2D(4, 3), gluon.nn.BatchNorm(), "
                   "gluon.nn.Activation('relu'), gluon.nn.MaxPool2D(), gluon.nn.Flatten(), gluon.nn.Dense(3))", "c2"),
    "lambda": ("gluon.nn.HybridLambda(lambda F, x: F.relu(x) * 2)", "v"),
    "rnn_relu": ("gluon.rnn.RNN(6, activation='relu')", "seq"),
    "rnn_tanh_2layer": ("gluon.rnn.RNN(6, num_layers=2)", "seq"),
    "lstm": ("gluon.rnn.LSTM(5)", "seq"),
    "lstm_bidirectional": ("gluon.rnn.LSTM(5, num_layers=2, bidirectional=True)", "seq"),
    "lstm_ntc": ("gluon.rnn.LSTM(5, layout='NTC')", "seq"),
    "gru": ("gluon.rnn.GRU(5)", "seq"),
    "gru_bidirectional": ("gluon.rnn.GRU(4, bidirectional=True)", "seq"),
}
SNIPPETS = {}
for _name, (_ctor, _x) in LAYERS.items():
    if "\n" in _ctor:
        first, rest = _ctor.split("\n", 1)
        _code = TRAIN.format(ctor=first, x=_x, extra="").replace("net.initialize()", rest + "\nnet.initialize()")
    else:
        _code = TRAIN.format(ctor=_ctor, x=_x, extra="")
    SNIPPETS[f"layer_{_name}"] = _code
SNIPPETS["layer_batchnorm_running"] = TRAIN.format(ctor="gluon.nn.BatchNorm(momentum=0.8)", x="c2",
                                                   extra=", **values(net)")
SNIPPETS["layer_embedding"] = """
net = gluon.nn.Embedding(5, 3)
net.initialize()
fill(net)
x = nd.array(inputs['ids'])
with autograd.record():
    y = net(x)
y.backward(nd.array(np.random.RandomState(1).uniform(-1, 1, y.shape)))
out = dict(y=y, **grads(net))
"""
SNIPPETS["layer_dropout_predict"] = """
net = gluon.nn.Dropout(0.5)
out = {'y': net(nd.array(inputs['v']))}
"""

CELL = """
cell = {ctor}
cell.initialize()
x = nd.array(inputs['seq'])
cell.unroll(5, x, layout='TNC', merge_outputs=True)
fill(cell)
x.attach_grad()
with autograd.record():
    outputs, states = cell.unroll(5, x, layout='TNC', merge_outputs=True)
    y = outputs.sum() + sum(s.sum() * 0.5 for s in states)
y.backward()
out = dict(outputs=outputs, states=list(states), dx=x.grad, **grads(cell))
"""
for _name, _ctor in {"rnn_cell": "gluon.rnn.RNNCell(4)", "lstm_cell": "gluon.rnn.LSTMCell(4)",
                     "gru_cell": "gluon.rnn.GRUCell(4)"}.items():
    SNIPPETS[f"cell_{_name}"] = CELL.format(ctor=_ctor)
SNIPPETS["cell_sequential"] = CELL.format(ctor="gluon.rnn.SequentialRNNCell()").replace(
    "cell.initialize()", "cell.add(gluon.rnn.LSTMCell(4))\ncell.add(gluon.rnn.GRUCell(3))\ncell.initialize()")
SNIPPETS["cell_step"] = """
cell = gluon.rnn.LSTMCell(4, input_size=4)
cell.initialize()
fill(cell)
x = nd.array(inputs['seq'][0])
states = cell.begin_state(batch_size=3)
y, new_states = cell(x, states)
out = {'y': y, 'h': new_states[0], 'c': new_states[1], 'n': np.array(len(states))}
"""
SNIPPETS["layer_lstm_states"] = """
net = gluon.rnn.LSTM(5, num_layers=2)
net.initialize()
x = nd.array(inputs['seq'])
states = net.begin_state(batch_size=3)
net(x, states)
fill(net)
y, new_states = net(x, [s + 0.1 for s in states])
out = {'y': y, 'states': new_states, 'shapes': np.array([s.shape for s in states])}
"""


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_layer_matches_mxnet(name, oracle):
    theirs, errors = oracle
    assert errors[name] is None, f"the snippet fails in MXNet: {errors[name]}"
    ours = run_dlrun(name, SNIPPETS[name], INPUTS)
    compare(name, ours, theirs, rtol=1e-4, atol=1e-5)
