"""``dlrun sync RUN``: send the MLflow records a run spooled while its store was unreachable."""
from __future__ import annotations

from pathlib import Path

from .spool import SPOOL_NAME, Spool
from .sqlstore import prepare_store
from .tracking import MlflowTracker, TrackingError, describe_error

USAGE = """usage: dlrun sync RUN_FOLDER

Sends what a run kept in RUN_FOLDER/mlflow-spool.jsonl while its MLflow store was unreachable
(metrics, tags, artifacts, the run's end) to that store, into the same run (created now if it
never got there), and removes the spool once everything arrived.
"""


class SyncError(RuntimeError):
    """Nothing to sync, or the spool cannot be read."""


def sync(args: list[str]) -> str:
    """Sends the spool of the run folder ``args[0]``; returns what was done."""
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return ""
    folder = Path(args[0]).expanduser()
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
    ends = [payload for kind, payload in records if kind == "end"]
    try:
        prepare_store(tracker.tracking_uri)  # a new or half-migrated SQLite store: one process at a time
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
