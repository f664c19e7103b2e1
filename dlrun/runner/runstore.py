"""An MLflow store and a run as it holds it: the experiment a run goes to (created when
needed), what a resume checks before it continues a run, read without changing anything
(which run folder it belongs to, the steps it has), and the rule that a resumed run logs
each step of a metric once."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable


def mlflow_env() -> None:
    """MLflow's settings for a dlrun process (unless the user set them)."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # logs go to the run's log file
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # we print our own
    # an unreachable server should fail in seconds, not after MLflow's minutes of retries: the
    # tracker retries on its own (every RETRY_SECONDS), and its records wait in the spool
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def last_steps(client: Any, run: Any) -> dict[str, int]:
    """{metric: the highest step the MLflow ``run`` holds of it}. A run's latest metrics are
    those of their highest step; an MLflow that does not expose them has their histories."""
    latest = getattr(run.data, "_metric_objs", None)
    if latest is not None:
        return {m.key: int(m.step) for m in latest}
    return {k: max((int(m.step) for m in client.get_metric_history(run.info.run_id, k)), default=-1)
            for k in run.data.metrics}


def once(records: Iterable[tuple], logged: dict[str, int] | None) -> Iterable[tuple]:
    """The metric records ``(key, value, timestamp, step)`` of a step above the last one
    ``logged`` holds of their key, noting each in ``logged`` (None: every record). A run
    stopped between a metrics flush and its next checkpoint stored steps the resumed run
    takes again: they stay as they were, once."""
    for record in records:
        key, step = record[0], record[3]
        if logged is not None:
            if step <= logged.get(key, -1):
                continue
            logged[key] = step
        yield record


@dataclass
class TrackedRun:
    """What the store holds of an MLflow run: its status, tags and each metric's last step."""

    run_id: str
    status: str
    end_time: int | None
    tags: dict[str, str] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)


@dataclass
class RunLookup:
    """The answer of :func:`lookup_run`: the run (None: the store has no such run), or why
    the store could not be asked (``unreachable``)."""

    uri: str
    run: TrackedRun | None = None
    unreachable: str | None = None


def lookup_run(uri: str, run_id: str, timeout: float = 20.0) -> RunLookup:
    """The MLflow run ``run_id`` as the store at ``uri`` holds it; a store that fails or does
    not answer within ``timeout`` seconds is ``unreachable`` (the tracker spools for it)."""
    found = RunLookup(uri)
    if uri.startswith("sqlite:///") and not os.path.isfile(uri[len("sqlite:///"):]):
        return found  # no such store yet: it holds no run (and asking would create it)

    def ask() -> None:
        mlflow_env()
        try:
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient

            from .sqlstore import prepare_store

            prepare_store(uri)  # a half-migrated SQLite store: repaired before it is read
            client = MlflowClient(tracking_uri=uri)
            try:
                run = client.get_run(run_id)
            except MlflowException as e:
                if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                    return
                raise
            found.run = TrackedRun(run_id, str(run.info.status), run.info.end_time,
                                   dict(run.data.tags), last_steps(client, run))
        except Exception as e:  # noqa: BLE001 - the store is away
            text = str(e).strip().splitlines()
            found.unreachable = f"{type(e).__name__}: {text[0][:200] if text else ''}"

    thread = threading.Thread(target=ask, name="dlrun-mlflow-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        found.unreachable = f"no answer within {timeout:.0f} s"
    return found


def open_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """The id of the MLflow experiment ``name``, created (or restored) when needed."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_as_uri(artifact_location))
        except Exception:  # another process created it meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _as_uri(location: str | None) -> str | None:
    if not location or "://" in location or location.startswith("file:"):
        return location
    path = Path(location).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()
