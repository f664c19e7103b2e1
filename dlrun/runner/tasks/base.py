"""What every task receives from the runner, and what it gives back."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class Reporter(Protocol):
    """Where a task sends progress and metrics (the console and the tracker behind it)."""

    def start(self, epochs: int, steps_per_epoch: int, columns: Sequence[tuple[str, str, str]] = ...) -> None:
        """``columns``: the task's per-epoch table, (label, metric key, format) each."""

    def epoch_start(self, epoch: int) -> None: ...

    def step(self, epoch: int, step: int, samples: int, loss: float | None = None) -> None: ...

    def train_losses(self, values: Sequence[tuple[int, float]]) -> None: ...

    def epoch_end(self, epoch: int, global_step: int, metrics: Mapping[str, float]) -> None: ...


@dataclass
class Setup:
    """The pieces the runner built from the config groups."""

    cfg: Any              # the whole composed config (DictConfig)
    ctx: Any              # the device context (dlrun.engine.Context)
    data: Any             # what the dataset group built (a Splits for classification)
    net: Any              # the model (a dlrun.nn.Block), initialized on ctx
    loss: Any             # the loss block
    trainer: Any          # dlrun.optim.Trainer over the model's parameters
    schedule: Any         # the learning-rate schedule inside the trainer's optimizer
    seed: int             # the run's seed (data shuffling follows it)
    report: Reporter
    checkpoints: Any = None   # RunCheckpoints (runner/checkpoint.py); None: the run writes none
    resume_from: Any = None   # the Checkpoint this run continues; None: a fresh start
    nan_skips: int = 0        # steps skipped for a NaN/Inf gradient (trainer.on_nan=skip)
    world: Any = None         # dlrun.parallel.World: this rank's place in a data-parallel job
    worker_batch: int = 0     # this worker's batch size (0: trainer.batch_size)

    # --- data parallelism (tasks whose class sets ``distributed = True``) ------------------
    @property
    def workers(self) -> int:
        return 1 if self.world is None else self.world.size

    @property
    def batch_size(self) -> int:
        """The batch of one step of the whole job (every worker's part together)."""
        return (self.worker_batch or int(self.cfg.trainer.batch_size)) * self.workers

    @property
    def shard(self) -> tuple[int, int]:
        """(this worker's index, workers): a loader's ``shard`` argument."""
        return (0, 1) if self.world is None else (self.world.rank, self.world.size)

    def gather(self, part: Any, axis: int) -> Any:
        """The workers' parts of a host array joined along ``axis``, in rank order (every
        worker gets the whole; one worker's part is the whole)."""
        if self.workers == 1:
            return part
        import numpy as np
        return np.concatenate(self.world.allgather(part), axis=axis)

    def job_totals(self, *values: float) -> list[float]:
        """``values`` summed over the workers (an epoch's loss sum and example count)."""
        if self.workers == 1:
            return list(values)
        return [sum(v) for v in zip(*self.world.allgather(list(values)))]

    def own_part(self, *totals: float) -> list[float]:
        """This worker's part of job totals a checkpoint saved: all of them on rank 0, none
        elsewhere (so that ``job_totals`` gives them back)."""
        return list(totals) if self.shard[0] == 0 else [type(t)(0) for t in totals]

    def _stop_agreed(self) -> bool:
        """Whether a signal asked to stop, on any rank (all ranks stop at the same step)."""
        from ..interrupt import INTERRUPTS
        asked = INTERRUPTS.requested is not None
        return asked if self.world is None else self.world.any(asked)

    # --- checkpoints and resuming ----------------------------------------------------------
    def resume_point(self, epochs: int) -> tuple[int, int, int, dict]:
        """(epoch, batches of it done, steps done, the task's saved counters) to start from,
        with the checkpoint's parameters, optimizer and RNG states restored; (1, 0, 0, {})
        for a fresh run. Call it after the parameters have their shapes. A run that already
        trained its ``epochs`` has nothing to continue: ResumeError says how to train on."""
        c = self.resume_from
        if c is None:
            self.trainer.broadcast_params()  # every worker starts from rank 0's initial values
            return 1, 0, 0, {}
        if c.epoch > epochs:
            from ..resume import ResumeError
            raise ResumeError(f"the run already finished its {c.epoch - 1} epochs; to train "
                              f"on, resume with trainer.epochs={c.epoch} or more")
        self.checkpoints.restore(c)
        self.trainer.broadcast_params()
        return c.epoch, c.batch, c.step, dict(c.state.get("task", {}))

    def use_trainers(self, **trainers: Any) -> None:
        """The trainers whose state the checkpoints hold, for a task with trainers of its own
        (a GAN's discriminator and generator) instead of the runner's."""
        if self.checkpoints is not None:
            self.checkpoints.trainers = dict(trainers)

    def resumed_arrays(self) -> dict[str, Any]:
        """The task's own arrays of the checkpoint this run continues (names without ``task/``)."""
        if self.resume_from is None:
            return {}
        return {k[len("task/"):]: v for k, v in self.resume_from.arrays.items() if k.startswith("task/")}

    def checkpoint_due(self, step: int) -> bool:
        """A checkpoint is due after ``step`` (its schedule, or a stop request by a signal)."""
        return self._stop_agreed() or (self.checkpoints is not None and self.checkpoints.due(step))

    def checkpoint(self, epoch: int, batch: int, step: int, task_state: dict,
                   task_arrays: Mapping[str, Any] | None = None) -> None:
        """Save the run at ``batch`` batches into ``epoch`` with the task's counters (JSON) and
        arrays (e.g. a carried hidden state); then stop, if a signal asked to."""
        from ..interrupt import INTERRUPTS, StopRequested
        stop = self._stop_agreed()
        if self.checkpoints is not None:
            self.checkpoints.save(epoch, batch, step, task_state, task_arrays)
        if stop:
            raise StopRequested(INTERRUPTS.requested or "a signal to another worker", step,
                                self.checkpoints.last if self.checkpoints is not None else None)

    def start_schedule(self, steps_per_epoch: int, epochs: int) -> None:
        """Tell the schedule what it left open: the updates per epoch (EpochDecay) and in the
        whole run (PolyScheduler, CosineScheduler)."""
        for attr, value in (("steps_per_epoch", steps_per_epoch), ("max_update", steps_per_epoch * epochs)):
            if getattr(self.schedule, attr, 0) is None:
                setattr(self.schedule, attr, value)

    def observe(self, metrics: Mapping[str, float], primary: str) -> None:
        """Feed an evaluation to a metric-driven schedule (ReduceOnPlateau)."""
        if hasattr(self.schedule, "observe") and primary in metrics:
            self.schedule.observe(float(metrics[primary]))

    def fetch_losses(self, pending: Sequence[tuple[int, Any, int]], epoch: int) -> list[tuple[int, float]]:
        """The pending (step, loss on the device, size) brought to the host in one sync, as
        (step, value); a NaN or infinite loss stops the run naming the step."""
        values = [(step, float(v.asscalar())) for step, v, _ in pending]
        if self._skips_nan:  # those steps were skipped (checked_step); the caller leaves them out
            return values
        for step, v in values:
            if not math.isfinite(v):
                raise DivergenceError(
                    f"the training loss became {v} at step {step} (epoch {epoch}); the run "
                    f"diverged. Lower the learning rate (optimizer.lr, now "
                    f"{self.trainer.learning_rate:g}), set trainer.clip_global_norm, or change "
                    f"the initializer (init=...)")
        return values

    def checked_step(self, batch_size: int, step: int) -> float | None:
        """One trainer step; the gradient norm when clipping is on, and divergence as an error.

        With ``trainer.on_nan=skip`` a step whose gradients are not finite is skipped (the
        parameters stay as they were) and the run stops only after ``trainer.max_nan_skips``
        such steps."""
        if self._skips_nan:
            from dlrun.optim import global_norm
            grads = [p.data().grad for p in self.trainer._params if p.grad_req != "null"]
            if not math.isfinite(global_norm(grads)):
                self.nan_skips += 1
                limit = int(self.cfg.trainer.max_nan_skips)
                if self.nan_skips > limit:
                    raise DivergenceError(
                        f"step {step} is the {self.nan_skips}th with a NaN/Inf gradient "
                        f"(trainer.max_nan_skips={limit}); the run stopped. Lower the learning "
                        "rate (optimizer.lr) or set trainer.clip_global_norm")
                return None
        norm = self.trainer.step(batch_size)
        if norm is not None and not math.isfinite(norm):
            raise DivergenceError(
                f"the gradient norm became {norm} at step {step}; the update was skipped and "
                f"the run stopped. Lower the learning rate (optimizer.lr) or trainer.clip_global_norm")
        return norm

    @property
    def _skips_nan(self) -> bool:
        return str(getattr(self.cfg.trainer, "on_nan", "stop")).endswith("skip")


def batch_text(setup: Setup) -> str:
    """The batch of a step as the header shows it: ``64``, or ``128 (2 workers x 64)``."""
    if setup.workers == 1:
        return str(setup.batch_size)
    return f"{setup.batch_size} ({setup.workers} workers x {setup.batch_size // setup.workers})"


class Task(Protocol):
    primary_metric: str

    def __init__(self, setup: Setup) -> None: ...

    def describe(self) -> Sequence[tuple[str, str]]: ...

    def run(self) -> dict[str, float]: ...
