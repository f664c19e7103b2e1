"""A run's model files: its weights ``model.npz`` and, for a hybridized run, the exported
model ``model-symbol.json`` (the graph) + ``model-0000.params`` (its parameters), written by
``HybridBlock.export`` and read by ``dlrun predict``, ONNX export and the MLflow model.

The graph is the model's last predict-mode call (the last batch of the final evaluation), so
its input shapes are static; ``dlrun predict`` pads its own last batch to that size.

A run keeps its weights once: where the export's parameter file holds exactly the model's
parameters (every exported model but a GAN, whose export is its generator alone),
``model.npz`` is a hard link to it (a copy where the filesystem has none). Both names stay,
because each has its readers: ``model-0000.params`` beside ``model-symbol.json`` is the
prefix-epoch pair ``SymbolBlock.imports`` and MXNet users expect; ``model.npz`` is what
``net.load_parameters``, ``dlrun test`` and a GAN's scorer (``task.scorer=RUN``) read, for
hybridized and imperative runs alike (an imperative run has no export to share it with).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.engine.files import link_atomic

from .console import Reporter

log = logging.getLogger(__name__)

PREFIX = "model"        # <run folder>/model-symbol.json, <run folder>/model-0000.params
EPOCH = 0
WEIGHTS = "model.npz"   # <run folder>/model.npz: the run's weights, hybridized or not
ARTIFACT_PATH = "export"  # where MLflow keeps the graph (model/ is the MLflow model, dlrun.runner.publish)


def export_files(prefix: Path) -> tuple[Path, Path]:
    """(graph file, parameter file) of the export at ``prefix``."""
    return Path(f"{prefix}-symbol.json"), Path(f"{prefix}-{EPOCH:04d}.params")


def export_model(net: Any, run_dir: Path, report: Reporter) -> Path | None:
    """Exports the hybridized ``net`` (a GAN's generator) into ``run_dir``.

    Returns the graph file, or None when the model cannot be exported (not a HybridBlock,
    untraceable, no predict-mode call): then a note says why. Never raises: the training is
    done and its results matter more than the export.
    """
    if not callable(getattr(net, "export", None)) and callable(getattr(getattr(
            net, "generator", None), "export", None)):
        net = net.generator  # a GAN: its generator is the model that makes things (images from noise)
    if not callable(getattr(net, "export", None)):
        report.note(f"model not exported: {type(net).__name__} is not a HybridBlock (its "
                    "hybridized parts run as graphs, but only a HybridBlock exports as one)")
        return None
    prefix = run_dir / PREFIX
    try:
        files = [Path(f) for f in net.export(str(prefix), EPOCH)]
    except Exception as e:  # untraceable, an attribute a graph cannot hold, a full disk...
        log.warning("exporting the model failed", exc_info=True)
        for f in export_files(prefix):  # no half export for dlrun predict to trip over
            f.unlink(missing_ok=True)
        report.note(f"model not exported: {e}")
        return None
    return files[0]


def save_weights(net: Any, run_dir: Path, exported: Path | None) -> bool:
    """Writes ``run_dir/model.npz``, the parameters of ``net``: a second name of the export's
    parameter file when that holds exactly them (see the module), else a file of its own.
    Returns whether it is the export's file. An ``OSError`` names ``model.npz``."""
    target = run_dir / WEIGHTS
    params = export_files(run_dir / PREFIX)[1] if exported is not None else None
    if params is not None and params.is_file():
        with np.load(params, allow_pickle=False) as f:  # its names only: no array is read
            names = {k for k in f.files if not k.startswith("const:")}
        if names == set(net.collect_params()):
            link_atomic(params, target)
            return True
    net.save_parameters(str(target))
    return False


def log_model_files(tracker: Any, run_dir: Path, exported: Path | None, shared: bool) -> None:
    """The run's model files as plain artifacts of its MLflow run, each weights file once:
    ``model.npz``, and with an export its graph under ``export/`` (with its own parameter
    file only where that is not ``model.npz``: a GAN's generator). The MLflow model
    (``model/``, :mod:`.publish`) holds its own copy of the export, in MLflow's store."""
    tracker.log_artifact(run_dir / WEIGHTS)
    if exported is not None:
        symbol, params = export_files(run_dir / PREFIX)
        for f in (symbol,) if shared else (symbol, params):
            tracker.log_artifact(f, ARTIFACT_PATH)


# --- dlrun export RUN --format onnx -------------------------------------------------------------
EXPORT_USAGE = """\
usage: dlrun export RUN_FOLDER --format onnx [--output FILE]

Converts a run's exported model (RUN_FOLDER/model-symbol.json + model-0000.params) to ONNX
(opset 17; needs pip install 'dlrun[onnx]'), its batch axis of any size; a language model
(task language_model) takes (steps, batch) tokens and its (layers, batch, hidden) states, its
steps of any number too. Writes RUN_FOLDER/model.onnx unless --output says where.
"""
LM_TASK = "dlrun.runner.tasks.language_model.LanguageModelTask"


class ExportError(ValueError):
    """``dlrun export`` cannot run as asked: a bad option, no exported model."""


def export_command(argv: list[str]) -> Path | None:
    """``dlrun export RUN_FOLDER --format onnx [--output FILE]``; returns the file written."""
    from omegaconf import OmegaConf

    from dlrun.engine.onnx_export import export_graph_file

    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(EXPORT_USAGE, end="")
        return None
    run_dir, options = Path(args[0]).expanduser(), dict(zip(args[1::2], args[2::2]))
    unknown = set(options) - {"--format", "--output"}
    if unknown or len(args) % 2 == 0 or options.get("--format") != "onnx":
        raise ExportError(f"dlrun export cannot take {' '.join(args[1:]) or 'no options'}: give "
                         f"--format onnx [--output FILE]\n{EXPORT_USAGE}")
    symbol, params = export_files(run_dir / PREFIX)
    if not symbol.is_file() or not params.is_file():
        raise ExportError(f"{run_dir} holds no exported model ({symbol.name}, {params.name}); "
                                "only runs with model.hybridize=true export one")
    config = run_dir / "config.yaml"
    task = OmegaConf.select(OmegaConf.load(config), "task._target_") if config.is_file() else None
    lm = task == LM_TASK
    out = export_graph_file(symbol, params, Path(options.get("--output", run_dir / "model.onnx")),
                            batch_axis=1 if lm else 0, step_axis=0 if lm else None)
    print(f"wrote {out} (ONNX opset 17, batch axis {1 if lm else 0} of any size)")
    return out
