"""GPU-only behaviour: device copies, float16, and a training step matching the CPU.

Skipped, with the reason, where CuPy sees no GPU; the op-by-op GPU-vs-CPU comparisons live
in the op tables (tests/opcases.py).
"""
import numpy as np
import pytest

import dlrun as mx
from dlrun import autograd, gluon, nd
from dlrun.engine import ops
from dlrun.models.lenet import LeNet
from tests.contexts import GPU_SKIP_REASON, HAS_GPU

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason=GPU_SKIP_REASON)]


def test_copies_between_host_and_device_carry_gradients():
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = x.as_in_context(mx.gpu(0))
        z = (y * y).as_in_context(mx.cpu())
    z.backward()
    assert y.ctx == mx.gpu(0) and z.ctx == mx.cpu()
    np.testing.assert_allclose(x.grad.asnumpy(), [2.0, 4.0, 6.0])
    target = nd.zeros((3,), ctx=mx.gpu(0))
    x.copyto(target)
    np.testing.assert_array_equal(target.asnumpy(), [1.0, 2.0, 3.0])


def test_float16_on_gpu_close_to_float32_on_cpu():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(4, 3, 8, 8)), rng.normal(size=(5, 3, 3, 3)) * 0.2
    cpu = ops.tanh(ops.convolution(nd.array(x), nd.array(w))).asnumpy()
    half = ops.tanh(ops.convolution(nd.array(x, ctx=mx.gpu(0), dtype="float16"),
                                    nd.array(w, ctx=mx.gpu(0), dtype="float16")))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.asnumpy().astype(np.float32), cpu, rtol=2e-2, atol=2e-2)


def test_lenet_training_step_on_gpu_matches_cpu():
    rng = np.random.default_rng(1)
    data, label = rng.normal(size=(8, 1, 28, 28)), rng.integers(0, 10, 8).astype(np.int32)
    results = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        mx.random.seed(3)
        net = LeNet()
        net.initialize(mx.init.Xavier(), ctx=ctx)
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        for _ in range(3):
            with autograd.record():
                loss = loss_fn(net(nd.array(data, ctx=ctx)), nd.array(label, ctx=ctx))
            loss.backward()
            trainer.step(8)
        results.append({k: p.data().asnumpy() for k, p in net.collect_params().items()})
    for name in results[0]:
        np.testing.assert_allclose(results[1][name], results[0][name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_dlrun_on_the_gpu_with_one_worker_and_with_two_processes_through_nccl(tmp_path):
    """Issue 9 on a GPU: ``distributed.workers=1`` end to end on the GPU, then two MPI ranks
    sharing it (gradients all-reduced with NCCL), which must reach the parameters of one
    worker with the double batch."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import clean_env, dlrun_command

    if not (Path(sys.executable).parent / "mpiexec").exists() and not shutil.which("mpiexec"):
        pytest.skip("needs mpiexec: pip install 'dlrun[dist]'")
    common = ["model=mlp", "model.dropout=0", "trainer.epochs=1", "device=gpu", "logger=none"]
    runs = {"one": ["trainer.batch_size=32", "distributed.workers=1"],
            "two": ["trainer.batch_size=16", "distributed.workers=2"]}
    for name, args in runs.items():
        done = subprocess.run([*dlrun_command(), *common, *args, f"hydra.run.dir={name}"],
                              cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
    assert "gradients all-reduced with NCCL" in done.stdout
    with np.load(tmp_path / "two" / "model.npz") as a, np.load(tmp_path / "one" / "model.npz") as b:
        for k in b.files:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=2e-6, err_msg=k)
