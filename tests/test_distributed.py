"""Data-parallel training (issue 9): the sharded loader, bucketed gradient all-reduce, and
``dlrun distributed.workers=2`` end to end as a real two-process MPI job on the CPU."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from dlrun.data import DataLoader
from dlrun.data.dataset import ArrayDataset
from dlrun.data.transforms import crop_flip
from dlrun.parallel.reducer import make_buckets

from .conftest import clean_env, dlrun_command
from .contexts import GPU_SKIP_REASON, HAS_GPU


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


try:
    import mpi4py  # noqa: F401
    HAVE_MPI = _mpiexec() is not None
except ImportError:
    HAVE_MPI = False

needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and an mpiexec: pip install 'dlrun[dist]'")


# --- the sharded loader ------------------------------------------------------------------------
def _dataset(n: int) -> ArrayDataset:
    data = np.arange(n * 4, dtype=np.float32).reshape(n, 1, 2, 2)
    return ArrayDataset(data, np.arange(n, dtype=np.int64))


@pytest.mark.parametrize("n, batch, workers", [(103, 8, 2), (100, 12, 3), (64, 16, 4), (10, 4, 3)])
def test_the_shards_of_an_epoch_are_the_single_process_batches(n, batch, workers):
    data = _dataset(n)
    single = DataLoader(data, batch, shuffle=True, seed=5)
    shards = [DataLoader(data, batch, shuffle=True, seed=5, shard=(r, workers)) for r in range(workers)]
    for epoch in range(2):
        whole = [y.asnumpy() for _, y in single]
        parts = [[y.asnumpy() for _, y in loader] for loader in shards]
        assert all(len(p) == len(shards[0]) for p in parts)  # every worker takes as many steps
        seen = np.concatenate([np.concatenate(p) for p in parts])
        tail = n % batch
        dropped = 0 < tail < workers  # a last batch too small to give every worker an example
        assert len(seen) == n - (tail if dropped else 0)
        assert len(np.unique(seen)) == len(seen)  # no example twice
        for b, batch_labels in enumerate(whole[:len(parts[0])]):
            joined = np.concatenate([p[b] for p in parts])
            np.testing.assert_array_equal(joined, batch_labels)  # the same global order
        if not dropped:
            assert set(seen) == set(range(n)), f"epoch {epoch}"


def test_a_worker_augments_its_part_as_one_process_would():
    data = _dataset(40)
    aug = crop_flip(padding=1)
    single = DataLoader(data, 10, shuffle=True, seed=1, transform=aug)
    shards = [DataLoader(data, 10, shuffle=True, seed=1, transform=aug, shard=(r, 2)) for r in range(2)]
    whole = [x.asnumpy() for x, _ in single]
    parts = [[x.asnumpy() for x, _ in s] for s in shards]
    for b, x in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([parts[0][b], parts[1][b]]), x)


def test_a_loader_refuses_a_bad_shard():
    with pytest.raises(ValueError, match="0 <= index < count"):
        DataLoader(_dataset(10), 4, shard=(2, 2))
    with pytest.raises(ValueError, match="cannot be split among 5 workers"):
        DataLoader(_dataset(10), 4, shard=(0, 5))


def test_buckets_pack_and_unpack_every_array_and_the_extra_values():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=s).astype(np.float32) for s in [(3, 4), (5,), (2, 2, 2), (7,)]]
    arrays.append(rng.normal(size=(4,)))  # float64: a bucket of its own
    buckets = make_buckets(arrays, bucket_bytes=64, extra=2)
    assert sum(len(b.arrays) for b in buckets) == len(arrays)
    assert all(len({str(a.dtype) for a in b.arrays}) == 1 for b in buckets)
    assert len(buckets) > 2  # 64 bytes: the float32 arrays do not fit one bucket
    originals = [a.copy() for a in arrays]
    for i, b in enumerate(buckets):
        b.pack([32, 1] if i == 0 else [])
        b.flat *= 2  # what a sum over two equal ranks gives
        tail = b.unpack()
        if i == 0:
            np.testing.assert_array_equal(tail, [64, 2])
    for a, o in zip(arrays, originals):
        np.testing.assert_array_equal(a, 2 * o)


# --- two MPI processes -------------------------------------------------------------------------
def _mpirun(script: str, tmp_path: Path, workers: int = 2, **env: str) -> subprocess.CompletedProcess:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(script))
    env = clean_env(PYTHONPATH=str(Path(__file__).resolve().parents[1]), **env)
    return subprocess.run([_mpiexec(), "-n", str(workers), sys.executable, str(path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


@needs_mpi
def test_two_workers_take_the_step_of_one_worker_with_twice_the_batch(tmp_path):
    """K Adam steps of an MLP: 2 ranks x batch B (different initial values on each rank, which
    the trainer's broadcast makes equal) against one process with batch 2B."""
    done = _mpirun("""
        import json
        import numpy as np
        from dlrun import autograd
        from dlrun.engine import array
        from dlrun.gluon import loss as gloss, nn
        from dlrun.optim import Trainer
        from dlrun.parallel import current

        world = current()
        rng = np.random.default_rng(0)
        X = rng.normal(size=(6, 16, 5))
        Y = rng.integers(0, 3, size=(6, 16))

        def train(rank, workers, seed):
            import dlrun.engine.random as er
            er.seed(seed)
            net = nn.HybridSequential()
            net.add(nn.Dense(8, activation="tanh"), nn.Dense(3))
            net.initialize()
            net(array(X[0, :1]))  # the deferred shapes
            net.cast("float64")
            kv = "dist_sync" if workers > 1 else None
            trainer = Trainer(net.collect_params(), "adam", {"learning_rate": 0.05}, kvstore=kv)
            lossf = gloss.SoftmaxCrossEntropyLoss()
            for k in range(6):
                part = np.array_split(np.arange(16), workers)[rank]
                x, y = array(X[k, part]), array(Y[k, part])
                with autograd.record():
                    l = lossf(net(x), y)
                l.backward()
                trainer.step(x.shape[0])
            return {n: p.data().asnumpy() for n, p in net.collect_params().items()}

        mine = train(world.rank, world.size, seed=world.rank + 1)  # rank 1 starts elsewhere
        others = world.allgather(mine)
        if world.rank == 0:  # (a file: the ranks' printed lines may interleave)
            ref = train(0, 1, seed=1)
            json.dump({"worst": max(float(np.abs(mine[n] - ref[n]).max()) for n in ref),
                       "same": all(np.array_equal(others[0][n], others[1][n]) for n in mine)},
                      open("result.json", "w"))
    """, tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["worst"] < 1e-12, result  # float64: the same sums in another order
    assert result["same"]  # the ranks hold equal parameters


@needs_mpi
@pytest.mark.parametrize("hybridize, device", [(False, "cpu"), (True, "cpu"), pytest.param(
    False, "gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason=GPU_SKIP_REASON)])])
def test_synchronised_batchnorm_over_two_workers_is_batchnorm_over_their_union(tmp_path, hybridize, device):
    """Outputs, parameter gradients and running statistics of SyncBatchNorm on two ranks
    (each half of the batch) equal BatchNorm's on the whole batch in one process (float64);
    per-worker BatchNorm differs. On GPUs the statistics and gradients go through NCCL."""
    done = _mpirun(f"""
        import json
        import numpy as np
        from dlrun import autograd
        from dlrun.engine import array, cpu, gpu, num_gpus
        from dlrun.gluon import nn
        from dlrun.optim import Trainer
        from dlrun.parallel import current

        world = current()
        (gpu(world.local_rank % num_gpus()) if "{device}" == "gpu" else cpu()).__enter__()
        X = np.random.default_rng(1).normal(size=(12, 3, 4, 4)) * 3 + 1
        W = np.random.default_rng(2).normal(size=(12, 5, 4, 4))

        def run(x, w, sync, kv):
            net = nn.HybridSequential()
            net.add(nn.Conv2D(5, 3, padding=1), nn.BatchNorm(sync=sync))
            net.initialize()
            net(array(x[:1]))
            net.cast("float64")
            for p in net.collect_params().values():
                p.set_data(np.random.default_rng(len(p.name)).normal(size=p.shape) * 0.3
                           + (1 if p.name.endswith("running_var") else 0))
            if {hybridize}:
                net.hybridize()
            trainer = Trainer(net.collect_params(), "sgd", {{"learning_rate": 0.0}}, kvstore=kv)
            with autograd.record():
                y = net(array(x))
                loss = (y * array(w)).sum()
            loss.backward()
            trainer.allreduce_grads()
            params = net.collect_params()
            return y.asnumpy(), {{n: (p.grad().asnumpy() if p.grad_req != "null" else p.data().asnumpy())
                                 for n, p in params.items()}}

        part = np.array_split(np.arange(12), 2)[world.rank]
        ys, grads = run(X[part], W[part], True, "nccl" if "{device}" == "gpu" else "dist_sync")
        _, alone = run(X[part], W[part], False, None)
        every = world.allgather(ys)
        if world.rank == 0:
            from dlrun.engine.ops import nn as ops_nn
            ops_nn.set_worker_sum(None)  # the reference: one process, the whole batch
            y_ref, g_ref = run(X, W, False, None)
            worst_y = float(np.abs(np.concatenate(every) - y_ref).max())
            worst_g = max(float(np.abs(grads[n] - g_ref[n]).max()) for n in g_ref)
            differs = max(float(np.abs(alone[n] - g_ref[n]).max()) for n in g_ref if "running" in n)
            json.dump({{"y": worst_y, "g": worst_g, "alone": differs}}, open("result.json", "w"))
    """, tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["y"] < 1e-12 and result["g"] < 1e-10, result
    assert result["alone"] > 1e-3, result  # per-worker statistics are not the whole batch's


@pytest.mark.slow
@needs_mpi
def test_dlrun_with_two_workers_equals_one_worker_with_the_double_batch(tmp_path):
    common = ["model=mlp", "model.dropout=0", "trainer.epochs=2", "seed=4"]
    two = subprocess.run([*dlrun_command(), *common, "trainer.batch_size=16", "distributed.workers=2",
                          "hydra.run.dir=two"], cwd=tmp_path, env=clean_env(), capture_output=True,
                         text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    assert "2 processes (mpich), gradients all-reduced with MPI" in two.stdout
    assert "batch 32 (2 workers x 16)" in two.stdout
    assert two.stdout.count("Results") == 1  # rank 0 alone prints
    one = subprocess.run([*dlrun_command(), *common, "trainer.batch_size=32", "hydra.run.dir=one"],
                         cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    with np.load(tmp_path / "two" / "model.npz") as a, np.load(tmp_path / "one" / "model.npz") as b:
        assert a.files == b.files
        for k in a.files:  # float32: equal up to the order of the sums
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=2e-6, err_msg=k)
    results = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("two", "one")]
    for key in ("train/loss", "val/accuracy", "val/loss", "test/accuracy"):  # the job's, not rank 0's part
        assert results[0][key] == pytest.approx(results[1][key], rel=1e-5), key

    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dlrun")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2  # one per command: rank 1 created none
    (job,) = [r for r in runs if r.data.tags.get("dlrun.workers") == "2"]
    assert job.info.status == "FINISHED"
    assert len(client.get_metric_history(job.info.run_id, "val/accuracy")) == 2
    assert (tmp_path / "two" / "dlrun.rank1.log").is_file()
    assert not (tmp_path / "two" / "checkpoints" / "rank1").exists()


@pytest.mark.slow
@needs_mpi
def test_a_killed_worker_ends_the_job_and_is_named(tmp_path):
    proc = subprocess.Popen([*dlrun_command(), "model=lenet", "trainer.epochs=200", "logger=none",
                             "distributed.workers=2", "hydra.run.dir=job"], cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rank1 = tmp_path / "job" / ".ranks" / "1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "job" / "checkpoints").is_dir():
        time.sleep(0.2)  # the first epoch ended: both ranks are training
    assert rank1.is_file(), proc.communicate(timeout=30)
    os.kill(int(rank1.read_text().split()[0]), signal.SIGKILL)
    killed = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - killed < 20
    assert proc.returncode == 1
    assert "rank 1 (pid" in err and "Killed (signal 9)" in err and "dlrun resume=" in err
    assert "BAD TERMINATION" not in out + err  # MPI's banner is replaced by the message


@pytest.mark.slow
@needs_mpi
def test_a_job_resumes_with_its_world_size_and_refuses_another(tmp_path):
    common = ["model=mlp", "trainer.batch_size=16", "logger=none", "seed=2", "trainer.epochs=2"]
    job = tmp_path / "job"
    # rank 0 kills itself after step 57 (45 steps an epoch: mid-way through epoch 2, two steps
    # past the checkpoint of step 55), where rank 1 waits in the next all-reduce; a test that
    # polled for the checkpoint and then sent the kill could find the job already done
    (tmp_path / "pkg" / "killer").mkdir(parents=True)
    (tmp_path / "pkg" / "killer" / "__init__.py").write_text(textwrap.dedent('''
        import os
        import signal

        from dlrun.runner.callbacks import Callback


        class KillRank0At(Callback):
            def on_step_end(self, state):
                if os.environ.get("PMI_RANK") == "0" and os.environ.get("KILL_AT_STEP") == str(state.step):
                    os.kill(os.getpid(), signal.SIGKILL)
        '''))
    user = clean_env(PYTHONPATH=str(tmp_path / "pkg"))
    killer = ["allowed_targets=[killer.]", "+callbacks.kill._target_=killer.KillRank0At"]
    killed = subprocess.run([*dlrun_command(), *common, *killer, "trainer.checkpoint_every=5",
                             "distributed.workers=2", "hydra.run.dir=job"], cwd=tmp_path,
                            env={**user, "KILL_AT_STEP": "57"}, capture_output=True, text=True,
                            timeout=300)
    proc, err = killed, killed.stderr
    # killed mid-allreduce, rank 0 is sometimes outrun by rank 1's MPI abort: either names its rank
    assert proc.returncode == 1 and re.search(r"rank [01]", err), err
    assert not (job / "model.npz").exists()
    assert sorted(p.name for p in (job / "checkpoints").glob("ckpt-*.json"))[-1] == "ckpt-00000055.json"
    resumed = subprocess.run([*dlrun_command(), f"resume={job}"], cwd=tmp_path,
                             env=user, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr  # the saved config brings its 2 workers along
    assert "2 processes (mpich)" in resumed.stdout and "(epoch 2, step" in resumed.stdout
    resized = subprocess.run([*dlrun_command(), f"resume={job}", "trainer.epochs=3",
                              "distributed.workers=1"], cwd=tmp_path, env=user,
                             capture_output=True, text=True, timeout=300)
    assert resized.returncode == 1
    assert "written by a job of 2 worker(s) and this one has 1" in resized.stderr
    assert "distributed.allow_resize=true" in resized.stderr
    straight = subprocess.run([*dlrun_command(), *common, "distributed.workers=2",
                               "hydra.run.dir=straight"], cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    with np.load(job / "model.npz") as a, np.load(tmp_path / "straight" / "model.npz") as b:
        for k in b.files:  # killed mid-epoch and resumed == uninterrupted, bitwise
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    results = [json.loads((d / "results.json").read_text()) for d in (job, tmp_path / "straight")]
    assert results[0]["train/loss"] == pytest.approx(results[1]["train/loss"], rel=1e-9)


@pytest.mark.slow
@needs_mpi
def test_a_task_that_cannot_be_data_parallel_says_so(tmp_path):
    done = subprocess.run([*dlrun_command(), "model=treelstm", "trainer.epochs=1", "logger=none",
                           "distributed.workers=2", "hydra.run.dir=job"], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "the tree_sentiment task trains in one process only" in done.stderr


# --- launching and config rules (no MPI needed) -------------------------------------------------
@pytest.mark.parametrize("env, expected", [
    ({"PMI_RANK": "1", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1"}, ("mpich", 1, 4, 1)),
    ({"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1"},
     ("open-mpi", 5, 8, 1)),
    ({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0"},
     ("slurm", 3, 4, 1)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, None),  # an sbatch script, not a task of srun
    ({}, None),
])
def test_the_launcher_is_recognised_from_its_environment(monkeypatch, env, expected):
    from dlrun.parallel import launched_by

    for name in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                 "PMIX_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID", "SLURM_LOCALID",
                 "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launched_by() == expected


def test_the_job_command_keeps_the_overrides_and_names_one_run_folder(tmp_path):
    from dlrun.parallel.launch import job_command

    fake = tmp_path / "mpiexec"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    cmd = job_command(4, ["model=lenet", "hydra.run.dir=old", "+recipe=x"], tmp_path / "run",
                      hosts=["n1:2", "n2:2"], hostfile="hosts.txt", mpiexec=str(fake),
                      mpiexec_args=["-bind-to", "core"])
    assert cmd == [str(fake), "-n", "4", "-hosts", "n1:2,n2:2", "-f", "hosts.txt", "-bind-to", "core",
                   sys.executable, "-m", "dlrun.runner.main", "model=lenet", "+recipe=x",
                   f'hydra.run.dir="{tmp_path / "run"}"']


def fake_launcher(folder, name: str, version: str):
    script = folder / name
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{version}\nEOF\n")
    script.chmod(0o755)
    return str(script)


MPICH = "HYDRA build details:\n    Version:                                 4.1.2"
OPEN_MPI = "mpirun (Open MPI) 4.1.2\n\nReport bugs to http://www.open-mpi.org/community/help/"
SLURM = "slurm 23.02.7"


@pytest.mark.parametrize("name,version,expected", [
    ("mpiexec", MPICH, ["-hosts", "n1:2,n2:2", "-f", "hosts.txt"]),
    ("mpirun", OPEN_MPI, ["--host", "n1:2,n2:2", "--hostfile", "hosts.txt"]),
    ("srun", SLURM, ["--nodelist=n1,n2", "--ntasks-per-node=2", "--nodelist=./hosts.txt"]),
    ("launcher", SLURM, ["--nodelist=n1,n2", "--ntasks-per-node=2", "--nodelist=./hosts.txt"]),
    ("mpiexec", "", ["-hosts", "n1:2,n2:2", "-f", "hosts.txt"]),  # cannot tell: MPICH's
])
def test_the_hosts_go_in_the_launchers_own_options(tmp_path, name, version, expected):
    """Issue 17, item 10: distributed.hosts/hostfile always passed MPICH's -hosts/-f, which
    Open MPI's mpirun and srun do not take."""
    from dlrun.parallel.launch import job_command

    launcher = fake_launcher(tmp_path, name, version)
    cmd = job_command(4, ["model=lenet"], tmp_path / "run", hosts=["n1:2", "n2:2"],
                      hostfile="hosts.txt", mpiexec=launcher)
    assert cmd[:3 + len(expected)] == [launcher, "-n", "4", *expected]
    assert cmd[3 + len(expected):5 + len(expected)] == [sys.executable, "-m"]


def test_the_launcher_is_not_asked_without_hosts(tmp_path):
    from dlrun.parallel.launch import job_command

    launcher = tmp_path / "mpirun"
    launcher.write_text(f"#!/bin/sh\ntouch {tmp_path / 'asked'}\n")
    launcher.chmod(0o755)
    cmd = job_command(2, [], tmp_path / "run", mpiexec=str(launcher))
    assert cmd[:4] == [str(launcher), "-n", "2", sys.executable]
    assert not (tmp_path / "asked").exists()


def test_the_ranks_share_the_cores_unless_the_user_set_their_threads(monkeypatch):
    from dlrun.parallel.launch import THREAD_VARIABLES, rank_threads

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert rank_threads(2, multi_host=False) == dict.fromkeys(THREAD_VARIABLES, "4")
    assert rank_threads(3, multi_host=False) == dict.fromkeys(THREAD_VARIABLES, "2")
    assert rank_threads(16, multi_host=False) == dict.fromkeys(THREAD_VARIABLES, "1")
    assert rank_threads(2, multi_host=True) == {}  # the other hosts' cores are not known here
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    assert rank_threads(2, multi_host=False) == {}  # the user's choice stands


def test_srun_and_hosts_of_different_slots(tmp_path):
    from dlrun.parallel import DistributedError
    from dlrun.parallel.launch import host_flags

    assert host_flags("srun", ["n1", "n2"]) == ["--nodelist=n1,n2"]
    assert host_flags("srun", hostfile="/etc/nodes") == ["--nodelist=/etc/nodes"]
    with pytest.raises(DistributedError, match="same slots"):
        host_flags("srun", ["n1:4", "n2:2"])


def test_a_launcher_named_without_a_path_is_looked_up_on_path(tmp_path, monkeypatch):
    from dlrun.parallel.launch import find_mpiexec

    launcher = fake_launcher(tmp_path, "srun", SLURM)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert find_mpiexec("srun") == launcher


def test_the_real_mpiexec_is_told_apart():
    from dlrun.parallel.launch import find_mpiexec, launcher_kind

    try:
        launcher = find_mpiexec()
    except Exception:
        pytest.skip("no mpiexec")
    assert launcher_kind(launcher) in ("mpich", "openmpi")


def test_a_missing_mpiexec_says_what_to_install(tmp_path):
    from dlrun.parallel import DistributedError
    from dlrun.parallel.launch import find_mpiexec

    with pytest.raises(DistributedError, match=r"pip install 'dlrun\[dist\]'.*distributed.mpiexec"):
        find_mpiexec(str(tmp_path / "nowhere" / "mpiexec"))


def _cfg(**distributed):
    from omegaconf import OmegaConf

    from dlrun.runner.config import Config
    cfg = OmegaConf.structured(Config)
    for k, v in distributed.items():
        cfg.distributed[k] = v
    return cfg


def test_linear_lr_scaling_warms_up_from_the_single_worker_rate():
    from dlrun.optim import create
    from dlrun.optim.schedules import Constant
    from dlrun.parallel import World
    from dlrun.runner.distributed import scale_learning_rate

    schedule = Constant()
    opt = create("sgd", learning_rate=0.1, lr_scheduler=schedule)
    scale_learning_rate(opt, schedule, _cfg(lr_scaling="linear", warmup_steps=10), World(size=4))
    rates = [schedule(t) for t in (0, 5, 10, 50)]
    assert rates == pytest.approx([0.1, 0.25, 0.4, 0.4])
    unscaled = Constant()
    opt = create("sgd", learning_rate=0.1, lr_scheduler=unscaled)
    scale_learning_rate(opt, unscaled, _cfg(), World(size=4))
    assert unscaled(50) == pytest.approx(0.1)


def test_the_job_batch_follows_scale_batch():
    from dlrun.parallel import DistributedError, World
    from dlrun.runner.distributed import per_worker_batch

    cfg = _cfg()
    cfg.trainer.batch_size = 64
    assert per_worker_batch(cfg, World(size=2)) == 64
    cfg.distributed.scale_batch = False
    assert per_worker_batch(cfg, World(size=2)) == 32
    cfg.trainer.batch_size = 15
    with pytest.raises(DistributedError, match="use a multiple of 2"):
        per_worker_batch(cfg, World(size=2))


@pytest.mark.slow
@needs_mpi
def test_an_error_in_a_rank_ends_the_job_at_once_with_its_message(tmp_path):
    start = time.monotonic()
    # a file the ranks read and do not find (errors the config shows are caught before MPI starts)
    done = subprocess.run([*dlrun_command(), "model=lstm_lm", "dataset=text", "logger=none",
                           f"dataset.path={tmp_path / 'missing.txt'}", "distributed.workers=2",
                           "hydra.run.dir=job"], cwd=tmp_path, env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and time.monotonic() - start < 60
    assert re.search(r"rank [01]: \S*missing.txt: no such text file", done.stderr), done.stderr


@pytest.mark.slow
@needs_mpi
def test_a_sweep_runs_each_trial_as_a_job_nested_under_the_sweep(tmp_path):
    done = subprocess.run([*dlrun_command(), "-m", "optimizer.lr=0.1,0.05", "distributed.workers=2",
                           "trainer.epochs=1", "model=mlp"], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 trials, 2 finished" in done.stdout
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dlrun").experiment_id])
    (parent,) = [r for r in runs if r.info.run_name.startswith("sweep-")]
    trials = [r for r in runs if r is not parent]
    assert sorted(r.data.tags["dlrun.sweep.trial"] for r in trials) == ["0", "1"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)
    assert all(r.data.tags["dlrun.workers"] == "2" for r in trials)


_DEVICE_COLLECTIVES = """
    import json
    from dlrun.engine import gpu
    from dlrun.engine.backend import array_module, device_scope
    from dlrun.parallel import current

    world = current()
    cupy = array_module(gpu(0))  # CuPy, or its emulation under DLRUN_EMULATE_GPU
    device = world.local_rank % cupy.cuda.runtime.getDeviceCount()
    with device_scope(gpu(device)):
        grads = cupy.asarray([1.0, 2.0] if world.rank == 0 else [10.0, 20.0], dtype="float32")
        world.allreduce_(grads)
        weights = cupy.full((2,), world.rank + 5.0, dtype="float32")
        world.broadcast_(weights)
    json.dump({"sum": grads.get().tolist(), "bcast": weights.get().tolist(), "device": device,
               "nccl": {k: type(v).__name__ for k, v in world._nccl.items()}},
              open(f"rank{world.rank}.json", "w"))
"""


@needs_mpi
@pytest.mark.parametrize("gpus, reducer", [("1", "NoneType"), ("2", "NcclComm")], ids=["shared", "nccl"])
def test_device_arrays_reduce_through_nccl_or_the_host_where_ranks_share_a_gpu(tmp_path, gpus, reducer):
    """Two ranks on two (emulated) GPUs all-reduce and broadcast device arrays with NCCL (its
    emulation runs on MPI); on one GPU, which NCCL refuses to two ranks, through host copies."""
    done = _mpirun(_DEVICE_COLLECTIVES, tmp_path, DLRUN_EMULATE_GPU=gpus)
    assert done.returncode == 0, done.stderr + done.stdout
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["sum"] == [11.0, 22.0] and result["bcast"] == [5.0, 5.0]
        assert result["nccl"] == {str(result["device"]): reducer}
        assert result["device"] == (0 if gpus == "1" else rank)


def test_gluon_utils_split_a_batch_over_devices_as_gluon_does():
    from dlrun import autograd, cpu, gluon
    from dlrun.engine import array

    x = array(np.arange(20.0).reshape(5, 4))
    parts = gluon.utils.split_data(x, 2, even_split=False)  # the first parts take one more (MXNet 1.9)
    assert [p.asnumpy().tolist() for p in parts] == [x.asnumpy()[:3].tolist(), x.asnumpy()[3:].tolist()]
    cols = gluon.utils.split_data(x, 2, batch_axis=1)
    np.testing.assert_array_equal(np.concatenate([c.asnumpy() for c in cols], axis=1), x.asnumpy())
    assert len(gluon.utils.split_data(x, 8, even_split=False)) == 5  # one example a part
    with pytest.raises(ValueError, match=r"cannot be evenly split into 2 slices .* even_split=False"):
        gluon.utils.split_data(x, 2)
    loaded = gluon.utils.split_and_load(np.ones((4, 3)), [cpu(0), cpu(1)])
    assert [(p.shape, p.ctx) for p in loaded] == [((2, 3), cpu(0)), ((2, 3), cpu(1))]
    x.attach_grad()
    with autograd.record():  # the parts are ops: gradients flow back into the batch
        total = sum((p * float(i + 1)).sum() for i, p in enumerate(gluon.utils.split_data(x, 5)))
    total.backward()
    np.testing.assert_array_equal(x.grad.asnumpy()[:, 0], [1, 2, 3, 4, 5])


def test_the_launcher_notes_the_first_rank_whose_process_vanishes(tmp_path):
    import socket

    from dlrun.parallel.launch import RANKS_DIR, _Vigil
    ranks = tmp_path / RANKS_DIR
    ranks.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:
        for rank, p in enumerate(procs):
            (ranks / str(rank)).write_text(f"{p.pid} {socket.gethostname()}")
        found: dict[str, str] = {}
        vigil = _Vigil(tmp_path, found)
        vigil.start()
        time.sleep(0.1)
        assert "vanished" not in found  # both alive
        procs[1].kill()  # not reaped: a zombie, as a rank is until MPI's proxy waits for it
        vigil.join(timeout=5)
        assert found["vanished"] == f"1 {procs[1].pid} {socket.gethostname()}"
    finally:
        for p in procs:
            p.kill()
            p.wait()
