"""The spool of a run's MLflow records while its store is unreachable: JSON lines in the run
folder (``mlflow-spool.jsonl``), sent when the store is back or with ``dlrun sync RUN``."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

SPOOL_NAME = "mlflow-spool.jsonl"  # in the run folder


class Spool:
    """Records MLflow could not take, as JSON lines in the run folder: a header that says
    which run they belong to, then one line per batch of metrics, tags, artifacts, the end."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def pending(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def describe(self, run: Mapping[str, Any]) -> None:
        """Write the header (once): where the records go and how to create the run (``run``:
        tracking_uri, experiment, run_id, run_name, artifact_location, params, tags)."""
        if self.pending:
            return
        header = {"kind": "run", "payload": dict(run)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w") as f:
            f.write(json.dumps(header) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append(self, items: list) -> None:
        """Records after the header, on disk when this returns (a crash right after keeps them)."""
        with open(self.path, "a") as f:
            for kind, payload in items:
                f.write(json.dumps({"kind": kind, "payload": payload}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def header(self) -> dict:
        with open(self.path) as f:
            return json.loads(f.readline())["payload"]

    def read(self) -> list:
        """The spooled (kind, payload) records after the header (a torn last line is skipped)."""
        out = []
        with open(self.path) as f:
            next(f, None)
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                payload = rec["payload"]
                if rec["kind"] == "metrics":
                    payload = [tuple(m) for m in payload]
                elif rec["kind"] == "artifact":
                    payload = tuple(payload)
                out.append((rec["kind"], payload))
        return out

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
