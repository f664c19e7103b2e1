"""Ctrl-C on a sweep, stressed (issue 17, item 3): a SIGINT to the sweep's process group (as a
terminal sends it, to the joblib workers too) at seeded random moments of grid, joblib-parallel
and Optuna sweeps of tiny trials. Every sweep it reaches must stop with exit 130 and the trials
so far in ``sweep_results.csv`` and in MLflow, no trial recorded FAILED for it (``trial.json``,
the MLflow child runs, the table), each trial's own record of its end (KILLED at a step or
before it started, FINISHED if it got there first), the parent run KILLED, and an Optuna study
that resumes to its total afterwards.

The moments: a seeded trial of the sweep (its folder appears; the last one once per kind, as
its end is the sweep's) and a seeded delay after it (0-0.3 s: about one tiny trial's setup,
training, evaluation and the composition of the next one), which reaches every phase of a
trial and of the sweep's end. The landed code lost such a
signal (exit 0, the rest of the sweep run), made a failed or re-run "dead" trial of it, or let
joblib kill the workers' trials before they recorded their end, for most seeds.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import clean_env, dlrun_command
from .test_sweep import mlflow_runs, sweep_table

SEED = 17
TINY = ["model=mlp", "trainer.epochs=1", "dataset=digits"]
GRID = ["optimizer.lr=0.1,0.05,0.03,0.02"]  # four trials
MAX_DELAY = 0.3  # seconds after the chosen trial's folder appears: about one trial


def trial_folders(sweep_dir: Path) -> dict[int, Path]:
    """{trial number: folder} of the trials that started (Hydra wrote their ``.hydra``)."""
    if not sweep_dir.is_dir():
        return {}
    return {int(p.parent.name.split("_")[0]): p.parent for p in sweep_dir.glob("*/.hydra")}


def interrupt(cwd: Path, args: list[str], sweep_dir: Path, started: int, delay: float,
              log_name: str) -> tuple[int, str, bool]:
    """Runs ``dlrun ARGS`` in its own process group and sends the group a SIGINT ``delay``
    seconds after ``started`` trials of this run have started (unless the sweep has already
    written its table). Returns (exit code, output, whether the signal was sent)."""
    before = set(trial_folders(sweep_dir))
    table = sweep_dir / "sweep_results.csv"  # a resumed study's: the run before wrote one
    table_before = table.stat().st_mtime_ns if table.exists() else None
    log = cwd / log_name
    with open(log, "w") as out:
        proc = subprocess.Popen([*dlrun_command(), *args], cwd=cwd, env=clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    sent = False
    try:
        deadline = time.monotonic() + 150
        while (proc.poll() is None and time.monotonic() < deadline
               and len(set(trial_folders(sweep_dir)) - before) < started):
            time.sleep(0.002)
        time.sleep(delay)
        table_now = table.stat().st_mtime_ns if table.exists() else None
        if proc.poll() is None and table_now == table_before:
            os.killpg(proc.pid, signal.SIGINT)
            sent = True
        rc = proc.wait(timeout=150)
    finally:
        if proc.poll() is None:  # a hung sweep: leave nothing behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return rc, log.read_text(), sent


def check_stopped(cwd: Path, sweep_dir: Path, experiment: str, rc: int, out: str,
                  total: int | None) -> dict[int, str]:
    """The state a stopped sweep must leave; returns {trial number: status}. ``total``: the
    trials of a grid (a sweep that finished all of them may end its parent run FINISHED)."""
    assert rc == 130, f"exit {rc}, not 130: the Ctrl-C was lost\n{out}"
    assert "Exception ignored" not in out and "Traceback" not in out, out
    folders = trial_folders(sweep_dir)
    assert folders, out
    records = {}
    for number, folder in folders.items():  # each trial recorded its own end
        path = folder / "trial.json"
        assert path.is_file(), f"trial {number} has no trial.json (its process was killed)\n{out}"
        records[number] = json.loads(path.read_text())["status"]
    assert set(records.values()) <= {"FINISHED", "KILLED"}, f"{records}\n{out}"
    rows = {int(r["trial"]): r["status"] for r in sweep_table(sweep_dir)}
    assert rows == records, f"the table {rows} is not the trials {records}\n{out}"

    _, parent, children = mlflow_runs(cwd, experiment)  # one run per trial, one parent
    for number, run in children.items():
        assert run.info.status == records.get(number), (number, run.info.status, records, out)
    every = total is not None and len(records) == total and "KILLED" not in records.values()
    assert parent.info.status == "KILLED" or (every and parent.info.status == "FINISHED"), (
        parent.info.status, records, out)
    return records


def moments(kind: str, n: int, trials: int) -> list[tuple[int, float]]:
    """``n`` seeded (trials started, delay) pairs of a kind of sweep: one in its last trial
    (whose end is the sweep's), the others in distinct other trials, each at a random delay."""
    rng = random.Random(f"{SEED}-{kind}")
    started = [trials, *rng.sample(range(1, trials), min(n - 1, trials - 1))]
    rng.shuffle(started)
    return [(k, rng.uniform(0, MAX_DELAY)) for k in started]


@pytest.mark.slow
@pytest.mark.parametrize("kind, signals, extra", [
    ("grid", 2, []),
    ("joblib", 2, ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),  # workers start slowly
], ids=["grid", "joblib-parallel"])
def test_ctrl_c_stops_a_grid_sweep_with_its_trials_so_far(tmp_path, kind, signals, extra):
    sent = 0
    for i, (started, delay) in enumerate(moments(kind, signals, trials=4)):
        if kind == "joblib":
            started = max(started, 2)  # both workers are in a trial (not starting up)
        name = f"{kind}{i}"
        sweep_dir = tmp_path / "outputs" / "multirun" / name
        args = ["-m", *TINY, *GRID, *extra, f"experiment={name}", f"hydra.sweep.dir={sweep_dir}"]
        rc, out, was_sent = interrupt(tmp_path, args, sweep_dir, started, delay, f"{name}.log")
        if not was_sent:  # the sweep had written its table: nothing to stop
            assert rc == 0, out
            continue
        sent += 1
        check_stopped(tmp_path, sweep_dir, name, rc, out, total=4)
    assert sent >= signals - 1, "the sweeps ended before their signals: nothing was tested"


@pytest.mark.slow
def test_ctrl_c_stops_an_optuna_study_which_then_resumes_to_its_total(tmp_path):
    import optuna

    total = 6
    args = ["-m", "hparams_search=lenet_optuna", *TINY, f"hydra.sweeper.n_trials={total}",
            "hydra.sweeper.study_name=storm", "experiment=storm"]
    sweep_dir = tmp_path / "outputs" / "multirun" / "storm"
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    # the first run one trial at a time (in the sweep's own process), the resumed one two at
    # a time in joblib workers
    for i, ((started, delay), jobs) in enumerate(zip(moments("optuna", 2, trials=2), (1, 2))):
        if jobs == 2:
            started = 2  # both workers are in a trial (not starting up)
        rc, out, sent = interrupt(tmp_path, [*args, f"hydra.sweeper.n_jobs={jobs}"], sweep_dir,
                                  started, delay, f"optuna{i}.log")
        assert sent, out
        check_stopped(tmp_path, sweep_dir, "storm", rc, out, total=None)
        states = [t.state.name for t in optuna.load_study(study_name="storm",
                                                          storage=storage).trials]
        assert "RUNNING" not in states and "WAITING" not in states, states

    res = subprocess.run([*dlrun_command(), *args], cwd=tmp_path, env=clean_env(),
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    done = states.count("COMPLETE")
    assert f"{done} of {total} trials done, {total - done} to go" in res.stdout, res.stdout
    trials = optuna.load_study(study_name="storm", storage=storage).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == total, [t.state.name for t in trials]
    assert [t.number for t in trials] == list(range(len(trials)))
    assert sorted(trial_folders(sweep_dir)) == [t.number for t in trials]  # one folder each
    _, parent, children = mlflow_runs(tmp_path, "storm")
    assert parent.info.status == "FINISHED"
    assert {n for n, r in children.items() if r.info.status == "FINISHED"} == {
        t.number for t in trials if t.state.name == "COMPLETE"}
    assert not any(r.info.status in ("FAILED", "RUNNING") for r in children.values())


# --- the pieces -------------------------------------------------------------------------------
def test_the_first_signal_is_recorded_and_a_second_stops_at_once():
    from dlrun.runner.interrupt import Interrupted, Interrupts

    stops = Interrupts()
    stops.check()  # nothing recorded: a safe point goes on
    stops.notice(signal.SIGUSR2, None)  # the launching process passed its SIGTERM on
    assert stops.requested == "SIGTERM" and stops.received == 0
    stops.handle(signal.SIGINT, None)   # the worker's own Ctrl-C: still the first signal
    assert stops.requested == "SIGTERM"
    with pytest.raises(Interrupted, match="SIGTERM"):
        stops.check()
    with pytest.raises(KeyboardInterrupt):  # a second one: at once
        stops.handle(signal.SIGINT, None)


def test_an_error_a_library_made_of_an_interrupt_is_an_interrupt():
    import pickle

    from dlrun.runner.interrupt import TrialInterrupted, is_interrupt

    def hydra_like():  # a KeyboardInterrupt that a finally block turns into another error
        try:
            raise KeyboardInterrupt
        finally:
            raise UnboundLocalError("cannot access local variable 'ret'")

    with pytest.raises(UnboundLocalError) as caught:
        hydra_like()
    assert is_interrupt(caught.value)
    try:
        try:
            hydra_like()
        except UnboundLocalError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as e:
        assert is_interrupt(e)
    assert not is_interrupt(ValueError("a real failure"))
    back = pickle.loads(pickle.dumps(TrialInterrupted("SIGTERM")))  # from a joblib worker
    assert is_interrupt(back) and back.signal_name == "SIGTERM"


class _OneByOne:
    """A launcher like Hydra's basic one: its jobs one after another, in this process."""

    def __init__(self, on_job=None, error=None):
        self.started, self.calls, self.on_job, self.error = [], 0, on_job, error

    def launch(self, jobs, initial_job_idx):
        self.calls += 1
        if self.error is not None:
            raise self.error
        out = []
        for job in jobs:
            self.started.append(job[0])
            out.append(self.on_job(job[0]) if self.on_job else None)
        return out


def test_a_sweep_launches_no_trial_after_a_signal_and_never_retries_one(monkeypatch, tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    from dlrun.runner.interrupt import INTERRUPTS, Interrupted, TrialInterrupted
    from dlrun.runner.sweep.grid import launch

    monkeypatch.setattr(INTERRUPTS, "requested", None)
    jobs, numbers = [["a"], ["b"], ["c"]], [0, 1, 2]

    def ctrl_c_in_b(name):
        if name == "b":
            INTERRUPTS.requested = "SIGINT"

    launcher = _OneByOne(ctrl_c_in_b)
    with pytest.raises(Interrupted):
        launch(launcher, jobs, numbers, tmp_path)
    assert launcher.started == ["a", "b"]  # c never started

    INTERRUPTS.requested = None  # a worker's trial stopped by its own signal: the sweep stops
    stopped = JobReturn(status=JobStatus.FAILED, _return_value=TrialInterrupted("SIGINT"))
    with pytest.raises(Interrupted):
        launch(_OneByOne(lambda name: stopped), jobs, numbers, tmp_path)
    assert INTERRUPTS.requested == "SIGINT"

    INTERRUPTS.requested = None  # Hydra's loading turned a Ctrl-C into its own error
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise UnboundLocalError("cannot access local variable")
    except UnboundLocalError as e:
        made_of_ctrl_c = e
    launcher = _OneByOne(error=made_of_ctrl_c)
    with pytest.raises(Interrupted):
        launch(launcher, jobs, numbers, tmp_path)
    assert launcher.calls == 1, "an interrupt is not a dead trial to launch again"
