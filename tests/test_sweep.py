"""Sweeps: grid and Optuna sweeps of the real ``dlrun`` command, checked through MLflow.

The end-to-end tests run tiny trials (an MLP, one epoch on the embedded digits) in a
subprocess and read the results back with the MLflow client, the Optuna study and the files
of the sweep folder; the rest checks the search-space parser and the table's helpers.
"""
from __future__ import annotations

import csv
import glob
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import clean_env, dlrun_command

TINY = ["model=mlp", "trainer.epochs=1", "dataset=digits"]


def mlflow_runs(cwd: Path, experiment: str, uri: str | None = None):
    """(client, the parent run, {trial number: child run}) of the one sweep in ``experiment``
    of the store at ``uri`` (default: the local SQLite store under ``cwd``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("dlrun.sweep.role") == "parent"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    (parent,) = parents
    children = {}
    for run in runs:
        if run is parent:
            continue
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id, run.info.run_name
        assert run.data.tags["dlrun.sweep.id"] == parent.data.tags["dlrun.sweep.id"]
        number = int(run.data.tags["dlrun.sweep.trial"])
        assert number not in children, f"two runs for trial {number}"
        children[number] = run
    return client, parent, children


def sweep_table(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "sweep_results.csv", newline="") as f:
        return list(csv.DictReader(f))


# --- end to end -------------------------------------------------------------------------------
@pytest.mark.slow
def test_grid_sweep_goes_on_past_a_diverging_trial(run_dlrun, tmp_path, mlflow_server):
    res = run_dlrun("-m", *TINY, "optimizer.lr=0.1,1e9", "experiment=grid",
                    f"logger.tracking_uri={mlflow_server.url}")
    assert res.returncode == 0, f"{res}\n--- server log\n{mlflow_server.log.read_text()[-3000:]}"
    out = res.stdout
    assert "2 trials, 1 finished, 1 failed" in out and "FAILED" in out, res
    assert "rerun it: dlrun model=mlp trainer.epochs=1 dataset=digits optimizer.lr=0.1" in out

    (sweep_dir,) = [p for p in (tmp_path / "outputs" / "multirun").glob("*/*") if p.is_dir()]
    names = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert names == ["0_dataset=digits,model=mlp,optimizer.lr=0.1,trainer.epochs=1",
                     "1_dataset=digits,model=mlp,optimizer.lr=1000000000.0,trainer.epochs=1"]
    finished = sweep_dir / names[0]  # what a finished trial keeps (issue 19, item 5)
    assert not list((finished / "checkpoints").glob("ckpt-*"))  # keep_checkpoints: 0 in a sweep
    assert (finished / "model.npz").samefile(finished / "model-0000.params")  # one weights file
    rows = sweep_table(sweep_dir)
    assert [(r["trial"], r["status"]) for r in rows] == [("0", "FINISHED"), ("1", "FAILED")]
    assert "diverged" in rows[1]["error"] and rows[0]["command"].startswith("dlrun model=mlp")

    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # all of it went to the server
    client, parent, children = mlflow_runs(tmp_path, "grid", mlflow_server.url)
    assert sorted(children) == [0, 1]
    ok, bad = children[0], children[1]
    assert ok.info.status == "FINISHED" and bad.info.status == "FAILED"
    assert ok.data.params["optimizer.lr"] == "0.1" and bad.data.params["optimizer.lr"] == "1000000000.0"
    assert 0.3 < ok.data.metrics["best/val/accuracy"] <= 1.0
    assert "diverged" in bad.data.tags["dlrun.error"]
    assert ok.data.tags.get("dlrun.sweep.best") == "true" and "dlrun.sweep.best" not in bad.data.tags
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search_space.optimizer.lr"] == "0.1,1e9"
    assert parent.data.params["model._target_"] == "dlrun.models.mlp.MLP"  # the sweep's config
    assert parent.data.tags["dlrun.sweep.best_trial"] == "0"
    assert parent.data.tags["best.optimizer.lr"] == "0.1"
    assert parent.data.metrics["best/val/accuracy"] == ok.data.metrics["best/val/accuracy"]
    assert parent.data.metrics["sweep/trials_failed"] == 1
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"sweep_results.csv"}
    assert f"{mlflow_server.url}/#/experiments/" in out  # where to open the sweep


@pytest.mark.slow
def test_optuna_sweep_with_two_parallel_trials(run_dlrun, tmp_path):
    import optuna

    res = run_dlrun("-m", "hparams_search=lenet_optuna", *TINY, "hydra.sweeper.n_trials=3",
                    "hydra.sweeper.n_jobs=2", "hydra.sweeper.study_name=par", "experiment=optuna")
    assert res.returncode == 0, res
    assert "0 of 3 trials done, 3 to go, 2 at a time" in res.stdout, res
    assert "study par: 3 trials, 3 finished; higher val/accuracy is better" in res.stdout, res
    sweep_dir = tmp_path / "outputs" / "multirun" / "par"
    study = optuna.load_study(study_name="par", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.trials[0].params.keys() == {"optimizer.lr", "trainer.batch_size"}

    client, parent, children = mlflow_runs(tmp_path, "optuna")
    assert sorted(children) == [0, 1, 2]
    from joblib import cpu_count

    cores = cpu_count()  # what loky and dlrun count: CPU affinity and cgroup quota
    for number, run in children.items():
        trial = study.trials[number]
        assert run.info.status == "FINISHED"
        assert 0.003 <= float(run.data.params["optimizer.lr"]) <= 0.3
        assert int(run.data.params["trainer.batch_size"]) == trial.params["trainer.batch_size"]
        assert run.data.params["model._target_"] == "dlrun.models.mlp.MLP"
        assert run.data.metrics["best/val/accuracy"] == pytest.approx(trial.value)
        # two trials share the cores: BLAS threads per trial = cores // 2
        assert run.data.tags["dlrun.blas_threads"] == str(max(1, cores // 2))
    best = study.best_trial
    assert children[best.number].data.tags.get("dlrun.sweep.best") == "true"
    assert parent.data.tags["dlrun.sweep.best_trial"] == str(best.number)
    assert parent.data.metrics["best/val/accuracy"] == pytest.approx(best.value)
    assert parent.data.params["search_space.optimizer.lr"] == "tag(log, interval(0.003, 0.3))"
    assert parent.data.params["sweep.sampler_seed"] == "0"
    rows = sweep_table(sweep_dir)
    assert rows[0]["trial"] == str(best.number) and rows[0]["command"].startswith("OMP_NUM_THREADS=")
    assert [float(r["val/accuracy"]) for r in rows] == sorted(
        (t.value for t in study.trials), reverse=True)


@pytest.mark.slow
def test_optuna_sweep_interrupted_then_resumed_to_its_total(tmp_path):
    import optuna

    args = ["-m", "hparams_search=lenet_optuna", *TINY, "hydra.sweeper.n_trials=4",
            "hydra.sweeper.study_name=resume", "experiment=resume"]
    sweep_dir = tmp_path / "outputs" / "multirun" / "resume"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen([*dlrun_command(), *args], cwd=tmp_path, env=clean_env(),
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            if glob.glob(str(sweep_dir / "2_*")):  # the third trial has started: Ctrl-C
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.01)
        rc = proc.wait(timeout=120)
    first = (tmp_path / "first.log").read_text()
    assert rc == 130, first
    assert "study resume: " in first and "interrupted" in first, first
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    states = [t.state.name for t in optuna.load_study(study_name="resume", storage=storage).trials]
    assert states[:2] == ["COMPLETE", "COMPLETE"] and "RUNNING" not in states, states

    res = subprocess.run([*dlrun_command(), *args], cwd=tmp_path, env=clean_env(),
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    done = states.count("COMPLETE")
    assert f"{done} of 4 trials done, {4 - done} to go" in res.stdout, res.stdout
    trials = optuna.load_study(study_name="resume", storage=storage).trials
    complete = [t.number for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4, [(t.number, t.state.name) for t in trials]  # n_trials in all
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))                 # no number used twice
    folders = [p.name for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit()]  # plots/ aside
    assert len(folders) == len(set(folders)) == len(trials)    # one folder per trial
    assert sorted(int(f.split("_")[0]) for f in folders) == numbers

    _, parent, children = mlflow_runs(tmp_path, "resume")      # one parent across both runs
    finished = sorted(n for n, r in children.items() if r.info.status == "FINISHED")
    assert finished == complete
    assert all(r.info.status == "KILLED" for n, r in children.items() if n not in complete)
    assert parent.info.status == "FINISHED"
    assert len(sweep_table(sweep_dir)) == len(trials)


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["hparams_search=lenet_optuna", "optimizer.lr=choice(0.1, fast)"],
     "optimizer.lr=fast (from the search space optimizer.lr: choice(0.1, fast)): "
     "optimizer.lr='fast': SGD expects float"),
    (["hparams_search=lenet_optuna", "optimizer.lr=interval(0.3, 0.1)", "logger=none"],
     "optimizer.lr=interval(0.3, 0.1): the interval's start must be below its end"),
    (["hparams_search=lenet_optuna", "trainer.batch_size=tag(log, interval(0, 64))",
      "logger=none"], "a log scale needs a positive start"),
    (["hparams_search=lenet_optuna", "optimizer.lrr=interval(0.1, 0.3)", "logger=none"],
     "Could not override 'optimizer.lrr'"),
    (["optimizer.lr=0.1,fast", "logger=none"], "optimizer.lr='fast': SGD expects float"),
])
def test_a_mistake_in_the_search_space_stops_the_sweep_before_any_trial(run_dlrun, tmp_path,
                                                                        args, message):
    res = run_dlrun("-m", *TINY, *args, "experiment=mistake")
    assert res.returncode == 1, res
    assert message in res.stderr, res
    assert "Traceback" not in res.output
    multirun = tmp_path / "outputs" / "multirun"
    assert not list(multirun.rglob(".hydra")), "no trial may have started"
    assert not (multirun / "lenet_optuna").exists(), "no empty sweep folder left behind"
    db = tmp_path / "outputs" / "mlflow.db"
    if db.exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{db}")
        exp = client.get_experiment_by_name("mistake")
        assert exp is None or not client.search_runs([exp.experiment_id]), "no parent run left"


# --- the pieces -------------------------------------------------------------------------------
def test_the_sweepers_are_found_by_hydra():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    names = {cls.__name__ for cls in Plugins.instance().discover(Sweeper)}
    assert {"DlrunBasicSweeper", "DlrunOptunaSweeper"} <= names


def test_search_space_from_override_syntax():
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)

    from dlrun.runner.sweep.space import parse_search_space

    params, fixed = parse_search_space([
        "optimizer.lr=tag(log, interval(0.001, 0.1))", "trainer.batch_size=choice(16, 32, 64)",
        "model.hidden=range(32, 129, 32)", "trainer.epochs=tag(int, interval(1, 5))",
        "optimizer=adam,sgd", "model.dropout=interval(0.9, 0.99)", "seed=3", "seed=4"])
    p = {x.key: x for x in params}
    assert fixed == ["seed=4"]                                  # a later line of a key wins
    assert p["optimizer.lr"].dist == FloatDistribution(0.001, 0.1, log=True)
    assert p["trainer.batch_size"].dist == CategoricalDistribution([16, 32, 64])
    assert p["model.hidden"].dist == IntDistribution(32, 128, step=32)
    assert p["trainer.epochs"].dist == IntDistribution(1, 5)
    assert p["optimizer"].dist == CategoricalDistribution(["adam", "sgd"])
    assert p["optimizer.lr"].override(0.0123456789) == "optimizer.lr=0.01235"
    assert p["model.dropout"].override(0.912345678) == "model.dropout=0.912346"  # narrow: more digits
    assert p["optimizer.lr"].override(0.1) == "optimizer.lr=0.1"
    assert p["trainer.epochs"].override(3) == "trainer.epochs=3"
    assert p["optimizer"].override("sgd") == "optimizer=sgd"


@pytest.mark.parametrize("line, message", [
    ("optimizer.lr=interval(0.3, 0.1)", "start must be below its end"),
    ("optimizer.lr=tag(log, interval(0, 1))", "a log scale needs a positive start"),
    ("optimizer.lr=tag(fast, interval(0.1, 1))", "unknown tag 'fast'"),
    ("trainer.epochs=tag(int, interval(1.5, 3))", "whole-number bounds"),
    ("optimizer.lr=tag(log, choice(0.1, 0.2))", "applies to interval(...) only"),
    ("optimizer.lr=interval(0.1", "does not parse"),
    ("seed=1", "no search space"),
])
def test_search_space_mistakes_are_named(line, message):
    from dlrun.runner.sweep import SweepError
    from dlrun.runner.sweep.space import parse_search_space

    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_search_space([line])


def test_trial_folders_are_named_by_their_overrides_and_stay_short():
    from dlrun.runner.sweep import trial_dir_name

    assert trial_dir_name(3, "optimizer.lr=0.01,trainer.batch_size=32") == \
        "3_optimizer.lr=0.01,trainer.batch_size=32"
    assert trial_dir_name(0, "") == "0"
    assert "/" not in trial_dir_name(1, "dataset.root=/data/x")
    long = trial_dir_name(7, ",".join(f"key{i}=value{i}" for i in range(40)))
    assert len(long) <= 130 and long.startswith("7_key0=value0")


def test_rows_are_ordered_best_first_and_rerun_with_their_threads():
    from dlrun.runner.sweep import TrialRow, command_for, direction_for, order_rows

    rows = [TrialRow(0, ["a=1"], "FINISHED", 0.5), TrialRow(1, ["a=2"], "FAILED", error="nan"),
            TrialRow(2, ["a=3"], "FINISHED", 0.9), TrialRow(3, ["a=4"], "KILLED")]
    assert [r.number for r in order_rows(rows, "maximize")] == [2, 0, 1, 3]
    assert [r.number for r in order_rows(rows, "minimize")] == [0, 2, 1, 3]
    # the direction is the task's declaration (results.json) unless the sweep gives one
    loss = {"primary_metric": "val/loss", "direction": "min"}
    assert direction_for("val/loss", None, loss) == "minimize"
    assert direction_for("val/accuracy", None,
                         {"primary_metric": "val/accuracy", "direction": "max"}) == "maximize"
    assert direction_for("val/loss", "maximize", loss) == "maximize"
    assert command_for(["a=1", "b=x y"], ["--config-name", "c"], threads=1) == \
        "OMP_NUM_THREADS=1 dlrun --config-name c a=1 'b=x y'"


def test_the_direction_is_declared_never_guessed_from_the_metric_name():
    from dlrun.runner.sweep import TrialFailed, direction_for

    results = {"primary_metric": "val/quality", "direction": "max", "val/error_rate": 0.1}
    assert direction_for("val/quality", None, results) == "maximize"
    assert direction_for("val/perplexity", None, {"primary_metric": "val/perplexity",
                                                   "direction": "max"}) == "maximize"
    with pytest.raises(TrialFailed, match=r"not the run's primary.*hydra\.sweeper\.direction") as e:
        direction_for("val/error_rate", None, results)  # another metric: the sweep must say
    assert e.value.kind == "metric"
    assert direction_for("val/error_rate", "minimize", results) == "minimize"


@pytest.mark.slow
def test_a_grid_ranks_by_the_direction_the_task_declares(run_dlrun, tmp_path):
    res = run_dlrun("-m", "model=linear_regression", "dataset=linear_synthetic",
                    "trainer.epochs=1", "optimizer.lr=0.03,0.003", "logger=none")
    assert res.returncode == 0, res
    assert "2 trials, 2 finished; lower val/mse is better" in res.stdout, res
    (sweep_dir,) = [p for p in (tmp_path / "outputs" / "multirun").glob("*/*") if p.is_dir()]
    rows = sweep_table(sweep_dir)
    assert float(rows[0]["val/mse"]) <= float(rows[1]["val/mse"])

    res = run_dlrun("-m", *TINY, "optimizer.lr=0.1", "hydra.sweeper.metric=val/loss",
                    "logger=none")
    assert res.returncode == 1, res
    assert "'val/loss' is not the run's primary metric ('val/accuracy')" in res.stderr, res
    assert "hydra.sweeper.direction" in res.stderr, res
