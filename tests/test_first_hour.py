"""What a newcomer meets in the first hour, end to end (issue 19): an Optuna study's parent run
says the study's n_trials after a resume, and n_trials=0 leaves no FAILED parent run."""
from __future__ import annotations

import mlflow

TINY = ["model=mlp", "trainer.epochs=1", "trainer.batch_size=256", "logger.log_plots=false"]


def parents(cwd, experiment: str) -> list:
    mlflow.set_tracking_uri(f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")
    return [r for r in mlflow.search_runs(experiment_names=[experiment], output_format="list")
            if r.data.tags.get("dlrun.sweep.role") == "parent"]


def test_an_optuna_study_resumed_to_more_trials_says_so_and_zero_trials_are_refused(run_dlrun):
    args = ["-m", "hparams_search=lenet_optuna", *TINY, "hydra.sweeper.study_name=grow",
            "experiment=grow"]
    assert run_dlrun(*args, "hydra.sweeper.n_trials=1").returncode == 0
    grown = run_dlrun(*args, "hydra.sweeper.n_trials=2")
    assert grown.returncode == 0, grown
    (parent,) = parents(grown.cwd, "grow")
    assert parent.data.tags["dlrun.sweep.n_trials"] == "2" and parent.info.status == "FINISHED"

    zero = run_dlrun("-m", "hparams_search=lenet_optuna", *TINY, "hydra.sweeper.n_trials=0",
                     "hydra.sweeper.study_name=none", "experiment=none")
    assert zero.returncode == 1 and "Traceback" not in zero.output, zero
    assert "hydra.sweeper.n_trials=0" in zero.stderr
    assert parents(zero.cwd, "none") == []
