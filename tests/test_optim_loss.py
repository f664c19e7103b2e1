"""Losses against NumPy implementations of their published formulas (optimizers: test_optim.py)."""
import numpy as np

import dlrun as mx
from dlrun import nd
from dlrun.loss import L2Loss, SoftmaxCrossEntropyLoss
from tests.gradcheck import check_gradients


def test_softmax_cross_entropy_matches_numpy_and_is_stable():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 5)) * 1000  # huge logits must not overflow
    label = rng.integers(0, 5, 4)
    got = SoftmaxCrossEntropyLoss()(nd.array(logits, dtype="float64"), nd.array(label)).asnumpy()
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, -logp[np.arange(4), label], rtol=1e-10)
    assert np.all(np.isfinite(got))


def test_softmax_cross_entropy_dense_labels_and_weights():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 4))
    dist = rng.dirichlet(np.ones(4), size=3)
    sw = rng.uniform(size=(3, 1))
    loss = SoftmaxCrossEntropyLoss(sparse_label=False, weight=2.0)
    got = loss(nd.array(logits, dtype="float64"), nd.array(dist, dtype="float64"),
               nd.array(sw, dtype="float64")).asnumpy()
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, 2.0 * sw[:, 0] * -(dist * logp).sum(axis=1), rtol=1e-10)


def test_loss_gradients():
    label = np.array([1, 0, 3])
    check_gradients(lambda x: SoftmaxCrossEntropyLoss()(x, nd.array(label)),
                    [np.random.default_rng(3).normal(size=(3, 4))], mx.cpu())
    check_gradients(lambda p, y: L2Loss()(p, y), [np.random.default_rng(4).normal(size=(3, 2))] * 2, mx.cpu())


def test_l2_loss_is_half_squared_error_averaged_over_features():
    pred = np.array([[1.0, 2.0], [0.0, -1.0]])
    label = np.array([[0.0, 0.0], [1.0, 1.0]])
    got = L2Loss()(nd.array(pred), nd.array(label)).asnumpy()
    np.testing.assert_allclose(got, [(1 + 4) / 4, (1 + 4) / 4])
