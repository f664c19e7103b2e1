"""Resume checks what it trusts and copes with where a run stopped (issue 17, items 4 and 5).
Everything through the real ``dlrun`` command and a real SQLite MLflow store.

* item 4: a manifest edited by hand, a copied run folder, a checkpoint whose MLflow run is in
  another folder or in no store, a step beyond what MLflow logged: refused, naming the file,
  and no MLflow run is touched;
* item 5: a run stopped after its last checkpoint (at model.npz) is finished by resume, for
  every task; a refused resume leaves the MLflow run as it was; resume makes no new
  outputs/runs/<time>/ folder; a run killed between a metrics flush and its next checkpoint
  logs each step once after resuming.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from .conftest import clean_env, dlrun_command
from .test_resume import TRAIN, run

pytestmark = pytest.mark.slow

def dlrun(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """test_resume's runner of the dlrun command, with room for a resume's MLflow checks."""
    return run(cwd, *args, timeout=timeout)


def folders(cwd: Path) -> list[Path]:
    """Every folder Hydra made under outputs/runs/<date>/."""
    return sorted((cwd / "outputs" / "runs").glob("*/*"))


def params(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "model.npz") as f:
        return {k: f[k] for k in f.files}


def client(cwd: Path):
    from mlflow.tracking import MlflowClient
    return MlflowClient(f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")


def runs(cwd: Path) -> dict[str, object]:
    """{run id: run} of the experiment 'dlrun'."""
    c = client(cwd)
    exp = c.get_experiment_by_name("dlrun")
    return {r.info.run_id: r for r in c.search_runs([exp.experiment_id])}


def untouched(before, after) -> None:
    """The MLflow runs are as they were: status, end time, tags, metrics."""
    assert sorted(before) == sorted(after)
    for run_id, was in before.items():
        now = after[run_id]
        assert (now.info.status, now.info.end_time) == (was.info.status, was.info.end_time), run_id
        assert now.data.tags == was.data.tags and now.data.metrics == was.data.metrics, run_id


def sign(spec: dict) -> dict:
    """A forger's manifest signature: the SHA-256 of the canonical JSON of the rest."""
    body = {k: v for k, v in spec.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {**spec, "signature": hashlib.sha256(text.encode()).hexdigest()}


def latest_manifest(folder: Path) -> Path:
    return sorted((folder / "checkpoints").glob("ckpt-*.json"))[-1]


def edit(manifest: Path, resign: bool, **changes) -> None:
    spec = {**json.loads(manifest.read_text()), **changes}
    manifest.write_text(json.dumps(sign(spec) if resign else spec, indent=1))


def step_history(cwd: Path, run_id: str) -> Counter:
    return Counter(m.step for m in client(cwd).get_metric_history(run_id, "train/step_loss"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("whole")
    done = dlrun(cwd, *TRAIN)
    assert done.returncode == 0, done.stderr
    (folder,) = folders(cwd)
    return folder


@pytest.fixture
def two_finished(tmp_path) -> tuple[Path, Path]:
    """Two finished runs (3 epochs, 54 steps) in one MLflow store, under tmp_path."""
    made = []
    for seed in ("3", "4"):
        done = dlrun(tmp_path, *TRAIN[:-1], f"seed={seed}", f"hydra.run.dir=outputs/runs/day/{seed}")
        assert done.returncode == 0, done.stderr
        made.append(tmp_path / "outputs" / "runs" / "day" / seed)
    return made[0], made[1]


def run_id_of(folder: Path) -> str:
    return json.loads(latest_manifest(folder).read_text())["state"]["mlflow_run_id"]


# --- item 4: what a resume trusts -----------------------------------------------------------------
def test_an_edited_run_id_is_refused_and_no_run_is_touched(tmp_path, two_finished):
    a, b = two_finished
    manifest = latest_manifest(a)
    edit(manifest, resign=False, state={**json.loads(manifest.read_text())["state"],
                                        "mlflow_run_id": run_id_of(b)})
    before = runs(tmp_path)
    refused = dlrun(tmp_path, f"resume={a}", "trainer.epochs=4")
    assert refused.returncode == 1, refused.stdout
    assert f"{manifest} was changed after it was written" in refused.stderr
    untouched(before, runs(tmp_path))


def test_a_run_id_of_another_run_folder_is_refused_even_when_signed_again(tmp_path, two_finished):
    a, b = two_finished
    manifest = latest_manifest(a)
    edit(manifest, resign=True, state={**json.loads(manifest.read_text())["state"],
                                       "mlflow_run_id": run_id_of(b)})
    before = runs(tmp_path)
    refused = dlrun(tmp_path, f"resume={a}", "trainer.epochs=4")
    assert refused.returncode == 1, refused.stdout
    assert f"names MLflow run {run_id_of(b)}, which belongs to the run folder {b}" in refused.stderr
    untouched(before, runs(tmp_path))


def test_a_copied_run_folder_does_not_write_into_the_originals_run(tmp_path, two_finished):
    a, _ = two_finished
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    before = runs(tmp_path)
    refused = dlrun(tmp_path, f"resume={copy}", "trainer.epochs=4")
    assert refused.returncode == 1, refused.stdout
    assert f"which belongs to the run folder {a}, not {copy}" in refused.stderr
    assert "logger=none" in refused.stderr  # how to go on with the copy
    untouched(before, runs(tmp_path))
    # the copy goes on untracked; the original goes on in its own MLflow run
    assert dlrun(tmp_path, f"resume={copy}", "trainer.epochs=4", "logger=none").returncode == 0
    resumed = dlrun(tmp_path, f"resume={a}", "trainer.epochs=4")
    assert resumed.returncode == 0, resumed.stderr
    assert runs(tmp_path)[run_id_of(a)].data.metrics["epoch"] == 4


def test_a_step_beyond_what_mlflow_logged_is_refused_even_when_signed_again(tmp_path, two_finished):
    a, _ = two_finished
    manifest = latest_manifest(a)  # step 54, the end of epoch 3
    spec = json.loads(manifest.read_text())
    assert spec["step"] == 54
    forged = manifest.with_name("ckpt-00000080.json")
    (a / "checkpoints" / spec["arrays"]).rename(a / "checkpoints" / "ckpt-00000080.npz")
    manifest.rename(forged)
    edit(forged, resign=True, step=80, arrays="ckpt-00000080.npz")
    before = runs(tmp_path)
    refused = dlrun(tmp_path, f"resume={a}", "trainer.epochs=4")
    assert refused.returncode == 1, refused.stdout
    assert "whose training losses end at step 54, but the checkpoint says step 80" in refused.stderr
    assert str(forged) in refused.stderr
    untouched(before, runs(tmp_path))


def test_a_run_the_store_does_not_hold_is_refused(tmp_path, two_finished):
    a, _ = two_finished
    other = f"sqlite:///{tmp_path / 'other.db'}"
    refused = dlrun(tmp_path, f"resume={a}", "trainer.epochs=4", f"logger.tracking_uri={other}")
    assert refused.returncode == 1, refused.stdout
    assert f"names MLflow run {run_id_of(a)}, which the store {other} does not hold" in refused.stderr
    assert not (tmp_path / "other.db").exists()  # asking it created no store


# --- item 5: where a run stopped ----------------------------------------------------------------
def test_a_run_stopped_at_model_npz_is_finished_by_resume(tmp_path, uninterrupted):
    run = tmp_path / "outputs" / "runs" / "day" / "time"
    (run / "model.npz").mkdir(parents=True)  # as a full disk: the run fails writing model.npz
    stopped = dlrun(tmp_path, *TRAIN, f"hydra.run.dir={run.relative_to(tmp_path)}")
    assert stopped.returncode == 1 and "model.npz" in stopped.stderr, stopped.stderr
    (run / "model.npz").rmdir()
    assert not (run / "results.json").exists()
    (record,) = runs(tmp_path).values()
    assert record.info.status == "FAILED"

    finished = dlrun(tmp_path, f"resume={run}")
    assert finished.returncode == 0, finished.stderr
    assert "already finished" not in finished.stderr
    assert "all 3 epochs were done when the run stopped; finishing it" in finished.stdout
    expected, again = params(uninterrupted), params(run)
    for name in expected:
        np.testing.assert_array_equal(again[name], expected[name], err_msg=name)
    want = json.loads((uninterrupted / "results.json").read_text())
    got = json.loads((run / "results.json").read_text())
    for key in ("test/accuracy", "test/loss", "val/accuracy", "train/loss", "epoch", "steps", "primary_metric"):
        assert got[key] == want[key], key
    assert (run / "model-symbol.json").is_file()  # the exported model
    (record,) = runs(tmp_path).values()
    assert record.info.status == "FINISHED"
    assert record.data.metrics["test/accuracy"] == want["test/accuracy"]
    artifacts = [f.path for f in client(tmp_path).list_artifacts(record.info.run_id)]
    assert "config.yaml" in artifacts
    assert set(step_history(tmp_path, record.info.run_id).values()) == {1}

    # now it is finished: resuming says how to train on, and the MLflow run stays as it is
    before = runs(tmp_path)
    again = dlrun(tmp_path, f"resume={run}")
    assert again.returncode == 1
    assert "already finished its 3 epochs; to train on, resume with trainer.epochs=4" in again.stderr
    untouched(before, runs(tmp_path))


def test_a_run_killed_after_its_last_checkpoint_is_finished_by_resume(tmp_path, uninterrupted):
    run = tmp_path / "run"
    final = run / "checkpoints" / "ckpt-00000054.json"  # the end of epoch 3
    for attempt in range(6):  # the kill must land between the last checkpoint and results.json
        shutil.rmtree(tmp_path / "outputs", ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        proc = subprocess.Popen([*dlrun_command(), *TRAIN, "hydra.run.dir=run"], cwd=tmp_path,
                                env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            if final.exists():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait(timeout=60)
        if proc.returncode == -signal.SIGKILL and not (run / "results.json").exists():
            break
    else:
        pytest.fail("no kill landed between the last checkpoint and results.json in 6 tries")
    (record,) = runs(tmp_path).values()
    assert record.info.status == "RUNNING"  # nobody ended it

    finished = dlrun(tmp_path, f"resume={run}")
    assert finished.returncode == 0, finished.stderr
    want = json.loads((uninterrupted / "results.json").read_text())
    got = json.loads((run / "results.json").read_text())
    for key in ("test/accuracy", "test/loss", "val/accuracy", "epoch", "steps"):
        assert got[key] == want[key], key
    expected, again = params(uninterrupted), params(run)
    for name in expected:
        np.testing.assert_array_equal(again[name], expected[name], err_msg=name)
    (record,) = runs(tmp_path).values()
    assert record.info.status == "FINISHED"
    assert record.data.metrics["test/accuracy"] == want["test/accuracy"]


TASKS = {  # the tasks' own ends: test perplexity, the best epoch's test scores, the scorer
    "lstm_lm": (["model=lstm_lm", "model.embed_size=32", "model.hidden_size=32", "trainer.epochs=1"],
                ["test/perplexity"]),
    "treelstm": (["model=treelstm", "model.hidden_size=16", "model.embed_size=16", "trainer.epochs=2"],
                 ["test/root_accuracy", "best/epoch"]),
    "gan": (["model=gan_mlp", "trainer.epochs=2"], ["scorer/test_accuracy", "test/quality"]),
    "perceptron": (["model=perceptron", "trainer.epochs=1"], []),  # 2 would converge: no last checkpoint
    "regression": (["model=linear_regression", "trainer.epochs=2"], []),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_finishes_a_run_stopped_after_its_last_checkpoint(tmp_path, task):
    args, own = TASKS[task]
    args = [*args, "logger=none"]
    whole = dlrun(tmp_path, *args, "hydra.run.dir=whole")
    assert whole.returncode == 0, whole.stderr
    (tmp_path / "stopped" / "model.npz").mkdir(parents=True)
    stopped = dlrun(tmp_path, *args, "hydra.run.dir=stopped")
    assert stopped.returncode == 1 and "model.npz" in stopped.stderr, stopped.stderr
    (tmp_path / "stopped" / "model.npz").rmdir()
    finished = dlrun(tmp_path, f"resume={tmp_path / 'stopped'}")
    assert finished.returncode == 0, finished.stderr
    want, got = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("whole", "stopped"))
    primary = want["primary_metric"]
    for key in [primary, "steps", "epoch", *own]:
        assert got[key] == want[key], key
    expected, again = params(tmp_path / "whole"), params(tmp_path / "stopped")
    for name in expected:
        np.testing.assert_array_equal(again[name], expected[name], err_msg=name)


def test_a_refused_resume_leaves_the_mlflow_run_as_it_was(tmp_path):
    first = dlrun(tmp_path, *TRAIN, "trainer.epochs=1")
    assert first.returncode == 0, first.stderr
    (run,) = folders(tmp_path)
    before = runs(tmp_path)
    assert [r.info.status for r in before.values()] == ["FINISHED"]
    for args, why in ((["trainer.epochs=1"], "already finished its 1 epoch;"),
                      (["seed=4"], "cannot change seed=4")):
        refused = dlrun(tmp_path, f"resume={run}", *args)
        assert refused.returncode == 1 and why in refused.stderr, refused.stderr
        untouched(before, runs(tmp_path))  # not FAILED, the same end time


def test_resume_makes_no_new_run_folder_and_keeps_the_runs_record(tmp_path):
    first = dlrun(tmp_path, *TRAIN, "trainer.epochs=1")
    assert first.returncode == 0, first.stderr
    (run,) = folders(tmp_path)
    record = (run / ".hydra" / "overrides.yaml").read_text()
    for args in (["trainer.epochs=2"], [], ["model=lenet"]):  # trains on, refused, refused
        dlrun(tmp_path, f"resume={run}", *args)
        dlrun(tmp_path, f"resume={latest_manifest(run)}", *args)
    assert folders(tmp_path) == [run]
    assert (run / ".hydra" / "overrides.yaml").read_text() == record  # the run's own choices
    assert json.loads((run / "results.json").read_text())["epoch"] == 2
    assert (run / "dlrun.log").read_text().count("Context impl SQLiteImpl") >= 2  # appended


def _max_logged_step(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05) as con:
            row = con.execute("SELECT max(step) FROM metrics WHERE key='train/step_loss'").fetchone()
        return int(row[0]) if row and row[0] is not None else -1
    except sqlite3.Error:
        return -1


def _latest_step(run: Path) -> int:
    found = sorted((run / "checkpoints").glob("ckpt-*.json")) if run.is_dir() else []
    return int(found[-1].stem.split("-")[1]) if found else -1


def test_a_run_killed_between_a_flush_and_its_checkpoint_logs_each_step_once(tmp_path):
    args = ["model=mlp", "trainer.epochs=12", "trainer.checkpoint_every=0", "trainer.log_every=1",
            "seed=5"]
    db, run = tmp_path / "outputs" / "mlflow.db", tmp_path / "run"
    for attempt in range(5):  # the kill must land after a flush, before the next checkpoint
        shutil.rmtree(tmp_path / "outputs", ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        proc = subprocess.Popen([*dlrun_command(), *args, "hydra.run.dir=run"], cwd=tmp_path,
                                env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            checkpoint = _latest_step(run)
            if checkpoint > 0 and _max_logged_step(db) > checkpoint + 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
        if proc.returncode == -signal.SIGKILL and _max_logged_step(db) > _latest_step(run):
            break
    else:
        pytest.fail("no kill landed between a flush and the next checkpoint in 5 tries")
    checkpoint, logged = _latest_step(run), _max_logged_step(db)
    (record,) = runs(tmp_path).values()
    assert set(step_history(tmp_path, record.info.run_id).values()) == {1}  # so far, once each

    resumed = dlrun(tmp_path, f"resume={run}")
    assert resumed.returncode == 0, resumed.stderr
    total = json.loads((run / "results.json").read_text())["steps"]
    history = step_history(tmp_path, record.info.run_id)
    twice = sorted(s for s, n in history.items() if n > 1)
    assert not twice, f"steps logged twice (checkpoint {checkpoint}, logged {logged}): {twice}"
    assert sorted(history) == list(range(1, total + 1))
    (record,) = runs(tmp_path).values()
    assert record.info.status == "FINISHED"
