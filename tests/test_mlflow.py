"""MLflow tracking: the background tracker against a real SQLite store and a real server."""
from __future__ import annotations

import json
import time

import pytest

from dlrun.runner.records import flatten, sanitize_key
from dlrun.runner.tracking import MlflowTracker, NullTracker, TrackingError


def test_flatten_gives_dotted_keys_and_keeps_scalar_lists_whole():
    tree = {"model": {"_target_": "M", "hidden": [128, 64]}, "seed": 0,
            "blocks": [{"a": 1}, {"a": 2}], "x": None}
    assert flatten(tree) == {"model._target_": "M", "model.hidden": [128, 64], "seed": 0,
                             "blocks.0.a": 1, "blocks.1.a": 2, "x": None}


def test_keys_are_reduced_to_what_mlflow_accepts():
    assert sanitize_key("eval/accuracy") == "eval/accuracy"
    assert sanitize_key("model.channels[0]") == "model.channels_0_"
    assert sanitize_key("a:b=c,d") == "a_b_c_d"
    assert sanitize_key("") == "_"


def tracker_for(tmp_path, **kwargs):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, MlflowTracker(uri, "unit", artifact_location=str(tmp_path / "artifacts"), **kwargs)


@pytest.mark.slow
def test_tracker_never_blocks_and_sends_everything_in_batches(tmp_path):
    from mlflow.tracking import MlflowClient

    params = {f"group.key{i}": i for i in range(250)}           # more than one log_batch of params
    params["odd key=with,chars"] = "v"
    uri, tracker = tracker_for(tmp_path, params=params, tags={"dlrun.device": "cpu(0)"},
                               run_name="unit-run")
    tracker.start()
    start = time.perf_counter()
    for step in range(1, 2501):                                   # more than one batch of metrics
        tracker.log_metrics({"train/step_loss": 1.0 / step}, step)
    tracker.log_metrics({"eval/accuracy": 0.5, "not finite": float("nan")}, 2500)
    enqueue = time.perf_counter() - start
    artifact = tmp_path / "results.json"
    artifact.write_text(json.dumps({"ok": 1}))
    tracker.log_artifact(artifact)
    tracker.finish("FINISHED")
    assert enqueue < 1.0, f"2,501 log_metrics calls took {enqueue:.2f} s: the loop must not wait"

    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "unit-run"
    assert len(run.data.params) == 251 and run.data.params["group.key249"] == "249"
    assert run.data.params["odd key_with_chars"] == "v"
    history = client.get_metric_history(tracker.run_id, "train/step_loss")
    assert len(history) == 2500
    assert sorted(h.step for h in history) == list(range(1, 2501))
    assert run.data.metrics["eval/accuracy"] == 0.5 and "not finite" not in run.data.metrics
    assert run.data.tags["dlrun.device"] == "cpu(0)"
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["results.json"]
    exp = client.get_experiment_by_name("unit")
    assert exp.artifact_location == (tmp_path / "artifacts").as_uri()


@pytest.mark.slow
def test_failed_run_is_marked_failed(tmp_path):
    from mlflow.tracking import MlflowClient

    uri, tracker = tracker_for(tmp_path)
    tracker.start()
    tracker.log_metrics({"train/step_loss": 2.0}, 1)
    tracker.finish("FAILED")
    assert MlflowClient(uri).get_run(tracker.run_id).info.status == "FAILED"


def test_unreachable_server_is_reported_as_a_tracking_error(monkeypatch):
    from .mlflow_server import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    tracker = MlflowTracker(f"http://127.0.0.1:{free_port()}", "unit")
    tracker.start()
    tracker.log_metrics({"a": 1.0}, 1)
    with pytest.raises(TrackingError, match="logger.tracking_uri"):
        tracker.finish("FINISHED", timeout=60)


def test_null_tracker_accepts_everything():
    t = NullTracker()
    t.start()
    t.log_metrics({"a": 1.0}, 1)
    t.log_artifact("nothing")
    t.finish("FINISHED")
    assert t.run_id is None and t.error is None


@pytest.mark.slow
def test_a_run_arrives_at_a_real_mlflow_server(run_dlrun, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    res = run_dlrun("model=mlp", "optimizer=adam", "trainer.epochs=1",
                    f"logger.tracking_uri={mlflow_server.url}", "experiment=served")
    assert res.returncode == 0, f"{res}\n--- server log\n{mlflow_server.log.read_text()[-3000:]}"
    assert f"{mlflow_server.url}/#/experiments/" in res.stdout
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to the local store

    client = MlflowClient(mlflow_server.url)
    exp = client.get_experiment_by_name("served")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model._target_"] == "dlrun.models.mlp.MLP"
    assert run.data.params["trainer.epochs"] == "1"
    assert 0.3 < run.data.metrics["val/accuracy"] <= 1.0
    assert len(client.get_metric_history(run.info.run_id, "train/step_loss")) == 18
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.npz", "config.yaml"} <= artifacts
    assert list(mlflow_server.artifacts.rglob("model.npz")), "artifacts are stored by the server"
