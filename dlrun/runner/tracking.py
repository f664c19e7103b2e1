"""Experiment tracking: MLflow from a background thread, so the training loop never waits on it.

A ``log_metric`` call against the SQLite store costs about 10 ms, more than a training step
of a small model. The tracker therefore only enqueues: a worker thread imports mlflow
(itself about a second and a half, also kept off the main path), creates the run, and sends
whatever has queued up with ``log_batch`` (at most 1000 metrics and 100 params a call).
``finish()`` flushes the queue, uploads the artifacts and sets the run's final status.

A server that is slow or away never holds training up for long: a checkpoint waits at most
FLUSH_SECONDS for the records before it (none while the server is known to be away), then
writes what has not reached the server into the run's spool itself; the worker sends the spool
when the store answers again. A record can then reach the store twice (sent late, and from
the spool): MLflow's SQL stores keep a metric once per (key, step, timestamp, value), and
tags, params and artifacts are the same when written again.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .records import (MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH, chunks,
                      git_commit, param_value, sanitize_key)
from .runstore import last_steps, mlflow_env, once, open_experiment
from .spool import Spool
from .sqlstore import prepare_store

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # while the store is unreachable, how often to try it again
FLUSH_SECONDS = 2.0  # the longest a checkpoint (or a run's end, in an outage) waits for a server


class TrackingError(RuntimeError):
    """The tracker could not create or write the run (bad URI, server down, store locked)."""


class NullTracker:
    """The tracker of ``logger=none``: accepts everything, records nothing."""

    run_id: str | None = None
    run_url: str | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    error: BaseException | None = None

    def start(self) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        pass

    def log_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def finish(self, status: str = "FINISHED", timeout: float | None = None) -> None:
        pass

    def wait_for_run(self, timeout: float = 60.0) -> str | None:
        return None

    def flush(self, timeout: float | None = None) -> None:
        pass


class MlflowTracker:
    """Logs one MLflow run from a worker thread; every public method returns immediately.

    ``status`` in ``finish`` is an MLflow run status: FINISHED, FAILED or KILLED.
    A failure inside the worker is kept in ``error`` (the loop may check it between epochs)
    and raised as TrackingError by ``finish``.
    """

    def __init__(self, tracking_uri: str, experiment: str, *, run_name: str | None = None,
                 params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
                 artifact_location: str | None = None, source_dir: Path | None = None,
                 resume_run_id: str | None = None, spool: Path | None = None):
        self.tracking_uri = tracking_uri
        self.resume_run_id = resume_run_id  # continue this MLflow run (dlrun resume=...)
        # with a spool file, an unreachable store does not stop the run: what cannot be sent
        # waits there and goes out when the store is back (or with `dlrun sync RUN`)
        self.spool = Spool(spool) if spool is not None else None
        self.outage: str | None = None     # why the store is unreachable, while it is
        self._retry_at = 0.0
        self.experiment = experiment
        self.run_name = run_name
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self.artifact_location = artifact_location
        self.source_dir = source_dir
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.error: BaseException | None = None
        # (kind, payload) records for the worker; `_inflight` the batch it is sending, `_taken`:
        # the training thread spooled that batch (see _spill)
        self._cond = threading.Condition()
        self._pending: list[tuple[str, Any]] = []
        self._inflight: list = []
        self._taken = False
        self._thread = threading.Thread(target=self._work, name="dlrun-mlflow", daemon=True)
        self._started = False
        self._opened = threading.Event()  # set once the run exists (or could not be created)
        self._logged: dict[str, int] | None = None  # a resumed run's stored steps (runstore.once)

    # --- the main thread's side: enqueue only -------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self.error is None:
            ts = int(time.time() * 1000)
            self._put("metrics", [(sanitize_key(k), float(v), ts, int(step))
                                  for k, v in metrics.items()])

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self._put("artifact", (str(path), artifact_path))

    def log_tags(self, tags: Mapping[str, Any]) -> None:
        self._put("tags", {k: str(v) for k, v in tags.items()})

    def _put(self, kind: str, payload: Any) -> None:
        with self._cond:
            self._pending.append((kind, payload))
            self._cond.notify()

    def finish(self, status: str = "FINISHED", timeout: float | None = 120.0) -> None:
        """Flushes everything queued, ends the run with ``status``; raises TrackingError on failure.
        In an outage (with a spool) it waits FLUSH_SECONDS, then spools the rest and the end."""
        if not self._started:
            return
        self._put("end", status)
        self._thread.join(FLUSH_SECONDS if self.outage and self.spool is not None else timeout)
        if self._thread.is_alive() and self.spool is not None:
            self._spill([("end", status)])
            return
        if self._thread.is_alive():
            raise TrackingError(
                f"MLflow ({self.tracking_uri}) did not take the run's data within {timeout:.0f} s; "
                "is the store reachable?")
        if self.error is not None:
            raise TrackingError(describe_error(self.error, self.tracking_uri)) from self.error

    @property
    def spooled(self) -> Path | None:
        """The spool file when records are waiting in it (the store was unreachable)."""
        return self.spool.path if self.spool is not None and self.spool.pending else None

    def flush(self, timeout: float | None = None) -> None:
        """Everything logged so far in the store or on disk in the spool when this returns: a
        checkpoint must not get ahead of the metrics a crash right after it would lose.

        Waits for the run to exist (a fresh store's tables take seconds), then for a server at
        most ``timeout`` seconds (FLUSH_SECONDS; a local store: 60), and not at all while the
        store is known to be away: then the spool takes the records here."""
        if not (self._started and self._thread.is_alive()):
            return
        self.wait_for_run()
        if self.spool is not None and self.outage is not None:
            self._spill()
            return
        if timeout is None:
            timeout = FLUSH_SECONDS if self.tracking_uri.startswith(("http://", "https://")) else 60.0
        done = threading.Event()
        self._put("flush", done)
        if not done.wait(timeout) and self.spool is not None:
            self.outage = f"no answer within {timeout:g} s"
            self._spill()

    def _spill(self, extra: list | None = None) -> None:
        """Spools (from the training thread) the batch the worker is sending, what is queued
        behind it, and ``extra``: they are on disk now, whatever becomes of the worker's send."""
        with self._cond:
            items = [] if self._taken else list(self._inflight)
            self._taken = True
            for kind, payload in self._pending:
                if kind == "flush":
                    payload.set()
                elif kind != "end":  # a run's end is in ``extra``
                    items.append((kind, payload))
            self._pending = []
            items += extra or []
            if items:
                self.spool.describe(self.run_record())
                self.spool.append(items)

    def wait_for_run(self, timeout: float = 60.0) -> str | None:
        """The MLflow run's id once the worker created it (None if it could not, or not yet
        while the store is known to be away)."""
        if self._started and self.outage is None:
            self._opened.wait(timeout)
        return self.run_id

    @property
    def run_url(self) -> str | None:
        if self.run_id and self.tracking_uri.startswith(("http://", "https://")):
            return (f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}"
                    f"/runs/{self.run_id}")
        return None

    # --- the worker thread ----------------------------------------------------------------
    def _work(self) -> None:
        client = self._connect()
        self._opened.set()
        while True:
            items = self._take()  # everything queued up so far: one log_batch for all of it
            end = next((payload for kind, payload in items if kind == "end"), None)
            if self.error is None:
                client = self._deliver(client, self._inflight, final=end is not None)
            with self._cond:
                self._inflight = []
            for kind, payload in items:
                if kind == "flush":
                    payload.set()
            if end is not None:
                if self.spool is not None and self.spool.pending:
                    self.spool.append([("end", end)])  # `dlrun sync` ends the run
                else:
                    self._end(client, end)
                return

    def _take(self) -> list[tuple[str, Any]]:
        """Waits for records; takes all of them, the ones to send as the batch in flight."""
        with self._cond:
            while not self._pending:
                self._cond.wait()
            items, self._pending = self._pending, []
            self._inflight = [i for i in items if i[0] not in ("end", "flush")]
            self._taken = False
            return items

    def _connect(self) -> Any:
        """The client with the run created (or resumed); None while the store is unreachable."""
        try:
            # a new (or half-migrated) SQLite store: created (or repaired) by one process at a time
            prepare_store(self.tracking_uri)
            return self.open_run()
        except BaseException as e:  # noqa: BLE001 - an outage, or kept and reported by finish()
            return self._failed(e)

    def _deliver(self, client: Any, items: list, final: bool = False) -> Any:
        """Send ``items`` (after anything spooled before them); spool them when that fails."""
        if client is None and self.spool is not None and (final or time.monotonic() >= self._retry_at):
            client = self._connect()
        if client is not None:
            try:
                if self.spool is not None and self.spool.pending:
                    spooled, upto = self.spool.take()
                    self.send(client, spooled)
                    self.spool.drop(upto)
                    log.warning("MLflow at %s is back; the spooled records were sent", self.tracking_uri)
                self.send(client, items)
                self.outage = None
                return client
            except BaseException as e:  # noqa: BLE001
                client = self._failed(e)
        if self.spool is not None and self.outage is not None:
            with self._cond:  # unless the training thread spooled them already
                if not self._taken:
                    self._taken = True
                    self.spool.append(items)
        return None

    def _failed(self, error: BaseException) -> None:
        """An outage when the run has a spool (training goes on), else the run's error."""
        if self.spool is None:
            self.error = error
            log.exception("MLflow tracking failed")
            return None
        if self.outage is None:
            log.warning("MLflow at %s is unreachable: %s", self.tracking_uri, error)
        self.outage = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:500] if str(error).strip() else ''}"
        self._retry_at = time.monotonic() + RETRY_SECONDS
        self.spool.describe(self.run_record())

    def run_record(self) -> dict[str, Any]:
        """What creates this run again elsewhere (the spool's header, for ``dlrun sync``)."""
        return {"tracking_uri": self.tracking_uri, "experiment": self.experiment,
                "run_id": self.run_id, "run_name": self.run_name,
                "artifact_location": self.artifact_location,
                "params": {k: param_value(v) for k, v in self.params.items()},
                "tags": {k: str(v) for k, v in self.tags.items()}}

    def open_run(self) -> Any:
        """The MLflow client with this run created (or found, or resumed); raises on failure."""
        mlflow_env()
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        if self.run_id is not None:  # back after an outage: the run exists already
            client.get_run(self.run_id)
            return client
        self.experiment_id = open_experiment(client, self.experiment, self.artifact_location)
        tags = dict(self.tags)
        if self.source_dir is not None:
            commit = git_commit(self.source_dir)
            if commit:
                tags["dlrun.git_commit"] = commit
                tags["mlflow.source.git.commit"] = commit
        if self.resume_run_id is not None:  # the same run goes on: its params stay as logged
            self._logged = last_steps(client, client.get_run(self.resume_run_id))
            client.update_run(self.resume_run_id, status="RUNNING")
            self.run_id = self.resume_run_id
            client.log_batch(self.run_id, tags=[RunTag(sanitize_key(k), str(v)) for k, v in tags.items()])
            return client
        run = client.create_run(self.experiment_id, run_name=self.run_name,
                                tags={k: str(v) for k, v in tags.items()})
        self.run_id = run.info.run_id
        params = [Param(sanitize_key(k), param_value(v)) for k, v in self.params.items()]
        for chunk in chunks(params, MAX_PARAMS_PER_BATCH):
            client.log_batch(self.run_id, params=chunk)
        return client

    def send(self, client: Any, items: Iterable[tuple[str, Any]]) -> None:
        """Sends (kind, payload) records (metrics, tags, artifacts) to the run, in batches."""
        from mlflow.entities import Metric, RunTag

        metrics, logged = [], None if self._logged is None else dict(self._logged)
        for kind, payload in items:
            if kind == "metrics":
                metrics += [Metric(k, v, ts, step) for k, v, ts, step in once(payload, logged)
                            if math.isfinite(v)]
            elif kind == "tags":
                tags = [RunTag(sanitize_key(k), str(v)) for k, v in payload.items()]
                for chunk in chunks(tags, MAX_TAGS_PER_BATCH):
                    client.log_batch(self.run_id, tags=chunk)
            elif kind == "artifact":
                path, artifact_path = payload
                client.log_artifact(self.run_id, path, artifact_path)
        for chunk in chunks(metrics, MAX_METRICS_PER_BATCH):
            client.log_batch(self.run_id, metrics=chunk)
        self._logged = logged  # all of it arrived (a failed send is spooled and sent again)

    def _end(self, client: Any, status: str) -> None:
        if client is None or self.run_id is None:
            return
        if self.error is not None and status == "FINISHED":
            status = "FAILED"
        try:
            client.set_terminated(self.run_id, status=status)
        except BaseException as e:  # noqa: BLE001
            if self.spool is not None:  # `dlrun sync` ends it
                self._failed(e)
                self.spool.append([("end", status)])
                return
            if self.error is None:
                self.error = e
            log.exception("could not end the MLflow run")


def make_tracker(logger_cfg: Any, experiment: str, **kwargs: Any) -> MlflowTracker | NullTracker:
    """The tracker ``logger_cfg`` (the ``logger`` group) asks for, with ``kwargs`` (tags...)."""
    store = mlflow_store(logger_cfg)
    if store is None:
        return NullTracker()
    uri, artifact_location = store
    return MlflowTracker(uri, experiment, artifact_location=artifact_location, **kwargs)


def mlflow_store(logger_cfg: Any) -> tuple[str, str | None] | None:
    """(tracking URI, artifact location) of the ``logger`` group, None for ``logger=none``; a
    local SQLite store's folder is created, a server decides where its artifacts go."""
    backend = getattr(logger_cfg.backend, "value", logger_cfg.backend)
    if backend == "none":
        return None
    if backend == "mlflow":
        if not logger_cfg.tracking_uri:
            raise TrackingError("logger=mlflow needs logger.tracking_uri (e.g. "
                                "sqlite:///outputs/mlflow.db or http://127.0.0.1:5000)")
        uri = str(logger_cfg.tracking_uri)
        artifact_location = logger_cfg.artifact_location
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        elif not uri.startswith("file:"):
            artifact_location = None  # a server decides where its artifacts go
        return uri, artifact_location
    raise TrackingError(f"unknown logger backend {backend!r}: use logger=mlflow or logger=none")


def describe_error(error: BaseException, uri: str) -> str:
    """A failure of the store at ``uri`` for the user: what failed and what to check."""
    msg = str(error).strip().splitlines()
    first = msg[0] if msg else type(error).__name__
    if len(first) > 500:
        first = first[:500] + "..."
    return (f"MLflow tracking at {uri} failed: {type(error).__name__}: {first}\n"
            "Check logger.tracking_uri (a server must be running and reachable), or run "
            "with logger=none to train without tracking.")
