"""Model selection end to end (issue 18): no test example reaches a decision, early stopping
survives a kill -9, and a callback from a package outside dlrun runs and can stop the run."""
from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import clean_env

PACKAGE = {
    "mypkg/__init__.py": "",
    "mypkg/callbacks.py": '''
        import os
        import signal

        from dlrun.runner.callbacks import Callback


        class StopAt(Callback):
            """Stops the run at the end of ``epoch``."""

            def __init__(self, epoch: int = 2):
                self.epoch = epoch

            def on_epoch_end(self, state):
                if state.epoch >= self.epoch:
                    state.stop(f"mypkg stopped the run at epoch {state.epoch}")


        class KillAt(Callback):
            """SIGKILLs its own process after step $KILL_AT_STEP: a crash between checkpoints."""

            def on_step_end(self, state):
                if os.environ.get("KILL_AT_STEP") == str(state.step):
                    os.kill(os.getpid(), signal.SIGKILL)
        ''',
    "mypkg/data.py": '''
        import dataclasses

        import numpy as np

        from dlrun.data import ArrayDataset
        from dlrun.data.vision import digits


        def poisoned_digits(seed: int = 0, augment=None, val_fraction: float = 0.2,
                            val_size=None):
            """The digits with every test label wrong; train and val as they are."""
            clean = digits(seed=seed, augment=augment, val_fraction=val_fraction, val_size=val_size)
            shift = np.random.default_rng(7).integers(1, 10, len(clean.test.label))
            wrong = ((clean.test.label + shift) % 10).astype(np.int32)
            return dataclasses.replace(clean, test=ArrayDataset(clean.test.data, wrong))
        ''',
}
USER = ["allowed_targets=[mypkg.]"]
POISON = ["dataset._target_=mypkg.data.poisoned_digits"]
# what decides in these runs: a schedule, early stopping and the best checkpoints, all on val/
DECIDING = ["model=mlp", "trainer.epochs=7", "optimizer.lr=0.1", "schedule=reduce_on_plateau",
            "schedule.patience=0", "schedule.factor=0.5", "trainer.early_stopping.patience=2",
            "trainer.early_stopping.min_delta=0.005", "trainer.checkpoint.keep_best=2"]


@pytest.fixture
def user(tmp_path):
    for name, text in PACKAGE.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return clean_env(PYTHONPATH=str(tmp_path / "pkg"))


def _params(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "model.npz") as f:
        return {k: f[k] for k in f.files}


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _history(uri: str, experiment: str) -> dict[str, list[float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {key: [m.value for m in client.get_metric_history(run.info.run_id, key)]
            for key in ("val/accuracy", "val/loss", "learning_rate", "test/accuracy")}


def test_poisoned_test_labels_change_no_decision(run_dlrun, tmp_path, user):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = {}
    for name, extra in (("clean", []), ("poisoned", POISON)):
        res = run_dlrun(*DECIDING, *USER, *extra, f"experiment={name}", f"logger.tracking_uri={uri}",
                        f"hydra.run.dir={tmp_path / name}", env=user)
        assert res.returncode == 0, res.stderr
        runs[name] = (_results(tmp_path / name), _history(uri, name), res.stdout)
    (clean, clean_history, out), (poisoned, poisoned_history, _) = runs["clean"], runs["poisoned"]
    assert clean["epoch"] < 7 and "early stopping at epoch" in out  # it stopped early ...
    assert min(clean_history["learning_rate"]) < 0.1                 # ... and the rate fell
    for key in ("val/accuracy", "val/loss", "learning_rate"):  # every validation, every rate
        assert poisoned_history[key] == clean_history[key], key
    for key in ("epoch", "steps", "best/epoch", "best/val/accuracy", "val/accuracy", "val/loss"):
        assert poisoned[key] == clean[key], key
    best = [json.loads((tmp_path / n / "checkpoints" / "best.json").read_text()) for n in runs]
    assert best[0] == best[1]
    clean_params, poisoned_params = _params(tmp_path / "clean"), _params(tmp_path / "poisoned")
    for k in clean_params:  # the same selected model, bit for bit
        np.testing.assert_array_equal(poisoned_params[k], clean_params[k], err_msg=k)
    assert clean["test/accuracy"] > 0.8 and poisoned["test/accuracy"] < 0.1  # only test differs
    assert clean_history["test/accuracy"] == [clean["test/accuracy"]]       # logged once


def test_an_optuna_search_ranks_the_same_trials_whatever_the_test_labels(run_dlrun, tmp_path, user):
    tables = {}
    for name, extra in (("clean", []), ("poisoned", POISON)):
        res = run_dlrun("-m", "hparams_search=lenet_optuna", "model=mlp", "trainer.epochs=2",
                        "hydra.sweeper.n_trials=3", f"hydra.sweeper.study_name={name}",
                        "logger=none", *USER, *extra, env=user)
        assert res.returncode == 0, res.stderr
        with open(tmp_path / "outputs" / "multirun" / name / "sweep_results.csv") as f:
            tables[name] = list(csv.DictReader(f))
        assert "val/accuracy (objective)" in res.stdout and "test/accuracy (selected model)" in res.stdout
    clean, poisoned = tables["clean"], tables["poisoned"]
    decided = lambda rows: [(r["rank"], r["trial"], r["optimizer.lr"], r["trainer.batch_size"],
                             r["val/accuracy"]) for r in rows]
    assert decided(poisoned) == decided(clean)  # the same trials, values and ranking
    assert [float(r["val/accuracy"]) for r in clean] == sorted(
        (float(r["val/accuracy"]) for r in clean), reverse=True)
    assert all(float(r["test/accuracy"]) < 0.1 for r in poisoned)  # every test label is wrong
    assert all(float(r["test/accuracy"]) > 0.3 for r in clean)


def test_early_stopping_stops_at_the_same_epoch_across_a_kill_9(run_dlrun, tmp_path, user):
    # 18 steps an epoch; nothing gains 0.5 after epoch 1: early stopping ends the run at epoch 3
    args = ["model=mlp", "trainer.epochs=8", "trainer.early_stopping.patience=2",
            "trainer.early_stopping.min_delta=0.5", "trainer.checkpoint_every=5",
            "+callbacks.kill._target_=mypkg.callbacks.KillAt", *USER, "logger=none"]
    whole = run_dlrun(*args, f"hydra.run.dir={tmp_path / 'whole'}", env=user)
    assert whole.returncode == 0, whole.stderr
    assert "early stopping at epoch 3" in whole.stdout
    killed = run_dlrun(*args, f"hydra.run.dir={tmp_path / 'killed'}",
                       env={**user, "KILL_AT_STEP": "39"})  # in epoch 3, 3 steps after its checkpoint
    assert killed.returncode == -9, killed.stderr
    resumed = run_dlrun(f"resume={tmp_path / 'killed'}", env=user)
    assert resumed.returncode == 0, resumed.stderr
    assert "early stopping at epoch 3" in resumed.stdout
    want, got = _results(tmp_path / "whole"), _results(tmp_path / "killed")
    for key in ("epoch", "steps", "best/epoch", "val/accuracy", "test/accuracy", "test/loss"):
        assert got[key] == want[key], key
    expected, again = _params(tmp_path / "whole"), _params(tmp_path / "killed")
    for k in expected:  # the selected model, bit for bit
        np.testing.assert_array_equal(again[k], expected[k], err_msg=k)


def test_a_callback_from_a_users_package_runs_and_stops_the_run(run_dlrun, tmp_path, user,
                                                               monkeypatch):
    from dlrun.runner.predict import predict

    res = run_dlrun("model=mlp", "trainer.epochs=5", "+callbacks.stop._target_=mypkg.callbacks.StopAt",
                    "+callbacks.stop.epoch=2", "callbacks=lr_monitor", *USER, "logger=none",
                    f"hydra.run.dir={tmp_path / 'run'}", env=user)
    assert res.returncode == 0, res.stderr
    assert "mypkg stopped the run at epoch 2" in res.stdout
    results = _results(tmp_path / "run")
    assert results["epoch"] == 2 and results["steps"] == 2 * 18 and "test/accuracy" in results
    # dlrun test RUN: the run's selected model rebuilt on its test split, the same figures
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    tested = predict([str(tmp_path / "run")])
    assert tested == {k: results[k] for k in ("test/accuracy", "test/loss")}
