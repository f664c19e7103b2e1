"""A dlrun run's model served for real (issue 21, items 2 and 3): one run tracked on a real
``mlflow server`` registers its model; ``models:/NAME/latest`` loads from the server and
``dlrun predict models:/NAME/1 --input`` reads it; ``mlflow models serve -m runs:/<id>/model
--env-manager local`` answers JSON, tensor and dataframe payloads with dlrun's own outputs,
refuses malformed ones with a 4xx that says why, and keeps serving; ``dlrun log-model`` and
``dlrun export --format onnx`` work on the finished run."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from dlrun.engine import array
from dlrun.nn import SymbolBlock

from .conftest import clean_env, dlrun_command
from .mlflow_server import DIRECT, MlflowServer, free_port

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow")
NAME = "digits-mlp"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("server"), clean_env())
    server.start()
    yield server
    server.stop()


def dlrun(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*dlrun_command(), *args], cwd=cwd, env=clean_env(**env), text=True,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, f"dlrun {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """(run folder, MLflow run id, test examples: one batch of the graph, dlrun's outputs)
    of one MLP run tracked on the server, its model registered as NAME."""
    cwd = tmp_path_factory.mktemp("run")
    res = dlrun("model=mlp", "trainer.epochs=1", "experiment=serving",
                f"logger.tracking_uri={server.url}", f"logger.register_model={NAME}", cwd=cwd)
    run_id = re.search(r"MLflow model: runs:/(\w+)/model, registered as models:/digits-mlp/1",
                       res.stdout)[1]
    (run_dir,) = [p for p in (cwd / "outputs" / "runs").glob("*/*")]
    block = SymbolBlock.imports(run_dir / "model-symbol.json", None, run_dir / "model-0000.params")
    (shape, _), = block.graph.input_meta
    from dlrun.data.vision import digits

    x = digits().test.data[:shape[0]]
    return run_dir, run_id, x, block(array(x)).asnumpy()


def test_the_registered_model_loads_from_the_server_and_predict_takes_it(server, trained, tmp_path):
    run_dir, run_id, x, want = trained
    mlflow.set_tracking_uri(server.url)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/latest")
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)
    # the run shows its datasets (digits' three splits) and its logged model
    run = mlflow.MlflowClient().get_run(run_id)
    inputs = {d.dataset.name: [t.value for t in d.tags] for d in run.inputs.dataset_inputs}
    assert inputs == {"digits-train": ["train"], "digits-val": ["val"], "digits-test": ["test"]}
    assert len(run.outputs.model_outputs) == 1
    body = json.loads((run_dir / "serving-example.json").read_text())  # the footer's curl body
    assert np.asarray(body["inputs"]).shape == (2, 1, 28, 28)
    np.save(tmp_path / "x.npy", x[:9])
    dlrun("predict", f"models:/{NAME}/1", "--input", "x.npy", "--output", "p.csv", cwd=tmp_path,
          MLFLOW_TRACKING_URI=server.url)
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert [int(r.split(",")[1]) for r in rows[1:]] == want[:9].argmax(1).tolist()
    # dlrun predict models:/NAME/VERSION: the registered model on the run's own test split
    res = dlrun("predict", f"models:/{NAME}/1", cwd=tmp_path, MLFLOW_TRACKING_URI=server.url)
    correct, examples = map(int, re.search(r"test accuracy\s*\|\s*[\d.]+% \((\d+) of (\d+)\)",
                                          res.stdout).groups())
    assert correct / examples == run.data.metrics["test/accuracy"]


def post(url: str, body: bytes | str, content_type: str = "application/json") -> tuple[int, str]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with DIRECT.open(request, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@contextlib.contextmanager
def serving(model_uri: str, tracking_uri: str, folder: Path) -> Iterator[str]:
    """``mlflow models serve -m MODEL_URI --env-manager local`` on a free port: its
    /invocations URL while it runs."""
    port, log = free_port(), folder / "serve.log"
    cli = Path(sys.executable).parent / "mlflow"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(cli), "models", "serve", "-m", model_uri,
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
                                 "-w", "1"], env=clean_env(MLFLOW_TRACKING_URI=tracking_uri),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with DIRECT.open(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # nothing to save: no graceful shutdown to wait for
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(server, trained, tmp_path_factory):
    """The /invocations URL of the run's model, served: runs:/<id>/model."""
    with serving(f"runs:/{trained[1]}/model", server.url, tmp_path_factory.mktemp("serve")) as url:
        yield url


@pytest.mark.parametrize("name", ["lenet", "resnet18_v1"])
def test_lenet_and_a_resnet_are_served_as_dlrun_computes_them(server, name, tmp_path):
    """The same flavor for LeNet and a ResNet, logged to a run of the server's store."""
    from .test_mlflow_model import exported, log_model

    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("serving").experiment_id
    net, files, shape = exported(name, tmp_path)
    run_id = client.create_run(experiment).info.run_id
    log_model("model", *files, run_id=run_id, info={"task": "ClassifyTask", "classes": 10})
    x = np.random.default_rng(8).standard_normal((5, *shape)).astype(np.float32)
    with serving(f"runs:/{run_id}/model", server.url, tmp_path) as url:
        status, text = post(url, json.dumps({"inputs": x.tolist()}))
    assert status == 200, text
    np.testing.assert_allclose(json.loads(text)["predictions"], net(array(x)).asnumpy(), rtol=1e-5,
                               atol=1e-6)


def test_the_served_model_answers_json_tensor_and_dataframe_payloads_as_dlrun(served, trained):
    _, _, x, want = trained
    for payload in ({"inputs": x.tolist()}, {"instances": x.tolist()},
                    {"dataframe_split": {"columns": ["data"],
                                         "data": [[row.reshape(-1).tolist()] for row in x]}}):
        status, text = post(served, json.dumps(payload))
        assert status == 200, text
        np.testing.assert_allclose(np.asarray(json.loads(text)["predictions"]), want, rtol=1e-5,
                                   atol=1e-6)
    status, text = post(served, json.dumps({"inputs": x[:5].tolist(),
                                            "params": {"predict_type": "class"}}))
    assert status == 200 and json.loads(text)["predictions"] == want[:5].argmax(1).tolist()


@pytest.mark.parametrize("body, says", [
    (json.dumps({"inputs": np.zeros((2, 1, 27, 28)).tolist()}), "shape"),
    (json.dumps({"inputs": [[["a", "b"]]]}), "could not convert string to float"),
    ("garbage{", "valid JSON"),
    (json.dumps({"inputs": np.zeros((1, 1, 28, 28)).tolist(), "params": {"predict_type": "votes"}}),
     "predict_type"),
])
def test_a_malformed_payload_gets_a_4xx_saying_why_and_the_server_keeps_serving(served, trained,
                                                                              body, says):
    _, _, x, want = trained
    status, text = post(served, body)
    assert 400 <= status < 500 and says in json.loads(text)["message"], (status, text)
    status, text = post(served, json.dumps({"inputs": x[:3].tolist()}))
    assert status == 200
    np.testing.assert_allclose(json.loads(text)["predictions"], want[:3], rtol=1e-5, atol=1e-6)


def test_log_model_and_onnx_export_of_the_finished_run(server, trained):
    run_dir, run_id, x, want = trained
    ort = pytest.importorskip("onnxruntime")
    res = dlrun("log-model", str(run_dir), cwd=run_dir, MLFLOW_TRACKING_URI=server.url)
    assert f"logged runs:/{run_id}/model" in res.stdout
    dlrun("export", str(run_dir), "--format", "onnx", cwd=run_dir)
    session = ort.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"data": x[:7]})  # any batch size
    np.testing.assert_allclose(got, want[:7], rtol=1e-4, atol=1e-5)
