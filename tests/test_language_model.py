"""The LSTM language model and truncated backpropagation through time."""
import math

import numpy as np

import dlrun as mx
from dlrun import autograd, nd
from dlrun.loss import SoftmaxCrossEntropyLoss
from dlrun.models.lstm_lm import LSTMLM
from dlrun.runner.tasks.language_model import windows


def _model(vocab=12, tie=False):
    mx.random.seed(0)
    net = LSTMLM(vocab, embed_size=8, hidden_size=8, num_layers=2, tie_weights=tie)
    net.initialize(mx.init.Uniform(0.1))
    return net


def test_windows_cover_the_stream_with_shifted_targets():
    ids = np.arange(23).reshape(23, 1)
    got = list(windows(ids, 5))
    assert [len(x) for x, _ in got] == [5, 5, 5, 5, 2]
    for x, y in got:
        np.testing.assert_array_equal(y, x + 1)
    assert got[-1][1][-1, 0] == 22


def test_state_carries_across_windows_but_gradient_does_not():
    net = _model()
    loss_fn = SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(0)
    first = nd.array(rng.integers(0, 6, size=(4, 3)).astype(np.int32))    # tokens 0..5 only
    second = nd.array(rng.integers(6, 12, size=(4, 3)).astype(np.int32))  # tokens 6..11 only
    target = nd.array(rng.integers(0, 12, size=(4 * 3,)).astype(np.int32))
    states = net.begin_state(3)
    with autograd.record():
        _, states = net(first, states)
    carried = [s.detach() for s in states]
    fresh = net.begin_state(3)
    with autograd.record():
        out_carried, _ = net(second, carried)
        loss = loss_fn(out_carried.reshape(-1, 12), target).sum()
    loss.backward()
    out_fresh, _ = net(second, fresh)
    # the carried state changes the second window's predictions...
    assert not np.allclose(out_carried.asnumpy(), out_fresh.asnumpy())
    # ...but no gradient reaches the first window: its tokens' embedding rows stay at zero
    grad = net.embedding.weight.grad().asnumpy()
    np.testing.assert_array_equal(grad[:6], 0)
    assert np.abs(grad[6:]).sum() > 0


def test_tied_weights_share_one_parameter():
    net = _model(tie=True)
    names = list(net.collect_params())
    assert "decoder.weight" not in names and "embedding.weight" in names
    assert net.decoder.weight is net.embedding.weight


def test_training_lowers_perplexity_on_a_repeating_sequence():
    net = _model(vocab=5)
    trainer = mx.gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.05})
    loss_fn = SoftmaxCrossEntropyLoss()
    ids = np.tile(np.arange(5), 40).astype(np.int32).reshape(-1, 4, order="F")  # (50, 4) columns
    first = last = None
    for epoch in range(8):
        states = net.begin_state(4)
        total, count = 0.0, 0
        for x, y in windows(ids, 10):
            states = [s.detach() for s in states]
            with autograd.record():
                out, states = net(nd.array(x), states)
                loss = loss_fn(out.reshape(-1, 5), nd.array(y.reshape(-1))).sum()
            loss.backward()
            trainer.step(4)
            total += loss.asscalar()
            count += y.size
        ppl = math.exp(total / count)
        first = first or ppl
        last = ppl
    assert first > 3 and last < 1.5, (first, last)
