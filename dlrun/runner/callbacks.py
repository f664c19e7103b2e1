"""Callbacks: code the training loop calls at fixed points of a run, in the spirit of
Lightning's ``Callback`` and Gluon's Estimator event handlers.

A callback subclasses :class:`Callback` and overrides the hooks it needs; each receives the
:class:`LoopState` (epoch, step, the metrics so far, the net, the trainers, the tracker) and
may ask the loop to stop (``state.stop("why")``). What a callback must carry across a
restart goes into the run's checkpoints through ``state()`` / ``load_state()``, as a task's
does. The loop calls the hooks in the order of its list: the runner's own callbacks
(weight averaging first, then early stopping and the best checkpoints, built from
``trainer.*``), then those of the ``callbacks`` config group, in the order of their names.

Early stopping, the best checkpoints and the learning-rate monitor below are callbacks
themselves.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .checkpoint import write_atomic
from .limits import val_every_steps


@dataclass
class LoopState:
    """What the hooks see: where the run is, its metrics so far and its pieces."""

    net: Any
    trainers: Mapping[str, Any]     # by name ("": the run's; a GAN's "d" and "g")
    tracker: Any
    run_dir: Path
    epoch: int = 0                  # the epoch in progress (1-based)
    step: int = 0                   # optimizer steps (batches) done
    metrics: dict[str, float] = field(default_factory=dict)  # the epoch's, as they come
    updated: bool = True            # whether the last batch ended with an update (accumulation)
    is_root: bool = True            # rank 0 of a data-parallel job (the one that writes files)
    stop_reason: str | None = None  # set by stop(): the loop ends after this step or epoch

    @property
    def trainer(self) -> Any:
        """The run's trainer (None for a task with trainers of its own)."""
        return self.trainers.get("")

    def stop(self, reason: str) -> None:
        """Ask the loop to end the run, saying why: after the current step (a request from
        ``on_step_end`` or from a validation within an epoch), else after the current epoch."""
        self.stop_reason = self.stop_reason or reason


class Callback:
    """The hooks, each a no-op here."""

    name = ""  # its place in the checkpoint (the loop sets it)

    def on_fit_start(self, state: LoopState) -> None: ...
    def on_epoch_start(self, state: LoopState) -> None: ...
    def on_step_end(self, state: LoopState) -> None: ...
    def on_validation_start(self, state: LoopState) -> None: ...
    def on_validation_end(self, state: LoopState) -> None: ...
    # after every callback's on_validation_end, training goes on (Lightning's name): the net
    # holds the training weights again (weight averaging swaps its average out here)
    def on_validation_model_train(self, state: LoopState) -> None: ...
    def on_epoch_end(self, state: LoopState) -> None: ...
    def on_fit_end(self, state: LoopState) -> None: ...
    def on_exception(self, state: LoopState, error: BaseException) -> None: ...

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What a checkpoint keeps of the callback: JSON values and arrays."""
        return {}, {}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Takes back what ``state()`` gave, when a run resumes."""


class MonitorError(ValueError):
    """A callback monitors a metric the run does not have."""


class Monitor:
    """A validation metric and its direction: which of two values is better."""

    def __init__(self, monitor: str, mode: str):
        if mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r}: use max (higher is better) or min")
        self.monitor, self.mode = monitor, mode

    def value(self, metrics: Mapping[str, float]) -> float:
        if self.monitor not in metrics:
            known = ", ".join(sorted(k for k in metrics if k.startswith("val/"))) or "none"
            raise MonitorError(f"the monitored metric {self.monitor!r} is not among the run's "
                               f"validation metrics ({known}); set trainer.monitor to one of them")
        return float(metrics[self.monitor])

    def improves(self, value: float, best: float | None, min_delta: float = 0.0) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value - best > min_delta if self.mode == "max" else best - value > min_delta


def _at(state: LoopState, per_step: bool) -> tuple[int, str]:
    """Where a validation is: (its epoch or step, ``epoch 3`` or ``step 120 (epoch 3)``)."""
    if per_step:
        return state.step, f"step {state.step} (epoch {state.epoch})"
    return state.epoch, f"epoch {state.epoch}"


class EarlyStopping(Callback, Monitor):
    """Stops the run once ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` validations in a row (Keras' and Lightning's EarlyStopping): epochs, or
    validations every ``trainer.val_every_steps`` steps (``per_step``: then the run stops
    right after the step of the last one)."""

    def __init__(self, monitor: str, mode: str = "max", patience: int = 3, min_delta: float = 0.0,
                 per_step: bool = False):
        Monitor.__init__(self, monitor, mode)
        self.patience, self.min_delta, self.per_step = int(patience), float(min_delta), per_step
        self.best: float | None = None
        self.best_epoch, self.wait, self.stopped_epoch = 0, 0, 0
        self.best_at = "none"  # where the best validation was, as the stop message says it

    def on_validation_end(self, state: LoopState) -> None:
        value = self.value(state.metrics)
        if self.improves(value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            self.best_at = _at(state, self.per_step)[1]
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = state.epoch
            best = "none" if self.best is None else f"{self.best:.6g}"
            state.stop(f"early stopping at {_at(state, self.per_step)[1]}: {self.monitor} has not "
                       f"improved by more than {self.min_delta:g} for {self.wait} validations "
                       f"(best {best} at {self.best_at})")

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_at": self.best_at}, {}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.best = state["best"]
        self.best_epoch, self.wait = int(state["best_epoch"]), int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_at = str(state.get("best_at", f"epoch {self.best_epoch}"))


def _params(net: Any) -> dict[str, Any]:
    return dict(net.collect_params().items())


class BestCheckpoint(Callback, Monitor):
    """Keeps the parameters of the best validation so far (``restore_best``: they become the
    run's final model) and, with ``keep_best=k``, the k best as files
    ``checkpoints/best-epoch<N>.npz`` (``best-step<N>.npz`` with ``per_step``: validations
    every ``trainer.val_every_steps`` steps; ``net.load_parameters`` reads them) listed, best
    first, in ``checkpoints/best.json``."""

    def __init__(self, monitor: str, mode: str = "max", keep_best: int = 0,
                 restore_best: bool = True, per_step: bool = False):
        Monitor.__init__(self, monitor, mode)
        self.keep_best, self.restore_best = int(keep_best), bool(restore_best)
        self.unit, self.digits = ("step", 8) if per_step else ("epoch", 4)  # of the files' names
        self.best: float | None = None
        self.best_epoch = self.best_step = 0
        self.best_metrics: dict[str, float] = {}  # the best validation's val/ metrics
        self.best_params: dict[str, np.ndarray] = {}
        self.kept: list[list] = []  # [value, epoch or step] of the files kept, best first

    def on_validation_end(self, state: LoopState) -> None:
        value = self.value(state.metrics)
        if self.improves(value, self.best):
            self.best, self.best_epoch, self.best_step = value, state.epoch, state.step
            self.best_metrics = {k: float(v) for k, v in state.metrics.items()
                                 if k.startswith("val/")}
            self.best_params = {k: p.data().asnumpy().copy() for k, p in _params(state.net).items()}
        if self.keep_best and state.is_root:
            self._keep(state, value)

    def _file(self, at: int) -> str:
        return f"best-{self.unit}{at:0{self.digits}d}.npz"

    def _keep(self, state: LoopState, value: float) -> None:
        """The file of this validation's parameters, if they are among the k best; the rest
        removed."""
        sign = -1.0 if self.mode == "max" else 1.0
        at = state.step if self.unit == "step" else state.epoch
        ranked = sorted([*self.kept, [value, at]],
                        key=lambda e: (math.isnan(e[0]), sign * e[0], e[1]))[:self.keep_best]
        folder = state.run_dir / "checkpoints"
        if [value, at] in ranked:
            folder.mkdir(parents=True, exist_ok=True)
            state.net.save_parameters(str(folder / self._file(at)))
        self.kept = ranked
        names = {self._file(e) for _, e in ranked}
        for old in folder.glob("best-*.npz"):
            if old.name not in names:
                old.unlink(missing_ok=True)
        text = json.dumps({"monitor": self.monitor, "mode": self.mode, "best": [
            {self.unit: e, self.monitor: v, "file": self._file(e)} for v, e in ranked]},
            indent=1).encode()
        write_atomic(folder / "best.json", lambda f: f.write(text))

    def on_fit_end(self, state: LoopState) -> None:
        if self.restore_best and self.best_params:
            for k, p in _params(state.net).items():
                p.set_data(self.best_params[k])

    def summary(self) -> dict[str, float]:
        """``best/epoch`` (and ``best/step`` with validations every N steps) and
        ``best/<monitor>`` (nothing before a validation)."""
        if self.best is None:
            return {}
        step = {"best/step": self.best_step} if self.unit == "step" else {}
        return {"best/epoch": self.best_epoch, **step, f"best/{self.monitor}": self.best}

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return ({"best": self.best, "best_epoch": self.best_epoch, "best_step": self.best_step,
                 "best_metrics": self.best_metrics, "kept": self.kept},
                {f"param/{k}": v for k, v in self.best_params.items()})

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.best_step = int(state.get("best_step", 0))
        self.best_metrics, self.kept = dict(state["best_metrics"]), list(state["kept"])
        self.best_params = {k[len("param/"):]: v for k, v in arrays.items()}


class LearningRateMonitor(Callback):
    """Logs each trainer's learning rate to the tracker as ``lr`` (``lr/<name>`` for a task
    with several), every step or at each epoch's end (``logging_interval``)."""

    def __init__(self, logging_interval: str = "epoch"):
        if logging_interval not in ("step", "epoch"):
            raise ValueError(f"logging_interval={logging_interval!r}: use step or epoch")
        self.every_step = logging_interval == "step"

    def _log(self, state: LoopState) -> None:
        rates = {("lr/" + name if name else "lr"): float(t.learning_rate)
                 for name, t in state.trainers.items()}
        if rates:
            state.tracker.log_metrics(rates, state.step)

    def on_step_end(self, state: LoopState) -> None:
        if self.every_step and state.updated:
            self._log(state)

    def on_epoch_end(self, state: LoopState) -> None:
        if not self.every_step:
            self._log(state)


class WeightAverage(Callback):
    """An exponential moving average of the trainable parameters (``trainer.ema_decay``, as
    Keras' ``use_ema``): after every update ``ema = decay * ema + (1 - decay) * w``. The
    average is what validation evaluates and what the other callbacks' ``on_validation_end``
    see (the training weights are put back after them, before training goes on), and
    at the end of the run it becomes the model (saved, exported and tested)."""

    def __init__(self, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"trainer.ema_decay={decay} must be in (0, 1) (null: no average)")
        self.decay = float(decay)
        self.ema: dict[str, Any] = {}
        self.live: dict[str, Any] = {}  # the training weights while validation uses the average

    def _trainable(self, net: Any) -> dict[str, Any]:
        return {k: p for k, p in _params(net).items() if p.grad_req != "null"}

    def on_fit_start(self, state: LoopState) -> None:
        from dlrun.engine import array

        # fresh: the initial weights; resumed: the checkpoint's average, on the weights' device
        self.ema = {k: array(self.ema[k], ctx=p.data().ctx) if k in self.ema else p.data().copy()
                    for k, p in self._trainable(state.net).items()}

    def on_step_end(self, state: LoopState) -> None:
        if not state.updated:
            return
        d = self.decay
        for k, p in self._trainable(state.net).items():
            self.ema[k] = self.ema[k] * d + p.data() * (1.0 - d)

    def _swap_in(self, state: LoopState) -> dict[str, Any]:
        params = self._trainable(state.net)
        live = {k: p.data().copy() for k, p in params.items()}
        for k, p in params.items():
            p.set_data(self.ema[k])
        return live

    def on_validation_start(self, state: LoopState) -> None:
        self.live = self._swap_in(state)

    def on_validation_model_train(self, state: LoopState) -> None:
        for k, p in self._trainable(state.net).items():
            if k in self.live:
                p.set_data(self.live[k])
        self.live = {}

    def on_fit_end(self, state: LoopState) -> None:
        self._swap_in(state)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {f"ema/{k}": v.asnumpy() for k, v in self.ema.items()}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.ema = {k[len("ema/"):]: v for k, v in arrays.items()}  # to the device at fit start


# --- the callbacks of a run -------------------------------------------------------------------
def objective(primary: str, has_val: bool) -> str:
    """The metric a run returns (a sweep's objective): the primary validation metric, or its
    test figure for a run without a validation split (which a sweep refuses)."""
    return primary if has_val else "test/" + primary.split("/", 1)[-1]


def monitor_of(monitor: str | None, mode: str | None, primary: tuple[str, str],
               key: str) -> tuple[str, str]:
    """(the metric, its mode) a setting ``key`` (trainer, trainer.early_stopping) monitors:
    a val/ metric; null is the task's primary one in its declared direction."""
    from .build import ConfigError

    name = monitor or primary[0]
    if not name.startswith("val/"):
        raise ConfigError(f"{key}.monitor={name!r}: decisions are taken on the validation split, "
                          "never on test or training figures; name a val/ metric (e.g. "
                          f"{primary[0]})")
    if mode is None:
        if name != primary[0]:
            raise ConfigError(f"{key}.monitor={name} needs {key}.mode=max or {key}.mode=min "
                              "(whether higher or lower is better; only the task's primary "
                              f"metric, {primary[0]}, has a known direction)")
        mode = primary[1]
    if mode not in ("max", "min"):
        raise ConfigError(f"{key}.mode={mode!r}: use max (higher is better) or min")
    return name, mode


def make_callbacks(cfg: Any, primary: tuple[str, str], has_val: bool) -> list[Callback]:
    """The run's callbacks: weight averaging (``trainer.ema_decay``), early stopping
    (``trainer.early_stopping``), the best checkpoint (with a validation split), then the
    ``callbacks`` group's, by name. Monitoring without a validation split is refused, and so
    is a ``trainer.val_every_steps`` that cannot work (``dlrun.runner.limits``)."""
    from .build import ConfigError, build, target_of

    t = cfg.trainer
    es, keep_best = t.early_stopping, int(t.checkpoint.keep_best)
    asks = [k for k, on in (("trainer.early_stopping.patience", es.patience is not None),
                            ("trainer.checkpoint.keep_best", keep_best > 0),
                            ("trainer.monitor", t.monitor is not None)) if on]
    if not has_val and asks:
        raise ConfigError(f"{asks[0]} monitors a validation metric, but the dataset has no "
                          "validation split (dataset.val_fraction=0?); give it one "
                          "(dataset.val_fraction=0.1) or drop the setting")
    monitor, mode = monitor_of(t.monitor, t.mode, primary, "trainer")
    per_step = val_every_steps(t, has_val) is not None  # validations every N steps
    named: list[tuple[str, Callback]] = []
    if t.ema_decay is not None:
        named.append(("ema", WeightAverage(float(t.ema_decay))))
    if es.patience is not None:
        es_monitor, es_mode = monitor_of(es.monitor or monitor, es.mode or (
            None if es.monitor and es.monitor != monitor else mode), primary,
            "trainer.early_stopping")
        named.append(("early_stopping", EarlyStopping(es_monitor, es_mode, int(es.patience),
                                                      float(es.min_delta), per_step)))
    if has_val:
        named.append(("best", BestCheckpoint(monitor, mode, keep_best, bool(t.restore_best),
                                             per_step)))
    for name in sorted(cfg.get("callbacks") or {}):
        key = f"callbacks.{name}"
        cls = target_of(cfg.callbacks[name], key)
        if not (isinstance(cls, type) and issubclass(cls, Callback)):
            raise ConfigError(f"{key}._target_={cfg.callbacks[name]._target_!r} is not a "
                              "callback class; name a subclass of dlrun.runner.callbacks.Callback")
        named.append((name, build(cfg.callbacks[name], key)))
    for name, callback in named:
        callback.name = name
    return [callback for _, callback in named]
