"""MXNet 1.x's API on dlrun without MXNet itself (the figures are MXNet 1.9.1's, as the
differential lane in tests/mxnet_compat checks them where MXNet can be installed)."""
from __future__ import annotations

import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.engine import ContextError
from dlrun.engine.mxfile import MXFileError


@pytest.mark.parametrize("codes,shape", [
    ((-3, 0, 0), (6, 4, 5)), ((0, -3, 0), (2, 12, 5)), ((-2,), (2, 3, 4, 5)),
    ((-4, 1, 2, -2), (1, 2, 3, 4, 5)), ((0, -4, -1, 3, -2), (2, 1, 3, 4, 5)), ((-3, -3), (6, 20)),
    ((-1, 5), (24, 5))])
def test_reshape_codes_are_mxnets(codes, shape):
    assert nd.ones((2, 3, 4, 5)).reshape(codes).shape == shape
    assert nd.ones((10, 5, 4)).reshape((-1, 0), reverse=True).shape == (50, 4)


def test_full_reductions_and_single_elements_have_shape_one():
    x = nd.array([[1, 2], [3, 4]])
    assert x.sum().shape == (1,) and nd.mean(x).shape == (1,) and x[1, 1].shape == (1,)
    assert x.sum()[0].asscalar() == 10 and x.sum().asnumpy()[0] == 10
    assert "%.1f" % x.mean().asnumpy() == "2.5"


def test_parameter_files_round_trip_in_mxnets_format(tmp_path):
    net = gluon.nn.Dense(3, in_units=2)
    net.initialize(mx.init.Xavier())
    net.save_parameters(str(tmp_path / "d.params"))
    assert (tmp_path / "d.params").read_bytes()[:8] == (0x112).to_bytes(8, "little")
    other = gluon.nn.Dense(3, in_units=2)
    other.load_parameters(str(tmp_path / "d.params"))
    np.testing.assert_array_equal(other.weight.data().asnumpy(), net.weight.data().asnumpy())
    nd.save(str(tmp_path / "l.nd"), [nd.arange(3, dtype="int64"), nd.ones((2,), dtype="float16")])
    a, b = nd.load(str(tmp_path / "l.nd"))
    assert a.dtype == np.int64 and b.dtype == np.float16 and a.asnumpy().tolist() == [0, 1, 2]
    (tmp_path / "bad.nd").write_bytes((tmp_path / "l.nd").read_bytes()[:40])
    with pytest.raises(MXFileError, match="truncated"):
        nd.load(str(tmp_path / "bad.nd"))


def test_weight_decay_stale_gradients_and_two_contexts():
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = gluon.nn.Dense(1, in_units=2, use_bias=False)
    net.initialize(mx.init.One(), ctx=ctx)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "wd": 0.5})
    with pytest.raises(UserWarning, match="ignore_stale_grad"):
        trainer.step(1)
    parts = gluon.utils.split_and_load(nd.ones((4, 2)), ctx)
    with autograd.record():
        losses = [net(p).sum() for p in parts]
    for loss in losses:
        loss.backward()
    trainer.step(4)
    # w <- w - lr (g/4 + wd w) with g summed over both contexts: 1 - 0.1 (4/4 + 0.5) = 0.85
    for copy in net.weight.list_data():
        np.testing.assert_allclose(copy.asnumpy(), [[0.85, 0.85]], rtol=1e-6)


def test_a_missing_gpu_fails_where_memory_is_allocated():
    ctx = mx.gpu(mx.num_gpus())
    with pytest.raises(ContextError, match="cpu"):
        nd.zeros((1,), ctx=ctx)


def test_metrics_and_ndarrayiter_as_mxnet():
    preds, labels = [nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])], [nd.array([0, 1, 1])]
    m = mx.metric.create(["acc", "f1", "ce"])
    m.update(labels, preds)
    names, values = m.get()
    assert names == ["accuracy", "f1", "cross-entropy"]
    np.testing.assert_allclose(values, [2 / 3, 0.8, 0.5715994834899902], rtol=1e-6)
    it = mx.io.NDArrayIter(nd.arange(10).reshape((10, 1)), nd.arange(10), 4, last_batch_handle="roll_over")
    assert [b.data[0].asnumpy().ravel().tolist() for b in it] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    it.reset()
    first = next(it)
    assert first.data[0].asnumpy().ravel().tolist() == [8, 9, 0, 1] and first.pad == 2
