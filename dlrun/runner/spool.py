"""The spool of a run's MLflow records while its store is unreachable: JSON lines in the run
folder (``mlflow-spool.jsonl``), sent when the store is back or with ``dlrun sync RUN``."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from ..engine.files import write_atomic

SPOOL_NAME = "mlflow-spool.jsonl"  # in the run folder


class Spool:
    """Records MLflow could not take, as JSON lines in the run folder: a header that says
    which run they belong to, then one line per batch of metrics, tags, artifacts, the end.

    The tracker's worker thread and the training thread (a checkpoint that could not wait
    for the store) both write it: each method is atomic against the others."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def describe(self, run: Mapping[str, Any]) -> None:
        """Write the header: where the records go and how to create the run (``run``:
        tracking_uri, experiment, run_id, run_name, artifact_location, params, tags). A spool
        that has one gets the new header only when it names the run that the old one did not
        (the run was created since); its records stay."""
        header = (json.dumps({"kind": "run", "payload": dict(run)}) + "\n").encode()
        with self._lock:
            if self.pending:
                data = self.path.read_bytes()
                head, _, records = data.partition(b"\n")
                if json.loads(head)["payload"].get("run_id") is not None or run.get("run_id") is None:
                    return
                write_atomic(self.path, lambda f: f.write(header + records))
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, lambda f: f.write(header))

    def append(self, items: list) -> None:
        """Records after the header, on disk when this returns (a crash right after keeps them)."""
        lines = "".join(json.dumps({"kind": kind, "payload": payload}) + "\n" for kind, payload in items)
        with self._lock, open(self.path, "a") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def header(self) -> dict:
        with open(self.path) as f:
            return json.loads(f.readline())["payload"]

    def read(self) -> list:
        """The spooled (kind, payload) records after the header (a torn line is skipped)."""
        return self.take()[0]

    def take(self) -> tuple[list, int]:
        """The spooled records, and where they end in the file (for :meth:`drop`)."""
        with self._lock:
            data = self.path.read_bytes()
        out = []
        for line in data.split(b"\n")[1:]:
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
        return out, len(data)

    def drop(self, upto: int) -> None:
        """Removes the records :meth:`take` returned with ``upto`` (they were sent); records
        appended since stay, after the header."""
        with self._lock:
            data = self.path.read_bytes()
            rest = data[upto:]
            if not rest.strip():
                self.path.unlink(missing_ok=True)
                return
            head = data[:data.index(b"\n") + 1]
            write_atomic(self.path, lambda f: f.write(head + rest))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
