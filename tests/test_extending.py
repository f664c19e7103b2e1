"""Extending dlrun from outside it (README, "Extending dlrun", whose files are those here,
with a loss, an optimizer and a schedule besides): a package of the user's own, written
into a temporary folder, brings a model, a loss, an optimizer, a schedule, a dataset and a
task, and a config directory of its own names them; the real ``dlrun`` command
trains them with checkpoints and a real MLflow store, resumes the run exactly, and refuses
the package's targets unless ``allowed_targets`` names it."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from .conftest import clean_env, dlrun_command

# the user's package: mypkg, outside dlrun, on PYTHONPATH
PACKAGE = {
    "mypkg/__init__.py": "",
    "mypkg/models.py": '''
        from dlrun import nn


        class Wave(nn.HybridBlock):
            """x -> Dense(hidden, tanh) -> Dense(outputs)."""

            def __init__(self, hidden: int = 16, outputs: int = 1, **kwargs):
                super().__init__(**kwargs)
                self.hidden = nn.Dense(hidden, activation="tanh")
                self.out = nn.Dense(outputs)

            def forward(self, x):
                return self.out(self.hidden(x))
        ''',
    "mypkg/losses.py": '''
        from dlrun import nn
        from dlrun.engine import ops


        class PseudoHuber(nn.HybridBlock):
            """delta^2 (sqrt(1 + (d/delta)^2) - 1), d = pred - label: one loss per example."""

            def __init__(self, delta: float = 1.0, **kwargs):
                super().__init__(**kwargs)
                self.delta = delta

            def forward(self, pred, label):
                d = (pred - label.reshape(pred.shape)) / self.delta
                return ops.mean(self.delta ** 2 * (ops.sqrt(1 + ops.square(d)) - 1), axis=1)
        ''',
    "mypkg/optim.py": '''
        import math

        from dlrun.optim import Optimizer
        from dlrun.optim.schedules import LRScheduler


        class HeavyBall(Optimizer):
            """v <- beta v - lr g;  w <- w + v."""

            def __init__(self, learning_rate: float = 0.1, beta: float = 0.9, **kwargs):
                super().__init__(learning_rate=learning_rate, **kwargs)  # lr, wd, lr_scheduler...
                self.beta = beta

            def create_state(self, index, weight):
                return self.zeros(weight)           # the velocity (checkpoints hold it)

            def step(self, xp, w, g, state, lr, wd, t):
                state *= self.beta                  # in place, on the raw arrays
                state -= lr * g
                w += state


        class HalfCosine(LRScheduler):
            """base_lr * (1 + cos(pi t / max_update)) / 2."""

            def __init__(self, max_update: int | None = None, **kwargs):
                super().__init__(**kwargs)
                self.max_update = max_update        # None: the runner sets the run's updates

            def rate(self, num_update):
                t = min(num_update, self.max_update) / self.max_update
                return self.base_lr * (1 + math.cos(math.pi * t)) / 2
        ''',
    "mypkg/data.py": '''
        from dataclasses import dataclass

        import numpy as np

        from dlrun.data import ArrayDataset


        @dataclass
        class Curve:
            train: ArrayDataset
            val: ArrayDataset   # what decides (the best epoch, early stopping, a sweep)
            test: ArrayDataset
            model_args: dict    # model arguments the data decides (those the model file leaves null)


        def sine(num_examples: int = 512, noise: float = 0.05, seed: int = 0) -> Curve:
            """y = sin(3x) + noise, x uniform in [-1, 1]; an eighth held out for validation, an
            eighth for the test."""
            rng = np.random.default_rng(seed)
            x = rng.uniform(-1, 1, (num_examples, 1)).astype(np.float32)
            y = (np.sin(3 * x) + noise * rng.standard_normal(x.shape)).astype(np.float32)
            cut, val = num_examples * 3 // 4, num_examples * 7 // 8
            return Curve(ArrayDataset(x[:cut], y[:cut]), ArrayDataset(x[cut:val], y[cut:val]),
                         ArrayDataset(x[val:], y[val:]), {"outputs": 1})
        ''',
    "mypkg/tasks.py": '''
        import numpy as np

        from dlrun.data import DataLoader
        from dlrun.engine import autograd
        from dlrun.runner.loop import StepResult
        from dlrun.runner.tasks import TaskBase


        class FitTask(TaskBase):
            """Curve fitting: the mean absolute error (lower is better) and the share of
            predictions within task.tolerance, on the val split each epoch, on test once."""

            primary = ("val/mae", "min")
            columns = (("epoch", "epoch", "{}"), ("train loss", "train/loss", "{:.4f}"),
                       ("val mae", "val/mae", "{:.4f}"), ("time", "epoch_time", "{:.1f}s"))
            results = (("test mae", "test/mae", "{:.4f}"), ("worst val mae", "val/worst_mae", "{:.4f}"),
                       ("within tolerance", "test/within_tol", "{:.1%}"), ("steps", "steps", "{}"))

            def __init__(self, setup):
                super().__init__(setup)
                s = setup
                self.tolerance = float(s.task_cfg.tolerance)  # conf task/fit.yaml, task.tolerance=...
                self.train = DataLoader(s.data.train, s.batch_size, shuffle=True, seed=s.seed, ctx=s.ctx)
                self.split = {name: DataLoader(getattr(s.data, name), s.eval_batch_size, ctx=s.ctx)
                              for name in ("val", "test")}
                self.steps = len(self.train)
                self.worst = 0.0                              # the worst validation MAE so far

            def batches(self, epoch, skip):
                self.train.epoch = epoch - 1                  # this epoch's order, from batch skip on
                return self.train.iterate(skip)

            def train_step(self, batch, update):
                x, y = batch
                with autograd.record():
                    loss = self.setup.loss(self.setup.net(x), y)
                loss.backward()
                update(self.setup.trainer, x.shape[0])        # the optimizer step, NaN guard included
                return StepResult(loss.sum(), x.shape[0], x.shape[0])

            def evaluate(self, split="val"):                  # val: each epoch; test: once, at the end
                errors = np.concatenate([np.abs(self.setup.net(x).asnumpy() - y.asnumpy()).ravel()
                                         for x, y in self.split[split]])
                metrics = {f"{split}/mae": float(errors.mean()),
                           f"{split}/within_tol": float((errors <= self.tolerance).mean())}
                if split == "val":
                    self.worst = max(self.worst, metrics["val/mae"])
                return metrics

            def finish(self, metrics):
                return {**metrics, "val/worst_mae": self.worst}

            def state(self):                                  # into every checkpoint: JSON, arrays
                return {"worst": self.worst}, {}

            def load_state(self, state, arrays):              # from the checkpoint a run resumes
                self.worst = state["worst"]
        ''',
}

# the user's config directory (--config-dir): one file per new option of a group
CONFIGS = {
    "model/wave.yaml": """
        defaults:                       # what this model trains on (dataset=, loss= still win)
          - override /dataset@_global_.dataset: sine
          - override /loss@_global_.loss: l2
          - _self_

        _target_: mypkg.models.Wave
        hidden: 16
        outputs: null      # null: what the dataset says (its model_args)
        hybridize: true
        """,
    "loss/pseudo_huber.yaml": """
        _target_: mypkg.losses.PseudoHuber
        delta: 1.0
        """,
    "optimizer/heavy_ball.yaml": """
        _target_: mypkg.optim.HeavyBall
        lr: 0.2
        beta: 0.9
        """,
    "schedule/half_cosine.yaml": """
        _target_: mypkg.optim.HalfCosine
        max_update: null
        """,
    "dataset/sine.yaml": """
        defaults:
          - override /task@_global_.task: fit   # the training loop of this data (task= still wins)
          - _self_

        _target_: mypkg.data.sine
        num_examples: 512
        noise: 0.05
        seed: 0
        """,
    "task/fit.yaml": """
        _target_: mypkg.tasks.FitTask
        tolerance: 0.1
        """,
}

# model=wave brings its dataset (and loss, here replaced), the dataset its task; 384
# training examples in batches of 16: 24 steps an epoch, 192 in all (about a second)
TRAIN = ["model=wave", "loss=pseudo_huber", "optimizer=heavy_ball", "schedule=half_cosine",
         "task.tolerance=0.2", "trainer.epochs=8", "trainer.batch_size=16",
         "trainer.checkpoint_every=10", "trainer.keep_checkpoints=50"]
ALLOW = "allowed_targets=[mypkg.]"
RESUME_STEP = 50  # epoch 3, batch 2: mid-epoch, after two evaluations set the best so far


class User:
    """The package folder (for PYTHONPATH) and the config directory (for --config-dir)."""

    def __init__(self, root: Path):
        self.path, self.conf = root / "userpkg", root / "conf"
        for files, base in ((PACKAGE, self.path), (CONFIGS, self.conf)):
            for name, text in files.items():
                (base / name).parent.mkdir(parents=True, exist_ok=True)
                (base / name).write_text(textwrap.dedent(text).lstrip())

    def dlrun(self, cwd: Path, *args: str) -> subprocess.CompletedProcess:
        pythonpath = os.pathsep.join(filter(None, [str(self.path), os.environ.get("PYTHONPATH")]))
        return subprocess.run([*dlrun_command(), "--config-dir", str(self.conf), *args], cwd=cwd,
                              env=clean_env(PYTHONPATH=pythonpath), capture_output=True, text=True,
                              timeout=240, check=False)


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> User:
    return User(tmp_path_factory.mktemp("user"))


def run_dirs(cwd: Path) -> list[Path]:
    return [p for p in (cwd / "outputs" / "runs").glob("*/*") if p.is_dir()]


def params(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "model.npz") as f:
        return {k: f[k] for k in f.files}


def mlflow_runs(uri: str) -> tuple:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("dlrun")
    return client, client.search_runs([experiment.experiment_id])


@pytest.mark.slow
def test_a_users_package_trains_resumes_and_is_tracked(tmp_path, user):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    whole = user.dlrun(tmp_path, *TRAIN, ALLOW, f"logger.tracking_uri={uri}")
    assert whole.returncode == 0, whole.stderr
    (folder,) = run_dirs(tmp_path)

    # results.json: the task's own metrics, its primary metric and the direction it declared
    results = json.loads((folder / "results.json").read_text())
    assert results["primary_metric"] == "val/mae" and results["direction"] == "min"
    assert results["steps"] == 8 * 24 and results["epoch"] == 8
    assert results["test/mae"] < 0.2  # it learnt the curve (predicting 0 is off by about 0.6)
    assert results["val/mae"] == results["best/val/mae"] <= results["val/worst_mae"]
    assert 0.5 < results["test/within_tol"] <= 1.0

    # the trained parameters (the model's own names and shapes, hidden shaped by the data),
    # the exported graph, and the checkpoints: mid-epoch ones holding the task's state
    expected = params(folder)
    assert {k: v.shape for k, v in expected.items()} == {
        "hidden.weight": (16, 1), "hidden.bias": (16,), "out.weight": (1, 16), "out.bias": (1,)}
    assert (folder / "model-symbol.json").is_file()
    manifest = json.loads((folder / "checkpoints" / f"ckpt-{RESUME_STEP:08d}.json").read_text())
    assert (manifest["epoch"], manifest["batch"], manifest["step"]) == (3, 2, RESUME_STEP)
    assert manifest["state"]["task"]["worst"] <= results["val/worst_mae"]
    assert (folder / "checkpoints" / f"ckpt-{8 * 24:08d}.json").is_file()

    # the MLflow run: finished, with the task's metrics per epoch and every step's loss
    client, (record,) = mlflow_runs(uri)
    run_id = record.info.run_id
    assert record.info.status == "FINISHED"
    assert record.data.metrics["test/mae"] == pytest.approx(results["test/mae"])
    assert record.data.metrics["best/val/mae"] == pytest.approx(results["val/mae"])
    assert "val/within_tol" in record.data.metrics
    assert len(client.get_metric_history(run_id, "val/mae")) == 8
    for key, target in (("model", "mypkg.models.Wave"), ("loss", "mypkg.losses.PseudoHuber"),
                        ("optimizer", "mypkg.optim.HeavyBall"), ("schedule", "mypkg.optim.HalfCosine"),
                        ("dataset", "mypkg.data.sine"), ("task", "mypkg.tasks.FitTask")):
        assert record.data.params[f"{key}._target_"] == target
    assert record.data.params["task.tolerance"] == "0.2"
    assert record.data.tags["dlrun.choice.task"] == "fit"

    # resume from a checkpoint mid-epoch 3, in the run's own folder: the same parameters,
    # bit for bit (batches, optimizer velocity, schedule), the same results, the same MLflow run
    (folder / "model.npz").unlink()
    (folder / "results.json").unlink()
    ckpt = folder / "checkpoints" / f"ckpt-{RESUME_STEP:08d}.json"
    resumed = user.dlrun(tmp_path, f"resume={ckpt}")
    assert resumed.returncode == 0, resumed.stderr
    assert [p for p in run_dirs(tmp_path) if (p / "config.yaml").is_file()] == [folder]
    again = params(folder)
    assert sorted(again) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(again[name], expected[name], err_msg=name)
    after = json.loads((folder / "results.json").read_text())
    for key in ("test/mae", "val/mae", "val/worst_mae", "test/within_tol", "best/epoch", "steps"):
        assert after[key] == results[key], key

    client, (record,) = mlflow_runs(uri)
    assert record.info.run_id == run_id and record.info.status == "FINISHED"
    assert record.data.tags["dlrun.resumed_from_step"] == str(RESUME_STEP)
    steps = {m.step for m in client.get_metric_history(run_id, "train/step_loss")}
    assert steps == set(range(1, 8 * 24 + 1))


@pytest.mark.slow
def test_a_users_targets_are_refused_without_allowed_targets(tmp_path, user):
    refused = user.dlrun(tmp_path, *TRAIN, "logger=none")
    assert refused.returncode == 1
    assert "model._target_='mypkg.models.Wave' is outside the namespaces" in refused.stderr
    assert "allowed_targets" in refused.stderr
    trained = [p for folder in run_dirs(tmp_path) for p in folder.iterdir()
               if p.name in ("model.npz", "results.json", "checkpoints")]
    assert trained == []


def test_a_sweeps_checks_follow_allowed_targets_and_leave_task_settings_to_the_task(user, monkeypatch):
    """``dlrun -m`` checks every trial's nodes before any runs: the user's classes pass with
    allowed_targets (and only with it), and a task's settings (task.tolerance, the language
    model's task.bptt) are not taken for arguments of its class."""
    from omegaconf import OmegaConf

    from dlrun.runner.build import ConfigError, allow_targets
    from dlrun.runner.sweep.checks import check_config

    monkeypatch.syspath_prepend(str(user.path))
    cfg = OmegaConf.create({"model": {"_target_": "mypkg.models.Wave", "hidden": 4, "outputs": None},
                            "task": {"_target_": "mypkg.tasks.FitTask", "tolerance": 0.1},
                            "allowed_targets": ["mypkg."]})
    try:
        check_config(cfg)
        check_config(OmegaConf.create({"task": {
            "_target_": "dlrun.runner.tasks.language_model.LanguageModelTask", "bptt": 35}}))
        with pytest.raises(ConfigError, match=r"model._target_='mypkg.models.Wave' is outside"):
            check_config(OmegaConf.merge(cfg, {"allowed_targets": []}))
    finally:
        allow_targets([])
