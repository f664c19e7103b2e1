"""Runs that survive (issue 10): checkpoints, exact resume after kill -9 or SIGTERM, divergence
guards, refused resumes. Everything through the real ``dlrun`` command and a real MLflow store."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import clean_env, dlrun_command

pytestmark = pytest.mark.slow

# LeNet on the embedded digits with dropout-free layers would hide RNG mistakes: the MLP has
# dropout, so an exact resume also needs the engine's random stream restored.
TRAIN = ["model=mlp", "trainer.epochs=3", "trainer.checkpoint_every=5", "trainer.keep_checkpoints=3",
         "trainer.log_every=4", "seed=3"]


def run(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*dlrun_command(), *args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


def run_dir(cwd: Path) -> Path:
    (folder,) = [p for p in (cwd / "outputs" / "runs").glob("*/*") if (p / "config.yaml").is_file()]
    return folder


def params(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "model.npz") as f:
        return {k: f[k] for k in f.files}


def start_and_stop(cwd: Path, sig: int, after_step: int) -> subprocess.CompletedProcess:
    """Starts the training and sends ``sig`` once the checkpoint of ``after_step`` exists.
    The data is slowed down by nothing but the poll: steps take milliseconds, so the process
    is stopped somewhere after that checkpoint, and a resume must still end exactly."""
    proc = subprocess.Popen([*dlrun_command(), *TRAIN], cwd=cwd, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list((cwd / "outputs" / "runs").glob(f"*/*/checkpoints/ckpt-{after_step:08d}.json")):
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def mlflow_runs(cwd: Path) -> list:
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dlrun")
    return client, client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    cwd = tmp_path_factory.mktemp("whole")
    done = run(cwd, *TRAIN)
    assert done.returncode == 0, done.stderr
    folder = run_dir(cwd)
    return folder, params(folder)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_stopped_run_resumes_to_bitwise_the_same_parameters(tmp_path, uninterrupted, sig):
    stopped = start_and_stop(tmp_path, sig, after_step=10)
    folder = run_dir(tmp_path)
    if stopped.returncode == 0:
        pytest.skip("the run finished before the signal arrived (a very fast machine)")
    client, (record,) = mlflow_runs(tmp_path)
    if sig == signal.SIGTERM:  # a checkpoint at the very step it stopped, and a KILLED run
        assert stopped.returncode == 143, stopped.stderr
        text = stopped.stdout + stopped.stderr
        assert "stopped by SIGTERM after step" in text and f"dlrun resume={folder}" in text
        step = int(text.split("stopped by SIGTERM after step ")[1].split(";")[0])
        assert (folder / "checkpoints" / f"ckpt-{step:08d}.json").is_file()
        assert record.info.status == "KILLED"
    else:
        assert stopped.returncode == -signal.SIGKILL
        assert record.info.status == "RUNNING"  # nobody could end it
    assert not (folder / "model.npz").exists()

    resumed = run(tmp_path, f"resume={folder}")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    whole_folder, whole = uninterrupted
    again = params(folder)
    assert sorted(again) == sorted(whole)
    for name in whole:  # bitwise: same batches, same dropout masks, same optimizer state
        np.testing.assert_array_equal(again[name], whole[name], err_msg=name)

    # the same MLflow run went on: every step's training loss is there, the run FINISHED
    client, (record,) = mlflow_runs(tmp_path)
    assert record.info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(record.info.run_id, "train/step_loss")}
    total = json.loads((whole_folder / "results.json").read_text())["steps"]
    assert steps == set(range(1, total + 1))
    assert record.data.tags["dlrun.resumed_from_step"].isdigit()


def test_resume_refuses_changes_that_make_it_another_run(tmp_path, uninterrupted):
    folder, _ = uninterrupted
    for change in ("model=lenet", "optimizer.lr=0.5", "seed=4"):
        refused = run(tmp_path, f"resume={folder}", change)
        assert refused.returncode == 1
        assert f"cannot change {change}" in refused.stderr and "trainer.epochs=20" in refused.stderr
    finished = run(tmp_path, f"resume={folder}")
    assert finished.returncode == 1
    assert "already finished its 3 epochs; to train on, resume with trainer.epochs=4" in finished.stderr


def test_a_corrupt_checkpoint_is_refused_by_name(tmp_path, uninterrupted):
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(uninterrupted[0], folder)
    latest = sorted((folder / "checkpoints").glob("ckpt-*.npz"))[-1]
    raw = bytearray(latest.read_bytes())
    raw[len(raw) // 3] ^= 0x5A
    latest.write_bytes(bytes(raw))
    refused = run(tmp_path, f"resume={folder}", "trainer.epochs=4")
    assert refused.returncode == 1
    assert f"{latest.name} does not match the SHA-256" in refused.stderr


def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(tmp_path):
    from dlrun.runner.checkpoint import load_checkpoint

    diverged = run(tmp_path, "model=mlp", "optimizer.lr=1e6", "trainer.checkpoint_every=2",
                   "trainer.epochs=1", "logger=none")
    assert diverged.returncode == 1
    assert "the training loss became nan at step" in diverged.stderr
    bad_step = int(diverged.stderr.split("at step ")[1].split()[0])
    ckpt = load_checkpoint(run_dir(tmp_path))
    assert ckpt.step < bad_step
    assert all(np.isfinite(a).all() for k, a in ckpt.arrays.items() if k.startswith("param/"))


def test_on_nan_skip_skips_steps_up_to_its_limit(tmp_path):
    skipped = run(tmp_path, "model=mlp", "optimizer.lr=1e6", "trainer.epochs=1", "logger=none",
                  "trainer.on_nan=skip", "trainer.max_nan_skips=3")
    assert skipped.returncode == 1
    assert "is the 4th with a NaN/Inf gradient (trainer.max_nan_skips=3)" in skipped.stderr


@pytest.mark.parametrize("args, checkpoint", [
    # truncated BPTT carries the hidden state across windows: it is in the checkpoint too
    (["model=lstm_lm", "model.embed_size=32", "model.hidden_size=32", "trainer.epochs=1"], 20),
    # the tree loop's shuffling generator and the best epoch's parameters (the best-checkpoint
    # callback's, for the test score) are in the checkpoint: resume in epoch 2 after epoch 1
    # set the best so far
    (["model=treelstm", "model.hidden_size=16", "model.embed_size=16", "trainer.epochs=2"], 40),
    # two trainers (discriminator and generator), their optimizers' states both in it; in
    # epoch 2 (35 steps of batch 32 an epoch)
    (["model=gan_mlp", "trainer.epochs=2"], 60),
    # the mistake-driven rule checkpoints after each pass (320 examples, one step each)
    (["model=perceptron", "trainer.epochs=4"], 320),
    # the perceptron task's SGD path (7 steps a pass): optimizer state and loader order
    (["model=logistic_regression", "dataset=separable", "loss=logistic", "trainer.epochs=3",
      "trainer.batch_size=48"], 7),
], ids=["lstm_lm", "treelstm", "gan", "perceptron", "perceptron_sgd"])
def test_other_loops_resume_mid_epoch_exactly(tmp_path, args, checkpoint):
    import shutil

    args = [*args, "trainer.checkpoint_every=10", "trainer.keep_checkpoints=10", "logger=none"]
    (tmp_path / "a").mkdir()
    whole = run(tmp_path / "a", *args)
    assert whole.returncode == 0, whole.stderr
    folder = run_dir(tmp_path / "a")
    expected = params(folder)
    copy = tmp_path / "b" / "run"
    shutil.copytree(folder, copy)
    (copy / "model.npz").unlink()
    resumed = run(tmp_path / "b", f"resume={copy / 'checkpoints' / f'ckpt-{checkpoint:08d}.json'}")
    assert resumed.returncode == 0, resumed.stderr
    again = params(copy)
    for name in expected:
        np.testing.assert_array_equal(again[name], expected[name], err_msg=name)
    scores = [json.loads((f / "results.json").read_text()) for f in (folder, copy)]
    assert scores[0]["primary_metric"] == scores[1]["primary_metric"]
    assert scores[1][scores[1]["primary_metric"]] == scores[0][scores[0]["primary_metric"]]
