"""``dlrun sync RUN``: send the MLflow records a run spooled while its store was unreachable."""
from __future__ import annotations

from pathlib import Path

from .spool import SPOOL_NAME, Spool
from .sqlstore import prepare_store
from .tracking import MlflowTracker, TrackingError, describe_error

USAGE = """usage: dlrun sync RUN_FOLDER [logger.tracking_uri=URI]

Sends what a run kept in RUN_FOLDER/mlflow-spool.jsonl while its MLflow store was unreachable
(metrics, tags, artifacts, the run's end) to that store, into the same run (created now if it
never got there), and removes the spool once everything arrived. With logger.tracking_uri=URI
it goes to that store instead (the run is created there unless it is there already).
"""
URI_ARG = "logger.tracking_uri="


class SyncError(RuntimeError):
    """Nothing to sync, or the spool cannot be read."""


def _tracking_uri(extra: list[str]) -> str | None:
    """The store ``logger.tracking_uri=URI`` in ``extra`` names; None without one."""
    uri = None
    for arg in extra:
        if not arg.lstrip("+").startswith(URI_ARG):
            raise SyncError(f"dlrun sync takes a run folder and logger.tracking_uri=URI, not "
                            f"{arg!r}\n{USAGE}")
        uri = arg.lstrip("+")[len(URI_ARG):].strip("'\"")
    return uri


def _run_in(uri: str, run_id: str | None) -> str | None:
    """``run_id`` if the store at ``uri`` has that run; else None (the run is created there)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if run_id is None:
        return None
    try:
        MlflowClient(tracking_uri=uri).get_run(run_id)
    except MlflowException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # the store is away: the spool stays
        return None
    return run_id


def sync(args: list[str]) -> str:
    """Sends the spool of the run folder ``args[0]``; returns what was done."""
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return ""
    folder, uri = Path(args[0]).expanduser(), _tracking_uri(args[1:])
    spool = Spool(folder / SPOOL_NAME)
    if not spool.pending:
        raise SyncError(f"{folder} has no spooled MLflow records ({SPOOL_NAME}): nothing to send")
    try:
        head = spool.header()
        records = spool.read()
    except (OSError, ValueError, KeyError) as e:
        raise SyncError(f"cannot read {spool.path}: {e}") from None
    tracker = MlflowTracker(head["tracking_uri"], head["experiment"], run_name=head.get("run_name"),
                            params=head.get("params"), tags=head.get("tags"),
                            artifact_location=head.get("artifact_location"))
    tracker.run_id = head.get("run_id")  # None: the store never saw the run; create it now
    moved = uri is not None and uri != tracker.tracking_uri
    tracker.tracking_uri = uri or tracker.tracking_uri
    ends = [payload for kind, payload in records if kind == "end"]
    try:
        prepare_store(tracker.tracking_uri)  # a new or half-migrated SQLite store: one process at a time
        if moved:  # another store than the run's: the run is created there unless it has it
            tracker.run_id = _run_in(tracker.tracking_uri, tracker.run_id)
        client = tracker.open_run()
        tracker.send(client, [r for r in records if r[0] != "end"])
        if ends:
            client.set_terminated(tracker.run_id, status=ends[-1])
    except Exception as e:  # noqa: BLE001 - the store is still away: the spool stays
        raise TrackingError(describe_error(e, tracker.tracking_uri) + f"\nThe records stay in {spool.path}.") from None
    spool.clear()
    done = (f"sent {len(records)} spooled records of {folder} to MLflow run {tracker.run_id} "
            f"at {tracker.tracking_uri}")
    print(done)
    return done
