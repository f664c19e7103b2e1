"""Blocks and layers: outputs against NumPy, gradients, deferred shapes, names, save/load."""
import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.engine import array
from dlrun.nn import (AvgPool2D, Conv2D, Dense, DeferredInitializationError, Dropout, Flatten,
                      HybridBlock, MaxPool2D, ParameterFileError, Sequential)
from dlrun.models.lenet import LeNet
from dlrun.models.mlp import MLP
from tests.gradcheck import numeric_vjp
from tests.opcases import conv_loops, pool_loops


def _init(net, x):
    net.initialize(mx.init.Xavier())
    return net(x)


def test_dense_matches_numpy_and_infers_in_units():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 3)).astype(np.float32)
    layer = Dense(5, activation="tanh")
    assert layer.weight.shape == (5, 0)
    y = _init(layer, array(x)).asnumpy()
    assert layer.weight.shape == (5, 6)
    w, b = layer.weight.data().asnumpy(), layer.bias.data().asnumpy()
    np.testing.assert_allclose(y, np.tanh(x.reshape(4, 6) @ w.T + b), rtol=1e-5)
    np.testing.assert_array_equal(b, 0)  # biases start at zero whatever the initializer


def test_conv2d_and_pools_match_loop_references():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 9, 8)).astype(np.float32)
    conv = Conv2D(4, kernel_size=3, strides=2, padding=1, activation="relu")
    y = _init(conv, array(x)).asnumpy()
    w, b = conv.weight.data().asnumpy(), conv.bias.data().asnumpy()
    np.testing.assert_allclose(y, np.maximum(conv_loops(x, w, b, stride=2, pad=1), 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(MaxPool2D(pool_size=3, strides=2)(array(x)).asnumpy(),
                               pool_loops(x, 3, 2), rtol=1e-6)
    np.testing.assert_allclose(AvgPool2D(pool_size=2)(array(x)).asnumpy(),
                               pool_loops(x, 2, pool_type="avg"), rtol=1e-5)


def test_layer_gradients_float64():
    rng = np.random.default_rng(2)
    net = Sequential()
    net.add(Conv2D(2, kernel_size=3, activation="tanh", dtype="float64"), AvgPool2D(2), Flatten(),
            Dense(3, activation="sigmoid", dtype="float64"), Dense(2, dtype="float64"))
    x = rng.normal(size=(2, 1, 6, 6))
    net.initialize(mx.init.Xavier())
    net(array(x, dtype="float64"))
    params = list(net.collect_params().values())
    head = rng.normal(size=(2, 2))
    with autograd.record():
        y = net(array(x, dtype="float64"))
    y.backward(array(head, dtype="float64"))
    for p in params:
        value = p.data().asnumpy()

        def f(v, p=p):
            p.set_data(v)
            return net(array(x, dtype="float64")).asnumpy()
        analytic = p.grad().asnumpy().copy()
        expected = numeric_vjp(f, [value.copy()], head, 0)
        p.set_data(value)
        np.testing.assert_allclose(analytic, expected, rtol=1e-5, atol=1e-8, err_msg=p.name)


def test_dropout_new_mask_each_step_identity_in_predict_mode():
    mx.random.seed(3)
    layer = Dropout(0.5)
    x = nd.ones((100, 100))
    np.testing.assert_array_equal(layer(x).asnumpy(), 1)  # predict mode
    with autograd.record():
        a, b = layer(x).asnumpy(), layer(x).asnumpy()
    assert not np.array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 2.0}


def test_structural_parameter_names():
    net = LeNet()
    assert list(net.collect_params()) == [
        "features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
        "features.5.weight", "features.5.bias", "output.weight", "output.bias"]
    assert list(net.collect_params(".*bias")) == [
        "features.0.bias", "features.2.bias", "features.5.bias", "output.bias"]


def test_deferred_initialization_errors_are_clear():
    layer = Dense(3)
    with pytest.raises(RuntimeError, match="not been initialized"):
        layer.weight.data()
    layer.initialize()
    with pytest.raises(DeferredInitializationError, match="forward pass"):
        layer.weight.data()
    layer(nd.ones((2, 4)))
    assert layer.weight.data().shape == (3, 4)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        layer(nd.ones((2, 5)))


def test_save_load_round_trip_and_strict_errors(tmp_path):
    mx.random.seed(4)
    x = nd.random.normal(shape=(2, 1, 28, 28))
    net = LeNet()
    y = _init(net, x).asnumpy()
    path = str(tmp_path / "lenet.npz")
    net.save_parameters(path)
    other = LeNet()
    other.load_parameters(path)  # never initialized: shapes come from the file
    np.testing.assert_allclose(other(x).asnumpy(), y, rtol=1e-6)
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(net.collect_params())
    with pytest.raises(ParameterFileError, match="missing in the file: .*output.weight"):
        bad = dict(np.load(path))
        del bad["output.weight"]
        np.savez(tmp_path / "bad.npz", **bad)
        LeNet().load_parameters(str(tmp_path / "bad.npz"))
    with pytest.raises(ParameterFileError, match="shape mismatch: output.weight"):
        LeNet(classes=7).load_parameters(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ParameterFileError, match="junk.npz"):
        LeNet().load_parameters(str(tmp_path / "junk.npz"))


def test_seed_mlp_and_lenet_snippets_train_with_only_imports_changed():
    """The tutorial's code, verbatim but for `import dlrun as mx`."""
    mx.random.seed(5)
    net = gluon.nn.Sequential()
    with net.name_scope():
        net.add(gluon.Dense(128, activation='relu'))
        net.add(gluon.Dropout(rate=0.5))
        net.add(gluon.Dense(64, activation='relu'))
        net.add(gluon.Dropout(rate=0.5))
        net.add(gluon.Dense(1))
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    net.initialize()
    assert net(nd.ones((4, 3))).shape == (4, 1)  # shapes are inferred at first use
    assert net.collect_params()["0.weight"].shape == (128, 3)

    lenet = gluon.nn.Sequential()
    with lenet.name_scope():
        lenet.add(gluon.nn.Conv2D(channels=20, kernel_size=5, activation='tanh'))
        lenet.add(gluon.nn.AvgPool2D(pool_size=2))
        lenet.add(gluon.nn.Conv2D(channels=50, kernel_size=5, activation='tanh'))
        lenet.add(gluon.nn.AvgPool2D(pool_size=2))
        lenet.add(gluon.nn.Flatten())
        lenet.add(gluon.nn.Dense(500, activation='tanh'))
        lenet.add(gluon.nn.Dense(10))
    lenet.initialize(mx.init.Xavier(), ctx=mx.cpu())
    trainer = gluon.Trainer(lenet.collect_params(), 'sgd', {'learning_rate': 0.1})
    rng = np.random.default_rng(0)
    data = nd.array(rng.normal(size=(16, 1, 28, 28)))
    label = nd.array(rng.integers(0, 10, 16).astype(np.int32))
    losses = []
    for _ in range(15):
        with autograd.record():
            output = lenet(data)
            l = loss(output, label)
        l.backward()
        trainer.step(data.shape[0])
        losses.append(l.mean().asscalar())
    assert losses[-1] < losses[0] * 0.3, losses  # memorises 16 random labels


def test_gluon_1x_hybrid_forward_runs():
    class Net(HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.fc1 = gluon.nn.Dense(4)
                self.fc2 = gluon.nn.Dense(2)

        def hybrid_forward(self, F, x):
            return self.fc2(F.relu(self.fc1(x)))

    net = Net()
    net.initialize()
    net.hybridize()
    assert net(nd.ones((3, 5))).shape == (3, 2)
    assert list(net.collect_params()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_mlp_model_shapes_and_predict_mode_is_deterministic():
    net = MLP()
    x = nd.random.normal(shape=(5, 1, 28, 28))
    y1 = _init(net, x).asnumpy()
    assert y1.shape == (5, 10)
    np.testing.assert_array_equal(net(x).asnumpy(), y1)
    assert net.collect_params()["features.0.weight"].shape == (128, 784)
