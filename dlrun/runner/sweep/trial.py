"""One trial of a sweep, in the trial's own process: its record (``trial.json`` in its folder),
the value it returns to the sweeper, and the tags that nest its MLflow run in the sweep's.

:class:`TrialScope` is made around ``experiment.run`` (by ``dlrun.runner.main``): it caps the
BLAS threads of parallel trials, computes the trial's tags (the sweep id, the trial number and
``mlflow.parentRunId``, which the run's tracker gets), and turns the run's outcome into
``trial.json`` and into the sweep's metric, with its direction as the task declared it.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import OmegaConf

from ..tracking import mlflow_store
from .resolvers import blas_threads, configured_direction, hydra_cfg, trial_number

SWEEP_FILE = "sweep.json"          # in the sweep folder: the sweep id and its parent run
TRIAL_FILE = "trial.json"          # in each trial's folder: its outcome
MAX_ERROR = 4000                   # characters of an error kept in tags and files

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"
DIRECTIONS = {"max": "maximize", "min": "minimize"}  # a task's declaration -> Optuna's words


class TrialFailed(Exception):
    """A trial of a sweep failed; Hydra records the job as failed and the sweep goes on.

    ``kind`` is ``"error"`` for the trial's own failure and ``"metric"`` when the sweep's
    metric is not among the run's metrics, or its direction is unknown (a mistake of the
    sweep: an Optuna sweep stops at once).
    """

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> Any:  # crosses process boundaries (joblib) with its kind
        return (TrialFailed, (str(self), self.kind))


class SweepError(Exception):
    """A sweep that cannot start or go on (search space, study, metric): one clear message."""


class TrialScope:
    """One trial of a multirun, around ``experiment.run``: its tags, record and return value."""

    def __init__(self) -> None:
        hydra = hydra_cfg()
        self.dir = Path(hydra.runtime.output_dir)
        self.number = trial_number(hydra)
        self.overrides = [str(o) for o in hydra.overrides.task]
        self.metric = OmegaConf.select(hydra, "sweeper.metric", default=None)
        self.direction = configured_direction(hydra)
        self.started = time.time()
        self.threads = blas_threads(hydra)
        if self.threads is not None:
            # trials in parallel share the cores, and the terminal: plain output, capped BLAS
            os.environ["TTY_COMPATIBLE"] = "0"
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.threads)

    def tags(self, logger_cfg: Any, experiment: str) -> dict[str, str]:
        """Tags of the trial's MLflow run: sweep id, trial number, parent run (same store only)."""
        store = mlflow_store(logger_cfg)
        if store is None:  # logger=none: no run to tag
            return {}
        tags = {"dlrun.sweep.trial": str(self.number)}
        if self.threads is not None:
            tags["dlrun.blas_threads"] = str(self.threads)
        info = read_json(self.dir.parent / SWEEP_FILE)
        if info:
            tags["dlrun.sweep.id"] = str(info.get("sweep_id"))
            if (info.get("parent_run_id") and info.get("tracking_uri") == store[0]
                    and info.get("experiment") == experiment):
                tags["mlflow.parentRunId"] = str(info["parent_run_id"])
        return tags

    def finished(self, value: float) -> float:
        """The value the sweep optimises (the sweep's metric, else the run's primary one)."""
        results = read_json(self.dir / "results.json") or {}
        name = self.metric
        if name:
            if name not in results:
                known = ", ".join(sorted(k for k in results if "/" in k)) or "none"
                raise TrialFailed(f"the sweep's metric {name!r} is not among this run's metrics "
                                  f"({known}); set hydra.sweeper.metric to one of them",
                                  kind="metric")
            value = results[name]
        else:
            name = results.get("primary_metric")
        if name and not str(name).startswith("val/"):
            raise TrialFailed(f"the sweep's metric {name!r} is not a validation metric: a sweep "
                              "decides on the validation split, never on test or training "
                              "figures; set hydra.sweeper.metric to a val/ metric (and give the "
                              "dataset a validation split if it has none: dataset.val_fraction)",
                              kind="metric")
        direction = direction_for(name, self.direction, results) if name else self.direction
        value = float(value)
        if not math.isfinite(value):
            raise TrialFailed(f"{name or 'the metric'} is {value}: the run diverged")
        test = test_metric(name)  # the selected model's test figure, shown beside the objective
        self._write(FINISHED, value=value, metric=name, direction=direction, metrics=results,
                    test_metric=test, test_value=results.get(test))
        return value

    def failed(self, error: str, kind: str = "error") -> None:
        self._write(FAILED, error=error, kind=kind)

    def killed(self, error: str = "interrupted") -> None:
        self._write(KILLED, error=error)

    def _write(self, status: str, **extra: Any) -> None:
        record = {"number": self.number, "status": status, "overrides": self.overrides,
                  "started": iso(self.started), "duration": time.time() - self.started,
                  "dir": str(self.dir), "blas_threads": self.threads, **extra}
        if record.get("error"):
            record["error"] = str(record["error"])[:MAX_ERROR]
        write_json(self.dir / TRIAL_FILE, record)


def test_metric(metric: str | None) -> str | None:
    """The test figure of a validation metric (``val/accuracy`` -> ``test/accuracy``)."""
    return None if not metric else "test/" + str(metric).split("/", 1)[-1]


def direction_for(metric: str | None, configured: Any, results: Mapping[str, Any]) -> str:
    """``maximize`` or ``minimize`` for the sweep's ``metric``: ``hydra.sweeper.direction``
    when the sweep gives one, else the direction the task declared for its primary metric
    (``results.json``); any other metric needs the sweep's. Never guessed from the name."""
    if configured:
        return str(getattr(configured, "value", configured))
    primary = results.get("primary_metric")
    if metric is not None and metric == primary:
        return DIRECTIONS[results["direction"]]
    raise TrialFailed(f"the sweep's metric {metric!r} is not the run's primary metric "
                      f"({primary!r}), so whether higher or lower is better is not known: "
                      "set hydra.sweeper.direction=maximize or hydra.sweeper.direction=minimize",
                      kind="metric")


# --- the files of a sweep ---------------------------------------------------------------------
def iter_trial_dirs(sweep_dir: Path, number: int) -> Iterable[Path]:
    """The folders of trial ``number`` in a sweep folder (normally one)."""
    for d in Path(sweep_dir).glob(f"{number}_*"):
        if d.is_dir():
            yield d
    if (Path(sweep_dir) / str(number)).is_dir():
        yield Path(sweep_dir) / str(number)


def read_record(sweep_dir: Path, number: int) -> tuple[Path | None, dict | None]:
    """(the folder, the ``trial.json``) of trial ``number`` of a sweep, when there are."""
    folder = next(iter_trial_dirs(sweep_dir, number), None)
    return folder, (read_json(folder / TRIAL_FILE) if folder is not None else None)


def iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).isoformat(timespec="seconds")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
