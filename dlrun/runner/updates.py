"""How a training step's gradients become updates: the NaN/Inf guard (``trainer.on_nan``)
and gradient accumulation (``trainer.accumulate_steps``); the loop hands a task's
``train_step`` the update function of these."""
from __future__ import annotations

import math
from typing import Any, Mapping


class DivergenceError(RuntimeError):
    """The training loss or a gradient became NaN or infinite."""


class Guard:
    """``trainer.on_nan``: a NaN/Inf loss or gradient stops the run naming the step (``stop``),
    or the step is skipped, up to ``trainer.max_nan_skips`` times (``skip``)."""

    def __init__(self, trainer_cfg: Any):
        self.skips_nan = str(trainer_cfg.get("on_nan", "stop")).endswith("skip")
        self.max_skips = int(trainer_cfg.get("max_nan_skips", 10))
        self.skipped = 0
        self.step = 0  # the global step being taken (for messages)

    def update(self, trainer: Any, batch_size: int) -> None:
        """One update of ``trainer`` for a batch of ``batch_size``, unless its gradients are
        not finite (``skip``); a non-finite clipped norm stops the run."""
        if self.skips_nan and getattr(trainer, "_amp_loss_scaler", None) is None:  # amp skips its own
            from dlrun.optim import global_norm

            grads = [p.data().grad for p in trainer._params if p.grad_req != "null"]
            if not math.isfinite(global_norm(grads)):
                self.skipped += 1
                if self.skipped > self.max_skips:
                    raise DivergenceError(
                        f"step {self.step} is the {self.skipped}th with a NaN/Inf gradient "
                        f"(trainer.max_nan_skips={self.max_skips}); the run stopped. Lower the "
                        "learning rate (optimizer.lr) or set trainer.clip_global_norm")
                return
        norm = trainer.step(batch_size)
        if norm is not None and not math.isfinite(norm):
            raise DivergenceError(
                f"the gradient norm became {norm} at step {self.step}; the update was skipped and "
                "the run stopped. Lower the learning rate (optimizer.lr) or trainer.clip_global_norm")

    def check(self, step: int, epoch: int, values: Mapping[str, float], lr: float | None) -> bool:
        """Whether the step's host values are all finite; under ``stop`` a non-finite one
        ends the run (under ``skip`` that step was skipped and is left out)."""
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if not bad or self.skips_nan:
            return not bad
        parts = ", ".join(f"{k} {v}" for k, v in values.items() if k != "loss")
        what = f"{values['loss']}" + (f" ({parts})" if parts else "")
        hint = "" if lr is None else f" (optimizer.lr, now {lr:g})"
        raise DivergenceError(
            f"the training loss became {what} at step {step} (epoch {epoch}); the run diverged. "
            f"Lower the learning rate{hint}, set trainer.clip_global_norm, or change the "
            "initializer (init=...)")


class Accumulator:
    """``trainer.accumulate_steps=N``: the gradients of N batches are summed (the parameters'
    ``grad_req='add'``, set by the runner) and one update follows, for all their examples
    together, as one batch N times as large would give (BatchNorm aside: its statistics are
    per batch). The last batches of an epoch update with what they hold."""

    def __init__(self, steps: int, guard: Guard):
        self.steps, self.guard = steps, guard
        self.pending: dict[int, list] = {}  # id(trainer) -> [trainer, examples so far]

    def update(self, trainer: Any, batch_size: int) -> None:
        """What a task calls after its backward pass (the Guard's update when N is 1)."""
        if self.steps == 1:
            self.guard.update(trainer, batch_size)
            return
        self.pending.setdefault(id(trainer), [trainer, 0])[1] += batch_size

    def due(self, step: int, steps: int) -> bool:
        """After batch ``step`` of ``steps``: updates when N batches are summed (or the epoch
        ends); whether an update happened."""
        if self.steps == 1:
            return True
        if step % self.steps and step < steps:
            return False
        for trainer, examples in self.pending.values():
            self.guard.update(trainer, examples)
            for p in trainer._params:
                if p.grad_req != "null":
                    p.zero_grad()
        self.pending = {}
        return True
