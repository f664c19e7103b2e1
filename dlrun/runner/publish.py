"""A run's model and data in MLflow's own terms: the model as an MLflow model (the dlrun
flavor, :mod:`dlrun.runner.mlflow_model`), its datasets as the run's inputs.

At the end of every successful tracked run whose model was exported (``model.hybridize``,
``logger.log_model``), the run gets ``runs:/<run id>/model``: a ``python_function`` model that
``mlflow.pyfunc.load_model``, ``mlflow models serve`` and the registry take, linked to the run
as its logged model; with ``logger.register_model=NAME`` it becomes a new version of the
registered model NAME, with ``logger.log_onnx=true`` it carries ``model.onnx`` too. The run's
train/val/test splits are logged as its dataset inputs (name, digest, source, size, context).

    dlrun log-model RUN_FOLDER [--register NAME] [--onnx]    # the same for a finished run
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from dlrun.engine.onnx_export import OnnxExportError

from .export import PREFIX, ExportError, export_files
from .mlflow_model import ModelError, is_language_model, read_graph_meta
from .preprocess import InputError, spec_for, text_spec

log = logging.getLogger(__name__)

MODEL_NAME = "model"        # runs:/<run id>/model
CLASSIFY = "ClassifyTask"   # the task whose models are classifiers (predict_type=class)
EXAMPLES = 2                # rows of the input example
SERVING_EXAMPLE = "serving-example.json"  # in the run folder: a body for /invocations
USAGE = """\
usage: dlrun log-model RUN_FOLDER [--register NAME] [--onnx]

Logs the exported model of a finished run (RUN_FOLDER/model-symbol.json + model-0000.params)
to the run's MLflow run as an MLflow model (runs:/<run id>/model), which mlflow.pyfunc,
'mlflow models serve' and the model registry take. --register NAME also makes it a new
version of the registered model NAME; --onnx carries its ONNX conversion along.
"""


class PublishError(ValueError):
    """The run's model cannot be logged: no export, no MLflow run, an unservable graph."""


# errors of the commands below that say what to do: main prints them without a traceback hint
USER_ERRORS = (PublishError, ModelError, InputError, ExportError, OnnxExportError)


def model_info(cfg: DictConfig, graph: dict, data: Any = None) -> dict:
    """What ``dlrun.json`` of the MLflow model holds besides the graph: the task, the number
    of classes and the preprocessing of the run's dataset."""
    (inp,) = graph["inputs"][:1]
    target = str(OmegaConf.select(cfg, "dataset._target_", default=""))
    task = str(OmegaConf.select(cfg, "task._target_", default="")).rsplit(".", 1)[-1]
    out = graph["outputs"][0] or {"shape": []}
    classes = (getattr(data, "num_classes", None) or out["shape"][-1]) if task == CLASSIFY else None
    vocab = getattr(getattr(data, "vocab", None), "itos", None)  # a language model's corpus
    level = str(OmegaConf.select(cfg, "dataset.level", default="word") or "word")
    # the run's dataset and loss: dlrun predict MODEL_URI evaluates on the run's test split
    nodes = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("dataset", "loss") if k in cfg}
    return {"task": task, "dataset": target, "classes": classes, "run_config": nodes,
            "preprocess": text_spec(vocab, level) if vocab else spec_for(target, tuple(inp["shape"][1:]))}


def example_rows(data: Any, graph: dict) -> np.ndarray:
    """A few test examples of ``data`` for the input example of ``graph``'s model: for a
    language model, windows of the test token stream (N, T); noise when there are none."""
    inp = graph["inputs"][0]
    shape, dtype = inp["shape"], np.dtype(inp["dtype"])
    if is_language_model(graph):
        ids = np.asarray(getattr(data, "test", None) if data is not None else [])
        steps = min(int(shape[0]), 8)
        if ids.ndim == 1 and len(ids) >= EXAMPLES * steps:
            return ids[:EXAMPLES * steps].reshape(EXAMPLES, steps).astype(dtype)
        return np.zeros((EXAMPLES, steps), dtype=dtype)
    x = getattr(getattr(data, "test", None), "data", None)
    if isinstance(x, np.ndarray) and x.shape[1:] == tuple(shape[1:]):
        return np.ascontiguousarray(x[:EXAMPLES]).astype(dtype)
    # a GAN's generator takes noise: N(0, 1), seeded
    return np.random.default_rng(0).standard_normal((EXAMPLES, *shape[1:])).astype(dtype)


def corpus_of(cfg: DictConfig, graph: dict) -> Any:
    """For a language model's graph, the corpus its run trained on (its vocabulary goes with
    the model), built from the run's config as the run built it; None for other models."""
    if not is_language_model(graph):
        return None
    from .build import allow_targets, build

    allow_targets(cfg.get("allowed_targets") or [])
    return build(cfg.dataset, "dataset")


def log_run_model(run_dir: Path, cfg: DictConfig, run_id: str, data: Any = None,
                  register: str | None = None, onnx: bool = False) -> Any:
    """Logs the export in ``run_dir`` as the MLflow model ``model`` of the run ``run_id`` in
    the store of ``cfg.logger``; returns MLflow's ModelInfo."""
    import mlflow

    from .mlflow_model import log_model

    symbol, params = export_files(run_dir / PREFIX)
    if not symbol.is_file() or not params.is_file():
        raise PublishError(f"{run_dir} holds no exported model ({symbol.name}, {params.name}); "
                           "only runs with model.hybridize=true export one")
    graph = read_graph_meta(symbol)
    mlflow.set_tracking_uri(str(cfg.logger.tracking_uri))
    example, meta = example_rows(data, graph), model_info(cfg, graph, data)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = _onnx_file(symbol, params, Path(tmp)) if onnx else None
        info = log_model(MODEL_NAME, symbol, params, run_id=run_id, registered_model_name=register,
                         example=example, info=meta, onnx_file=onnx_file)
    # a request body for the served model: curl -d @RUN/serving-example.json .../invocations
    (run_dir / SERVING_EXAMPLE).write_text(json.dumps(
        {"inputs": example.tolist(), **({"params": {"predict_type": "class"}}
                                        if meta["classes"] else {})}) + "\n")
    return info


def _onnx_file(symbol: Path, params: Path, folder: Path) -> Path:
    """The ONNX conversion of the export ``symbol`` + ``params``, written into ``folder``."""
    from dlrun.engine.onnx_export import export_graph_file

    out = folder / "model.onnx"
    export_graph_file(symbol, params, out)
    return out


def log_inputs(cfg: DictConfig, run_id: str, data: Any) -> int:
    """Logs the splits of ``data`` (train, val, test: ArrayDatasets) as the dataset inputs of
    the run ``run_id``; returns how many."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.tracking import MlflowClient

    name = str(OmegaConf.select(cfg, "dataset._target_", default="data")).rsplit(".", 1)[-1]
    inputs = []
    for split in ("train", "val", "test"):
        part = getattr(data, split, None)
        x, y = getattr(part, "data", None), getattr(part, "label", None)
        if not isinstance(x, np.ndarray):
            continue
        ds = mlflow.data.from_numpy(x, targets=y if isinstance(y, np.ndarray) else None,
                                    source=_source(cfg), name=f"{name}-{split}")
        inputs.append(DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", split)]))
    if inputs:
        MlflowClient(str(cfg.logger.tracking_uri)).log_inputs(run_id, datasets=inputs)
    return len(inputs)


def _source(cfg: DictConfig) -> Any:
    """Where the run's data came from: its builder and, for a downloaded dataset, its folder."""
    from mlflow.data.code_dataset_source import CodeDatasetSource

    root = OmegaConf.select(cfg, "dataset.root", default=None)
    return CodeDatasetSource({"dlrun.dataset": str(OmegaConf.select(cfg, "dataset._target_", default="")),
                              **({"root": str(Path(str(root)).expanduser())} if root else {})})


def publish_run(cfg: DictConfig, run_dir: Path, tracker: Any, setup: Any,
                exported: Path | None) -> str | None:
    """The end of a successful run: its datasets, its plots (:mod:`.plots`) and (when exported
    and ``logger.log_model``) its MLflow model go to its MLflow run; returns the model's URI.
    Never raises: the training is done, a failure here is a note (and in dlrun.log)."""
    run_id = getattr(tracker, "run_id", None)
    if run_id is None or tracker.tracking_uri is None:
        return None
    if getattr(tracker, "outage", None) or getattr(tracker, "spooled", None):
        setup.report.note(f"no MLflow model logged: the store is unreachable; once it is back: "
                          f"dlrun sync {run_dir}, then dlrun log-model {run_dir}")
        return None
    from mlflow.tracking import MlflowClient

    from .plots import SKIPPED, figure_class, run_plots, test_predictions

    data, report = setup.data, setup.report
    # a sweep registers its best trial's model only (sweep_end), not each trial's
    register = None if "dlrun.sweep.trial" in tracker.tags else cfg.logger.get("register_model")
    try:
        log_inputs(cfg, run_id, data)
        if cfg.logger.get("log_plots", True) and figure_class() is None:
            report.note(SKIPPED)
        elif cfg.logger.get("log_plots", True):
            classify = str(OmegaConf.select(cfg, "task._target_", default="")).endswith(CLASSIFY)
            run_plots(MlflowClient(tracker.tracking_uri), run_id, run_dir / "plots", data,
                      lambda: test_predictions(setup.net, data, setup.ctx) if classify else None)
        if exported is None or not cfg.logger.log_model:
            return None
        info = log_run_model(run_dir, cfg, run_id, data, register, bool(cfg.logger.get("log_onnx")))
    except ModelError as e:
        report.note(f"no MLflow model logged: {e}")
        return None
    except Exception as e:  # noqa: BLE001 - the store, the disk, an unconvertible op...
        log.warning("logging the run's model, data or plots to MLflow failed", exc_info=True)
        report.note(f"MLflow: {type(e).__name__}: {e}")
        return None
    uri = f"runs:/{run_id}/{MODEL_NAME}"
    version = info.registered_model_version
    return f"{uri}, registered as models:/{register}/{version}" if version else uri


def sweep_end(session: Any, config: DictConfig, study: Any = None) -> None:
    """After a sweep: its Optuna study's plots go to the sweep's parent run, and with
    ``logger.register_model=NAME`` the best trial's model becomes a version of NAME (a note
    says what could not be done)."""
    client, parent = getattr(session, "client", None), getattr(session, "parent_run_id", None)
    if client is None or parent is None:
        return
    from .plots import study_plots

    try:
        for path in study_plots(study, Path(session.dir) / "plots") if study is not None else ():
            client.log_artifact(parent, str(path), "plots")
        name = OmegaConf.select(config, "logger.register_model", default=None)
        best = client.get_run(parent).data.tags.get("dlrun.sweep.best_run_id")
        if name and best:
            import mlflow

            mlflow.set_tracking_uri(session.tracking_uri)
            outputs = client.get_run(best).outputs.model_outputs  # its logged model (the last)
            uri = f"models:/{outputs[-1].model_id}" if outputs else f"runs:/{best}/{MODEL_NAME}"
            version = mlflow.register_model(uri, name).version
            print(f"registered the best trial's model: models:/{name}/{version}")
    except Exception as e:  # noqa: BLE001 - the sweep's results stand without them
        log.warning("the sweep's plots or registration failed", exc_info=True)
        print(f"note: the sweep's plots or model registration failed: {type(e).__name__}: {e}")


# --- dlrun log-model RUN ----------------------------------------------------------------------
def find_run_id(run_dir: Path, uri: str) -> str:
    """The MLflow run of the run folder ``run_dir`` in the store at ``uri`` (its tag
    ``dlrun.run_dir``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    folder = str(run_dir.absolute()).replace("'", "\\'")
    runs = client.search_runs(ids, f"tags.`dlrun.run_dir` = '{folder}'", max_results=2) if ids else []
    if not runs:
        raise PublishError(f"the MLflow store {uri} holds no run of {run_dir} (tag dlrun.run_dir); "
                           "was the run tracked (logger=mlflow) in this store?")
    return runs[0].info.run_id


def log_model_command(argv: Sequence[str]) -> str:
    """``dlrun log-model RUN_FOLDER [--register NAME] [--onnx]``; returns the model's URI."""
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return ""
    run_dir, register, onnx = Path(args.pop(0)).expanduser(), None, False
    while args:
        flag = args.pop(0)
        if flag == "--onnx":
            onnx = True
        elif flag == "--register" and args:
            register = args.pop(0)
        else:
            raise PublishError(f"dlrun log-model cannot take {flag!r}\n{USAGE}")
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise PublishError(f"{run_dir} is not a run folder (no config.yaml)")
    cfg = OmegaConf.load(config)
    if not OmegaConf.select(cfg, "logger.tracking_uri", default=None):
        raise PublishError(f"{run_dir} was not tracked in MLflow (logger=none); its model has no "
                           "MLflow run to go to")
    run_id = find_run_id(run_dir, str(cfg.logger.tracking_uri))
    symbol = export_files(run_dir / PREFIX)[0]
    data = corpus_of(cfg, read_graph_meta(symbol)) if symbol.is_file() else None
    info = log_run_model(run_dir, cfg, run_id, data, register=register, onnx=onnx)
    uri = f"runs:/{run_id}/{MODEL_NAME}"
    print(f"logged {uri} (model id {info.model_id})")
    if info.registered_model_version:
        print(f"registered models:/{register}/{info.registered_model_version}")
    return uri
