"""A store that hangs or is away never holds training up (issue 17, item 6): a checkpoint's
flush waits a bounded time, then the records are on disk in the spool; nothing is lost when
the store answers again. The store here is a stand-in whose sends block until a test lets
them go, as an HTTP call to a server that went away does."""
from __future__ import annotations

import json
import threading

import pytest

from dlrun.runner.spool import Spool
from dlrun.runner.tracking import MlflowTracker


class HangingStore:
    """Takes what the tracker sends; each send blocks while ``gate`` is closed."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.sending = threading.Event()  # a send is blocked at the gate
        self.metrics: list[tuple] = []
        self.ended: list[str] = []

    def send(self, client, items) -> None:
        if not self.gate.is_set():
            self.sending.set()
            self.gate.wait()
        for kind, payload in items:
            if kind == "metrics":
                self.metrics += [(k, v, step) for k, v, _, step in payload]


@pytest.fixture
def tracked(tmp_path, monkeypatch):
    """(a started tracker with a spool, its HangingStore); the worker is stopped after."""
    store = HangingStore()
    tracker = MlflowTracker("http://127.0.0.1:9", "unit", spool=tmp_path / "mlflow-spool.jsonl")

    def open_run():
        tracker.run_id = "r1"
        return store

    monkeypatch.setattr(tracker, "open_run", open_run)
    monkeypatch.setattr(tracker, "send", store.send)
    monkeypatch.setattr(tracker, "_end", lambda client, status: store.ended.append(status))
    tracker.start()
    assert tracker.wait_for_run(30) == "r1"
    yield tracker, store
    store.gate.set()


def spooled_metrics(spool: Spool) -> set[tuple]:
    return {(k, v, step) for kind, payload in spool.read() if kind == "metrics"
            for k, v, _, step in payload}


def in_thread(call, limit: float = 30.0) -> None:
    """Runs ``call()``; fails when it has not returned within ``limit`` seconds."""
    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"{call} still waits after {limit} s"


def test_a_flush_that_the_store_does_not_answer_spools_the_records(tracked):
    tracker, store = tracked
    store.gate.clear()
    tracker.log_metrics({"loss": 1.0}, step=1)
    assert store.sending.wait(30)            # the worker's send of step 1 hangs
    tracker.log_metrics({"loss": 0.5}, step=2)
    tracker.flush(timeout=0.2)
    # on disk now: the batch in flight and the one queued behind it
    assert spooled_metrics(tracker.spool) == {("loss", 1.0, 1), ("loss", 0.5, 2)}
    assert tracker.outage is not None
    # a known outage: the next flush does not wait at all (an hour's timeout returns at once)
    tracker.log_metrics({"loss": 0.25}, step=3)
    in_thread(lambda: tracker.flush(timeout=3600))
    assert ("loss", 0.25, 3) in spooled_metrics(tracker.spool)

    store.gate.set()                          # the store answers again
    tracker.log_metrics({"loss": 0.125}, step=4)
    tracker.finish()
    assert not tracker.spool.pending          # the spool went out, then was removed
    assert set(store.metrics) == {("loss", 1.0, 1), ("loss", 0.5, 2), ("loss", 0.25, 3),
                                  ("loss", 0.125, 4)}
    assert store.ended == ["FINISHED"]


def test_a_run_that_ends_in_an_outage_spools_its_end_without_waiting(tracked):
    tracker, store = tracked
    store.gate.clear()
    tracker.log_metrics({"loss": 1.0}, step=1)
    assert store.sending.wait(30)
    tracker.flush(timeout=0.2)
    tracker.log_metrics({"loss": 0.5}, step=2)
    in_thread(lambda: tracker.finish("FINISHED", timeout=3600))
    records = tracker.spool.read()
    assert spooled_metrics(tracker.spool) == {("loss", 1.0, 1), ("loss", 0.5, 2)}
    assert records[-1] == ("end", "FINISHED")   # `dlrun sync` ends the run
    assert json.loads(tracker.spool.path.read_text().splitlines()[0])["payload"]["run_id"] == "r1"


def test_a_store_that_answers_in_time_gets_everything_and_no_spool(tracked):
    tracker, store = tracked
    for step in range(1, 4):
        tracker.log_metrics({"loss": 1.0 / step}, step=step)
    tracker.flush(timeout=30)
    assert not tracker.spool.pending and tracker.outage is None
    assert len(store.metrics) == 3


def test_dropping_sent_records_keeps_the_ones_appended_since(tmp_path):
    spool = Spool(tmp_path / "s.jsonl")
    spool.describe({"run_id": None, "tracking_uri": "u"})
    spool.append([("metrics", [("a", 1.0, 0, 1)])])
    records, upto = spool.take()
    spool.append([("tags", {"t": "x"})])      # while the taken records are on their way
    spool.drop(upto)
    assert spool.read() == [("tags", {"t": "x"})]
    spool.describe({"run_id": "r9", "tracking_uri": "u"})  # the run exists now: the header says so
    assert spool.header()["run_id"] == "r9" and spool.read() == [("tags", {"t": "x"})]
    spool.describe({"run_id": None, "tracking_uri": "u"})  # never forgets it again
    assert spool.header()["run_id"] == "r9"
    spool.drop(spool.take()[1])
    assert not spool.pending
