"""``dlrun predict MODEL --input FILE``: predictions for new data, through the run's own
preprocessing, written to a CSV (or NPY) file.

    dlrun predict outputs/runs/DATE/TIME --input digits.npy          # a run folder
    dlrun predict models:/digits-mlp/1 --input images/ --output p.csv  # a registered model
    dlrun predict runs:/RUN_ID/model --input x.npz --predict-type logits

MODEL is a run folder (its export, its config's dataset for the preprocessing) or an MLflow
model URI (``models:/NAME/VERSION``, ``models:/NAME/latest``, ``runs:/ID/model``) in the store
of MLFLOW_TRACKING_URI (default: outputs/mlflow.db under the current folder, as dlrun's).
FILE is a ``.npy``/``.npz`` array or a folder of PNG/JPEG images (:mod:`.preprocess`), or for
a language model a text file. The CSV has a row per example: its name, the class and its
probability (a classifier), the next token of each line and its probability (a language
model), or the outputs. ``--output X.npy`` writes the array instead.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from omegaconf import OmegaConf

from .mlflow_model import PREDICT_TYPES, DlrunModel, download, is_model_uri, read_graph_meta
from .predict import PredictError, locate
from .preprocess import read_input, read_text
from .publish import corpus_of, model_info

CHUNK = 256  # examples per step of the progress bar
OPTIONS = ("--input", "--output", "--predict-type")


def parse(argv: Sequence[str]) -> tuple[str, dict[str, str]]:
    """(the model, {option: value}) of ``dlrun predict MODEL --input FILE [...]``."""
    target, rest = argv[0], list(argv[1:])
    options = dict(zip(rest[::2], rest[1::2]))
    bad = [o for o in rest[::2] if o not in OPTIONS]
    if bad or len(rest) % 2:
        raise PredictError(f"dlrun predict {target} --input FILE takes only "
                           f"{', '.join(OPTIONS)}, each with a value; got {' '.join(rest)}")
    kind = options.get("--predict-type", "class")  # checked here, defaulted by the model
    if kind not in PREDICT_TYPES:
        raise PredictError(f"--predict-type {kind!r}: use one of {', '.join(PREDICT_TYPES)}")
    return target, options


def load(target: str) -> DlrunModel:
    """The model of a run folder or of an MLflow model URI."""
    if is_model_uri(target):
        return DlrunModel.load(download(target))
    symbol, params, run_dir = locate(Path(target).expanduser())
    config = run_dir / "config.yaml"
    cfg = OmegaConf.load(config) if config.is_file() else OmegaConf.create({})
    graph = read_graph_meta(symbol)
    meta = model_info(cfg, graph, corpus_of(cfg, graph))  # a language model's vocabulary
    return DlrunModel.from_export(symbol, params, {**meta, "graph": graph})


def predict_input(argv: Sequence[str]) -> Path:
    """Runs ``dlrun predict MODEL --input FILE ...``; returns the file written."""
    from rich.progress import track

    target, options = parse(argv)
    if "--input" not in options:
        raise PredictError("dlrun predict MODEL needs --input FILE (a .npy/.npz or a folder of images)")
    model = load(target)
    source = Path(options["--input"]).expanduser()
    spec = model.meta.get("preprocess") or {"kind": "none"}
    path = Path(options.get("--output") or f"{source.stem or 'input'}-predictions.csv")
    if model.language_model:  # a text file: the next token of each line
        rows, _ = read_text(source, spec)
        out = np.concatenate([model.predict_as("logits", ids[None]) for ids in
                              track(rows, description=f"predicting {len(rows)} lines")])
        write(path, out, [str(n) for n in range(1, len(rows) + 1)],
              options.get("--predict-type", "class"), spec["vocab"])
        print(f"wrote {len(out)} predictions of {target} to {path}")
        return path
    x, names = read_input(source, spec, model.example_shape)
    # a classifier's default: its classes; other models' (a GAN's generator): their outputs
    kind = options.get("--predict-type", "class" if model.meta.get("classes") else "logits")
    parts = [model.predict_as("logits", x[i:i + CHUNK]) for i in
             track(range(0, len(x), CHUNK), description=f"predicting {len(x)} examples")]
    out = np.concatenate(parts)
    write(path, out, names, kind)
    print(f"wrote {len(out)} predictions of {target} to {path}")
    return path


def write(path: Path, outputs: np.ndarray, names: list[str], kind: str,
          vocab: list[str] | None = None) -> None:
    """The predictions as ``path`` (.npy: the ``kind`` array; else CSV rows per example; a
    language model's class is its next token, from ``vocab``)."""
    values: Any = outputs
    if kind != "logits":
        e = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        values = probs if kind == "probabilities" else probs.argmax(axis=1)
    if path.suffix == ".npy":
        np.save(path, values)
        return
    if kind == "class" and vocab is not None:
        rows = [f"{n},{json.dumps(vocab[c])},{probs[i, c]:.6f}" for i, (n, c) in enumerate(zip(names, values))]
        header = "line,next_token,probability"
    elif kind == "class":
        rows = [f"{n},{c},{probs[i, c]:.6f}" for i, (n, c) in enumerate(zip(names, values))]
        header = "example,class,probability"
    else:
        flat = values.reshape(len(values), -1)
        rows = [",".join([n, *(f"{v:.7g}" for v in row)]) for n, row in zip(names, flat)]
        column = "output" if kind == "logits" else kind
        header = ",".join(["example", *(f"{column}_{j}" for j in range(flat.shape[1]))])
    path.write_text("\n".join([header, *rows]) + "\n")
