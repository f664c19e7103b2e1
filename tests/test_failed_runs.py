"""A run that fails, diverges or is stopped leaves what there is to debug it in MLflow (issue 17,
item 9): its error as the tag ``dlrun.error`` and ``error.txt``, its ``config.yaml``, its
``dlrun.log`` and its last checkpoint's manifest; the outage spool is on disk after each append.
The runs go through the real ``dlrun`` command into a SQLite store."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from dlrun.runner.spool import Spool

from .conftest import clean_env, dlrun_command


def the_run(cwd: Path):
    """(client, the one MLflow run) of the store under ``cwd``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dlrun")
    (record,) = client.search_runs([exp.experiment_id])
    return client, record


def artifacts(client, run_id: str) -> set[str]:
    found = {a.path for a in client.list_artifacts(run_id)}
    return found | {a.path for a in client.list_artifacts(run_id, "checkpoints")}


def read_artifact(client, run_id: str, path: str, dst: Path) -> str:
    dst.mkdir(exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst))).read_text()


def test_a_diverging_run_ends_failed_with_its_error_and_what_to_debug_it_with(run_dlrun, tmp_path):
    res = run_dlrun("model=mlp", "optimizer.lr=1e6", "trainer.epochs=2", "trainer.checkpoint_every=1")
    assert res.returncode == 1 and "the run diverged" in res.stderr, res
    (folder,) = res.run_dirs()
    client, record = the_run(tmp_path)
    assert record.info.status == "FAILED"
    error = record.data.tags["dlrun.error"]
    assert error.startswith("DivergenceError: the training loss became nan")
    latest = sorted((folder / "checkpoints").glob("ckpt-*.json"))[-1]  # written before it diverged
    found = artifacts(client, record.info.run_id)
    assert {"config.yaml", "dlrun.log", "error.txt", f"checkpoints/{latest.name}"} <= found
    assert "model.npz" not in found  # nothing of a trained model
    text = read_artifact(client, record.info.run_id, "error.txt", tmp_path / "got")
    assert "Traceback" in text and error in text  # the message and where it came from
    assert read_artifact(client, record.info.run_id, "config.yaml", tmp_path / "got") == \
        (folder / "config.yaml").read_text()


def test_a_run_stopped_by_sigterm_ends_killed_with_its_config_and_checkpoint(tmp_path):
    proc = subprocess.Popen([*dlrun_command(), "model=mlp", "trainer.epochs=3",
                             "trainer.checkpoint_every=5"], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if list((tmp_path / "outputs" / "runs").glob("*/*/checkpoints/ckpt-00000005.json")):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a shell reports it
    step = int((out + err).split("stopped by SIGTERM after step ")[1].split(";")[0])
    client, record = the_run(tmp_path)
    assert record.info.status == "KILLED"
    assert record.data.tags["dlrun.error"] == f"stopped by SIGTERM after step {step}"
    found = artifacts(client, record.info.run_id)
    assert {"config.yaml", "dlrun.log", "error.txt", f"checkpoints/ckpt-{step:08d}.json"} <= found
    assert read_artifact(client, record.info.run_id, "error.txt", tmp_path / "got").strip() == \
        f"stopped by SIGTERM after step {step}"


def test_the_spool_is_on_disk_after_each_append(tmp_path, monkeypatch):
    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), fsync(fd))[1])
    spool = Spool(tmp_path / "mlflow-spool.jsonl")
    spool.describe({"tracking_uri": "http://127.0.0.1:1", "experiment": "dlrun"})
    for n, record in enumerate([("metrics", [["a", 1.0, 0, 1]]), ("tags", {"b": "c"}),
                                ("end", "FAILED")], start=1):
        before = len(synced)
        spool.append([record])
        assert len(synced) == before + 1, f"append {n} was not fsynced"
    assert [kind for kind, _ in spool.read()] == ["metrics", "tags", "end"]
