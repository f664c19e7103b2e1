"""A new SQLite MLflow store survives its first use (issue 17, item 2): processes that open it
together, and a process killed (kill -9) at any point of the schema's creation, leave a store
that works and holds every run; a half-migrated store is repaired, or moved aside with a
message naming the copy, by the next run.

The processes are real: ``dlrun`` runs, and small Python processes that open the store the way
a run does (dlrun's tracker) from a common start time, killed by themselves before a chosen SQL
statement of the creation, which makes every point of it reachable."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import clean_env, dlrun_command

# Opens the store as a run does (an MlflowTracker, which raises when it cannot) and logs RUNS
# runs into it, from the time START on; KILL_AT: kill -9 itself before that SQL statement
# (counted from 1); TRACE: write every statement to that file.
TRACKER = r"""
import os, signal, sys, time
os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
import sqlalchemy
from sqlalchemy import event
import mlflow.store.tracking.sqlalchemy_store  # imported before the start: the race is the store's
from dlrun.runner.tracking import MlflowTracker

uri, start, runs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
kill_at, trace = int(os.environ.get("KILL_AT", "0")), os.environ.get("TRACE")
count = 0

@event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
def statement(conn, cursor, text, *args):
    global count
    count += 1
    if trace:
        with open(trace, "a") as f:
            f.write(" ".join(text.split())[:200] + "\n")
    if count == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

while time.time() < start:
    time.sleep(0.001)
for i in range(runs):
    tracker = MlflowTracker(uri, "race", run_name=f"{os.getpid()}-{i}")
    tracker.start()
    tracker.log_metrics({"m": float(i)}, 1)
    tracker.finish("FINISHED")
    print("RUN", tracker.run_id, flush=True)
"""


def tracker_process(uri: str, runs: int = 1, start: float = 0.0, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRACKER, uri, str(start), str(runs)],
                            env=clean_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def tables(db: Path) -> set[str]:
    with sqlite3.connect(str(db)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def moved_aside(db: Path) -> list[Path]:
    """The stores moved aside from ``db`` (their journals left out)."""
    return [p for p in db.parent.glob(db.name + ".broken-*")
            if not p.name.endswith(("-journal", "-wal", "-shm"))]


def head_revision() -> str:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    return ScriptDirectory.from_config(_get_alembic_config("")).get_current_head()


def check_store(db: Path, experiment: str) -> list:
    """The store works (MLflow opens it, its schema is whole and current): its runs of
    ``experiment``, each FINISHED."""
    from mlflow.tracking import MlflowClient

    names = tables(db)
    assert not [t for t in names if t.startswith("_alembic_tmp_")], names
    with sqlite3.connect(str(db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    assert all(r.info.status == "FINISHED" for r in runs)
    return runs


@pytest.mark.slow
def test_processes_racing_a_new_store_leave_it_working_with_every_run(tmp_path):
    for attempt in range(2):  # each a new store, opened by 4 processes at the same moment
        db = tmp_path / f"new{attempt}" / "mlflow.db"
        start = time.time() + 8  # every process has imported mlflow by then
        procs = [tracker_process(f"sqlite:///{db}", runs=1, start=start) for _ in range(4)]
        results = [finish(p) for p in procs]
        for code, out, err in results:
            assert code == 0, err[-3000:]
        ids = {line.split()[1] for _, out, _ in results for line in out.splitlines()
               if line.startswith("RUN ")}
        assert len(ids) == 4
        assert {r.info.run_id for r in check_store(db, "race")} == ids


def creation_points(tmp_path: Path) -> list[int]:
    """SQL statements of a new store's creation to kill a process before: spread over it,
    and those of an interrupted table migration (SQLite's ALTER TABLE of alembic: a new table
    _alembic_tmp_<name> filled from the old one, the old one dropped, the new one renamed)."""
    trace = tmp_path / "statements.txt"
    code, out, err = finish(tracker_process(f"sqlite:///{tmp_path / 'trace' / 'mlflow.db'}",
                                            TRACE=str(trace)))
    assert code == 0, err[-3000:]
    lines = trace.read_text().splitlines()
    end = next(i for i, s in enumerate(lines) if s.startswith("INSERT INTO experiments"))
    assert end > 100, "the creation of the store runs MLflow's migrations"
    points = {int(end * f) + 1 for f in (0.3, 0.6, 0.95)}
    create = next(i for i, s in enumerate(lines) if s.startswith("CREATE TABLE"))
    points.add(create + 2)  # the first table created, the others not
    copy = next(i for i, s in enumerate(lines) if s.startswith("INSERT INTO _alembic_tmp_"))
    drop = next(i for i in range(copy, end) if lines[i].startswith("DROP TABLE"))
    rename = next(i for i in range(drop, end) if lines[i].startswith("ALTER TABLE _alembic_tmp_"))
    points |= {copy + 1, drop + 1, rename + 1}
    return sorted(points)


def killed_then_reopened(db: Path, point: int) -> str:
    """Kills a process opening the new store ``db`` before SQL statement ``point``, then has
    the next one log two runs into it; returns what the next one found."""
    code, out, err = finish(tracker_process(f"sqlite:///{db}", KILL_AT=str(point)))
    assert code == -signal.SIGKILL, f"statement {point}: {err[-2000:]}"
    # the next process repairs the store (or moves it aside and starts a new one) and logs its
    # runs: every one is in it
    code, out, err = finish(tracker_process(f"sqlite:///{db}", runs=2))
    assert code == 0, f"killed before statement {point}, the next run failed:\n{err[-3000:]}"
    ids = {line.split()[1] for line in out.splitlines() if line.startswith("RUN ")}
    assert len(ids) == 2
    assert {r.info.run_id for r in check_store(db, "race")} == ids, f"statement {point}"
    moved = moved_aside(db)
    if moved:  # moved aside: the message names the copy
        assert f"it was moved to {moved[0]}" in err, err[-2000:]
    return "repaired" if "it was repaired" in err else "moved aside" if moved else "sound"


@pytest.mark.slow
def test_a_process_killed_at_any_point_of_the_creation_leaves_a_store_the_next_run_uses(tmp_path):
    points = creation_points(tmp_path)
    with ThreadPoolExecutor(2) as pool:  # each point has its own store: two at a time
        found = pool.map(lambda p: killed_then_reopened(tmp_path / f"killed-at-{p}" / "mlflow.db", p),
                         points)
        for point, what in zip(points, found):
            print(f"killed before statement {point}: the next run found the store {what}")


# A store that a kill -9 left while MLflow migrated its experiments table (revision
# 97727af70f4d, "Add creation_time and last_update_time to experiments table", after
# cc1f77228345): alembic's copy _alembic_tmp_experiments exists, the version is the one before.
BEFORE_EXPERIMENTS_MIGRATION = "cc1f77228345"


def half_migrated_store(db: Path, column_added: bool = False) -> None:
    """A store at the revision before the experiments table's migration, with that migration's
    leftover table (and, ``column_added``, its first change made: not repairable)."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    db.parent.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{db}"
    engine = sqlalchemy.create_engine(uri)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(uri)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, BEFORE_EXPERIMENTS_MIGRATION)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE _alembic_tmp_experiments AS SELECT * FROM experiments WHERE 0")
        if column_added:
            conn.exec_driver_sql("ALTER TABLE experiments ADD COLUMN creation_time BIGINT")
    engine.dispose()


def dlrun_into(cwd: Path, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*dlrun_command(), "model=mlp", "trainer.epochs=1",
                           f"logger.tracking_uri=sqlite:///{db}"], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_a_half_migrated_store_is_repaired_by_the_next_run(tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    half_migrated_store(db)
    first = dlrun_into(tmp_path, db)
    assert first.returncode == 0, first.stderr
    assert "unreachable" not in first.stdout + first.stderr
    assert "_alembic_tmp_experiments" in first.stderr and "it was repaired" in first.stderr
    second = dlrun_into(tmp_path, db)
    assert second.returncode == 0, second.stderr
    assert "warning" not in second.stderr  # repaired once: the store is sound now
    assert len(check_store(db, "dlrun")) == 2
    assert not list(db.parent.glob("mlflow.db.*-*"))  # no runs to keep: no copy, nothing aside
    assert not list(tmp_path.glob("outputs/runs/*/*/mlflow-spool.jsonl"))


@pytest.mark.slow
def test_a_store_that_cannot_be_repaired_is_moved_aside_and_replaced(tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    half_migrated_store(db, column_added=True)  # its migration cannot run again
    first = dlrun_into(tmp_path, db)
    assert first.returncode == 0, first.stderr
    (aside,) = moved_aside(db)
    assert f"it was moved to {aside}" in first.stderr
    assert "_alembic_tmp_experiments" in tables(aside)  # kept as it was, for whoever wants it
    second = dlrun_into(tmp_path, db)
    assert second.returncode == 0, second.stderr
    assert len(check_store(db, "dlrun")) == 2


@pytest.mark.slow
def test_a_file_that_is_no_store_is_moved_aside(tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(b"not a database " * 100)
    code, out, err = finish(tracker_process(f"sqlite:///{db}"))
    assert code == 0, err[-3000:]
    (aside,) = moved_aside(db)
    assert aside.read_bytes() == b"not a database " * 100 and str(aside) in err
    assert len(check_store(db, "race")) == 1


@pytest.mark.slow
def test_dlrun_runs_started_together_in_a_new_folder_share_one_working_store(tmp_path):
    db = tmp_path / "new" / "mlflow.db"
    cmd = [*dlrun_command(), "model=mlp", "trainer.epochs=1", f"logger.tracking_uri=sqlite:///{db}"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [finish(p, timeout=600) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert "unreachable" not in out + err, out + err
    assert not list(tmp_path.glob("outputs/runs/*/*/mlflow-spool.jsonl"))  # nothing waits
    runs = check_store(db, "dlrun")
    assert len(runs) == 4 and all("val/accuracy" in r.data.metrics for r in runs)


def test_a_process_waits_for_the_lock_a_bounded_time_and_says_who_holds_it(tmp_path):
    from dlrun.runner.sqlstore import StoreLocked, prepare_store, store_lock

    db = tmp_path / "mlflow.db"
    with store_lock(db) as lock:  # another process creating the store, as far as flock knows
        start = time.monotonic()
        with pytest.raises(StoreLocked) as refused:
            prepare_store(f"sqlite:///{db}", timeout=0.5)
        assert 0.5 <= time.monotonic() - start < 10
    text = str(refused.value)
    assert str(lock) in text and f"pid {os.getpid()}" in text and "DLRUN_STORE_LOCK_TIMEOUT" in text
    assert not db.exists()  # nothing was created without the lock
