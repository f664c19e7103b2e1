"""Optimizers and losses against NumPy implementations of their published formulas."""
import math

import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.loss import L2Loss, SoftmaxCrossEntropyLoss
from dlrun.nn import Parameter
from dlrun.optim import SGD, Adam, Trainer, create
from tests.gradcheck import check_gradients


def _run(optimizer, w0, grads, batch_size=1):
    p = Parameter("weight", shape=w0.shape)
    p.initialize()
    p.set_data(w0)
    trainer = Trainer([p], optimizer)
    for g in grads:
        p.grad()[:] = g
        trainer.step(batch_size)
    return p.data().asnumpy()


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 4)).astype(np.float32), [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.01), (0.0, 0.1)])
def test_sgd_matches_formula(problem, momentum, wd):
    # Polyak momentum as in MXNet: v <- momentum v - lr (g/B + wd w); w <- w + v
    w0, grads = problem
    lr, batch = 0.1, 4
    w, v = w0.astype(np.float64), np.zeros_like(w0, dtype=np.float64)
    for g in grads:
        v = momentum * v - lr * (g / batch + wd * w)
        w = w + v
    got = _run(SGD(lr=lr, momentum=momentum, wd=wd), w0, grads, batch)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("wd,clip", [(0.0, None), (0.01, 0.5)])
def test_adam_matches_kingma_ba_algorithm_1(problem, wd, clip):
    # Kingma & Ba (2015), Algorithm 1, with MXNet's weight decay added to the gradient
    w0, grads = problem
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    w = w0.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if clip is not None:
            g = np.clip(g, -clip, clip)
        g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps * math.sqrt(1 - b2 ** t))  # eps placement of Alg. 1's efficient form
    got = _run(Adam(lr=lr, wd=wd, clip_gradient=clip), w0, grads)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_trainer_from_name_and_learning_rate():
    p = Parameter("weight", shape=(2,))
    p.initialize(mx.init.One())
    trainer = gluon.Trainer([p], "sgd", {"learning_rate": 0.5})
    assert trainer.learning_rate == 0.5
    p.grad()[:] = 2.0
    trainer.step(4)  # gradient rescaled by 1/4
    np.testing.assert_allclose(p.data().asnumpy(), [0.75, 0.75])
    trainer.set_learning_rate(0.1)
    assert trainer.learning_rate == 0.1


def test_bad_hyperparameters_are_rejected_by_name():
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.0)
    with pytest.raises(ValueError, match="learning rate"):
        Adam(lr=-1)
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'.*adam"):
        create("sgdd")


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


def test_training_reduces_loss_on_a_separable_problem():
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    net = gluon.nn.Dense(2)
    net.initialize()
    trainer = Trainer(net.collect_params(), Adam(lr=0.1))
    loss_fn = SoftmaxCrossEntropyLoss()
    for _ in range(50):
        with autograd.record():
            loss = loss_fn(net(nd.array(x)), nd.array(y))
        loss.backward()
        trainer.step(64)
    acc = (net(nd.array(x)).argmax(axis=1).asnumpy() == y).mean()
    assert acc > 0.95
