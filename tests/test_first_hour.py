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


def test_dlrun_sync_sends_a_spool_to_the_store_given(run_dlrun, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on: the store is away for the whole run
        s.bind(("127.0.0.1", 0))
        away = f"http://127.0.0.1:{s.getsockname()[1]}"
    ran = run_dlrun(*TINY, f"logger.tracking_uri={away}")
    assert ran.returncode == 0, ran
    (folder,) = ran.run_dirs()
    assert away in ran.stdout  # the warning names the store, whole
    assert run_dlrun("sync", str(folder), "model=mlp").returncode == 1
    other = f"sqlite:///{tmp_path / 'other.db'}"
    synced = run_dlrun("sync", str(folder), f"logger.tracking_uri={other}")
    assert synced.returncode == 0, synced
    assert not (folder / "mlflow-spool.jsonl").exists()
    client = mlflow.MlflowClient(tracking_uri=other)
    (record,) = client.search_runs([client.get_experiment_by_name("dlrun").experiment_id])
    assert record.info.status == "FINISHED" and record.data.tags["dlrun.run_dir"] == str(folder.absolute())
    assert client.get_metric_history(record.info.run_id, "train/step_loss")


def test_every_trials_dlrun_log_tells_its_story(run_dlrun):
    swept = run_dlrun("-m", "loss=softmax_ce,hinge", "logger=none", *TINY)
    assert swept.returncode == 0, swept
    ok, failed = sorted((swept.cwd / "outputs" / "multirun").glob("*/*/[01]_*/dlrun.log"))
    for log in (ok.read_text(), failed.read_text()):
        assert "command: " in log and "versions: dlrun " in log and "CPU cores" in log
        assert "resolved config:\n" in log and "_target_: dlrun.models.mlp.MLP" in log
        assert "train loss" in log  # the console's lines
    assert "test accuracy (selected model)" in ok.read_text() and "Traceback" not in ok.read_text()
    assert not list(ok.parent.glob("checkpoints/ckpt-*"))  # a finished trial keeps no checkpoint
    text = failed.read_text()
    assert "[ERROR] - ValueError: HingeLoss" in text and "Traceback (most recent call last)" in text
