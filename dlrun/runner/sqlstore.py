"""A local SQLite MLflow store (``sqlite:///PATH``): created, migrated and repaired by one
process at a time.

MLflow creates the schema of a new SQLite store, and migrates an old one, from whichever client
opens it first, without a lock between processes. Several ``dlrun`` processes starting together
in a new folder race it ("table latest_metrics already exists", "duplicate column name"), and
one killed during it leaves the store half-migrated (a leftover ``_alembic_tmp_<table>``, a
schema version short of MLflow's), which MLflow then refuses to open for good.

:func:`prepare_store` therefore runs once per process, before the first MLflow client of the
process touches the store: under an exclusive lock on ``<store>.lock`` (``fcntl.flock``, which
the kernel releases when its holder dies, kill -9 included) it creates the store when there is
none, leaves a sound one as it is, and repairs a half-migrated one: on a copy, with the leftover
tables dropped and MLflow's migration run again, which replaces the store once it checks out;
a store that cannot be repaired (or is no SQLite file at all) is moved aside to
``<store>.broken-<time>`` and a new one created, with a message naming both. The other
processes wait for the lock, at most ``DLRUN_STORE_LOCK_TIMEOUT`` seconds (default 600).
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 600.0        # seconds to wait for another process's creation or repair of a store
TMP_PREFIX = "_alembic_tmp_"  # what an interrupted migration of a table leaves behind
_PREPARED: set[str] = set()  # the stores this process checked (absolute paths)
_GUARD = threading.Lock()    # one thread of the process checks; the others wait for it


class StoreLocked(RuntimeError):
    """Another process held the store's lock for longer than the wait allows."""


@dataclass
class StoreState:
    """What a SQLite MLflow store holds, read with the sqlite3 module (no MLflow, no lock of
    MLflow's): its tables, its schema version (alembic's), its runs, its default experiment."""

    tables: set[str] = field(default_factory=set)
    version: str | None = None
    runs: int = 0
    default_experiment: bool = False

    @property
    def leftovers(self) -> list[str]:
        return sorted(t for t in self.tables if t.startswith(TMP_PREFIX))

    @property
    def empty(self) -> bool:
        return not (self.tables - {"alembic_version", "sqlite_sequence"})


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for another store, or an in-memory one)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def prepare_store(uri: str, timeout: float | None = None) -> None:
    """Makes the SQLite store of ``uri`` usable (creates, repairs or replaces it) under its
    lock; once per store and process, and nothing for a store that is no SQLite file.
    Raises :class:`StoreLocked` when another process holds the lock past ``timeout`` s."""
    path = sqlite_path(uri)
    if path is None:
        return
    key = str(path.absolute())
    with _GUARD:
        if key in _PREPARED:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with store_lock(path, timeout):
            _ensure(uri, path)
        _PREPARED.add(key)


@contextmanager
def store_lock(db: Path, timeout: float | None = None) -> Iterator[Path]:
    """Holds the exclusive lock of the store ``db`` (``<db>.lock``, which stays in place);
    yields the lock file."""
    if timeout is None:
        timeout = float(os.environ.get("DLRUN_STORE_LOCK_TIMEOUT", LOCK_TIMEOUT))
    lock = db.with_name(db.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                holder = _holder(lock)
                raise StoreLocked(
                    f"the MLflow store {db} is being created or repaired by another process"
                    f"{f' (pid {holder})' if holder else ''}, which has held its lock {lock} for "
                    f"more than {timeout:.0f} s; wait for it to finish, or stop it (the lock of a "
                    "process that died is released at once). DLRUN_STORE_LOCK_TIMEOUT sets the wait")
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for the message above
        yield lock
    finally:
        os.close(fd)  # releases the lock


def _holder(lock: Path) -> str:
    try:
        return lock.read_text().strip()
    except OSError:
        return ""


def read_state(path: Path) -> StoreState | None:
    """The state of the store file ``path`` (None: no file, or an empty one); raises
    sqlite3.DatabaseError for a file that is no SQLite database."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    conn = sqlite3.connect(str(path), timeout=60)
    try:
        state = StoreState({r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")})
        if "alembic_version" in state.tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            state.version = row[0] if row else None
        if "runs" in state.tables:
            state.runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        if "experiments" in state.tables:
            state.default_experiment = conn.execute(
                "SELECT count(*) FROM experiments WHERE experiment_id = 0").fetchone()[0] > 0
        return state
    finally:
        conn.close()


def _ensure(uri: str, path: Path) -> None:
    """Under the lock: create, check, repair or replace the store ``path`` of ``uri``."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # before mlflow's import: dlrun's log
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils as db_utils

    script = ScriptDirectory.from_config(db_utils._get_alembic_config(""))
    head = db_utils._get_latest_schema_revision()
    try:
        state = read_state(path)
    except sqlite3.DatabaseError as e:  # not a database (or one damaged beyond SQLite)
        aside = move_aside(path)
        _open(uri)
        _tell(f"the MLflow store {path} could not be read ({e}); it was moved to {aside} and a "
              "new store created in its place")
        return
    if state is None or state.empty:  # a new store: created here, while the others wait
        if state is not None:  # a creation that died before its first table: nothing to keep
            _remove_store(path)
        _open(uri)
        return
    if state.version is not None and _unknown(script, state.version):
        return  # written by a newer MLflow: MLflow's own error says so
    if state.version == head and not state.leftovers and _all_tables(path):
        if not state.default_experiment:  # its creator died before it: created here, once
            _open(uri)
        return
    problem = _describe(state, head)
    log.warning("the MLflow store %s is %s: repairing it", path, problem)
    try:
        kept = repair(path, state)
    except Exception as e:  # noqa: BLE001 - anything: the store cannot be repaired
        log.warning("could not repair the MLflow store %s", path, exc_info=True)
        aside = move_aside(path)
        _open(uri)
        text = str(e).strip().splitlines()
        reason = f"{type(e).__name__}: {text[0][:300] if text else ''}"
        _tell(f"the MLflow store {path} was {problem} and could not be repaired ({reason}); it "
              f"was moved to {aside} and a new store created in its place")
        return
    _open(uri)
    _tell(f"the MLflow store {path} was {problem}; it was repaired"
          + (f" (a copy of it as it was is kept in {kept})" if kept else ""))


def repair(path: Path, state: StoreState) -> Path | None:
    """Repairs the half-migrated store ``path``: on a copy, the leftovers of the interrupted
    migration dropped (a leftover whose table is gone becomes that table again) and MLflow's
    migration run again; the copy replaces the store once it checks out. Returns where the
    store as it was is kept (a store without runs is not kept); raises if the repair fails."""
    import sqlalchemy
    from mlflow.store.db import utils as db_utils
    from sqlalchemy.pool import NullPool

    work = path.with_name(f"{path.name}.repair-{os.getpid()}")
    work.unlink(missing_ok=True)
    _copy(path, work)
    engine = sqlalchemy.create_engine(f"sqlite:///{work}", poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for tmp in state.leftovers:
                table = tmp[len(TMP_PREFIX):]
                if table in state.tables:
                    conn.exec_driver_sql(f'DROP TABLE "{tmp}"')
                else:  # killed between dropping the table and renaming its new copy
                    conn.exec_driver_sql(f'ALTER TABLE "{tmp}" RENAME TO "{table}"')
        if state.version is None:  # its creator died before the first migration was recorded
            db_utils._initialize_tables(engine)
        else:
            db_utils._upgrade_db(engine)
        db_utils._verify_schema(engine)
        if not db_utils._all_tables_exist(engine):
            raise RuntimeError("tables are missing after the migration")
    except BaseException:
        engine.dispose()
        work.unlink(missing_ok=True)
        raise
    engine.dispose()
    try:
        repaired = read_state(work)
        with sqlite3.connect(str(work)) as conn:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if repaired is None or repaired.leftovers or check != "ok":
            raise RuntimeError(f"the repaired copy does not check out ({check})")
    except BaseException:
        work.unlink(missing_ok=True)
        raise
    kept = None
    if state.runs:
        kept = _unused(path.with_name(f"{path.name}.before-repair-{_stamp()}"))
        _rename_store(path, kept)
    else:
        _remove_store(path)
    os.replace(work, path)
    return kept


def move_aside(path: Path) -> Path:
    """Renames the store ``path`` (and its journal) to ``<path>.broken-<time>``; returns it."""
    aside = _unused(path.with_name(f"{path.name}.broken-{_stamp()}"))
    _rename_store(path, aside)
    return aside


def _open(uri: str) -> None:
    """Opens the store with MLflow's client: creates its tables and default experiment."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def _all_tables(path: Path) -> bool:
    """Whether the store has every table MLflow's schema names (its creator did not die
    between creating some of them and recording the schema's version)."""
    import sqlalchemy
    from mlflow.store.db import utils as db_utils
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        return db_utils._all_tables_exist(engine)
    finally:
        engine.dispose()


def _unknown(script, version: str) -> bool:
    try:
        return script.get_revision(version) is None
    except Exception:  # noqa: BLE001 - alembic: "Can't locate revision"
        return True


def _describe(state: StoreState, head: str) -> str:
    what = []
    if state.leftovers:
        what.append(f"left over from an interrupted migration: {', '.join(state.leftovers)}")
    if state.version is None:
        what.append("no schema version recorded")
    elif state.version != head:
        what.append(f"schema version {state.version}, not MLflow's {head}")
    return "half-migrated (" + "; ".join(what or ["tables missing"]) + ")"


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of the SQLite database ``src`` (SQLite's backup: a hot journal is
    rolled back first)."""
    with sqlite3.connect(str(src), timeout=60) as a, sqlite3.connect(str(dst)) as b:
        a.backup(b)
    a.close()
    b.close()


_SIDE_FILES = ("-journal", "-wal", "-shm")


def _rename_store(path: Path, to: Path) -> None:
    os.rename(path, to)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.rename(side, to.with_name(to.name + suffix))


def _remove_store(path: Path) -> None:
    for p in (path, *(path.with_name(path.name + s) for s in _SIDE_FILES)):
        p.unlink(missing_ok=True)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _unused(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{n}")
        n += 1
    return candidate


def _tell(message: str) -> None:
    """A repair or a replacement of the store: in the log, and on stderr for the user."""
    log.warning(message)
    try:
        from rich.text import Text

        from .console import make_console

        make_console(stderr=True, soft_wrap=True).print(
            Text.assemble(("warning: ", "bold yellow"), message))
    except Exception:  # noqa: BLE001 - the message is in the log
        pass
