"""The emulated GPU (``dlrun.engine.testing``) is as strict as CuPy, and what it counts.

These run where the GPU lane runs on the emulation (no real GPU; tests/conftest.py sets
``DLRUN_EMULATE_GPU=2``); on a real GPU they skip, the lane itself then runs on the device.
"""
import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.engine import ContextError, gpu
from dlrun.engine.backend import array_module, device_scope, emulated_gpus
from dlrun.engine.testing import counting, load_snapshot
from dlrun.models.lenet import LeNet
pytestmark = pytest.mark.skipif(emulated_gpus() < 2, reason="needs the emulated GPUs (DLRUN_EMULATE_GPU=2, "
                                "as tests/conftest.py sets it where CuPy sees no GPU)")


@pytest.fixture
def cp():
    return array_module(gpu(0))


def test_device_arrays_are_their_own_type_and_refuse_implicit_host_conversion(cp):
    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    assert not isinstance(a, np.ndarray) and a.device.id == 0
    for convert in (np.asarray, np.array, memoryview, lambda x: np.add(x, np.ones(3))):
        with pytest.raises(TypeError):
            convert(a)
    with pytest.raises(TypeError):
        a + np.ones(3)  # a NumPy operand is refused, as CuPy refuses it
    np.testing.assert_array_equal(a.get(), [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(cp.asnumpy(a * 2), [[0, 2, 4], [6, 8, 10]])


def test_numpy_functions_dispatch_only_to_cupys_and_reductions_stay_on_the_device(cp):
    a = cp.ones((2, 3), dtype=cp.float32)
    total = np.sum(a)
    assert type(total) is type(a) and total.shape == () and float(total) == 6.0
    assert type(np.exp(a)) is type(a)
    with pytest.raises(TypeError):
        np.nanpercentile(a, 50)  # CuPy has no nanpercentile: NumPy finds no implementation
    with pytest.raises(TypeError, match="where"):
        cp.sum(a, where=a > 0)  # NumPy's keyword, not CuPy's
    with pytest.raises(AttributeError):
        cp.random.default_rng(0).normal(0, 1, 3)  # CuPy's Generator has no normal()
    with pytest.raises(AttributeError):
        cp.nanpercentile  # noqa: B018 - not CuPy API at all
    assert set(cp.__dict__) - {"__name__", "__doc__", "__package__", "__loader__", "__spec__",
                               "_Namespace__known"} <= set(load_snapshot()["modules"]["cupy"])


def test_arrays_of_two_devices_do_not_mix_without_peer_access(cp):
    a = cp.ones(3, dtype=cp.float32)
    with cp.cuda.Device(1):
        b = cp.ones(3, dtype=cp.float32)
        assert b.device.id == 1
        with pytest.raises(ValueError, match="Peer access is unavailable"):
            a + b
        c = a.copy()  # a copy lands on the current device
    assert c.device.id == 1
    x, y = nd.ones((3,), ctx=gpu(0)), nd.ones((3,), ctx=gpu(1))
    with pytest.raises(ContextError):
        x + y
    z = x.as_in_context(gpu(1)) + y
    assert z.ctx == gpu(1) and z._data.device.id == 1
    np.testing.assert_array_equal(z.asnumpy(), [2, 2, 2])


def test_transfers_are_counted(cp):
    a = cp.arange(4, dtype=cp.float32)
    with counting() as c:
        a.get()
        float(a.sum())
        cp.asarray(np.ones(2))
        a.sum() + 1
    assert (c.to_host, c.to_device) == (2, 1) and c.launches >= 2


def test_cuda_devices_streams_events_and_the_memory_pool(cp):
    assert cp.cuda.runtime.getDeviceCount() == 2 and not cp.cuda.runtime.deviceCanAccessPeer(0, 1)
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError):
        cp.cuda.Device(2)
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    keep = cp.zeros((1024,), dtype=cp.float64)
    assert pool.used_bytes() - before == 8192
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    end.record(cp.cuda.get_current_stream())
    end.synchronize()
    assert cp.cuda.get_elapsed_time(start, end) >= 0 and keep.size == 1024
    target = cp.zeros(3, dtype=cp.float32)
    import cupyx
    cupyx.scatter_add(target, cp.asarray([0, 0, 2]), cp.ones(3, dtype=cp.float32))
    np.testing.assert_array_equal(target.get(), [2, 0, 1])


def test_a_lenet_training_step_reads_the_device_back_once():
    """The loss read back for the progress bar is the step's one device-to-host transfer
    (the label range check of the loss takes one more: both bounds in one copy)."""
    ctx = gpu(0)
    net = LeNet()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = nd.array(np.random.default_rng(0).normal(size=(8, 1, 28, 28)), ctx=ctx)
    y = nd.array(np.arange(8) % 10, ctx=ctx)
    for _ in range(2):
        with counting() as c:
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(8)
            loss.mean().asscalar()
    assert (c.to_host, c.to_device) == (2, 0)


def test_gradients_of_a_second_gpu_are_computed_there():
    """Backward runs each op's gradient on its own device (it ran on GPU 0 before: CuPy
    refuses that without peer access)."""
    x = nd.array([1.0, 2.0], ctx=gpu(1))
    x.attach_grad()
    with autograd.record():
        y = (x * x).sum()
    y.backward()
    assert x.grad._data.device.id == 1
    np.testing.assert_array_equal(x.grad.asnumpy(), [2.0, 4.0])
    with device_scope(gpu(1)):
        assert array_module(gpu(1)).cuda.runtime.getDevice() == 1
