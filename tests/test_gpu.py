"""GPU-only behaviour: device copies, float16, a training step matching the CPU, the
'device' KVStore, every model family and a checkpointed mixed-precision run with device=gpu.

They run on the real GPU where CuPy sees one, else on the emulated GPU (tests/conftest.py);
skipped only with DLRUN_EMULATE_GPU=0 and no GPU. The op-by-op GPU-vs-CPU comparisons live in
the op tables (tests/opcases.py).
"""
import json

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


def test_kvstore_device_sums_pushes_of_two_gpus():
    """The 'device' KVStore sums the values pushed from several GPUs and pulls into each."""
    from dlrun.parallel.kvstore import create

    ctxs = [mx.gpu(0), mx.gpu(min(1, mx.num_gpus() - 1))]
    kv = create("device")
    kv.init("w", nd.zeros((2, 3), ctx=ctxs[0]))
    kv.push("w", [nd.full((2, 3), 1.0 + i, ctx=c) for i, c in enumerate(ctxs)])
    outs = [nd.zeros((2, 3), ctx=c) for c in ctxs]
    kv.pull("w", out=outs)
    for out, ctx in zip(outs, ctxs):
        assert out.ctx == ctx
        np.testing.assert_array_equal(out.asnumpy(), np.full((2, 3), 3.0))


def _families() -> dict:
    """benchmarks/gpu_check.py's small one-epoch settings of every model family."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FAMILIES


def _inception_loss(net, x):
    return net(x).sum()


def _dcgan_loss(net, z):
    return (net.discriminate(net.generate(z)) ** 2).sum()


@pytest.mark.parametrize("name", ["inception", "dcgan"])
def test_the_gradients_of_inception_and_dcgan_on_the_gpu_match_the_cpu(name):
    """The two costliest families, one forward and backward each on the GPU against the CPU
    (they run end to end with device=gpu in benchmarks/gpu_check.sh)."""
    from dlrun.models.gan import DCGAN
    from dlrun.models.inception import Inception

    results = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        mx.random.seed(0)
        net = Inception(classes=10, dropout=0.0) if name == "inception" else DCGAN(latent=8, base_channels=8)
        net.initialize(mx.init.Xavier(), ctx=ctx)
        shape = (2, 1, 28, 28) if name == "inception" else net.noise_shape(2)
        x = nd.array(np.random.default_rng(1).normal(size=shape), ctx=ctx)
        with autograd.record():
            loss = (_inception_loss if name == "inception" else _dcgan_loss)(net, x)
        loss.backward()
        results.append({k: p.grad().asnumpy() for k, p in net.collect_params().items() if p.grad_req != "null"})
    assert results[0].keys() == results[1].keys()
    for k in results[0]:
        np.testing.assert_allclose(results[1][k], results[0][k], rtol=1e-3, atol=1e-4, err_msg=k)


@pytest.mark.parametrize("family", ["mlp", "lenet", "lstm_lm", "treelstm"])
def test_model_families_train_an_epoch_with_device_gpu(run_dlrun, family):
    res = run_dlrun(*_families()[family], "trainer.epochs=1", "logger=none", "seed=0", "device=gpu",
                    "hydra.run.dir=run")
    assert res.returncode == 0, res
    results = json.loads((res.cwd / "run" / "results.json").read_text())
    losses = [v for k, v in results.items() if "loss" in k and isinstance(v, float)]
    assert losses and all(np.isfinite(losses)), results


def test_a_gpu_run_in_mixed_precision_checkpoints_and_resumes(run_dlrun):
    """device=gpu trainer.amp=fp16: the loss scale is in the checkpoint, and a resume that
    trains on restores it."""
    first = run_dlrun("model=mlp", "trainer.epochs=1", "logger=none", "device=gpu",
                      "trainer.amp=fp16", "hydra.run.dir=run")
    assert first.returncode == 0, first
    states = sorted((first.cwd / "run" / "checkpoints").glob("*.npz"))
    metas = [json.loads(str(np.load(p)[k])) for p in states for k in np.load(p).files if k.endswith("__meta__")]
    assert metas and all(0 < m["amp"]["loss_scale"] <= 2.0 ** 16 for m in metas), metas
    again = run_dlrun(f"resume={first.cwd / 'run'}", "trainer.epochs=2")
    assert again.returncode == 0, again
    assert json.loads((first.cwd / "run" / "results.json").read_text())["epoch"] == 2
