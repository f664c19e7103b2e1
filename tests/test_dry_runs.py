"""Quick dry runs (issue 19, item 4): trainer.max_steps, trainer.limit_train_batches and
trainer.fast_dev_run through the whole pipeline."""
from __future__ import annotations

import json

import mlflow
from omegaconf import OmegaConf

from dlrun.runner.limits import max_steps, run_epochs, train_batches


def trainer(**keys) -> object:
    return OmegaConf.create({"epochs": 10, "max_steps": None, "limit_train_batches": None,
                             "fast_dev_run": False, **keys})


def test_the_limits():
    assert (run_epochs(trainer()), train_batches(18, trainer()), max_steps(trainer())) == (10, 18, None)
    assert train_batches(18, trainer(limit_train_batches=5)) == 5
    assert train_batches(18, trainer(limit_train_batches=0.25)) == 4
    assert train_batches(18, trainer(limit_train_batches=0.01)) == 1
    assert train_batches(18, trainer(limit_train_batches=50)) == 18
    assert (run_epochs(trainer(fast_dev_run=True)), train_batches(18, trainer(fast_dev_run=True))) == (1, 1)
    assert max_steps(trainer(max_steps=7)) == 7


def results(done) -> dict:
    (folder,) = done.run_dirs()
    return json.loads((folder / "results.json").read_text())


def test_dry_runs_end_to_end(run_dlrun):
    fast = run_dlrun("model=mlp", "trainer.fast_dev_run=true", "logger.log_plots=false")
    assert fast.returncode == 0, fast
    (folder,) = fast.run_dirs()
    assert results(fast)["steps"] == 1 and results(fast)["epoch"] == 1
    assert list(folder.glob("checkpoints/ckpt-*.json")) and (folder / "model-symbol.json").is_file()
    mlflow.set_tracking_uri(f"sqlite:///{fast.cwd / 'outputs' / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["dlrun"], output_format="list")
    assert run.info.status == "FINISHED"

    (fast.cwd / "limited").mkdir()  # 2 batches an epoch, stopped at the third step (epoch 2)
    done = run_dlrun("model=mlp", "logger=none", "trainer.limit_train_batches=2",
                     "trainer.max_steps=3", "trainer.epochs=5", cwd=fast.cwd / "limited")
    assert done.returncode == 0, done
    assert (results(done)["steps"], results(done)["epoch"]) == (3, 2)
    refused = run_dlrun("trainer.limit_train_batches=0", "logger=none")
    assert refused.returncode == 1 and "trainer.limit_train_batches=0" in refused.stderr
