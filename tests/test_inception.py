"""The Inception model: the seed's blocks, sized for 28x28 and 32x32 images."""
import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.models.inception import Inception, _make_A


@pytest.mark.parametrize("size", [28, 32])
def test_output_shape_for_small_images(size):
    net = Inception(classes=7, width=0.125)
    net.initialize(mx.init.Xavier())
    assert net(nd.random.normal(shape=(2, 1, size, size))).shape == (2, 7)


def test_block_concatenates_four_branches_and_width_scales_channels():
    block = _make_A(pool_features=8, width=0.5)
    block.initialize()
    y = block(nd.random.normal(shape=(1, 4, 9, 9)))
    assert y.shape == (1, 32 + 32 + 48 + 8, 9, 9)  # 64, 64 and 96 halved, plus the pool branch


def test_trains_and_predict_mode_uses_running_statistics():
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    x = nd.array(rng.normal(size=(32, 1, 16, 16)))  # small images: a third of 28x28's work
    y = nd.array(rng.integers(0, 4, 32).astype(np.int32))
    net = Inception(classes=4, width=0.125, dropout=0.0)
    net.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    losses = []
    for _ in range(25):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(32)
        losses.append(loss.mean().asscalar())
    assert losses[-1] < 0.5 * losses[0]
    predict = (net(x).argmax(axis=1).asnumpy() == y.asnumpy()).mean()
    assert predict > 0.8  # running statistics, not the batch's, and still right
