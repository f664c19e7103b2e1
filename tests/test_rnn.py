"""Recurrent cells and layers, and the Tree-LSTM cells: values against NumPy references of the
published formulas, float64 gradient checks, layers against their cells, masking, trees."""
import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, nd
from dlrun.engine import NDArray, array, ops
from dlrun.nn.rnn import (GRU, LSTM, RNN, BinaryTreeLSTMCell, ChildSumTreeLSTMCell, DropoutCell,
                          GRUCell, LSTMCell, RNNCell, SequentialRNNCell)
from tests.contexts import CONTEXTS
from tests.gradcheck import numeric_vjp

F64 = "float64"


def sig(z):
    return 1 / (1 + np.exp(-z))


def randomize(block, rng, scale=0.5):
    """Random values for every parameter, biases included (initializers zero the biases)."""
    for p in block.collect_params().values():
        p.set_data(rng.normal(scale=scale, size=p.shape))


def values(block):
    return {name: p.data().asnumpy().astype(np.float64) for name, p in block.collect_params().items()}


# ---- NumPy references, written from the papers (one step; states is a list) ----

def ref_rnn(act):
    def step(x, states, P):  # Elman (1990): h' = act(W x + U h + b)
        h = act(x @ P["i2h_weight"].T + P["i2h_bias"] + states[0] @ P["h2h_weight"].T + P["h2h_bias"])
        return h, [h]
    return step


def ref_lstm(x, states, P):
    """Hochreiter & Schmidhuber (1997) with the forget gate, as Graves (2013) eq. 3-7 (no peepholes):
    i = s(W_xi x + W_hi h + b_i), f = s(W_xf x + W_hf h + b_f), c' = f c + i tanh(W_xc x + W_hc h + b_c),
    o = s(W_xo x + W_ho h + b_o), h' = o tanh(c'). Rows of the weights in MXNet's order i, f, c, o."""
    h, c = states
    Wi, Wf, Wc, Wo = np.split(P["i2h_weight"], 4)
    Ui, Uf, Uc, Uo = np.split(P["h2h_weight"], 4)
    bi, bf, bc, bo = np.split(P["i2h_bias"] + P["h2h_bias"], 4)
    i = sig(x @ Wi.T + h @ Ui.T + bi)
    f = sig(x @ Wf.T + h @ Uf.T + bf)
    c = f * c + i * np.tanh(x @ Wc.T + h @ Uc.T + bc)
    o = sig(x @ Wo.T + h @ Uo.T + bo)
    h = o * np.tanh(c)
    return h, [h, c]


def ref_gru(x, states, P):
    """Cho et al. (2014) eq. 5-8 with the reset gate applied after the recurrent product (MXNet,
    cuDNN): r = s(W_r x + U_r h + b), z = s(W_z x + U_z h + b), n = tanh(W x + b + r (U h + b')),
    h' = z h + (1 - z) n. Rows in order r, z, n."""
    (h,) = states
    Wr, Wz, Wn = np.split(P["i2h_weight"], 3)
    Ur, Uz, Un = np.split(P["h2h_weight"], 3)
    ar, az, an = np.split(P["i2h_bias"], 3)
    br, bz, bn = np.split(P["h2h_bias"], 3)
    r = sig(x @ Wr.T + ar + h @ Ur.T + br)
    z = sig(x @ Wz.T + az + h @ Uz.T + bz)
    n = np.tanh(x @ Wn.T + an + r * (h @ Un.T + bn))
    h = z * h + (1 - z) * n
    return h, [h]


CELLS = {  # name: (make cell, reference step, number of states, layer class, layer kwargs)
    "rnn_tanh": (lambda H, **k: RNNCell(H, activation="tanh", **k), ref_rnn(np.tanh), 1, RNN,
                 dict(activation="tanh")),
    "rnn_relu": (lambda H, **k: RNNCell(H, activation="relu", **k), ref_rnn(lambda a: np.maximum(a, 0)),
                 1, RNN, dict(activation="relu")),
    "lstm": (LSTMCell, ref_lstm, 2, LSTM, {}),
    "gru": (GRUCell, ref_gru, 1, GRU, {}),
}


def make_cell(name, H, C, rng, ctx=None, dtype="float32"):
    cell = CELLS[name][0](H, input_size=C, dtype=dtype)
    cell.initialize(ctx=ctx)
    randomize(cell, rng)
    return cell


@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_unroll_matches_numpy_reference(name, ctx):
    rng = np.random.default_rng(0)
    N, T, C, H = 3, 5, 4, 6
    cell = make_cell(name, H, C, rng, ctx())
    x = rng.normal(size=(N, T, C)).astype(np.float32)
    begin = [rng.normal(size=(N, H)).astype(np.float32) for _ in range(CELLS[name][2])]
    out, states = cell.unroll(T, array(x, ctx=ctx()), [array(s, ctx=ctx()) for s in begin],
                              layout="NTC", merge_outputs=True)
    P, ref_states, ref_out = values(cell), [s.astype(np.float64) for s in begin], []
    for t in range(T):
        o, ref_states = CELLS[name][1](x[:, t].astype(np.float64), ref_states, P)
        ref_out.append(o)
    assert out.shape == (N, T, H) and len(states) == len(begin)
    np.testing.assert_allclose(out.asnumpy(), np.stack(ref_out, axis=1), rtol=1e-5, atol=1e-5)
    for s, r in zip(states, ref_states):
        np.testing.assert_allclose(s.asnumpy(), r, rtol=1e-5, atol=1e-5)


def assert_gradients(fn, inputs, params, seed=0):
    """backward() through ``fn(*inputs)`` against float64 central differences, for every input
    array and every parameter."""
    rng = np.random.default_rng(seed)
    arrays = [array(v, dtype=F64) for v in inputs]
    for a in arrays:
        a.attach_grad()
    with autograd.record():
        y = fn(*arrays)
    head = rng.normal(size=y.shape)
    y.backward(array(head, dtype=F64))

    def f(*xs):
        return fn(*[array(v, dtype=F64) for v in xs]).asnumpy()
    for i, a in enumerate(arrays):
        np.testing.assert_allclose(a.grad.asnumpy(), numeric_vjp(f, [v.copy() for v in inputs], head, i),
                                   rtol=1e-5, atol=1e-8, err_msg=f"input {i}")
    for p in params:
        value, analytic = p.data().asnumpy(), p.grad().asnumpy().copy()

        def g(v, p=p):
            p.set_data(v)
            return f(*inputs)
        expected = numeric_vjp(g, [value.copy()], head, 0)
        p.set_data(value)
        np.testing.assert_allclose(analytic, expected, rtol=1e-5, atol=1e-8, err_msg=p.name)


def flat_outputs(out, states):
    """Everything a sequence model returns, as one (N, ...) array to take gradients of."""
    n = states[0].shape[-2]
    parts = [out.reshape(n, -1) if out.shape[0] == n else ops.swapaxes(out, dim1=0, dim2=1).reshape(n, -1)]
    parts += [ops.swapaxes(s, dim1=0, dim2=1).reshape(n, -1) if s.ndim == 3 else s for s in states]
    return ops.concat(*parts, dim=1)


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_unroll_gradients_float64(name):
    rng = np.random.default_rng(1)
    N, T, C, H = 2, 3, 3, 2
    cell = make_cell(name, H, C, rng, dtype=F64)
    x = rng.normal(size=(N, T, C))
    begin = [rng.normal(size=(N, H)) for _ in range(CELLS[name][2])]

    def fn(x, *begin):
        return flat_outputs(*cell.unroll(T, x, list(begin), layout="NTC", merge_outputs=True))
    assert_gradients(fn, [x, *begin], list(cell.collect_params().values()))


def test_unroll_input_forms_layouts_and_default_state():
    rng = np.random.default_rng(2)
    N, T, C, H = 2, 4, 3, 5
    cell = make_cell("lstm", H, C, rng)
    x = rng.normal(size=(N, T, C)).astype(np.float32)
    merged, s1 = cell.unroll(T, nd.array(x), layout="NTC")           # tensor in: tensor out
    assert isinstance(merged, NDArray) and merged.shape == (N, T, H)
    steps, s2 = cell.unroll(T, [nd.array(x[:, t]) for t in range(T)], layout="TNC")  # list in: list out
    assert isinstance(steps, list) and len(steps) == T
    tnc, _ = cell.unroll(T, nd.array(x.transpose(1, 0, 2)), layout="TNC", merge_outputs=True)
    as_list, _ = cell.unroll(T, nd.array(x), layout="NTC", merge_outputs=False)
    zeros = cell.begin_state(N)
    explicit, _ = cell.unroll(T, nd.array(x), begin_state=zeros, layout="NTC")
    for t in range(T):
        np.testing.assert_allclose(steps[t].asnumpy(), merged.asnumpy()[:, t], rtol=1e-6)
        np.testing.assert_allclose(as_list[t].asnumpy(), merged.asnumpy()[:, t], rtol=1e-6)
    np.testing.assert_allclose(tnc.asnumpy(), merged.asnumpy().transpose(1, 0, 2), rtol=1e-6)
    np.testing.assert_array_equal(explicit.asnumpy(), merged.asnumpy())
    for a, b in zip(s1, s2):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="length=3"):
        cell.unroll(3, nd.array(x), layout="NTC")
    with pytest.raises(ValueError, match="layout"):
        cell.unroll(T, nd.array(x), layout="NCT")


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_unroll_valid_length_masks_outputs_and_takes_last_valid_states(name):
    rng = np.random.default_rng(3)
    N, T, C, H = 3, 5, 2, 4
    cell = make_cell(name, H, C, rng, dtype=F64)
    lengths = [5, 2, 3]
    x = array(rng.normal(size=(T, N, C)), dtype=F64)
    begin = [array(rng.normal(size=(N, H)), dtype=F64) for _ in range(CELLS[name][2])]
    x.attach_grad()
    with autograd.record():
        out, states = cell.unroll(T, x, begin, layout="TNC", merge_outputs=True,
                                  valid_length=nd.array(lengths))
    out.backward(array(rng.normal(size=out.shape), dtype=F64))
    full, _ = cell.unroll(T, x, begin, layout="TNC", merge_outputs=True)
    for n, length in enumerate(lengths):
        np.testing.assert_array_equal(out.asnumpy()[length:, n], 0)
        np.testing.assert_allclose(out.asnumpy()[:length, n], full.asnumpy()[:length, n], rtol=1e-12)
        np.testing.assert_array_equal(x.grad.asnumpy()[length:, n], 0)  # padding does not matter
        alone_out, alone = cell.unroll(length, x[:length, n:n + 1], [b[n:n + 1] for b in begin],
                                       layout="TNC", merge_outputs=True)
        for s, a in zip(states, alone):
            np.testing.assert_allclose(s.asnumpy()[n], a.asnumpy()[0], rtol=1e-12)
    as_list, _ = cell.unroll(T, x, begin, layout="TNC", valid_length=nd.array(lengths),
                             merge_outputs=False)
    np.testing.assert_allclose(np.stack([o.asnumpy() for o in as_list]), out.asnumpy())


def test_begin_state_shapes_and_state_info():
    assert [s.shape for s in LSTMCell(7).begin_state(3)] == [(3, 7), (3, 7)]
    assert [s.shape for s in GRUCell(7).begin_state(3)] == [(3, 7)]
    assert [s.shape for s in RNNCell(7).begin_state(3)] == [(3, 7)]
    lstm = LSTM(7, num_layers=2, bidirectional=True)
    assert [s.shape for s in lstm.begin_state(3)] == [(4, 3, 7), (4, 3, 7)]
    assert [s.shape for s in GRU(7, num_layers=3).begin_state(2)] == [(3, 2, 7)]
    assert [s.shape for s in RNN(7, bidirectional=True).begin_state(5)] == [(2, 5, 7)]
    states = lstm.begin_state(3, ctx=mx.cpu(), dtype=F64)
    assert all(s.dtype == np.float64 and s.ctx == mx.cpu() and not s.asnumpy().any() for s in states)
    assert lstm.state_info(3)[0]["shape"] == (4, 3, 7)
    assert LSTMCell(7).state_info(3) == [{"shape": (3, 7), "__layout__": "NC"}] * 2
    ones = GRUCell(2).begin_state(4, func=nd.ones)
    np.testing.assert_array_equal(ones[0].asnumpy(), 1)


def make_layer(name, H, rng, ctx=None, dtype="float32", **kwargs):
    layer = CELLS[name][3](H, **CELLS[name][4], **kwargs, dtype=dtype)
    layer.initialize(ctx=ctx)
    return layer


@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("name", list(CELLS))
def test_two_layer_bidirectional_layer_equals_cells_by_hand(name, ctx):
    rng = np.random.default_rng(4)
    T, N, C, H, L = 4, 3, 5, 6, 2
    layer = make_layer(name, H, rng, ctx(), num_layers=L, bidirectional=True)
    x = array(rng.normal(size=(T, N, C)), ctx=ctx())
    layer(x)  # infer the input size, then give every parameter (biases too) random values
    randomize(layer, rng)
    begin = [array(rng.normal(size=(L * 2, N, H)), ctx=ctx()) for _ in range(CELLS[name][2])]
    out, states = layer(x, begin)

    inp, finals = x, []
    for i in range(L):
        outs = []
        for d, j in enumerate("lr"):
            cell = make_cell(name, H, inp.shape[2], rng, ctx())
            for k, p in cell.collect_params().items():
                p.set_data(getattr(layer, f"{j}{i}_{k}").data())
            seq = inp if d == 0 else nd.flip(inp, axis=0)
            o, st = cell.unroll(T, seq, [s[i * 2 + d] for s in begin], layout="TNC", merge_outputs=True)
            outs.append(o if d == 0 else nd.flip(o, axis=0))
            finals.append(st)
        inp = nd.concat(*outs, dim=2)
    assert out.shape == (T, N, 2 * H)
    np.testing.assert_allclose(out.asnumpy(), inp.asnumpy(), rtol=1e-5, atol=1e-6)
    assert len(states) == CELLS[name][2]
    for k, s in enumerate(states):
        assert s.shape == (L * 2, N, H)
        np.testing.assert_allclose(s.asnumpy(), np.stack([f[k].asnumpy() for f in finals]),
                                   rtol=1e-5, atol=1e-6)
    # the last layer's forward state is its last output, the backward one its first
    np.testing.assert_allclose(states[0].asnumpy()[2], out.asnumpy()[-1, :, :H], rtol=1e-6)
    np.testing.assert_allclose(states[0].asnumpy()[3], out.asnumpy()[0, :, H:], rtol=1e-6)


def copy_params(src, dst):
    for (a, p), (b, q) in zip(src.collect_params().items(), dst.collect_params().items()):
        assert a == b
        q.set_data(p.data())


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_layout_ntc_equals_tnc_transposed(name):
    rng = np.random.default_rng(5)
    tnc = make_layer(name, 4, rng, num_layers=2, bidirectional=True, input_size=3)
    ntc = make_layer(name, 4, rng, num_layers=2, bidirectional=True, input_size=3, layout="NTC")
    randomize(tnc, rng)
    copy_params(tnc, ntc)
    x = rng.normal(size=(5, 2, 3)).astype(np.float32)
    begin = tnc.begin_state(2)
    a, sa = tnc(nd.array(x), begin)
    b, sb = ntc(nd.array(x.transpose(1, 0, 2)), begin)
    assert b.shape == (2, 5, 8)
    np.testing.assert_allclose(b.asnumpy(), a.asnumpy().transpose(1, 0, 2), rtol=1e-6)
    for s, t in zip(sa, sb):
        np.testing.assert_allclose(s.asnumpy(), t.asnumpy(), rtol=1e-6)


def test_dropout_between_layers_only_and_only_in_training():
    rng = np.random.default_rng(6)
    x = nd.array(rng.normal(size=(4, 3, 5)))
    plain = make_layer("lstm", 6, rng, num_layers=2, input_size=5)
    drop = make_layer("lstm", 6, rng, num_layers=2, input_size=5, dropout=0.5)
    randomize(plain, rng)
    copy_params(plain, drop)
    expected = plain(x).asnumpy()
    np.testing.assert_array_equal(drop(x).asnumpy(), expected)  # predict mode: no dropout
    with autograd.train_mode():
        mx.random.seed(11)
        a = drop(x).asnumpy()
        b = drop(x).asnumpy()
        assert not np.allclose(a, expected) and not np.allclose(a, b)  # a new mask each call
        # by hand: layer 0, dropout with the same random stream, layer 1
        first = make_layer("lstm", 6, rng, input_size=5)
        second = make_layer("lstm", 6, rng, input_size=6)
        for k in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias"):
            first.collect_params()[f"l0_{k}"].set_data(getattr(plain, f"l0_{k}").data())
            second.collect_params()[f"l0_{k}"].set_data(getattr(plain, f"l1_{k}").data())
        h0 = first(x)
        mx.random.seed(11)
        np.testing.assert_allclose(a, second(ops.dropout(h0, p=0.5)).asnumpy(), rtol=1e-6)
        # one layer: nothing to drop between, so no dropout on its input or output
        one = make_layer("gru", 6, rng, input_size=5, dropout=0.5, bidirectional=True)
        ref = make_layer("gru", 6, rng, input_size=5, bidirectional=True)
        randomize(one, rng)
        copy_params(one, ref)
        np.testing.assert_array_equal(one(x).asnumpy(), ref(x).asnumpy())
    with pytest.raises(ValueError, match="dropout"):
        LSTM(4, dropout=1.0)


def test_layer_returns_states_only_when_given_names_and_deferred_input_size():
    rng = np.random.default_rng(7)
    layer = make_layer("gru", 3, rng, num_layers=2, bidirectional=True)
    assert list(layer.collect_params()) == [
        f"{j}{i}_{k}" for i in range(2) for j in "lr"
        for k in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")]
    assert layer.l0_i2h_weight.shape == (9, 0) and layer.l1_i2h_weight.shape == (9, 6)
    x = nd.array(rng.normal(size=(4, 2, 5)))
    out = layer(x)
    assert isinstance(out, NDArray) and out.shape == (4, 2, 6)
    assert layer.l0_i2h_weight.shape == (9, 5) and layer.r0_i2h_weight.shape == (9, 5)
    out2, states = layer(x, layer.begin_state(2)[0])  # a single state array is accepted
    np.testing.assert_array_equal(out2.asnumpy(), out.asnumpy())
    assert isinstance(states, list) and [s.shape for s in states] == [(4, 2, 3)]
    with pytest.raises(ValueError, match=r"\(4, 2, 3\)"):
        layer(x, [nd.zeros((2, 2, 3))])
    with pytest.raises(ValueError, match=r"\(9, 5\).*\(9, 7\)"):
        layer(nd.zeros((4, 2, 7)))
    assert "5 -> 3, TNC, num_layers=2, bidirectional" in repr(layer)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_two_layer_bidirectional_layer_gradients_float64(name):
    rng = np.random.default_rng(8)
    T, N, C, H = 3, 2, 2, 2
    layer = make_layer(name, H, rng, dtype=F64, num_layers=2, bidirectional=True, input_size=C,
                       layout="NTC")
    randomize(layer, rng)
    x = rng.normal(size=(N, T, C))
    begin = [rng.normal(size=(4, N, H)) for _ in range(CELLS[name][2])]

    def fn(x, *begin):
        return flat_outputs(*layer(x, list(begin)))
    assert_gradients(fn, [x, *begin], list(layer.collect_params().values()))


def test_sequential_and_dropout_cells():
    rng = np.random.default_rng(9)
    stack = SequentialRNNCell()
    stack.add(make_cell("lstm", 4, 3, rng))
    stack.add(DropoutCell(0.5))
    stack.add(make_cell("gru", 5, 4, rng))
    assert [s.shape for s in stack.begin_state(2)] == [(2, 4), (2, 4), (2, 5)]
    assert list(stack.collect_params())[:2] == ["0.i2h_weight", "0.h2h_weight"]
    x = nd.array(rng.normal(size=(2, 6, 3)))
    out, states = stack.unroll(6, x, layout="NTC", merge_outputs=True)
    h, s1 = stack[0].unroll(6, x, layout="NTC", merge_outputs=True)
    h, s2 = stack[2].unroll(6, h, layout="NTC", merge_outputs=True)
    np.testing.assert_allclose(out.asnumpy(), h.asnumpy(), rtol=1e-6)
    for a, b in zip(states, s1 + s2):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)
    with autograd.train_mode():
        dropped, _ = stack.unroll(6, x, layout="NTC", merge_outputs=True)
    assert not np.allclose(dropped.asnumpy(), out.asnumpy())


# ---- Tree-LSTM ----
# A tree is (word index, [children]); a child may be None in an N-ary tree (an absent position).

TREES = [
    (0, [(1, []), (2, [(3, []), (4, [])]), (5, [])]),      # three children at the root
    (6, [(7, [(8, []), (9, [(10, []), (11, [])])])]),    # a chain with a deep right part
    (12, []),                                           # a single leaf
    (13, [(14, []), (15, [])]),
]
BINARY_TREES = [
    (0, [(1, [(2, []), (3, [])]), (4, [])]),
    (5, [None, (6, [(7, []), None])]),                  # nodes with only one child
    (8, []),
    (9, [(10, [(11, []), (12, [(13, []), (14, [])])]), (15, [])]),
]


def ref_child_sum(x, tree, P):
    """Tai et al. (2015) eq. 2-8, node by node (rows of i2h_weight in order i, o, u, f)."""
    idx, kids = tree
    states = [ref_child_sum(x, k, P) for k in kids]
    H = P["hc2h_weight"].shape[0]
    Wi, Wo, Wu, Wf = np.split(P["i2h_weight"], 4)
    bi, bo, bu, bf = np.split(P["i2h_bias"], 4)
    Ui, Uo, Uu = np.split(P["hs2h_weight"], 3)
    ci, co, cu = np.split(P["hs2h_bias"], 3)
    Uf, cf = P["hc2h_weight"], P["hc2h_bias"]
    xj = x[idx]
    h_tilde = sum((h for h, _ in states), np.zeros(H))                                  # (2)
    i = sig(Wi @ xj + bi + Ui @ h_tilde + ci)                                          # (3)
    o = sig(Wo @ xj + bo + Uo @ h_tilde + co)                                          # (5)
    u = np.tanh(Wu @ xj + bu + Uu @ h_tilde + cu)                                      # (6)
    c = i * u + sum((sig(Wf @ xj + bf + Uf @ hk + cf) * ck for hk, ck in states), np.zeros(H))  # (4, 7)
    return o * np.tanh(c), c                                                           # (8)


def ref_nary(x, tree, P, N):
    """Tai et al. (2015) eq. 9-14 with N ordered children, each forget gate with its own W rows
    (the seed's "individual weights"); absent children have h = c = 0."""
    idx, kids = tree
    H = P["h2h_weight"].shape[1] // N
    kids = list(kids) + [None] * (N - len(kids))
    states = [(np.zeros(H), np.zeros(H)) if k is None else ref_nary(x, k, P, N) for k in kids]
    W = np.split(P["i2h_weight"], 3 + N)
    b = np.split(P["i2h_bias"] + P["h2h_bias"], 3 + N)
    U = [np.split(rows, N, axis=1) for rows in np.split(P["h2h_weight"], 3 + N)]  # U[gate][child l]
    xj = x[idx]

    def pre(g):
        return W[g] @ xj + sum(U[g][l] @ states[l][0] for l in range(N)) + b[g]
    i, o, u = sig(pre(0)), sig(pre(1)), np.tanh(pre(2))                       # (9, 11, 12)
    c = i * u + sum(sig(pre(3 + k)) * states[k][1] for k in range(N))          # (10, 13)
    return o * np.tanh(c), c                                                   # (14)


def encode(cell, x, tree):
    """The seed's recursive use: one node at a time, children first."""
    idx, kids = tree
    states = [None if k is None else encode(cell, x, k)[1] for k in kids]
    return cell(x[idx:idx + 1], states)


def encode_levels(cell, x, trees, arity=None):
    """All trees at once, level by level (leaves first): one forward_batch per level.

    Node states go into a table whose row 0 fills padded/absent child slots: deliberately not
    zeros, so that ``child_mask`` alone must keep it out.
    """
    H = cell._hidden_size
    nodes, height = [], {}

    def walk(t):
        kids = [walk(k) if k is not None else None for k in t[1]]
        height[id(t)] = 1 + max([height[id(t[1][i])] for i, k in enumerate(kids) if k is not None],
                                default=-1)
        nodes.append(t)
        return t
    for t in trees:
        walk(t)
    pad = nd.full((1, H), 7.0, ctx=x.ctx, dtype=x.dtype)
    row, table_h, table_c = {}, [pad], [pad]
    for level in range(max(height.values()) + 1):
        batch = [t for t in nodes if height[id(t)] == level]
        K = arity or max(len(t[1]) for t in batch)
        idx = np.zeros((len(batch), K), dtype=np.int64)
        mask = np.zeros((len(batch), K))
        for n, t in enumerate(batch):
            for k, child in enumerate(t[1]):
                if child is not None:
                    idx[n, k], mask[n, k] = row[id(child)], 1
        all_h, all_c = nd.concat(*table_h, dim=0), nd.concat(*table_c, dim=0)
        child_h = ops.take(all_h, array(idx, ctx=x.ctx, dtype="int64"), axis=0)
        child_c = ops.take(all_c, array(idx, ctx=x.ctx, dtype="int64"), axis=0)
        words = ops.take(x, array([t[0] for t in batch], ctx=x.ctx, dtype="int64"), axis=0)
        h, (h, c) = cell.forward_batch(words, child_h, child_c, array(mask, ctx=x.ctx, dtype=x.dtype))
        start = sum(a.shape[0] for a in table_h)
        for n, t in enumerate(batch):
            row[id(t)] = start + n
        table_h.append(h)
        table_c.append(c)
    roots = array([row[id(t)] for t in trees], ctx=x.ctx, dtype="int64")
    return (ops.take(nd.concat(*table_h, dim=0), roots, axis=0),
            ops.take(nd.concat(*table_c, dim=0), roots, axis=0))


TREE_CELLS = {
    "child_sum": (lambda H, **k: ChildSumTreeLSTMCell(H, **k), TREES, ref_child_sum, None),
    "binary": (lambda H, **k: BinaryTreeLSTMCell(H, **k), BINARY_TREES,
               lambda x, t, P: ref_nary(x, t, P, 2), 2),
}


def make_tree_cell(name, H, C, rng, ctx=None, dtype="float32"):
    cell = TREE_CELLS[name][0](H, input_size=C, dtype=dtype)
    cell.initialize(ctx=ctx)
    randomize(cell, rng)
    return cell


@pytest.mark.parametrize("name", list(TREE_CELLS))
def test_tree_cells_match_tai_et_al_equations(name):
    rng = np.random.default_rng(10)
    cell = make_tree_cell(name, 4, 3, rng)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    for tree in TREE_CELLS[name][1]:
        h, (h2, c) = encode(cell, nd.array(x), tree)
        rh, rc = TREE_CELLS[name][2](x.astype(np.float64), tree, values(cell))
        assert h.shape == (1, 4) and h2 is h
        np.testing.assert_allclose(h.asnumpy()[0], rh, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.asnumpy()[0], rc, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(TREE_CELLS))
def test_tree_cell_gradients_float64(name):
    rng = np.random.default_rng(11)
    cell = make_tree_cell(name, 2, 2, rng, dtype=F64)
    tree = TREE_CELLS[name][1][0]

    def fn(x):
        h, (_, c) = encode(cell, x, tree)
        return nd.concat(h, c, dim=1)
    assert_gradients(fn, [rng.normal(size=(6, 2))], list(cell.collect_params().values()))


@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("name", list(TREE_CELLS))
def test_tree_recursive_and_level_batched_agree_outputs_and_gradients(name, ctx):
    rng = np.random.default_rng(12)
    cell = make_tree_cell(name, 5, 3, rng, ctx(), dtype=F64)
    trees, arity = TREE_CELLS[name][1], TREE_CELLS[name][3]
    x = array(rng.normal(size=(16, 3)), ctx=ctx(), dtype=F64)
    x.attach_grad()
    head = array(rng.normal(size=(len(trees), 10)), ctx=ctx(), dtype=F64)
    params = cell.collect_params()
    results = []
    for batched in (False, True):
        with autograd.record():
            if batched:
                h, c = encode_levels(cell, x, trees, arity)
            else:
                pairs = [encode(cell, x, t)[1] for t in trees]
                h, c = nd.concat(*[p[0] for p in pairs], dim=0), nd.concat(*[p[1] for p in pairs], dim=0)
            out = nd.concat(h, c, dim=1)
        out.backward(head)
        results.append((out.asnumpy(), x.grad.asnumpy().copy(),
                        {k: p.grad().asnumpy().copy() for k, p in params.items()}))
    (o1, gx1, gp1), (o2, gx2, gp2) = results
    np.testing.assert_allclose(o2, o1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx2, gx1, rtol=1e-10, atol=1e-13)
    assert np.abs(gx1).sum() > 0
    for k in gp1:
        assert np.abs(gp1[k]).sum() > 0, k
        np.testing.assert_allclose(gp2[k], gp1[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_tree_cell_shapes_and_errors():
    cell = ChildSumTreeLSTMCell(4)
    cell.initialize()
    assert [p.shape for p in cell.collect_params().values()] == [(16, 0), (12, 4), (4, 4), (16,), (12,), (4,)]
    leaf = cell(nd.ones((2, 3)))
    assert leaf[0].shape == (2, 4) and cell.i2h_weight.shape == (16, 3)
    with pytest.raises(ValueError, match="nodes, features"):
        cell(nd.ones((3,)))
    binary = BinaryTreeLSTMCell(4, arity=3)
    binary.initialize()
    assert binary.h2h_weight.shape == (24, 12)
    with pytest.raises(ValueError, match="3 children|arity=3"):
        binary(nd.ones((1, 2)), [leaf[1]] * 4)
    with pytest.raises(ValueError, match=r"\(B, 3, H\)"):
        binary.forward_batch(nd.ones((2, 2)), nd.zeros((2, 2, 4)), nd.zeros((2, 2, 4)))


def test_recurrent_initializers_orthogonal_weights_and_forget_bias():
    layer = LSTM(3, num_layers=2, input_size=5, h2h_weight_initializer=mx.init.Orthogonal(scale=1.0),
                 i2h_bias_initializer=mx.init.LSTMBias(forget_bias=1.0))
    layer.initialize(mx.init.Xavier())
    for i in range(2):
        w = getattr(layer, f"l{i}_h2h_weight").data().asnumpy()  # (12, 3): orthonormal columns
        np.testing.assert_allclose(w.T @ w, np.eye(3), atol=1e-5)
        np.testing.assert_array_equal(getattr(layer, f"l{i}_i2h_bias").data().asnumpy(),
                                      [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
        np.testing.assert_array_equal(getattr(layer, f"l{i}_h2h_bias").data().asnumpy(), 0)
    cell = LSTMCell(2, i2h_bias_initializer="lstmbias")
    cell.initialize()
    cell(nd.ones((1, 4)), cell.begin_state(1))
    np.testing.assert_array_equal(cell.i2h_bias.data().asnumpy(), [0, 0, 1, 1, 0, 0, 0, 0])
