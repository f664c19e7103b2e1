"""The dlrun MLflow flavor (issue 21, items 1, 2 and 5), in-process on an SQLite store: a
model logged to a run loads with ``mlflow.pyfunc.load_model("runs:/<id>/model")`` and predicts
what the network computes (MLP, LeNet, ResNet), carries its signature, input example,
requirements and preprocessing, and no pickle; the registry gives versions that load as
``models:/NAME/VERSION`` and ``models:/NAME/latest`` and that ``dlrun predict --input`` takes;
models and batches the flavor cannot serve are refused saying what it takes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlrun import nn
from dlrun.engine import array
from dlrun.models.gan import GANMLP
from dlrun.models.lenet import LeNet
from dlrun.models.lstm_lm import LSTMLM
from dlrun.models.mlp import MLP
from dlrun.models.zoo import BasicBlockV1, ResNetV1
from dlrun.runner.mlflow_model import ModelError, _load_pyfunc, dlrun_version, log_model, save_model
from dlrun.runner.predict_input import predict_input
from dlrun.runner.preprocess import InputError, read_input, spec_for, standardise, text_spec

mlflow = pytest.importorskip("mlflow")

MODELS = {  # name: (the model, one example's shape)
    "mlp": (lambda: MLP(classes=10), (1, 28, 28)),
    "lenet": (lambda: LeNet(classes=10), (1, 28, 28)),
    # ResNet-18's blocks (BasicBlockV1, 2 per stage, the thumbnail stem), an eighth of its widths
    "resnet18_v1": (lambda: ResNetV1(BasicBlockV1, [2, 2, 2, 2], [8, 8, 16, 32, 64], classes=10,
                                     thumbnail=True), (3, 32, 32)),
    # a GAN's generator: images (flattened) from noise
    "gan_generator": (lambda: GANMLP(image_shape=(1, 28, 28)).generator, (100,)),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An MLflow client of a new SQLite store (the global tracking URI set to it meanwhile)
    and an experiment in it."""
    root = tmp_path_factory.mktemp("store")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("flavor", artifact_location=str(root / "artifacts"))
    yield client, experiment
    mlflow.set_tracking_uri(previous)


def exported(name: str, folder: Path, batch: int = 4):
    """(the trained-by-nobody network of ``name``, its export's files, one example's shape)."""
    make, shape = MODELS[name]
    net = make()
    net.initialize()
    net.hybridize()
    net(array(np.zeros((batch, *shape), np.float32)))  # the predict-mode graph, batch 4
    net.export(str(folder / name))
    return net, (folder / f"{name}-symbol.json", folder / f"{name}-0000.params"), shape


def logged(store, name: str, folder: Path, **kwargs):
    """(network, MLflow run id, ModelInfo, example shape) of ``name`` logged to a new run."""
    client, experiment = store
    net, files, shape = exported(name, folder)
    run_id = client.create_run(experiment).info.run_id
    example = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    info = log_model("model", *files, run_id=run_id, example=example,
                     info={"task": "classify", "classes": 10,
                           "preprocess": spec_for("dlrun.data.vision.mnist", shape)}, **kwargs)
    return net, run_id, info, shape


@pytest.mark.parametrize("name", list(MODELS))
def test_the_pyfunc_of_a_run_predicts_what_the_network_computes(store, name, tmp_path):
    net, run_id, info, shape = logged(store, name, tmp_path)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    x = np.random.default_rng(1).standard_normal((7, *shape)).astype(np.float32)  # 2 chunks of 4
    want = net(array(x)).asnumpy()
    got = model.predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict(x, params={"predict_type": "class"}), want.argmax(1))
    probs = model.predict(x, params={"predict_type": "probabilities"})
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(probs.argmax(1), want.argmax(1))
    # the signature: input 'data' of any batch, the output, the predict_type parameter
    (inp,) = model.metadata.get_input_schema().inputs
    assert (inp.name, inp.type, inp.shape) == ("data", np.dtype(np.float32), (-1, *shape))
    assert model.metadata.get_output_schema().inputs[0].shape == (-1, *want.shape[1:])
    assert [p.name for p in model.metadata.get_params_schema().params] == ["predict_type", "pixels"]
    if len(shape) == 3:  # raw pixels, standardised by the model as the dataset did
        pixels = np.random.default_rng(7).integers(0, 256, (3, *shape)).astype(np.uint8)
        spec = spec_for("dlrun.data.vision.mnist", shape)
        np.testing.assert_allclose(model.predict(pixels.astype(np.float32), params={"pixels": True}),
                                   net(array(standardise(spec, pixels))).asnumpy(), rtol=1e-5, atol=1e-6)
    # the folder: MLmodel with both flavors, the example, pinned requirements, no pickle
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model"))
    assert set(model.metadata.flavors) == {"python_function", "dlrun"}
    assert f"dlrun=={dlrun_version()}" in (folder / "requirements.txt").read_text().split()
    assert (folder / "input_example.json").is_file()
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]
    # the run shows it as its logged model
    run = store[0].get_run(run_id)
    assert [m.model_id for m in run.outputs.model_outputs] == [info.model_id]


def test_the_registry_gives_a_version_per_logged_model_and_predict_takes_them(store, tmp_path,
                                                                            monkeypatch):
    net, _, first, shape = logged(store, "mlp", tmp_path, registered_model_name="digits")
    net2, _, second, _ = logged(store, "mlp", tmp_path / "..", registered_model_name="digits")
    assert (first.registered_model_version, second.registered_model_version) == (1, 2)
    x = np.random.default_rng(2).standard_normal((5, *shape)).astype(np.float32)
    latest = mlflow.pyfunc.load_model("models:/digits/latest").predict(x)
    np.testing.assert_allclose(latest, net2(array(x)).asnumpy(), rtol=1e-5, atol=1e-6)
    # dlrun predict models:/NAME/VERSION --input FILE, through the model's preprocessing
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    monkeypatch.chdir(tmp_path)
    pixels = np.random.default_rng(3).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    np.save("pixels.npy", pixels)
    out = predict_input(["models:/digits/1", "--input", "pixels.npy", "--output", "p.npy",
                         "--predict-type", "logits"])
    spec = spec_for("dlrun.data.vision.mnist", shape)
    np.testing.assert_allclose(np.load(out), net(array(standardise(spec, pixels))).asnumpy(),
                               rtol=1e-5, atol=1e-6)
    rows = predict_input(["models:/digits/1", "--input", "pixels.npy"]).read_text().splitlines()
    assert rows[0] == "example,class,probability" and len(rows) == 6


def test_a_language_model_is_served_next_token_logits_and_reads_text(store, tmp_path, monkeypatch):
    client, experiment = store
    net = LSTMLM(6, 8, 8, num_layers=2)
    net.initialize()
    net.hybridize()
    net(array(np.zeros((5, 3), np.int32)), net.begin_state(3))  # traced on (T, N) = (5, 3)
    net.export(str(tmp_path / "lm"))
    vocab = ["<unk>", "a", "b", "c", "d", "<eos>"]
    run_id = client.create_run(experiment).info.run_id
    log_model("model", tmp_path / "lm-symbol.json", tmp_path / "lm-0000.params", run_id=run_id,
              example=np.array([[1, 2, 3]], np.int32),
              info={"task": "LanguageModelTask", "classes": None, "preprocess": text_spec(vocab, "word")})
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    (inp,) = model.metadata.get_input_schema().inputs
    assert inp.shape == (-1, -1) and inp.type == np.dtype(np.int32)
    tokens = np.random.default_rng(5).integers(0, 6, (4, 7)).astype(np.int32)  # any N and T
    logits, _ = net(array(tokens.T), net.begin_state(4))
    np.testing.assert_allclose(model.predict(tokens), logits.asnumpy()[-1], rtol=1e-5, atol=1e-6)
    # dlrun predict --input a text file: the next token of each line, unknown words as <unk>
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    (tmp_path / "lines.txt").write_text("a b c\n\nd zz\n")
    out = predict_input([f"runs:/{run_id}/model", "--input", str(tmp_path / "lines.txt"),
                         "--output", str(tmp_path / "next.csv")])
    rows = out.read_text().splitlines()
    assert rows[0] == "line,next_token,probability" and len(rows) == 3
    for row, ids in zip(rows[1:], ([1, 2, 3], [4, 0])):
        want, _ = net(array(np.array([ids], np.int32).T), net.begin_state(1))
        assert row.split(",")[1] == f'"{vocab[int(want.asnumpy()[-1].argmax())]}"'


class TwoHeads(nn.HybridBlock):
    def forward(self, x):
        return x * 2, x + 1


def test_a_graph_of_two_outputs_is_refused_by_the_flavor(tmp_path):
    net = TwoHeads()
    net.hybridize()
    net(array(np.zeros((2, 3), np.float32)))
    net.export(str(tmp_path / "two"))
    with pytest.raises(ModelError, match="takes 1 inputs and gives 2 outputs.*dlrun export"):
        save_model(tmp_path / "m", tmp_path / "two-symbol.json", tmp_path / "two-0000.params")


def test_a_batch_of_the_wrong_shape_or_type_is_refused_naming_what_the_model_takes(tmp_path):
    from mlflow.exceptions import MlflowException

    _, files, _ = exported("mlp", tmp_path)
    save_model(tmp_path / "m", *files)
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(MlflowException, match=r"shape"):
        model.predict(np.zeros((2, 1, 27, 28), np.float32))
    inner = _load_pyfunc(str(tmp_path / "m" / "data" / "dlrun"))  # what MLflow's loader calls
    with pytest.raises(MlflowException, match=r"takes examples of shape \[1, 28, 28\]"):
        inner.predict(np.zeros((2, 3), np.float32))
    with pytest.raises(MlflowException, match="predict_type 'votes'"):
        inner.predict(np.zeros((2, 1, 28, 28), np.float32), params={"predict_type": "votes"})


def test_new_data_goes_through_the_datasets_preprocessing(tmp_path):
    from PIL import Image

    from dlrun.data.vision import DIGITS_STATS

    spec = spec_for("dlrun.data.vision.digits", (1, 28, 28))
    assert spec == {"kind": "image", "shape": [1, 28, 28], "scale": 1 / 255,
                    "mean": [DIGITS_STATS[0]], "std": [DIGITS_STATS[1]]}
    assert spec_for("dlrun.data.synthetic.separable", (2,)) == {"kind": "none"}
    pixels = np.random.default_rng(4).integers(0, 256, (3, 14, 14)).astype(np.uint8)
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    x, names = read_input(tmp_path, spec, (1, 28, 28))  # resized 14 -> 28, standardised
    assert names == ["0.png", "1.png", "2.png"] and x.shape == (3, 1, 28, 28)
    mean = pixels.astype(np.float32).mean(axis=(1, 2)) / 255
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), (mean - DIGITS_STATS[0]) / DIGITS_STATS[1],
                               atol=0.02)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 5), np.float32))
    with pytest.raises(InputError, match=r"takes examples of shape \[1, 28, 28\]"):
        read_input(tmp_path / "wrong.npy", spec, (1, 28, 28))
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    with pytest.raises(InputError, match="holds 2 arrays"):
        read_input(tmp_path / "two.npz", spec, (1, 28, 28))
    with pytest.raises(InputError, match=r"do not fit the model, which takes 1 x 28 x 28"):
        standardise(spec, pixels)


# --- pictures (item 7) -----------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n"


class Notes:
    def __init__(self):
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_a_classification_run_gets_curves_a_confusion_matrix_and_per_class_accuracy(store, tmp_path):
    from types import SimpleNamespace

    from dlrun.runner.plots import run_plots

    client, experiment = store
    run_id = client.create_run(experiment).info.run_id
    for step, (loss, acc) in enumerate([(1.0, 0.5), (0.6, 0.7), (0.4, 0.8)]):
        client.log_metric(run_id, "train/loss", loss, step=step)
        client.log_metric(run_id, "val/accuracy", acc, step=step)
        client.log_metric(run_id, "train/step_loss", loss, step=step)
    labels = np.array([0, 0, 1, 1, 2, 2])
    data = SimpleNamespace(test=SimpleNamespace(label=labels), num_classes=3)
    made = run_plots(client, run_id, tmp_path / "plots", data, lambda: np.array([0, 1, 1, 1, 2, 0]))
    assert [p.name for p in made] == ["curves.png", "confusion_matrix.png", "per_class_accuracy.json"]
    assert all(p.read_bytes().startswith(PNG) for p in made[:2])
    logged = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert logged == {f"plots/{p.name}" for p in made}
    metrics = client.get_run(run_id).data.metrics
    assert {k: metrics[k] for k in metrics if k.startswith("test/class_accuracy")} == {
        "test/class_accuracy/0": 0.5, "test/class_accuracy/1": 1.0, "test/class_accuracy/2": 0.5}


def test_a_study_gets_optunas_history_and_importance_plots(tmp_path):
    optuna = pytest.importorskip("optuna")
    from dlrun.runner.plots import study_plots

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("lr", 0.01, 1) + t.suggest_int("layers", 1, 3), n_trials=6)
    made = study_plots(study, tmp_path)
    assert [p.name for p in made] == ["optimization_history.png", "param_importances.png"]
    assert all(p.read_bytes().startswith(PNG) for p in made)


def test_without_matplotlib_the_plots_are_skipped_with_one_line(store, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from dlrun.runner import plots
    from dlrun.runner.publish import publish_run

    monkeypatch.setattr(plots, "figure_class", lambda: None)
    client, experiment = store
    run_id = client.create_run(experiment).info.run_id
    tracker = SimpleNamespace(run_id=run_id, tracking_uri=mlflow.get_tracking_uri(), tags={})
    notes = Notes()
    setup = SimpleNamespace(data=None, report=notes, net=None, ctx=None)
    cfg = OmegaConf.create({"logger": {"log_model": True, "log_plots": True},
                            "dataset": {"_target_": "mypkg.data"}})
    assert publish_run(cfg, tmp_path, tracker, setup, exported=None) is None
    assert notes.lines == [plots.SKIPPED]
    assert not client.list_artifacts(run_id)


def test_the_mlflow_model_can_carry_its_onnx_conversion(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from dlrun.engine.onnx_export import export_graph_file

    net, files, shape = exported("lenet", tmp_path)
    onnx_file = export_graph_file(*files, tmp_path / "lenet.onnx")
    save_model(tmp_path / "m", *files, onnx_file=onnx_file)  # what logger.log_onnx=true does
    flavor = mlflow.pyfunc.load_model(str(tmp_path / "m")).metadata.flavors["dlrun"]
    carried = tmp_path / "m" / flavor["data"] / flavor["onnx"]
    x = np.random.default_rng(6).standard_normal((3, *shape)).astype(np.float32)
    (got,) = ort.InferenceSession(str(carried), providers=["CPUExecutionProvider"]).run(None, {"data": x})
    np.testing.assert_allclose(got, net(array(x)).asnumpy(), rtol=1e-4, atol=1e-5)
