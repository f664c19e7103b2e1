"""Quick dry runs (issue 19, item 4): trainer.max_steps, trainer.limit_train_batches /
limit_val_batches / limit_test_batches and trainer.fast_dev_run through the whole pipeline;
and validation every trainer.val_every_steps steps (issue 18, item 2)."""
from __future__ import annotations

import json

import mlflow
import pytest
from omegaconf import OmegaConf

from dlrun.runner.build import ConfigError
from dlrun.runner.limits import max_steps, run_epochs, split_batches, val_every_steps


def trainer(**keys) -> object:
    return OmegaConf.create({"epochs": 10, "max_steps": None, "limit_train_batches": None,
                             "fast_dev_run": False, **keys})


def test_the_limits():
    assert (run_epochs(trainer()), split_batches(18, trainer()), max_steps(trainer())) == (10, 18, None)
    assert split_batches(18, trainer(limit_train_batches=5)) == 5
    assert split_batches(18, trainer(limit_train_batches=0.25)) == 4
    assert split_batches(18, trainer(limit_train_batches=0.01)) == 1
    assert split_batches(18, trainer(limit_train_batches=50)) == 18
    assert (run_epochs(trainer(fast_dev_run=True)), split_batches(18, trainer(fast_dev_run=True))) == (1, 1)
    assert max_steps(trainer(max_steps=7)) == 7
    # validation and test: limit_val_batches / limit_test_batches, one batch with fast_dev_run
    assert [split_batches(5, trainer(limit_val_batches=2), s) for s in ("train", "val", "test")] == [5, 2, 5]
    assert split_batches(40, trainer(limit_test_batches=0.1), "test") == 4
    assert split_batches(5, trainer(fast_dev_run=True), "val") == split_batches(5, trainer(fast_dev_run=True), "test") == 1


def test_validation_every_n_steps_needs_a_validation_split():
    assert val_every_steps(trainer(), True) is None  # null: the epochs decide
    assert val_every_steps(trainer(val_every_steps=50), True) == 50
    with pytest.raises(ConfigError) as info:
        val_every_steps(trainer(val_every_steps=50), has_val=False)
    assert "trainer.val_every_steps=50" in str(info.value) and "no validation split" in str(info.value)


def results(done) -> dict:
    (folder,) = done.run_dirs()
    return json.loads((folder / "results.json").read_text())


def test_dry_runs_end_to_end(run_dlrun):
    fast = run_dlrun("model=mlp", "trainer.fast_dev_run=true", "logger.log_plots=false")
    assert fast.returncode == 0, fast
    (folder,) = fast.run_dirs()
    assert results(fast)["steps"] == 1 and results(fast)["epoch"] == 1
    for split in ("val", "test"):  # one batch (256 of the 287 and of the 360 examples) each
        assert (results(fast)[f"{split}/accuracy"] * 256) % 1 < 1e-9, split
    assert list(folder.glob("checkpoints/ckpt-*.json")) and (folder / "model-symbol.json").is_file()
    mlflow.set_tracking_uri(f"sqlite:///{fast.cwd / 'outputs' / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["dlrun"], output_format="list")
    assert run.info.status == "FINISHED"

    # 2 batches an epoch, stopped at the third step (epoch 2); validations every 2 steps and at
    # the end, of one batch each, logged at their steps (the epoch's end logs none again)
    (fast.cwd / "limited").mkdir()
    done = run_dlrun("model=mlp", "trainer.limit_train_batches=2", "trainer.max_steps=3",
                     "trainer.epochs=5", "trainer.val_every_steps=2", "trainer.limit_val_batches=1",
                     "logger.log_plots=false", "logger.log_model=false", "experiment=limited",
                     f"logger.tracking_uri=sqlite:///{fast.cwd / 'outputs' / 'mlflow.db'}",
                     cwd=fast.cwd / "limited")
    assert done.returncode == 0, done
    assert (results(done)["steps"], results(done)["epoch"]) == (3, 2)
    (run,) = mlflow.search_runs(experiment_names=["limited"], output_format="list")
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val/accuracy")
    assert [m.step for m in history] == [2, 3]
    assert all((m.value * 256) % 1 < 1e-9 for m in history)
    # trainer.limit_train_batches=0 and the like: test_runner's range table (in-process) and
    # its end-to-end refusals of out-of-range values (the same check)
