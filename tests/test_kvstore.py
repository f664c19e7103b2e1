"""The KVStore facade: MXNet's kvstore tutorial in one process, and 'dist_sync' over two MPI ranks."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dlrun
from dlrun import nd
from dlrun.parallel.kvstore import KVStore, create
from tests.contexts import GPU_SKIP_REASON, HAS_GPU

SHAPE = (2, 3)
REPO = Path(__file__).parents[1]


def _stored(kv: KVStore, key: int | str) -> np.ndarray:
    out = nd.zeros(SHAPE)
    kv.pull(key, out=out)
    return out.asnumpy()


def _add_twice(key: int | str, inp: nd.NDArray, stored: nd.NDArray) -> None:
    """The tutorial's updater as written: ``+=`` writes into the stored array."""
    stored += inp * 2


def test_properties_of_a_local_store():
    for name in ("local", "device"):
        kv = create(name)
        assert isinstance(kv, KVStore)
        assert (kv.type, kv.rank, kv.num_workers) == (name, 0, 1)
    assert create().type == "local"


def test_tutorial_sequence_single_process():
    kv = create("local")
    kv.init(3, nd.ones(SHAPE) * 2)
    np.testing.assert_array_equal(_stored(kv, 3), np.full(SHAPE, 2.0))

    kv.push(3, nd.ones(SHAPE) * 8)
    np.testing.assert_array_equal(_stored(kv, 3), np.full(SHAPE, 8.0))

    kv._set_updater(_add_twice)
    kv.push(3, nd.ones(SHAPE))
    np.testing.assert_array_equal(_stored(kv, 3), np.full(SHAPE, 10.0))

    # one value per device: summed (4), then the updater adds twice the sum
    kv.push(3, [nd.ones(SHAPE, ctx=dlrun.cpu(i)) for i in range(4)])
    np.testing.assert_array_equal(_stored(kv, 3), np.full(SHAPE, 18.0))

    # pull into several arrays at once
    outs = [nd.zeros(SHAPE) for _ in range(3)]
    kv.pull(3, out=outs)
    for o in outs:
        np.testing.assert_array_equal(o.asnumpy(), np.full(SHAPE, 18.0))


def test_multiple_keys():
    kv = create("local")
    keys = [5, 7, 9]
    kv.init(keys, [nd.ones(SHAPE)] * 3)
    kv._set_updater(_add_twice)
    kv.push(keys, [nd.ones(SHAPE)] * 3)
    outs = [nd.zeros(SHAPE) for _ in keys]
    kv.pull(keys, out=outs)
    for o in outs:
        np.testing.assert_array_equal(o.asnumpy(), np.full(SHAPE, 3.0))

    # a list of device values per key, pulled into a list of arrays per key
    kv.push(keys, [[nd.ones(SHAPE)] * 2 for _ in keys])
    outs = [[nd.zeros(SHAPE), nd.zeros(SHAPE)] for _ in keys]
    kv.pull(keys, out=outs)
    for pair in outs:
        for o in pair:
            np.testing.assert_array_equal(o.asnumpy(), np.full(SHAPE, 7.0))


def test_string_keys_are_independent_of_the_copy_pushed():
    kv = create("device")
    value = nd.array(np.arange(6, dtype=np.float32).reshape(SHAPE))
    kv.init("w", value)
    value[:] = 0  # the store holds a copy
    np.testing.assert_array_equal(_stored(kv, "w"), np.arange(6).reshape(SHAPE))


def test_pushpull():
    kv = create("local")
    kv.init(1, nd.zeros(SHAPE))
    grads = [nd.ones(SHAPE), nd.ones(SHAPE) * 3]
    kv.pushpull(1, grads)  # out=None: the sum is written back into the pushed arrays
    for g in grads:
        np.testing.assert_array_equal(g.asnumpy(), np.full(SHAPE, 4.0))

    out = nd.zeros(SHAPE)
    kv.pushpull(1, nd.ones(SHAPE) * 5, out=out)
    np.testing.assert_array_equal(out.asnumpy(), np.full(SHAPE, 5.0))


def test_set_optimizer_applies_sgd_on_the_store():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(SHAPE).astype(np.float32)
    g1, g2 = (rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2))
    lr = 0.1

    kv = create("local")
    kv.init(0, nd.array(w0))
    kv.set_optimizer(dlrun.optimizer.create("sgd", learning_rate=lr))
    kv.push(0, [nd.array(g1), nd.array(g2)])
    expected = w0 - lr * (g1 + g2)
    np.testing.assert_allclose(_stored(kv, 0), expected, rtol=1e-6, atol=1e-6)

    kv.push(0, nd.array(g1))
    np.testing.assert_allclose(_stored(kv, 0), expected - lr * g1, rtol=1e-6, atol=1e-6)


def test_optimizer_state_is_kept_per_key():
    lr, mom = 0.1, 0.9
    kv = create("local")
    kv.init(["a", "b"], [nd.zeros(SHAPE), nd.zeros(SHAPE)])
    kv.set_optimizer(dlrun.optimizer.create("sgd", learning_rate=lr, momentum=mom))
    kv.push("a", nd.ones(SHAPE))
    kv.push("a", nd.ones(SHAPE))
    kv.push("b", nd.ones(SHAPE))
    # a: v1 = -lr, w1 = -lr; v2 = mom*v1 - lr, w2 = w1 + v2.  b: one step only
    np.testing.assert_allclose(_stored(kv, "a"), np.full(SHAPE, -lr + (-mom * lr - lr)), rtol=1e-6)
    np.testing.assert_allclose(_stored(kv, "b"), np.full(SHAPE, -lr), rtol=1e-6)


def test_errors_a_user_can_act_on():
    kv = create("local")
    with pytest.raises(KeyError, match=r"key 3 is not initialized; call init\(3, value\) first"):
        kv.push(3, nd.ones(SHAPE))
    with pytest.raises(KeyError, match="'x' is not initialized"):
        kv.pull("x", out=nd.zeros(SHAPE))

    kv.init(3, nd.ones(SHAPE))
    with pytest.raises(ValueError, match="key 3 is already initialized"):
        kv.init(3, nd.ones(SHAPE))
    with pytest.raises(ValueError, match=r"shape \(4,\) does not match the stored shape \(2, 3\)"):
        kv.push(3, nd.ones((4,)))
    with pytest.raises(ValueError, match=r"shape \(3, 2\) does not match the stored shape \(2, 3\)"):
        kv.pull(3, out=nd.zeros((3, 2)))
    with pytest.raises(ValueError, match="2 keys need a list of 2 values"):
        kv.push([3, 4], nd.ones(SHAPE))
    with pytest.raises(ValueError, match="pull needs out="):
        kv.pull(3)
    with pytest.raises(TypeError, match="keys are int or str"):
        kv.init(1.5, nd.ones(SHAPE))
    np.testing.assert_array_equal(_stored(kv, 3), np.ones(SHAPE))  # failed calls changed nothing

    with pytest.raises(ValueError, match=r"unknown kvstore 'bogus'; choose one of \['local', 'device'"):
        create("bogus")
    with pytest.raises(ValueError, match="synchronously only"):
        create("dist_async")


_DIST_SCRIPT = """
import json
import sys
from pathlib import Path

import numpy as np
from dlrun import nd
from dlrun.engine import cpu, gpu, num_gpus
from dlrun.parallel import current
from dlrun.parallel.kvstore import create

kind = sys.argv[2]  # 'nccl': each rank's arrays on its GPU
(gpu(current().local_rank % num_gpus()) if kind == "nccl" else cpu()).__enter__()
kv = create(kind)
r, n = kv.rank, kv.num_workers
kv.init(0, nd.full((2, 3), 10.0 + r))         # rank 0's value must win
init = nd.zeros((2, 3))
kv.pull(0, out=init)
kv.init(["a", "b"], [nd.full((4,), float(r)), nd.full((4,), 7.0 * (r + 1))])

kv.push(0, [nd.full((2, 3), r + 1.0), nd.full((2, 3), 2.0 * (r + 1))])  # two local devices
summed = nd.zeros((2, 3))
kv.pull(0, out=summed)

kv.set_optimizer(__import__("dlrun").optimizer.create("sgd", learning_rate=0.5))
kv.push(["a", "b"], [nd.full((4,), float(r)), nd.ones((4,))])
a, b = nd.zeros((4,)), nd.zeros((4,))
kv.pull(["a", "b"], out=[a, b])
kv.barrier()
result = json.dumps({"rank": r, "size": n, "type": kv.type, "init": init.asnumpy().tolist(),
                     "sum": summed.asnumpy().tolist(), "a": a.asnumpy().tolist(), "b": b.asnumpy().tolist()})
(Path(sys.argv[1]) / f"rank{r}.json").write_text(result)  # one file each: ranks' stdout interleaves
print("RESULT " + result, flush=True)
"""


def _mpiexec() -> str:
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'dlrun[dist]')")
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec next to this Python or on PATH")
    return found


@pytest.mark.slow  # an MPI job
@pytest.mark.parametrize("kind", ["dist_sync", pytest.param("nccl", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason=GPU_SKIP_REASON)])])
def test_dist_sync_over_two_mpi_ranks(tmp_path, kind):
    mpiexec = _mpiexec()
    script = tmp_path / "kv_dist.py"
    script.write_text(textwrap.dedent(_DIST_SCRIPT))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script), str(tmp_path), kind],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("RESULT ") == 2, proc.stdout + proc.stderr
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [d["rank"] for d in results] == [0, 1]

    n = 2
    for d in results:
        assert (d["size"], d["type"]) == (n, kind)
        np.testing.assert_array_equal(d["init"], np.full((2, 3), 10.0))
        # each rank pushes (r+1) + 2(r+1) = 3(r+1); summed over ranks: 3 * (1 + 2) = 9
        np.testing.assert_array_equal(d["sum"], np.full((2, 3), 9.0))
        # a starts at rank 0's 0, gradient sum 0 + 1 = 1: 0 - 0.5*1
        np.testing.assert_allclose(d["a"], np.full(4, -0.5))
        # b starts at rank 0's 7, gradient sum 1 + 1 = 2: 7 - 0.5*2
        np.testing.assert_allclose(d["b"], np.full(4, 6.0))
