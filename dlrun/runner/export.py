"""A run's exported model: ``model-symbol.json`` (the graph) and ``model-0000.params`` (its
parameters) in the run folder, written by ``HybridBlock.export`` and read by ``dlrun predict``.

The graph is the model's last predict-mode call (the last batch of the final evaluation), so
its input shapes are static; ``dlrun predict`` pads its own last batch to that size.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .console import Reporter

log = logging.getLogger(__name__)

PREFIX = "model"        # <run folder>/model-symbol.json, <run folder>/model-0000.params
EPOCH = 0
ARTIFACT_PATH = "model"  # where MLflow keeps the two files


def export_files(prefix: Path) -> tuple[Path, Path]:
    """(graph file, parameter file) of the export at ``prefix``."""
    return Path(f"{prefix}-symbol.json"), Path(f"{prefix}-{EPOCH:04d}.params")


def export_model(net: Any, run_dir: Path, report: Reporter, upload: bool = True) -> Path | None:
    """Exports the hybridized ``net`` into ``run_dir`` and, with ``upload``, logs both files
    under ``model/`` with the run's artifacts.

    Returns the graph file, or None when the model cannot be exported (not a HybridBlock,
    untraceable, no predict-mode call): then a note says why. Never raises: the training is
    done and its results matter more than the export.
    """
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
    for f in files if upload else ():
        report.artifact(f, ARTIFACT_PATH)
    return files[0]
