"""Mixed precision (issue 22, item 4): ``dlrun.contrib.amp`` as Gluon's ``mxnet.contrib.amp``.

float16 compute with float32 master weights and dynamic loss scaling, on the CPU and on the
GPU (the real one, or the emulated one the GPU lane runs on).
"""
import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.contrib import amp
from dlrun.data.vision import digits
from dlrun.models.lenet import LeNet
from tests.contexts import CONTEXTS


@pytest.fixture(autouse=True)
def amp_off_after():
    yield
    amp.shutdown()


def _lenet(ctx, use_amp: bool, lr: float = 0.05):
    mx.random.seed(0)
    if use_amp:
        amp.init()
    net = LeNet()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": lr, "momentum": 0.9})
    if use_amp:
        amp.init_trainer(trainer)
    return net, trainer


def _step(net, trainer, x, y, use_amp: bool) -> None:
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        loss = loss_fn(net(x), y)
        if use_amp:
            with amp.scale_loss(loss, trainer) as scaled:
                loss = scaled
    loss.backward()
    trainer.step(x.shape[0])


def _accuracy_after_an_epoch(ctx, use_amp: bool) -> tuple[float, object, object]:
    data = digits()
    (xtr, ytr), (xte, yte) = data.train._arrays, data.test._arrays
    net, trainer = _lenet(ctx, use_amp)
    for i in range(0, len(xtr), 64):
        _step(net, trainer, nd.array(xtr[i:i + 64], ctx=ctx), nd.array(ytr[i:i + 64], ctx=ctx), use_amp)
    out = net(nd.array(xte, ctx=ctx))
    return float((out.asnumpy().argmax(axis=1) == yte).mean()), out, (net, trainer)


@pytest.fixture(scope="module")
def float32_accuracy():
    return _accuracy_after_an_epoch(mx.cpu(), False)[0]


@pytest.mark.parametrize("make_ctx", CONTEXTS)
def test_float16_lenet_reaches_the_float32_accuracy_band_on_digits(make_ctx, float32_accuracy):
    ctx = make_ctx()
    accuracy, out, (net, trainer) = _accuracy_after_an_epoch(ctx, True)
    # compute in float16 (held in float32 on the CPU), master weights in float32
    assert out.dtype == (np.float32 if ctx.device_type == "cpu" else np.float16)
    assert all(p.data().dtype == np.float32 for p in net.collect_params().values())
    assert trainer._amp_loss_scaler.loss_scale < 2.0 ** 16  # the first steps overflowed
    assert float32_accuracy > 0.85
    assert abs(accuracy - float32_accuracy) < 0.05, (accuracy, float32_accuracy)


@pytest.mark.parametrize("make_ctx", CONTEXTS)
def test_an_overflow_skips_the_step_and_halves_the_scale(make_ctx):
    ctx = make_ctx()
    net, trainer = _lenet(ctx, True)
    scaler = trainer._amp_loss_scaler
    scaler.loss_scale = 8.0  # no overflow from the scale itself
    x, y = nd.ones((2, 1, 28, 28), ctx=ctx), nd.array([1, 2], ctx=ctx)
    _step(net, trainer, x, y, True)
    before = {k: p.data().asnumpy() for k, p in net.collect_params().items()}
    assert (scaler.loss_scale, scaler.good_steps) == (8.0, 1)
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
        with amp.scale_loss(loss, trainer) as scaled:
            scaled = scaled * 1e30  # an injected overflow
    scaled.backward()
    assert trainer.step(2) is None
    assert (scaler.loss_scale, scaler.good_steps, scaler.skipped) == (4.0, 0, 1)
    for k, p in net.collect_params().items():  # the step was skipped
        np.testing.assert_array_equal(p.data().asnumpy(), before[k], err_msg=k)
    _step(net, trainer, x, y, True)  # the gradients of the skipped step are not stale
    assert any(not np.array_equal(p.data().asnumpy(), before[k]) for k, p in net.collect_params().items())


def test_the_scale_grows_after_a_window_of_good_steps_and_resumes_from_the_trainer_state():
    net, trainer = _lenet(mx.cpu(), True)
    scaler = amp.init_trainer(trainer, init_scale=4.0, scale_window=3)
    x, y = nd.ones((2, 1, 28, 28)), nd.array([1, 2])
    for _ in range(3):
        _step(net, trainer, x, y, True)
    assert (scaler.loss_scale, scaler.good_steps) == (8.0, 0)
    _step(net, trainer, x, y, True)
    state = trainer.state_dict()
    resumed_net, resumed = _lenet(mx.cpu(), True)
    for (k, p), q in zip(net.collect_params().items(), resumed_net.collect_params().values()):
        q.set_data(p.data())
    resumed.load_state_dict(state)
    assert resumed._amp_loss_scaler.state() == scaler.state() == {"loss_scale": 8.0, "good_steps": 1, "skipped": 0}


def test_implicit_scaling_seeds_backward_with_the_scale():
    net, trainer = _lenet(mx.cpu(), True)
    trainer._amp_loss_scaler.loss_scale = 4.0
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with amp.implicit_scaling(trainer):
        with autograd.record():
            y = (x * 3.0).sum()
        y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [12.0, 12.0])
    with autograd.record():
        y = (x * 3.0).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [3.0, 3.0])


def test_bfloat16_is_refused_with_what_to_use_instead():
    with pytest.raises(amp.AmpError, match="trainer.amp=fp16"):
        amp.init("bfloat16")
    with pytest.raises(amp.AmpError, match="not one of"):
        amp.init("float8")
    assert not amp.is_enabled()
