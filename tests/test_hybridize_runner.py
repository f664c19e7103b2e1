"""``model.hybridize`` in the runner, the exported model of a run, and ``dlrun predict``:
end to end through the ``dlrun`` command, with real files and a real SQLite MLflow store."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Completed, clean_env, dlrun_command

pytestmark = pytest.mark.slow  # every test runs the dlrun command

RUN_ARGS = ("model=mlp", "trainer.epochs=1", "experiment=hybridize")  # ~2 s of training


def dlrun(*args: str, cwd: Path) -> Completed:
    proc = subprocess.run([*dlrun_command(), *args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=180, check=False)
    return Completed(list(args), proc.returncode, proc.stdout, proc.stderr, cwd)


def mlflow_run(cwd: Path, run_dir: Path):
    """The MLflow run of the run folder ``run_dir`` in the SQLite store under ``cwd``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hybridize")
    (run,) = [r for r in client.search_runs([exp.experiment_id])
              if r.data.tags["dlrun.run_dir"] == str(run_dir.absolute())]
    return client, run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hybridize")


@pytest.fixture(scope="module")
def hybridized(workdir: Path) -> tuple[Completed, Path]:
    """One short run with the model configs' default, model.hybridize=true."""
    res = dlrun(*RUN_ARGS, cwd=workdir)
    assert res.returncode == 0, res
    return res, res.run_dirs()[-1]


def predicted_accuracy(res: Completed) -> tuple[int, int]:
    """(correct, examples) of the results table of ``dlrun predict``."""
    assert res.returncode == 0, res
    match = re.search(r"test accuracy\s*\|\s*[\d.]+% \(([\d,]+) of ([\d,]+)\)", res.stdout)
    assert match, res
    return int(match[1].replace(",", "")), int(match[2].replace(",", ""))


def test_a_hybridized_run_exports_its_model_into_the_run_folder_and_mlflow(hybridized, workdir):
    res, run_dir = hybridized
    assert re.search(r"model\s+mlp \(MLP, [\d,]+ parameters, hybridized\)", res.stdout), res
    symbol, params = run_dir / "model-symbol.json", run_dir / "model-0000.params"
    assert symbol.is_file() and params.is_file()
    graph = json.loads(symbol.read_text())
    assert graph["format"] == "dlrun-graph" and graph["training"] is False
    assert graph["inputs"][0]["shape"][1:] == [1, 28, 28]
    assert f"dlrun predict {run_dir}" in res.stdout  # the results footer says how to use it

    # one weights file: model.npz is a second name of the export's parameter file (issue 19)
    assert (run_dir / "model.npz").samefile(params)
    client, run = mlflow_run(workdir, run_dir)
    assert run.data.params["model.hybridize"] == "True"
    logged = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id, "export")}
    assert logged == {"export/model-symbol.json": symbol.stat().st_size}  # its weights: model.npz
    weights = [a.path for a in client.list_artifacts(run.info.run_id) if a.path.endswith(".npz")]
    assert weights == ["model.npz"]


def test_the_run_folder_and_its_export_reproduce_the_runs_test_figures(hybridized, workdir):
    from dlrun.runner.predict import predict

    _, run_dir = hybridized
    _, run = mlflow_run(workdir, run_dir)
    tested = predict([str(run_dir)])  # dlrun test RUN: the run's task on its rebuilt model
    assert tested == {k: run.data.metrics[k] for k in ("test/accuracy", "test/loss")}
    # the export prefix (the graph, no model class) and an explicitly composed dataset
    res = dlrun("predict", str(run_dir / "model"), "dataset=digits", "dataset.seed=0", cwd=workdir)
    correct, examples = predicted_accuracy(res)
    assert examples == 360  # digits' test split, in batches of the graph's, the last one padded
    assert correct / examples == run.data.metrics["test/accuracy"]


def test_an_imperative_run_exports_nothing_and_trains_exactly_as_the_hybridized_one(hybridized, workdir):
    _, hybrid_dir = hybridized
    res = dlrun(*RUN_ARGS, "model.hybridize=false", cwd=workdir)
    assert res.returncode == 0, res
    assert re.search(r"model\s+mlp \(MLP, [\d,]+ parameters, imperative\)", res.stdout), res
    run_dir = res.run_dirs()[-1]
    assert run_dir != hybrid_dir
    assert not list(run_dir.glob("model-*")) and "dlrun predict" not in res.stdout
    assert f"dlrun test {run_dir}" in res.stdout  # the results footer: how to test it again
    client, run = mlflow_run(workdir, run_dir)
    assert run.data.params["model.hybridize"] == "False"
    assert client.list_artifacts(run.info.run_id, "export") == []
    _, hybrid_run = mlflow_run(workdir, hybrid_dir)
    for key in ("test/accuracy", "test/loss", "train/loss"):  # same seed: the same numbers
        assert run.data.metrics[key] == hybrid_run.data.metrics[key], key
    from dlrun.runner.predict import predict

    # dlrun test RUN of an imperative run: its model rebuilt from config.yaml and model.npz
    assert predict([str(run_dir)]) == {k: run.data.metrics[k] for k in ("test/accuracy", "test/loss")}


def test_predict_fails_clearly_on_a_corrupt_graph_a_missing_folder_and_unfit_data(hybridized, workdir):
    _, run_dir = hybridized
    broken = workdir / "broken"
    broken.mkdir()
    shutil.copy(run_dir / "model-0000.params", broken)
    (broken / "model-symbol.json").write_text('{"format": "dlrun-graph", "nodes": [')
    for args, text in [((str(broken),), "cannot read graph file"),
                       ((str(workdir / "nowhere"),), "no such run folder"),
                       ((str(run_dir / "model"), "dataset=fizzbuzz"),
                        "examples of shape 1x28x28, but fizzbuzz"),
                       ((str(run_dir), "model=lenet"), "cannot take 'model=lenet'")]:
        res = dlrun("predict", *args, cwd=workdir)
        assert res.returncode != 0, res
        assert "Traceback" not in res.output and text in res.stderr, res
    from dlrun.runner.predict import PredictError, predict

    with pytest.raises(PredictError, match="model.npz does not fit MLP"):  # the data shaped another
        predict([str(run_dir), "dataset=fizzbuzz"])


def test_a_hybridize_value_that_is_no_boolean_is_a_config_error_naming_the_key(workdir):
    res = dlrun("model=lenet", "model.hybridize=maybe", "logger=none", cwd=workdir)
    assert res.returncode != 0 and "Traceback" not in res.output, res
    assert "model.hybridize='maybe': expected true or false" in res.stderr, res
