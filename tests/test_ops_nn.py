"""Normalisation, embedding, softmax temperature, and the fused LSTM / Tree-LSTM cells,
against NumPy references written from the published formulas."""
import numpy as np
import pytest

from dlrun.engine import array, autograd, ops, random
from tests.opcases import OpCase, kw, labels, log_softmax_ref, normal, op_tests


def sig(z):
    return 1 / (1 + np.exp(-z))


def batch_norm_ref(x, gamma, beta, axis=1, eps=1e-5):
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = [-1 if i == axis else 1 for i in range(x.ndim)]
    mean, var = x.mean(axis=red, keepdims=True), x.var(axis=red, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


def layer_norm_ref(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def lstm_ref(i2h, h, c, wh, bh, reverse=False):
    # Hochreiter & Schmidhuber / Graves: gates i, f, u(g), o, step after step
    H = h.shape[1]
    outs = [None] * len(i2h)
    for t in (reversed(range(len(i2h))) if reverse else range(len(i2h))):
        z = i2h[t] + h @ wh.T + bh
        i, f, u, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
        c = f * c + i * u
        h = o * np.tanh(c)
        outs[t] = h
    return np.stack(outs), h, c


def nary_ref(x, ch, cc, wi, bi, wh, bh):
    # Tai et al. 2015, eq. 9-14: every gate sees all children's h through its own U^(l)
    B, N, H = ch.shape
    z = x @ wi.T + bi + ch.reshape(B, N * H) @ wh.T + bh
    i, o, u = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H])
    f = sig(z[:, 3 * H:]).reshape(B, N, H)
    c = i * u + (f * cc).sum(axis=1)
    return o * np.tanh(c), c


def child_sum_ref(x, ch, cc, mask, wi, bi, whs, bhs, whc, bhc):
    # Tai et al. 2015, eq. 2-8, one node at a time over its real children
    H = ch.shape[2]
    hs, cs = [], []
    for b in range(x.shape[0]):
        kids = [k for k in range(ch.shape[1]) if mask[b, k]]
        htilde = sum((ch[b, k] for k in kids), np.zeros(H))
        zx = x[b] @ wi.T + bi
        ziou = zx[:3 * H] + htilde @ whs.T + bhs
        i, o, u = sig(ziou[:H]), sig(ziou[H:2 * H]), np.tanh(ziou[2 * H:])
        c = i * u
        for k in kids:
            c = c + sig(zx[3 * H:] + ch[b, k] @ whc.T + bhc) * cc[b, k]
        hs.append(o * np.tanh(c))
        cs.append(c)
    return np.array(hs), np.array(cs)


def _bn(x, g, b, **kw_):
    C = x.shape[kw_.get("axis", 1)]
    rm, rv = (array(np.zeros(C), ctx=x.ctx, dtype=x.dtype), array(np.ones(C), ctx=x.ctx, dtype=x.dtype))
    return ops.batch_norm(x, g, b, rm, rv, training=True, **kw_)


MASK = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
IN, H = 3, 2
T = 3
LSTM_SHAPES = [(T, 2, 4 * H), (2, H), (2, H), (4 * H, H), (4 * H,)]
NARY_SHAPES = [(3, IN), (3, 2, H), (3, 2, H), (5 * H, IN), (5 * H,), (5 * H, 2 * H), (5 * H,)]
CS_SHAPES = [(3, IN), (3, 3, H), (3, 3, H), (3, 3), (4 * H, IN), (4 * H,), (3 * H, H), (3 * H,), (H, H), (H,)]


def mask_gen(rng, shape):
    return MASK.astype(float)


CS_GENS = [normal, normal, normal, mask_gen] + [normal] * 6
CS_WRT = [0, 1, 2, 4, 5, 6, 7, 8, 9]

OPS = [
    OpCase("log_softmax", kw(ops.log_softmax, temperature=2.5), [(3, 4)],
           lambda x: log_softmax_ref(x / 2.5), tag="temperature"),
    OpCase("softmax", kw(ops.softmax, temperature=0.5), [(3, 4)],
           lambda x: np.exp(log_softmax_ref(x / 0.5)), tag="temperature"),
    OpCase("batch_norm", _bn, [(4, 3, 2, 2), (3,), (3,)], batch_norm_ref, tag="nchw"),
    OpCase("batch_norm", lambda x, g, b: _bn(x, g, b, axis=-1), [(5, 3), (3,), (3,)],
           lambda x, g, b: batch_norm_ref(x, g, b, axis=1), tag="last-axis"),
    OpCase("layer_norm", ops.layer_norm, [(4, 5), (5,), (5,)], layer_norm_ref),
    OpCase("embedding", ops.embedding, [(2, 3), (6, 4)], lambda d, w: w[d.astype(int)],
           gens=[labels(6), normal], wrt=[1]),
    *[OpCase("lstm", lambda *a, k=k, r=r: ops.lstm(*a, reverse=r)[k], LSTM_SHAPES,
             lambda *a, k=k, r=r: lstm_ref(*a, reverse=r)[k], tag=f"{name}{'-reverse' if r else ''}")
      for k, name in enumerate(("outputs", "h", "c")) for r in (False, True)],
    OpCase("nary_tree_lstm_cell", lambda *a: ops.nary_tree_lstm_cell(*a)[0], NARY_SHAPES,
           lambda *a: nary_ref(*a)[0], tag="h"),
    OpCase("nary_tree_lstm_cell", lambda *a: ops.nary_tree_lstm_cell(*a)[1], NARY_SHAPES,
           lambda *a: nary_ref(*a)[1], tag="c"),
    OpCase("child_sum_tree_lstm_cell", lambda *a: ops.child_sum_tree_lstm_cell(*a)[0], CS_SHAPES,
           lambda *a: child_sum_ref(*a)[0], gens=CS_GENS, wrt=CS_WRT, tag="h"),
    OpCase("child_sum_tree_lstm_cell", lambda *a: ops.child_sum_tree_lstm_cell(*a)[1], CS_SHAPES,
           lambda *a: child_sum_ref(*a)[1], gens=CS_GENS, wrt=CS_WRT, tag="c"),
]

test_forward, test_gradient, test_gpu = op_tests(OPS)


def test_batch_norm_running_statistics_and_predict_mode():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(8, 2, 3))
    rm, rv = array(np.zeros(2), dtype="float64"), array(np.ones(2), dtype="float64")
    g, b = array(np.ones(2), dtype="float64"), array(np.zeros(2), dtype="float64")
    ops.batch_norm(array(x, dtype="float64"), g, b, rm, rv, momentum=0.9, training=True)
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    np.testing.assert_allclose(rm.asnumpy(), 0.1 * mean)
    np.testing.assert_allclose(rv.asnumpy(), 0.9 + 0.1 * var)
    y = ops.batch_norm(array(x, dtype="float64"), g, b, rm, rv, training=False).asnumpy()
    expected = (x - rm.asnumpy()[None, :, None]) / np.sqrt(rv.asnumpy()[None, :, None] + 1e-5)
    np.testing.assert_allclose(y, expected)
    np.testing.assert_allclose(rm.asnumpy(), 0.1 * mean)  # predict mode leaves them alone


def test_child_sum_leaf_with_no_children():
    rng = np.random.default_rng(1)
    args = [rng.normal(size=s) for s in [(2, IN), (2, 0, H), (2, 0, H), (2, 0), (4 * H, IN), (4 * H,),
                                          (3 * H, H), (3 * H,), (H, H), (H,)]]
    h, c = ops.child_sum_tree_lstm_cell(*[array(a, dtype="float64") for a in args])
    eh, ec = child_sum_ref(*args)
    np.testing.assert_allclose(h.asnumpy(), eh)
    np.testing.assert_allclose(c.asnumpy(), ec)


def test_embedding_gradient_accumulates_repeated_rows_and_checks_range():
    w = array(np.arange(12.0).reshape(4, 3))
    w.attach_grad()
    with autograd.record():
        y = ops.embedding(array(np.array([[1, 1], [3, 1]])), w)
    y.backward()
    np.testing.assert_allclose(w.grad.asnumpy(), [[0, 0, 0], [3, 3, 3], [0, 0, 0], [1, 1, 1]])
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        ops.embedding(array(np.array([4])), w)


def test_autograd_grad_leaves_dot_grad_alone_and_reaches_intermediates():
    x = array([1.0, 2.0], dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = x * x
        z = ops.sum(y * 3)
    gx, gy = autograd.grad(z, [x, y])
    np.testing.assert_allclose(gx.asnumpy(), [6.0, 12.0])
    np.testing.assert_allclose(gy.asnumpy(), [3.0, 3.0])
    np.testing.assert_array_equal(x.grad.asnumpy(), [0.0, 0.0])
    with pytest.raises(NotImplementedError, match="create_graph"):
        autograd.grad(z, [x], create_graph=True)


def test_stop_gradient_passes_values_but_no_gradient():
    x = array([1.0, 2.0], dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = ops.stop_gradient(x * x) * x + ops.BlockGrad(x)
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), [1 + 1, 8 + 2])
    np.testing.assert_allclose(x.grad.asnumpy(), [1.0, 4.0])  # only through the unblocked factor


def test_several_heads_at_once():
    x = array([1.0, 2.0], dtype="float64")
    x.attach_grad()
    with autograd.record():
        a, b = x * 2, x * x
    autograd.backward([a, b], [array([1.0, 1.0], dtype="float64"), array([10.0, 10.0], dtype="float64")])
    np.testing.assert_allclose(x.grad.asnumpy(), [2 + 20, 2 + 40])


def test_dropout_axes_share_the_mask():
    random.seed(2)
    with autograd.record():
        y = ops.dropout(array(np.ones((4, 50, 3))), p=0.5, axes=(0,)).asnumpy()
    assert np.all(y == y[:1])  # one mask along axis 0


def test_random_draws_are_reproducible_and_shaped():
    random.seed(7)
    a = [random.normal(1, 2, shape=(1000,)).asnumpy(), random.uniform(-1, 1, shape=(3, 4)).asnumpy(),
         random.bernoulli(0.3, shape=(2000,)).asnumpy(), random.randint(2, 5, shape=(50,)).asnumpy(),
         random.permutation(10).asnumpy()]
    random.seed(7)
    b = [random.normal(1, 2, shape=(1000,)).asnumpy(), random.uniform(-1, 1, shape=(3, 4)).asnumpy(),
         random.bernoulli(0.3, shape=(2000,)).asnumpy(), random.randint(2, 5, shape=(50,)).asnumpy(),
         random.permutation(10).asnumpy()]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert abs(a[0].mean() - 1) < 0.2 and abs(a[0].std() - 2) < 0.2
    assert a[1].min() >= -1 and a[1].max() < 1
    assert abs(a[2].mean() - 0.3) < 0.04 and set(np.unique(a[2])) == {0.0, 1.0}
    assert a[3].dtype == np.int32 and a[3].min() >= 2 and a[3].max() < 5
    assert sorted(a[4]) == list(range(10))
    x = array(np.arange(6.0).reshape(6, 1))
    assert sorted(random.shuffle(x).asnumpy()[:, 0]) == list(range(6))
    with pytest.raises(ValueError, match="low < high"):
        random.randint(3, 3)
