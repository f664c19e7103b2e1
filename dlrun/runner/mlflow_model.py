"""dlrun's MLflow model flavor: a run's exported graph as an MLflow ``python_function`` model.

    info = log_model("model", symbol_file, params_file, example=x[:2], run_id=RUN_ID)
    mlflow.pyfunc.load_model(f"runs:/{RUN_ID}/model").predict(x)   # the network's outputs

The model folder holds ``MLmodel`` (flavors ``python_function`` and ``dlrun``), the signature
(input ``data``: the examples' dtype and shape with a variable batch axis; the output), an
input example, ``requirements.txt`` pinning this dlrun, and under ``data/`` the exported graph
(``model-symbol.json``), its parameters (``model-0000.params``, npz), optionally its ONNX
conversion, and ``dlrun.json``: the task, the classes and the preprocessing of the run's
dataset (:mod:`dlrun.runner.preprocess`). Nothing is pickled: loading reads JSON and npz.

``predict(batch, params={"predict_type": ...})`` gives ``logits`` (the network's outputs, the
default), ``probabilities`` (their softmax) or ``class`` (the argmax, for classifiers);
``params={"pixels": True}`` takes images of pixel values (0..255) and standardises them as
the run's dataset did. The graph has static shapes, so batches run in chunks of its batch
size, the last one padded. A language model's graph (tokens and states in, logits and states
out) is served too: (N, T) token ids in, the next token's logits (N, vocabulary) out.
"""
from __future__ import annotations

import json
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .preprocess import InputError, standardise

FLAVOR_NAME = "dlrun"
DATA = "dlrun"                 # the model's own files, under <model>/data/dlrun/
GRAPH, PARAMS, META, ONNX = "model-symbol.json", "model-0000.params", "dlrun.json", "model.onnx"
PREDICT_TYPES = ("logits", "probabilities", "class")


class ModelError(ValueError):
    """A model or a batch the flavor cannot serve; the message says what was expected."""


def dlrun_version() -> str:
    """The installed dlrun's version (what ``requirements.txt`` pins)."""
    try:
        return metadata.version("dlrun")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
        return "0.1.0"


def read_graph_meta(symbol_file: Path) -> dict:
    """The inputs and outputs of the exported graph ``symbol_file`` (its JSON, not its ops)."""
    spec = json.loads(Path(symbol_file).read_text(encoding="utf-8"))
    meta = [None] * (len(spec["inputs"]) + len(spec["params"]) + len(spec["constants"]))
    meta += [m for node in spec["nodes"] for m in node["outputs"]]  # the slots, in order
    return {"inputs": spec["inputs"], "outputs": [meta[s] for s in spec["outputs"]]}


def is_language_model(graph: dict) -> bool:
    """Whether ``graph`` is a language model's: (T, N) token ids and the (layers, N, hidden)
    states h and c in; logits (T, N, vocabulary) and the states out."""
    ins, outs = graph["inputs"], graph["outputs"]
    return (len(ins) == 3 and len(outs) == 3 and np.dtype(ins[0]["dtype"]).kind in "iu"
            and len(ins[0]["shape"]) == 2 and all(len(i["shape"]) == 3 for i in ins[1:])
            and outs[0] is not None and len(outs[0]["shape"]) == 3)


def check_servable(graph: dict) -> None:
    """Raises ModelError unless the graph takes one input and gives one output, or is a
    language model's (:func:`is_language_model`): the models the flavor serves."""
    ins, outs = graph["inputs"], graph["outputs"]
    if not is_language_model(graph) and (len(ins) != 1 or len(outs) != 1 or outs[0] is None):
        raise ModelError(f"the exported graph takes {len(ins)} inputs and gives {len(outs)} "
                         "outputs; the dlrun MLflow flavor serves models of one input and one "
                         "output (a classifier, a regressor, a GAN's generator) and language "
                         "models (tokens and states in, logits and states out); export this one "
                         "with 'dlrun export RUN --format onnx' instead")


def signature_for(graph: dict) -> Any:
    """The MLflow signature of ``graph``: tensor ``data`` with a variable batch axis, the
    output likewise, and the ``predict_type`` parameter. A language model takes (N, T) token
    ids (any N and T) and gives the next token's logits (N, vocabulary)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    inp, out = graph["inputs"][0], graph["outputs"][0]
    ins, outs = (-1, *inp["shape"][1:]), (-1, *out["shape"][1:])
    if is_language_model(graph):
        ins, outs = (-1, -1), (-1, out["shape"][-1])
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(inp["dtype"]), ins, inp["name"])]),
        outputs=Schema([TensorSpec(np.dtype(out["dtype"]), outs)]),
        params=ParamSchema([ParamSpec("predict_type", "string", "logits"),
                            ParamSpec("pixels", "boolean", False)]))


def save_model(path: str | Path, symbol_file: str | Path, params_file: str | Path,
               mlflow_model: Any = None, example: np.ndarray | None = None,
               info: dict | None = None, onnx_file: str | Path | None = None,
               metadata: dict | None = None) -> None:
    """Writes the MLflow model of the export ``symbol_file`` + ``params_file`` into ``path``.

    ``info`` is what ``dlrun.json`` holds besides the graph (task, classes, preprocessing);
    ``example`` (a few examples) becomes the input example; ``onnx_file`` is carried along.
    """
    import mlflow.pyfunc
    from mlflow.models import Model
    from mlflow.models.utils import _save_example

    graph = read_graph_meta(Path(symbol_file))
    check_servable(graph)
    path = Path(path)
    data = path / "data" / DATA
    data.mkdir(parents=True)
    shutil.copyfile(symbol_file, data / GRAPH)
    shutil.copyfile(params_file, data / PARAMS)
    if onnx_file is not None:
        shutil.copyfile(onnx_file, data / ONNX)
    (data / META).write_text(json.dumps({**(info or {}), "graph": graph}, indent=1) + "\n")
    model = mlflow_model if mlflow_model is not None else Model()
    model.signature = signature_for(graph)
    if metadata is not None:
        model.metadata = metadata
    if example is not None:
        _save_example(model, example, str(path))
    write_environment(path)
    mlflow.pyfunc.add_to_model(model, loader_module=__name__, data=f"data/{DATA}",
                               conda_env="conda.yaml", python_env="python_env.yaml")
    model.add_flavor(FLAVOR_NAME, dlrun_version=dlrun_version(), data=f"data/{DATA}", graph=GRAPH,
                     params=PARAMS, **({"onnx": ONNX} if onnx_file is not None else {}))
    model.save(str(path / "MLmodel"))


def write_environment(path: Path) -> None:
    """``requirements.txt`` (this mlflow and this dlrun), ``python_env.yaml`` and ``conda.yaml``
    of the model in ``path``: what ``mlflow models serve`` without ``--env-manager local``
    installs. Written here rather than by MLflow, which scans every installed distribution
    for it (1.7 s on two cores, at the end of every run)."""
    import platform

    from omegaconf import OmegaConf

    pins = [f"mlflow=={metadata.version('mlflow')}", f"dlrun=={dlrun_version()}"]
    python = platform.python_version()
    (path / "requirements.txt").write_text("\n".join(pins) + "\n")
    (path / "python_env.yaml").write_text(OmegaConf.to_yaml(
        {"python": python, "build_dependencies": ["pip", "setuptools", "wheel"],
         "dependencies": ["-r requirements.txt"]}))
    (path / "conda.yaml").write_text(OmegaConf.to_yaml(
        {"name": "mlflow-env", "channels": ["conda-forge"],
         "dependencies": [f"python={python}", "pip", {"pip": pins}]}))


def log_model(name: str, symbol_file: str | Path, params_file: str | Path, *, run_id: str,
              registered_model_name: str | None = None, **kwargs: Any) -> Any:
    """Logs the model of :func:`save_model` (``kwargs``) as ``name`` of the MLflow run
    ``run_id`` (a logged model linked to it), registered as ``registered_model_name`` when
    given; returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import Model

    # the logged model goes to the run's experiment (else to the active one: Default)
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    return Model.log(artifact_path=None, name=name, flavor=sys.modules[__name__], run_id=run_id,
                     registered_model_name=registered_model_name, symbol_file=symbol_file,
                     params_file=params_file, await_registration_for=30, **kwargs)


def the_input(model_input: Any) -> Any:
    """The one input of ``model_input`` (MLflow passes a named tensor as a {name: array})."""
    if isinstance(model_input, dict):
        if len(model_input) != 1:
            raise ModelError(f"the model takes one input ('data'), got {sorted(model_input)}")
        return next(iter(model_input.values()))
    return model_input


def is_model_uri(target: str) -> bool:
    """Whether ``target`` names an MLflow model (``models:/NAME/VERSION``, ``runs:/ID/model``)."""
    return str(target).startswith(("models:/", "runs:/"))


def download(uri: str) -> Path:
    """The local ``data/dlrun`` folder of the dlrun MLflow model ``uri``, from the store of
    MLFLOW_TRACKING_URI (default: outputs/mlflow.db under the current folder, as dlrun's)."""
    import os

    import mlflow
    from mlflow.models import Model

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI")
                            or f"sqlite:///{Path('outputs/mlflow.db').absolute()}")
    try:
        local = Path(mlflow.artifacts.download_artifacts(uri))
        flavors = Model.load(str(local / "MLmodel")).flavors
    except Exception as e:  # noqa: BLE001 - no such model/version, an unreachable store
        raise ModelError(f"cannot load {uri} from {mlflow.get_tracking_uri()}: {e}") from None
    if FLAVOR_NAME not in flavors:
        raise ModelError(f"{uri} is not a dlrun model (its MLmodel has no dlrun flavor, only "
                         f"{', '.join(flavors)})")
    return local / flavors[FLAVOR_NAME]["data"]


# --- loading (MLflow calls _load_pyfunc with the model's data folder) -----------------------
def _load_pyfunc(data_path: str) -> "DlrunModel":
    return DlrunModel.load(Path(data_path))


class DlrunModel:
    """The pyfunc of a dlrun model: the graph run by a ``SymbolBlock`` on the CPU."""

    def __init__(self, block: Any, meta: dict):
        self.block = block
        self.meta = meta
        inp = meta["graph"]["inputs"][0]
        self.language_model = is_language_model(meta["graph"])
        self.batch = int(inp["shape"][0])
        # a language model takes (N, T) token ids of any T
        self.example_shape = (-1,) if self.language_model else tuple(inp["shape"][1:])
        self.dtype = np.dtype(inp["dtype"])

    @classmethod
    def load(cls, data: Path) -> "DlrunModel":
        """The model of an MLflow model's ``data/dlrun`` folder."""
        meta = json.loads((data / META).read_text(encoding="utf-8"))
        return cls.from_export(data / GRAPH, data / PARAMS, meta)

    @classmethod
    def from_export(cls, symbol_file: Path, params_file: Path, meta: dict) -> "DlrunModel":
        """The model of an export (``HybridBlock.export``'s two files) described by ``meta``
        (what ``dlrun.json`` holds)."""
        from dlrun.engine import cpu
        from dlrun.nn import SymbolBlock

        check_servable(meta["graph"])
        return cls(SymbolBlock.imports(symbol_file, None, params_file, ctx=cpu()), meta)

    def predict(self, model_input: Any, params: dict | None = None) -> np.ndarray:
        """The outputs for the examples ``model_input`` (an array, or a {name: array} dict;
        MLflow makes a DataFrame of flattened examples one); ``params['predict_type']`` as
        the module says."""
        params = params or {}
        try:
            if params.get("pixels"):  # raw pixels: standardised as the run's dataset did
                model_input = self.standardise(model_input)
            return self.predict_as(params.get("predict_type", "logits"), model_input)
        except (ModelError, InputError) as e:  # a 400 with its message when served, not a 500
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(str(e)) from None

    def standardise(self, pixels: Any) -> np.ndarray:
        """Images of pixel values (0..255, the model's size) as the run's dataset gave them."""
        spec = self.meta.get("preprocess") or {}
        if spec.get("kind") != "image":
            raise ModelError("pixels=true is for models trained on images; this one takes "
                             f"examples of shape {list(self.example_shape)} as they are")
        return standardise(spec, np.asarray(the_input(pixels)))

    def predict_as(self, kind: str, model_input: Any) -> np.ndarray:
        """:meth:`predict` with ``predict_type`` ``kind``; a bad batch is a ModelError."""
        if kind not in PREDICT_TYPES:
            raise ModelError(f"predict_type {kind!r} is not one of {', '.join(PREDICT_TYPES)}")
        out = self.outputs(self.as_batch(model_input))
        if kind == "logits":
            return out
        if out.ndim != 2:
            raise ModelError(f"predict_type {kind!r} needs a score per class of each example; "
                             f"this model gives outputs of shape {list(out.shape)}")
        if kind == "class":
            return out.argmax(axis=1).astype(np.int64)
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def as_batch(self, model_input: Any) -> np.ndarray:
        """``model_input`` as an array of examples of the graph's shape and dtype."""
        x = np.asarray(the_input(model_input))
        if self.language_model:
            if x.ndim != 2 or x.shape[1] == 0 or x.dtype.kind not in "iu":
                raise ModelError(f"the language model takes (N, T) integer token ids, got a "
                                 f"{x.dtype} array of shape {list(x.shape)}")
            return x.astype(self.dtype, copy=False)
        size = int(np.prod(self.example_shape))
        if x.ndim == 2 and x.shape[1] == size and x.shape[1:] != self.example_shape:
            x = x.reshape(len(x), *self.example_shape)  # flattened examples
        if x.shape[1:] != self.example_shape:
            raise ModelError(f"the model takes examples of shape {list(self.example_shape)} "
                             f"(batch axis first), got an array of shape {list(x.shape)}")
        if x.dtype.kind not in "biuf":
            raise ModelError(f"the model takes numbers ({self.dtype.name}), got {x.dtype}")
        return x.astype(self.dtype, copy=False)

    def next_token_logits(self, tokens: np.ndarray) -> np.ndarray:
        """A language model's logits of the token after each row of ``tokens`` (N, T), from
        zero states. The graph's ops take any T and N, so it runs as it is."""
        from dlrun.engine import array, cpu

        vocab = self.meta["graph"]["outputs"][0]["shape"][-1]
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise ModelError(f"token ids must lie in [0, {vocab}), got {tokens.min()}..{tokens.max()}")
        graph, ctx = self.block.graph, cpu()
        layers, _, hidden = self.meta["graph"]["inputs"][1]["shape"]
        zeros = array(np.zeros((layers, len(tokens), hidden), np.float32), ctx=ctx)
        params = [self.block.collect_params()[n].data() for n in graph.param_names]
        logits = graph.run([array(np.ascontiguousarray(tokens.T), ctx=ctx), zeros, zeros],
                           params, ctx)[0]
        return logits.asnumpy()[-1]

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The graph's outputs for ``x``, in chunks of its batch size (the last one padded)."""
        from dlrun.engine import array, cpu

        if self.language_model:
            return self.next_token_logits(x)
        parts = []
        for start in range(0, len(x), self.batch):
            chunk = x[start:start + self.batch]
            real = len(chunk)
            if real < self.batch:
                chunk = np.concatenate([chunk, np.zeros((self.batch - real, *self.example_shape),
                                                        dtype=self.dtype)])
            parts.append(self.block(array(chunk, ctx=cpu())).asnumpy()[:real])
        if not parts:
            raise ModelError("the batch holds no examples")
        return np.concatenate(parts)
