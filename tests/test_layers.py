"""The layer library beyond the skeleton: normalisation, embedding, activations, transposed and
global pooling layers, containers (the seed's Inception block), initializers, Block utilities."""
import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, nd
from dlrun import nn
from dlrun.engine import array
from tests.gradcheck import numeric_vjp


def check_layer_gradients(net, x, seed=0):
    """Float64 finite differences against backward() for the input and every trainable parameter."""
    net.cast("float64")
    xa = array(x, dtype="float64")
    out = net(xa)
    head = np.random.default_rng(seed).normal(size=out.shape)
    xa.attach_grad()
    with autograd.record():
        y = net(xa)
    y.backward(array(head, dtype="float64"))
    with autograd.train_mode():
        expected_x = numeric_vjp(lambda v: net(array(v, dtype="float64")).asnumpy(), [x.copy()], head, 0)
    np.testing.assert_allclose(xa.grad.asnumpy(), expected_x, rtol=1e-5, atol=1e-7, err_msg="input")
    for name, p in net.collect_params().items():
        if p.grad_req == "null":
            continue
        value = p.data().asnumpy().copy()
        analytic = p.grad().asnumpy().copy()

        def f(v, p=p):
            p.set_data(v)
            with autograd.train_mode():
                return net(array(x, dtype="float64")).asnumpy()
        expected = numeric_vjp(f, [value.copy()], head, 0)
        p.set_data(value)
        np.testing.assert_allclose(analytic, expected, rtol=1e-5, atol=1e-7, err_msg=name)


def test_batchnorm_layer_statistics_modes_and_gradients():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(16, 3, 4, 4)).astype(np.float32)
    bn = nn.BatchNorm(momentum=0.8)
    bn.initialize()
    with autograd.record():
        y = bn(array(x)).asnumpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-3)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), 0.2 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data().asnumpy(), 0.8 + 0.2 * x.var(axis=(0, 2, 3)), rtol=1e-5)
    predict = bn(array(x)).asnumpy()  # predict mode: running statistics, which are unchanged by it
    rm, rv = bn.running_mean.data().asnumpy(), bn.running_var.data().asnumpy()
    np.testing.assert_allclose(predict, (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5), rtol=1e-4)
    assert list(bn.collect_params()) == ["gamma", "beta", "running_mean", "running_var"]
    assert bn.running_mean.grad_req == "null"
    net = nn.HybridSequential()
    net.add(nn.Conv2D(2, 3), nn.BatchNorm())
    net.initialize()
    check_layer_gradients(net, rng.normal(size=(4, 2, 5, 5)))


def test_layernorm_embedding_and_activation_layers():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5))
    ln = nn.LayerNorm()
    ln.initialize()
    got = ln(array(x, dtype="float64")).asnumpy()
    np.testing.assert_allclose(got, (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5), rtol=1e-6)
    check_layer_gradients(ln, x)
    emb = nn.Embedding(10, 4)
    emb.initialize()
    idx = np.array([[1, 2], [9, 1]])
    np.testing.assert_array_equal(emb(array(idx)).asnumpy(), emb.weight.data().asnumpy()[idx])
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(array(x)).asnumpy(), np.where(x > 0, x, 0.1 * x), rtol=1e-6)
    np.testing.assert_allclose(nn.ELU(0.5)(array(x)).asnumpy(), np.where(x > 0, x, 0.5 * np.expm1(x)), rtol=1e-6)
    for name, ref in [("softrelu", lambda v: np.log1p(np.exp(v))), ("softsign", lambda v: v / (1 + np.abs(v)))]:
        np.testing.assert_allclose(nn.Activation(name)(array(x)).asnumpy(), ref(x), rtol=1e-6)
    prelu = nn.PReLU(in_channels=3)
    prelu.initialize()
    x4 = rng.normal(size=(2, 3, 2, 2)) + 0.05
    np.testing.assert_allclose(prelu(array(x4)).asnumpy(), np.where(x4 > 0, x4, 0.25 * x4), rtol=1e-6)
    check_layer_gradients(prelu, x4)


def test_transposed_convolution_layers_and_global_pools():
    rng = np.random.default_rng(2)
    up = nn.Conv2DTranspose(4, kernel_size=4, strides=2, padding=1)
    up.initialize()
    x = rng.normal(size=(2, 3, 5, 5))
    assert up(array(x)).shape == (2, 4, 10, 10)  # (5-1)*2 - 2 + 4 = 10: DCGAN's upsampling
    assert up.weight.shape == (3, 4, 4, 4)
    check_layer_gradients(up, x)
    x3 = rng.normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(nn.GlobalAvgPool2D()(array(x3)).asnumpy(), x3.mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(nn.GlobalMaxPool2D()(array(x3)).asnumpy(), x3.max(axis=(2, 3), keepdims=True))
    assert nn.GlobalAvgPool1D()(array(rng.normal(size=(2, 3, 7)))).shape == (2, 3, 1)


def _make_basic_conv(**kwargs):
    out = nn.HybridSequential(prefix='')
    out.add(nn.Conv2D(use_bias=False, **kwargs))
    out.add(nn.BatchNorm(epsilon=0.001))
    out.add(nn.Activation('relu'))
    return out


def _make_branch(use_pool, *conv_settings):
    out = nn.HybridSequential(prefix='')
    if use_pool == 'avg':
        out.add(nn.AvgPool2D(pool_size=3, strides=1, padding=1))
    elif use_pool == 'max':
        out.add(nn.MaxPool2D(pool_size=3, strides=2))
    setting_names = ['channels', 'kernel_size', 'strides', 'padding']
    for setting in conv_settings:
        kwargs = {}
        for i, value in enumerate(setting):
            if value is not None:
                kwargs[setting_names[i]] = value
        out.add(_make_basic_conv(**kwargs))
    return out


def _make_A(pool_features, prefix):
    out = nn.HybridConcurrent(concat_dim=1, prefix=prefix)
    with out.name_scope():
        out.add(_make_branch(None, (64, 1, None, None)))
        out.add(_make_branch(None, (48, 1, None, None),
                             (64, 5, None, 2)))
        out.add(_make_branch(None, (64, 1, None, None),
                             (96, 3, None, 1),
                             (96, 3, None, 1)))
        out.add(_make_branch('avg', (pool_features, 1, None, None)))
    return out


def test_seed_inception_block_runs_nearly_verbatim():
    """The tutorial's Inception-A block (Gluon model zoo form of _make_branch)."""
    block = _make_A(32, 'A1_')
    block.initialize(mx.init.Xavier())
    y = block(nd.random.normal(shape=(2, 192, 35, 35)))
    assert y.shape == (2, 64 + 64 + 96 + 32, 35, 35)
    assert "1.1.0.weight" in block.collect_params()  # branch 1, second basic conv, its Conv2D


def test_dense_drop_connect_and_dropout_axes():
    mx.random.seed(0)
    d = nn.Dense(50, in_units=40, drop_connect=0.5, use_bias=False)
    d.initialize(mx.init.One())
    x = nd.ones((1, 40))
    np.testing.assert_allclose(d(x).asnumpy(), 40.0)  # predict mode: all weights
    with autograd.record():
        y = d(x).asnumpy()
    assert not np.allclose(y, 40.0) and abs(y.mean() - 40) < 6  # weights dropped, rescaled by 2
    with autograd.record():
        z = nn.Dropout(0.5, axes=(1,))(nd.ones((20, 30))).asnumpy()
    assert np.all(z == z[:, :1])


def test_initializers():
    mx.random.seed(1)
    shape = (256, 128)
    w = mx.init.MSRAPrelu(slope=0.0)("w", shape, np.float64)
    np.testing.assert_allclose(w.std(), np.sqrt(2.0 / ((256 + 128) / 2)), rtol=0.05)
    q = mx.init.Orthogonal(scale=1.0)("w", (64, 128), np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(64), atol=1e-10)
    b = mx.init.LSTMBias(forget_bias=1.0)("i2h_bias", (12,), np.float32)
    np.testing.assert_array_equal(b, [0] * 3 + [1] * 3 + [0] * 6)
    net = nn.HybridSequential()
    net.add(nn.Dense(3, in_units=2), nn.Dense(2, in_units=3))
    net.initialize(mx.init.Mixed(["^0\\.", ".*"], [mx.init.Constant(2.0), mx.init.One()]))
    params = net.collect_params()
    np.testing.assert_array_equal(params["0.weight"].data().asnumpy(), 2.0)
    np.testing.assert_array_equal(params["1.weight"].data().asnumpy(), 1.0)
    np.testing.assert_array_equal(params["0.bias"].data().asnumpy(), 0.0)  # the Dense's own 'zeros'


def test_block_utilities_cast_setattr_summary_hooks():
    net = nn.HybridSequential()
    net.add(nn.Dense(4, activation="relu"), nn.Dense(2))
    net.initialize()
    net(nd.ones((1, 3)))
    net.cast("float64")
    assert all(p.data().dtype == np.float64 for p in net.collect_params().values())
    net.collect_params(".*bias").setattr("lr_mult", 0.0)
    assert [p.lr_mult for p in net.collect_params().values()] == [1.0, 0.0, 1.0, 0.0]
    text = net.summary(nd.ones((5, 3), dtype="float64"))
    assert "(5, 4)" in text and "Parameters: 26 (26 trainable)" in text
    seen = []
    remove = net[0].register_forward_hook(lambda b, args, out: seen.append(out.shape))
    net(nd.ones((2, 3), dtype="float64"))
    remove()
    net(nd.ones((2, 3), dtype="float64"))
    assert seen == [(2, 4)]


def test_lambda_layers():
    x = nd.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(nn.Lambda("relu")(x).asnumpy(), [[0.0, 2.0]])
    np.testing.assert_array_equal(nn.HybridLambda(lambda F, v: F.relu(v) * 2)(x).asnumpy(), [[0.0, 4.0]])
    with pytest.raises(ValueError, match="not a function"):
        nn.Lambda("no_such_op")


def test_load_parameters_allow_missing_and_ignore_extra(tmp_path):
    a = nn.HybridSequential()
    a.add(nn.Dense(3, in_units=2), nn.Dense(2, in_units=3))
    a.initialize()
    a.save_parameters(str(tmp_path / "a.npz"))
    b = nn.HybridSequential()
    b.add(nn.Dense(3, in_units=2))
    b.load_parameters(str(tmp_path / "a.npz"), ignore_extra=True)
    np.testing.assert_array_equal(b[0].weight.data().asnumpy(), a[0].weight.data().asnumpy())
    c = nn.HybridSequential()
    c.add(nn.Dense(3, in_units=2), nn.Dense(2, in_units=3), nn.Dense(1, in_units=2))
    c.initialize()
    c.load_parameters(str(tmp_path / "a.npz"), allow_missing=True)
    np.testing.assert_array_equal(c[1].weight.data().asnumpy(), a[1].weight.data().asnumpy())
