"""Pictures of a run and of a sweep, for the MLflow UI (artifacts under ``plots/``).

* every run: ``curves.png``, its losses and its validation metrics per step, as MLflow holds
  them (``train/loss``, ``val/loss``, ``val/accuracy``...);
* a classification run: ``confusion_matrix.png`` of its test split (counts, rows the true
  classes) and ``per_class_accuracy.json``, also logged as metrics ``test/class_accuracy/K``;
* a sweep with an Optuna study: Optuna's own ``plot_optimization_history`` and
  ``plot_param_importances`` (``optuna.visualization.matplotlib``).

matplotlib is optional (``pip install 'dlrun[plots]'``); without it the plots are skipped
with one line saying so.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

FOLDER = "plots"
SKIPPED = "plots skipped: matplotlib is not installed (pip install 'dlrun[plots]')"


def figure_class() -> Any | None:
    """matplotlib's Figure (drawn by the Agg canvas; pyplot's global state is never
    imported), or None when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def curves(Figure: Any, history: Mapping[str, Sequence[tuple[int, float]]], out: Path) -> Path | None:
    """Losses (left) and the other metrics (right) of ``history`` ({key: [(step, value)]}) as
    the PNG ``out``; None when no metric has two points."""
    keys = sorted(k for k, points in history.items() if len(points) > 1)
    if not keys:
        return None
    panels = [[k for k in keys if "loss" in k], [k for k in keys if "loss" not in k]]
    panels = [p for p in panels if p]
    fig = Figure(figsize=(6 * len(panels), 4))
    for ax, panel in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for key in panel:
            steps, values = zip(*history[key])
            ax.plot(steps, values, marker="o", markersize=3, label=key)
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return out


def confusion(Figure: Any, labels: np.ndarray, predicted: np.ndarray, classes: int,
              out: Path) -> tuple[Path, list[float]]:
    """The confusion matrix of ``predicted`` against ``labels`` as the PNG ``out``, and the
    accuracy of each class (NaN for a class without examples)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    totals = matrix.sum(axis=1)
    per_class = [float(matrix[k, k] / totals[k]) if totals[k] else float("nan") for k in range(classes)]
    fig = Figure(figsize=(1.2 + 0.5 * classes, 1 + 0.5 * classes))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    if classes <= 30:  # the counts and every class's tick
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                    color="white" if n > matrix.max() / 2 else "black")
    if classes <= 30:
        ax.set_xticks(range(classes))
        ax.set_yticks(range(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"test accuracy {np.trace(matrix) / max(matrix.sum(), 1):.2%}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return out, per_class


def test_predictions(net: Any, data: Any, ctx: Any, batch: int = 256) -> np.ndarray | None:
    """The class ``net`` (a classifier) predicts for each test example of ``data`` (None when
    the data has no test array)."""
    from dlrun.engine import array, autograd

    x = getattr(getattr(data, "test", None), "data", None)
    if not isinstance(x, np.ndarray) or not len(x):
        return None
    parts = []
    with autograd.predict_mode():
        for start in range(0, len(x), batch):
            parts.append(net(array(x[start:start + batch], ctx=ctx)).asnumpy().argmax(axis=1))
    return np.concatenate(parts)


def run_plots(client: Any, run_id: str, folder: Path, data: Any, predict: Callable[[], Any]) -> list[Path]:
    """The run's plots (module docstring) written into ``folder`` and logged to the MLflow
    run ``run_id`` with ``client``; ``predict()`` gives the test predictions (or None)."""
    Figure = figure_class()
    if Figure is None:
        return []
    folder.mkdir(exist_ok=True)
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)]
               for k in client.get_run(run_id).data.metrics
               if k.startswith(("train/", "val/")) and k not in ("train/step_loss", "train/samples_per_sec")}
    made = [p for p in [curves(Figure, history, folder / "curves.png")] if p is not None]
    predicted = predict()
    if predicted is not None:
        labels = np.asarray(data.test.label)
        path, per_class = confusion(Figure, labels, predicted, int(data.num_classes),
                                    folder / "confusion_matrix.png")
        table = folder / "per_class_accuracy.json"
        table.write_text(json.dumps({str(k): a for k, a in enumerate(per_class)}, indent=1) + "\n")
        made += [path, table]
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(f"test/class_accuracy/{k}", a, now, 0)
                                          for k, a in enumerate(per_class) if a == a])
    for path in made:
        client.log_artifact(run_id, str(path), FOLDER)
    return made


def study_plots(study: Any, folder: Path) -> list[Path]:
    """Optuna's optimisation history and parameter importances of ``study`` as PNGs in
    ``folder`` (importances need two finished trials and a parameter that varies)."""
    if figure_class() is None:
        return []
    import matplotlib.pyplot as plt  # Optuna draws with pyplot
    from optuna.visualization import matplotlib as plots

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, draw in (("optimization_history", plots.plot_optimization_history),
                       ("param_importances", plots.plot_param_importances)):
        try:
            ax = draw(study)
        except (ValueError, RuntimeError):  # too few trials for importances
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        made.append(folder / f"{name}.png")
    return made
