"""An MLflow store that goes away does not stop a run (issue 10): records wait in the run's
spool and reach the store when it is back, or with ``dlrun sync RUN``."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .conftest import clean_env, dlrun_command
from .mlflow_server import MlflowServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    """A real MLflow server, not started yet, that the test stops and starts again."""
    s = MlflowServer(tmp_path / "server", clean_env())
    yield s
    s.stop()


def _wait_for(what: str, ready, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Waits until ``ready()`` while the run goes on (fails when it ended first or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s")
        time.sleep(0.05)


def test_the_store_stops_mid_run_and_comes_back(server, tmp_path):
    server.start()
    # The run waits on signals, not on its length: it is frozen (SIGSTOP) while the server
    # stops and while it starts again, and runs in between until it has spooled a record.
    epochs = 3
    cmd = [*dlrun_command(), "model=lenet", f"trainer.epochs={epochs}",
           f"logger.tracking_uri={server.url}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for("its MLflow run was created", lambda: server.runs()[1], proc)
        os.kill(proc.pid, signal.SIGSTOP)
        server.stop()      # the run is training; its records now fail to send
        os.kill(proc.pid, signal.SIGCONT)
        spool = tmp_path / "outputs" / "runs"
        _wait_for("a record went to its spool", lambda: any(spool.glob("*/*/mlflow-spool.jsonl")),
                  proc)
        os.kill(proc.pid, signal.SIGSTOP)
        server.start()
        assert proc.poll() is None, "the run ended before the store came back"
        os.kill(proc.pid, signal.SIGCONT)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    out, err = proc.communicate(timeout=900)  # generous: a loaded machine trains far slower
    assert proc.returncode == 0, err
    (folder,) = [p for p in (tmp_path / "outputs" / "runs").glob("*/*")]
    assert not (folder / "mlflow-spool.jsonl").exists()  # everything arrived
    client, (record,) = server.runs()
    assert record.info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(record.info.run_id, "train/step_loss")}
    total = json.loads((folder / "results.json").read_text())["steps"]
    assert steps == set(range(1, total + 1))
    assert len(client.get_metric_history(record.info.run_id, "val/accuracy")) == epochs


def test_an_unreachable_store_spools_and_dlrun_sync_sends_it(server, tmp_path):
    ran = subprocess.run([*dlrun_command(), "model=mlp", "trainer.epochs=2",
                          f"logger.tracking_uri={server.url}"], cwd=tmp_path, env=clean_env(),
                         capture_output=True, text=True, timeout=240)
    assert ran.returncode == 0, ran.stderr
    (folder,) = [p for p in (tmp_path / "outputs" / "runs").glob("*/*")]
    spool = folder / "mlflow-spool.jsonl"
    assert spool.is_file() and f"dlrun sync {folder}" in ran.stdout
    refused = subprocess.run([*dlrun_command(), "sync", str(folder)], cwd=tmp_path, env=clean_env(),
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "The records stay in" in refused.stderr and spool.is_file()

    server.start()
    synced = subprocess.run([*dlrun_command(), "sync", str(folder)], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert synced.returncode == 0, synced.stderr
    assert not spool.exists()
    client, (record,) = server.runs()
    assert record.info.status == "FINISHED" and record.data.params["model.hybridize"] == "True"
    steps = json.loads((folder / "results.json").read_text())["steps"]
    assert len(client.get_metric_history(record.info.run_id, "train/step_loss")) == steps
    assert {a.path for a in client.list_artifacts(record.info.run_id)} >= {"config.yaml", "model.npz"}
    again = subprocess.run([*dlrun_command(), "sync", str(folder)], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "nothing to send" in again.stderr
