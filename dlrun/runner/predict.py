"""``dlrun predict``: evaluates an exported model on the test split of a dataset.

    dlrun predict outputs/runs/DATE/TIME                  # on the dataset the run trained on
    dlrun predict outputs/runs/DATE/TIME/model dataset=mnist dataset.root=~/data

The model is the graph a hybridized run exports (``model-symbol.json`` + ``model-0000.params``,
see :mod:`dlrun.runner.export`), run by a ``SymbolBlock``: no model class, no config of it.
The dataset is composed by Hydra from the same config package as for training, so its
options are the training ones; by default it is the run's own dataset node (from the run
folder's ``.hydra/config.yaml``), which ``dataset.KEY=VALUE`` overrides change.
The graph has static shapes: examples go in batches of its input batch size, the last one
padded with zeros whose outputs are dropped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .console import ConsoleReporter
from .export import PREFIX, export_files
from .mlflow_model import GRAPH, META, PARAMS, download, is_model_uri

USAGE = """\
usage: dlrun predict RUN_FOLDER_OR_PREFIX_OR_MODEL_URI [dataset=NAME] [dataset.KEY=VALUE ...] [device=gpu] [debug=true]

Evaluates a run's exported model (RUN_FOLDER/model-symbol.json + model-0000.params, written
by a run with model.hybridize=true) on the test split of a dataset: by default the one the
run trained on (RUN_FOLDER/.hydra/config.yaml), else dataset=NAME with the options of
dlrun's dataset group (dlrun --help lists them).

  dlrun predict outputs/runs/DATE/TIME
  DLRUN_DATA=~/data dlrun predict outputs/runs/DATE/TIME/model dataset=mnist
  dlrun predict models:/NAME/VERSION          # a registered model (MLFLOW_TRACKING_URI's store)

usage: dlrun predict RUN_FOLDER_OR_MODEL_URI --input FILE [--output OUT.csv|OUT.npy]
                     [--predict-type class|probabilities|logits]

Predictions for new data (a .npy/.npz array or a folder of PNG/JPEG images) through the
run's preprocessing, from a run folder or an MLflow model (models:/NAME/VERSION, runs:/ID/model).
"""
TRAINED = "_trained"   # the dataset group's option holding the run's own dataset node
OVERRIDABLE = ("dataset", "device", "debug")  # what the command line may set


class PredictError(ValueError):
    """``dlrun predict`` cannot run as asked: a missing file, a bad argument, unfit data."""


# --- the command line -----------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> tuple[Path, list[str]]:
    """(the run folder or export prefix: the first argument, the Hydra overrides: the rest).

    The first argument is always the path, since a sweep's trial folders have ``=`` in
    their names (``3_optimizer.lr=0.01``)."""
    if not argv:
        raise PredictError(f"dlrun predict needs a run folder or model prefix\n{USAGE}")
    target, overrides = argv[0], list(argv[1:])
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if "=" not in o or key.split(".")[0].split("/")[0] not in OVERRIDABLE:
            raise PredictError(f"dlrun predict cannot take {o!r}: after the run folder come only "
                               "dataset=NAME, dataset.KEY=VALUE, device=... and debug=... (the "
                               "model is the exported graph)")
    return Path(target).expanduser(), overrides


def locate(target: Path) -> tuple[Path, Path, Path]:
    """(graph file, parameter file, run folder) of a run folder or an export prefix (or its
    ``-symbol.json`` file)."""
    if target.is_dir():
        prefix = target / PREFIX
    else:
        prefix = target.with_name(target.name.removesuffix("-symbol.json"))
    symbol, params = export_files(prefix)
    if not symbol.is_file():
        if target.is_dir():
            raise PredictError(f"{target} holds no exported model ({symbol.name}); only runs with "
                               "model.hybridize=true export one, and a model that cannot be "
                               "traced is not exported (its dlrun.log says why)")
        raise PredictError(f"no such run folder or exported model: {target} (give a run folder, "
                           f"or the prefix PATH of PATH-symbol.json)")
    if not params.is_file():
        raise PredictError(f"{params} is missing; it is written beside {symbol.name} by the export")
    return symbol, params, prefix.parent


# --- the config -------------------------------------------------------------------------------
def run_config(run_dir: Path) -> DictConfig | None:
    """The composed config of the run in ``run_dir`` (None when it has none)."""
    path = run_dir / ".hydra" / "config.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def chooses_dataset(overrides: Sequence[str]) -> bool:
    """Whether ``overrides`` choose a dataset (``dataset=NAME``)."""
    return any(o.split("=", 1)[0].lstrip("+~") == "dataset" for o in overrides)


def compose_config(overrides: Sequence[str], trained: DictConfig | None) -> DictConfig:
    """dlrun's config with ``overrides``; its dataset the run's (``trained``) unless an
    override chooses one."""
    from hydra import compose, initialize_config_module
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import register_configs

    register_configs()
    overrides = list(overrides)
    if trained is not None and not chooses_dataset(overrides):
        ConfigStore.instance().store(group="dataset", name=TRAINED, node=trained.dataset)
        overrides.insert(0, f"dataset={TRAINED}")
    try:
        with initialize_config_module(config_module="dlrun.conf", version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        cause = f"\n{e.__cause__}" if e.__cause__ else ""
        raise PredictError(f"{e}{cause}".strip()) from None


# --- evaluation -------------------------------------------------------------------------------
def padded_batches(data: np.ndarray, label: np.ndarray, batch: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """(examples, labels, real rows) in batches of exactly ``batch`` examples, the last one
    padded with zeros."""
    for start in range(0, len(data), batch):
        x, y = data[start:start + batch], label[start:start + batch]
        real = len(x)
        if real < batch:
            x = np.concatenate([x, np.zeros((batch - real, *x.shape[1:]), dtype=x.dtype)])
        yield x, y, real


def check_input(graph: Any, test: Any, dataset: str) -> None:
    """Raises PredictError unless the graph takes one input of the test examples' shape and
    dtype."""
    if len(graph.input_meta) != 1:
        raise PredictError(f"the exported model takes {len(graph.input_meta)} inputs "
                           f"({', '.join(graph.input_names)}); dlrun predict evaluates classifiers "
                           "of one input")
    (shape, dtype), = graph.input_meta
    example, got = tuple(test.data.shape[1:]), np.dtype(test.data.dtype)
    if tuple(shape[1:]) != example or np.dtype(dtype) != got:
        raise PredictError(f"the exported model takes {np.dtype(dtype).name} examples of shape "
                           f"{'x'.join(map(str, shape[1:]))}, but {dataset} has {got.name} examples "
                           f"of shape {'x'.join(map(str, example))}; give a dataset like the "
                           "one it was trained on (dataset=NAME)")


def check_output(out: Any, num_classes: int, dataset: str) -> None:
    """Raises PredictError unless ``out`` holds a score per class of each example."""
    if out.ndim != 2:
        raise PredictError(f"the exported model gives outputs of shape {list(out.shape)}, not a "
                           "score per class of each example; dlrun predict evaluates classifiers")
    if out.shape[1] < num_classes:
        raise PredictError(f"the exported model has {out.shape[1]} outputs but {dataset} has "
                           f"{num_classes} classes")


def evaluate(block: Any, test: Any, loss: Any, ctx: Any, batch: int, num_classes: int,
             dataset: str) -> dict[str, float]:
    """Accuracy (argmax) and mean loss of ``block`` on ``test``, in batches of ``batch``."""
    from dlrun.engine import array

    loss_sum, correct, count = 0.0, 0, 0
    for x, y, real in padded_batches(test.data, test.label, batch):
        out = block(array(x, ctx=ctx))
        if count == 0:
            check_output(out, num_classes, dataset)
        out = out[:real]
        loss_sum += float(loss(out, array(y, ctx=ctx)).sum().asscalar())
        pred = out.argmax(axis=1).asnumpy().astype(np.int64)
        correct += int((pred == np.asarray(y).astype(np.int64)).sum())
        count += real
    return {"test/accuracy": correct / max(count, 1), "test/loss": loss_sum / max(count, 1),
            "correct": correct, "examples": count}


# --- the command ------------------------------------------------------------------------------
def predict(argv: Sequence[str]) -> dict[str, float]:
    """Runs ``dlrun predict ARGV``: prints the model, the data and the results table; returns
    the metrics (empty for ``--help``)."""
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE, end="")
        return {}
    target, overrides = parse_args(argv)
    if is_model_uri(argv[0]):  # an MLflow model: its files, and the run's dataset and loss
        folder = download(argv[0])
        symbol, params = folder / GRAPH, folder / PARAMS
        nodes = json.loads((folder / META).read_text(encoding="utf-8")).get("run_config")
        trained = OmegaConf.create(nodes) if nodes else None
    else:
        symbol, params, run_dir = locate(target)
        trained = run_config(run_dir)
    cfg = compose_config(overrides, trained)

    from dlrun.nn import SymbolBlock

    from .build import allow_targets, build, make_context

    allow_targets(cfg.get("allowed_targets") or [])  # the run's own packages (its dataset, loss)
    ctx = make_context(cfg.device)
    block = SymbolBlock.imports(symbol, None, params, ctx=ctx)  # a corrupt graph fails here
    data = build(cfg.dataset, "dataset")
    name = str(cfg.dataset._target_).rsplit(".", 1)[-1]
    task = getattr(data, "task", "classify")
    if task != "classify":
        raise PredictError(f"{name} is data for the {task} task; dlrun predict evaluates "
                           "classifiers (datasets of the classify task, such as digits or mnist)")
    test = data.test
    check_input(block.graph, test, name)
    loss = build(trained.loss if trained is not None else cfg.loss, "loss")
    console = ConsoleReporter()
    n_params = sum(int(np.prod(p.shape)) for p in block.collect_params().values())
    own = trained is not None and not chooses_dataset(overrides)
    batch = block.graph.input_meta[0][0][0]  # the graph's shapes are static
    console.header("dlrun predict", [
        ("model", f"{symbol} ({n_params:,} parameters, batch {batch})"),
        ("dataset", f"{name}{' (the one the run trained on)' if own else ''}, "
                    f"{len(test):,} test examples"),
        ("loss", type(loss).__name__),
        ("device", str(ctx)),
    ])
    metrics = evaluate(block, test, loss, ctx, batch, data.num_classes, name)
    console.results("Results", [
        ("test accuracy", f"{metrics['test/accuracy']:.2%} ({metrics['correct']:,} of "
                          f"{metrics['examples']:,})"),
        ("test loss", f"{metrics['test/loss']:.4f}"),
        ("examples", f"{metrics['examples']:,}"),
    ])
    return metrics
