"""Learning-rate schedules: callables from the update count to a learning rate.

Conventions (MXNet's):

- ``sched(num_update)`` gets the number of updates made so far *including* the current
  one: the first update sees 1, ``sched(0)`` is the rate before training.
- ``base_lr`` is set from the optimizer's learning rate when the optimizer is built
  (``Optimizer(lr_scheduler=sched)``), so configs give the rate once, on the optimizer.
- Warm-up is an argument of every schedule (as in MXNet's LRScheduler): for
  ``num_update < warmup_steps`` the rate rises linearly from ``warmup_begin_lr`` to
  ``base_lr`` (``warmup_mode='constant'`` holds ``warmup_begin_lr``); then the schedule's
  own rule applies. Where a rule has a clock (poly, cosine, exponential, inverse sqrt) it
  starts at the end of the warm-up; step-based rules (factor, multi-factor, epoch) count
  updates from the start of training, as MXNet does.
- ``state_dict()`` / ``load_state_dict()`` give and take a JSON-able dict, for checkpoints.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .checks import check_range


def _check(owner: str, name: str, value: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, integer: bool = False) -> Any:
    """``value`` (a float, or an int with integer=True) or a ValueError naming the argument."""
    kind = int if integer else float
    if integer and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    return kind(check_range(owner, name, value, low, high, low_open, high_open))


class LRScheduler:
    """Base class: warm-up in front of the rule ``rate(num_update)`` of a subclass."""

    def __init__(self, base_lr: float = 0.01, warmup_steps: int = 0, warmup_begin_lr: float = 0.0,
                 warmup_mode: str = "linear"):
        name = type(self).__name__
        self.base_lr = _check(name, "base_lr", base_lr, 0)
        self.warmup_steps = _check(name, "warmup_steps", warmup_steps, 0, integer=True)
        self.warmup_begin_lr = _check(name, "warmup_begin_lr", warmup_begin_lr, 0)
        if warmup_mode not in ("linear", "constant"):
            raise ValueError(f"{name}: warmup_mode must be 'linear' or 'constant', got {warmup_mode!r}")
        self.warmup_mode = warmup_mode

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            if self.warmup_mode == "constant":
                return self.warmup_begin_lr
            return self.warmup_begin_lr + (self.base_lr - self.warmup_begin_lr) * num_update / self.warmup_steps
        return self.rate(num_update)

    def rate(self, num_update: int) -> float:
        """The rule after the warm-up."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """The schedule's state as a JSON-able dict."""
        return {"base_lr": self.base_lr}

    def load_state_dict(self, state: dict) -> None:
        self.base_lr = float(state["base_lr"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_lr={self.base_lr:g})"


class Constant(LRScheduler):
    """The base learning rate at every step (after the warm-up, if any)."""

    def rate(self, num_update: int) -> float:
        return self.base_lr


class FactorScheduler(LRScheduler):
    """Multiply the rate by ``factor`` every ``step`` updates, not below ``stop_factor_lr``
    (MXNet's FactorScheduler): ``lr = max(base_lr * factor^floor((t-1)/step), stop_factor_lr)``
    -- updates 1..step use base_lr, step+1..2*step base_lr*factor, ...
    """

    def __init__(self, step: int, factor: float = 1.0, stop_factor_lr: float = 1e-8, **kwargs: Any):
        super().__init__(**kwargs)
        self.step = _check("FactorScheduler", "step", step, 1, integer=True)
        self.factor = _check("FactorScheduler", "factor", factor, 0, 1, low_open=True)
        self.stop_factor_lr = _check("FactorScheduler", "stop_factor_lr", stop_factor_lr, 0)

    def rate(self, num_update: int) -> float:
        n = max(0, (num_update - 1) // self.step)
        return max(self.base_lr * self.factor ** n, self.stop_factor_lr) if n else self.base_lr


class MultiFactorScheduler(LRScheduler):
    """Piecewise constant (MXNet's MultiFactorScheduler): multiply by ``factor`` after each
    update count in ``step`` (increasing): ``lr = base_lr * factor^#{s in step: t > s}``.
    """

    def __init__(self, step: Sequence[int], factor: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        step = list(step)
        for i, s in enumerate(step):
            _check("MultiFactorScheduler", f"step[{i}]", s, 1, integer=True)
            if i and s <= step[i - 1]:
                raise ValueError(f"MultiFactorScheduler: step must be increasing, got {step}")
        self.step = step
        self.factor = _check("MultiFactorScheduler", "factor", factor, 0, 1, low_open=True)

    def rate(self, num_update: int) -> float:
        return self.base_lr * self.factor ** sum(num_update > s for s in self.step)


class PolyScheduler(LRScheduler):
    """Polynomial decay to ``final_lr`` over ``max_update`` updates (MXNet's PolyScheduler):
    ``lr = final_lr + (base_lr - final_lr) * (1 - (t - warmup)/(max_update - warmup))^pwr``,
    ``final_lr`` after ``max_update``. ``max_update=None`` leaves it to be set before
    training (the runner sets the run's total number of updates).
    """

    def __init__(self, max_update: int | None = None, base_lr: float = 0.01, pwr: float = 2,
                 final_lr: float = 0.0, **kwargs: Any):
        super().__init__(base_lr=base_lr, **kwargs)
        name = type(self).__name__
        self.max_update = None if max_update is None else _check(
            name, "max_update", max_update, self.warmup_steps, low_open=True, integer=True)
        self.power = _check(name, "pwr", pwr, 0, low_open=True)
        self.final_lr = _check(name, "final_lr", final_lr, 0)

    def _progress(self, num_update: int) -> float:
        """The fraction of the decay done, in [0, 1]."""
        if self.max_update is None:
            raise RuntimeError(f"{type(self).__name__}: max_update is not set; pass it or set "
                               "sched.max_update to the number of updates of the run")
        return min(1.0, (num_update - self.warmup_steps) / (self.max_update - self.warmup_steps))

    def rate(self, num_update: int) -> float:
        return self.final_lr + (self.base_lr - self.final_lr) * (1 - self._progress(num_update)) ** self.power


class CosineScheduler(PolyScheduler):
    """Cosine decay to ``final_lr`` over ``max_update`` updates (Loshchilov & Hutter 2017
    without restarts; MXNet's CosineScheduler):
    ``lr = final_lr + (base_lr - final_lr) * (1 + cos(pi*(t - warmup)/(max_update - warmup)))/2``.
    """

    def __init__(self, max_update: int | None = None, base_lr: float = 0.01, final_lr: float = 0.0,
                 **kwargs: Any):
        super().__init__(max_update, base_lr=base_lr, final_lr=final_lr, **kwargs)

    def rate(self, num_update: int) -> float:
        return self.final_lr + (self.base_lr - self.final_lr) * (
            1 + math.cos(math.pi * self._progress(num_update))) / 2


class InverseSqrtScheduler(LRScheduler):
    """The seed's polynomial decay ``eta = alpha / sqrt(beta + t)``, t counted from the end
    of the warm-up. ``alpha=None`` takes ``alpha = base_lr * sqrt(beta)``, so that the
    schedule starts at the optimizer's learning rate.
    """

    def __init__(self, alpha: float | None = None, beta: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.beta = _check("InverseSqrtScheduler", "beta", beta, 0, low_open=True)
        self.alpha = None if alpha is None else _check("InverseSqrtScheduler", "alpha", alpha, 0)

    def rate(self, num_update: int) -> float:
        alpha = self.base_lr * math.sqrt(self.beta) if self.alpha is None else self.alpha
        return alpha / math.sqrt(self.beta + num_update - self.warmup_steps)


class ExponentialScheduler(LRScheduler):
    """Exponential decay ``lr = base_lr * gamma^floor((t - warmup)/step)`` (step=1: every update)."""

    def __init__(self, gamma: float, step: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.gamma = _check("ExponentialScheduler", "gamma", gamma, 0, 1, low_open=True)
        self.step = _check("ExponentialScheduler", "step", step, 1, integer=True)

    def rate(self, num_update: int) -> float:
        return self.base_lr * self.gamma ** ((num_update - self.warmup_steps) // self.step)


class EpochDecay(LRScheduler):
    """Constant for ``constant_epochs`` epochs, then multiplied by ``factor`` every epoch
    (Zaremba et al. 2014's PTB recipe: ``EpochDecay(constant_epochs=4, factor=0.5)``, lr 1 for
    4 epochs, then halved each epoch), not below ``min_lr``. Update t belongs to epoch
    ``e = (t-1) // steps_per_epoch`` (0-based); ``lr = base_lr * factor^max(0, e - constant_epochs + 1)``.
    ``steps_per_epoch`` is known once the data is loaded: pass it, or set the attribute before
    training (the runner does).
    """

    def __init__(self, constant_epochs: int = 1, factor: float = 0.5, steps_per_epoch: int | None = None,
                 min_lr: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.constant_epochs = _check("EpochDecay", "constant_epochs", constant_epochs, 0, integer=True)
        self.factor = _check("EpochDecay", "factor", factor, 0, 1, low_open=True)
        self.steps_per_epoch = (None if steps_per_epoch is None else
                                _check("EpochDecay", "steps_per_epoch", steps_per_epoch, 1, integer=True))
        self.min_lr = _check("EpochDecay", "min_lr", min_lr, 0)

    def rate(self, num_update: int) -> float:
        if self.steps_per_epoch is None:
            if num_update <= 0:
                return self.base_lr
            raise RuntimeError("EpochDecay: steps_per_epoch is not set; pass it or set "
                               "sched.steps_per_epoch = len(train_loader) before training")
        n = max(0, (num_update - 1) // self.steps_per_epoch - self.constant_epochs + 1)
        return max(self.base_lr * self.factor ** n, self.min_lr) if n else self.base_lr


class ReduceOnPlateau(LRScheduler):
    """"Keep the rate until no improvement on validation data, then reduce" (the seed).

    The runner calls ``observe(metric)`` after each evaluation. A value improves on the best
    so far when it is lower (``mode='min'``) or higher (``'max'``) by more than
    ``threshold`` -- relative to |best| with ``threshold_mode='rel'``, absolute with
    ``'abs'``. After ``patience`` evaluations in a row without improvement the rate is
    multiplied by ``factor`` (not below ``min_lr``), and the next ``cooldown`` evaluations
    are ignored. (Keras's counting: patience=2 reduces at the 2nd non-improving evaluation in
    a row; patience=0 at every one.)
    A NaN metric never improves.
    """

    def __init__(self, factor: float = 0.1, patience: int = 10, mode: str = "min",
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        name = "ReduceOnPlateau"
        self.factor = _check(name, "factor", factor, 0, 1, low_open=True, high_open=True)
        self.patience = _check(name, "patience", patience, 0, integer=True)
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.threshold = _check(name, "threshold", threshold, 0)
        self.cooldown = _check(name, "cooldown", cooldown, 0, integer=True)
        self.min_lr = _check(name, "min_lr", min_lr, 0)
        self.best: float | None = None
        self.num_bad = 0
        self.cooldown_counter = 0
        self.num_reductions = 0

    def rate(self, num_update: int) -> float:
        if not self.num_reductions:
            return self.base_lr
        return max(self.base_lr * self.factor ** self.num_reductions, self.min_lr)

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return not math.isnan(value)
        margin = self.threshold * abs(self.best) if self.threshold_mode == "rel" else self.threshold
        return value < self.best - margin if self.mode == "min" else value > self.best + margin

    def observe(self, metric: float) -> bool:
        """Record an evaluation's metric; True when this reduced the learning rate."""
        value = float(metric)
        improved = self._improves(value)
        if improved:
            self.best, self.num_bad = value, 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:  # evaluations right after a reduction do not count
            self.cooldown_counter -= 1
            self.num_bad = 0
            return False
        if improved or self.num_bad < self.patience:
            return False
        self.cooldown_counter, self.num_bad = self.cooldown, 0
        if self.rate(0) <= self.min_lr:  # already at the floor
            return False
        self.num_reductions += 1
        return True

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best": self.best, "num_bad": self.num_bad,
                "cooldown_counter": self.cooldown_counter, "num_reductions": self.num_reductions}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best = None if state["best"] is None else float(state["best"])
        self.num_bad = int(state["num_bad"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.num_reductions = int(state["num_reductions"])
