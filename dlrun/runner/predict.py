"""``dlrun test`` / ``dlrun predict``: evaluates a run's model on the test split of a dataset.

    dlrun test outputs/runs/DATE/TIME                     # on the dataset the run trained on
    dlrun predict outputs/runs/DATE/TIME/model dataset=mnist dataset.root=~/data

A run folder's model is rebuilt from the run's config (``config.yaml``) with its weights
(``model.npz``: the selected model) and evaluated by the run's own task, as at the end of
the training (:func:`dlrun.runner.assemble.rebuild_task`): any model, hybridized or
imperative, of any task, and the same ``test/...`` figures the run recorded. An export
prefix (``RUN/model``) or an MLflow model URI is the graph a hybridized run exports
(``model-symbol.json`` + ``model-0000.params``, see :mod:`dlrun.runner.export`), run by a
``SymbolBlock``: no model class, no config of it; it evaluates classifiers. The graph has
static shapes: examples go in batches of its input batch size, the last one padded with
zeros whose outputs are dropped.

The dataset is composed by Hydra from the same config package as for training, so its
options are the training ones; by default it is the run's own dataset node, which
``dataset.KEY=VALUE`` overrides change.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from .console import ConsoleReporter
from .export import PREFIX, WEIGHTS, export_files
from .mlflow_model import GRAPH, META, PARAMS, download, is_model_uri
from .pairing import mismatch
from .resume import resumed_choices

USAGE = """\
usage: dlrun test|predict RUN_FOLDER_OR_PREFIX_OR_MODEL_URI [dataset=NAME] [dataset.KEY=VALUE ...] [device=gpu] [debug=true]

Evaluates a run's model on the test split of a dataset: by default the one the run trained
on, else dataset=NAME with the options of dlrun's dataset group (dlrun --help lists them).
A RUN_FOLDER's model (any model, hybridized or not) is rebuilt from its config.yaml with
its weights, model.npz, and evaluated by the run's task, as the run did at its end; an
export prefix (RUN_FOLDER/model: model-symbol.json + model-0000.params, written by a run
with model.hybridize=true) or an MLflow model is run as its graph (classifiers).

  dlrun test outputs/runs/DATE/TIME
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
                               "model is the run's)")
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
    """The config of the run in ``run_dir``: the resolved one it ran with (``config.yaml``),
    else Hydra's record of it (``.hydra/config.yaml``); None when it has neither."""
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            return OmegaConf.load(path)
    return None


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


# --- a run folder: its own task, rebuilt around its weights ------------------------------------
class _Notes:
    """The reporter of a rebuilt task: its notes go to the console; its files (a GAN's
    scorer) stay in the scratch folder, out of the run folder."""

    def __init__(self, console: ConsoleReporter):
        self.console = console

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Nothing to keep: the evaluation records no files."""


def evaluation_config(run_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """The config of the run in ``run_dir`` with the dataset and the device of ``overrides``
    (by default the run's dataset, on the CPU)."""
    trained = run_config(run_dir)
    composed = compose_config(overrides, trained)
    cfg = OmegaConf.create(OmegaConf.to_container(trained))
    with open_dict(cfg):
        cfg.dataset, cfg.device = composed.dataset, composed.device
    choices = {"model": resumed_choices(run_dir).get("model", ""),
               **{o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] for o in overrides
                  if chooses_dataset([o])}}
    unfit = mismatch(cfg.model, cfg.dataset, choices)
    if unfit:
        raise PredictError(unfit)
    return cfg


def evaluate_run(run_dir: Path, overrides: Sequence[str]) -> dict[str, float]:
    """``dlrun test RUN_FOLDER [OVERRIDES]``: the run's model rebuilt from its config with its
    weights, evaluated on the test split by the run's task; prints the header and the
    results; returns the task's ``test/...`` metrics."""
    import tempfile

    from dlrun.nn import ParameterFileError

    from .assemble import describe_model, rebuild_task
    from .build import allow_targets

    cfg = evaluation_config(run_dir, overrides)
    allow_targets(cfg.get("allowed_targets") or [])  # the run's own packages
    console = ConsoleReporter()
    with tempfile.TemporaryDirectory(prefix="dlrun-test-") as scratch:
        try:
            task = rebuild_task(cfg, run_dir, _Notes(console), Path(scratch))
        except ParameterFileError as e:  # the data shaped another model than the run's
            raise PredictError(f"{e}; the model is built as the run's config says, shaped by the "
                               "data it is tested on: give data of the shapes and classes the "
                               "run trained on") from None
        s, own = task.setup, not chooses_dataset(overrides)
        console.header("dlrun test", [
            ("run", str(run_dir)),
            ("model", f"{type(s.net).__name__} ({describe_model(s.net, cfg.model)}), the "
                      f"selected model's weights from {WEIGHTS}"),
            ("dataset", f"{str(cfg.dataset._target_).rsplit('.', 1)[-1]}"
                        f"{' (the one the run trained on)' if own else ''}, its test split"),
            ("task", type(task).__name__),
            ("device", str(s.ctx)),
        ])
        metrics = task.evaluate("test")
    console.results("Results", [(label, fmt.format(metrics[key])) for label, key, fmt in task.results
                                if key in metrics])
    return metrics


# --- the command ------------------------------------------------------------------------------
def predict(argv: Sequence[str]) -> dict[str, float]:
    """Runs ``dlrun predict ARGV``: prints the model, the data and the results table; returns
    the metrics (empty for ``--help``)."""
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE, end="")
        return {}
    target, overrides = parse_args(argv)
    if not is_model_uri(argv[0]) and target.is_dir() and run_config(target) is not None:
        return evaluate_run(target, overrides)  # a run folder: its task, rebuilt
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
