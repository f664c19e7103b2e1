"""The one training loop every task runs on.

The loop owns what every kind of training shares: epochs and steps, the position to resume
from (exact: the batch within the epoch, every random state), moving the step losses to the
host in batches, the NaN/Inf guard (``trainer.on_nan``), when to checkpoint and what goes in,
when to evaluate, timing and throughput, totals across data-parallel workers, the stop
signal (Ctrl-C/SIGTERM), the progress display and the tracker.

A task (``dlrun.runner.tasks``) supplies only what differs: its batches, ``train_step``,
``evaluate``, its own state, and its declared primary metric with its direction, as
Gluon's Estimator runs a BatchProcessor and Lightning's Trainer a LightningModule.
"""
from __future__ import annotations

import time
from itertools import islice
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from .callbacks import LoopState
from .updates import Accumulator, DivergenceError, Guard
from .console import Column, plural
from .interrupt import INTERRUPTS, StopRequested
from .limits import max_steps, run_epochs, split_batches, val_every_steps
from .resume import ResumeError


@dataclass
class StepResult:
    """What one training step gives the loop. The values may be device scalars: the loop
    brings them to the host together, every ``trainer.log_every`` steps."""

    loss: Any          # the step's loss summed over ``count`` units
    count: int         # the units the loss is summed over (examples, tokens, labelled nodes)
    samples: int       # examples in this worker's batch (throughput, progress)
    sums: Mapping[str, Any] = field(default_factory=dict)  # more per-step sums (a GAN's D and G losses)
    updates: int = 1   # steps this batch counts as (the perceptron rule: one per example)


@dataclass
class Totals:
    """An epoch's sums over its steps, and how long it took."""

    loss: float = 0.0
    count: int = 0
    samples: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    def as_list(self, names: Sequence[str]) -> list[float]:
        return [self.loss, self.count, self.samples, *(self.sums.get(k, 0.0) for k in names)]

    @classmethod
    def from_list(cls, values: Sequence[float], names: Sequence[str]) -> "Totals":
        return cls(float(values[0]), int(values[1]), int(values[2]),
                   {k: float(v) for k, v in zip(names, values[3:])})


class Task(Protocol):
    """What the loop asks of a task (``dlrun.runner.tasks.base.TaskBase`` has the defaults)."""

    primary: tuple[str, str]          # the primary metric and its direction, ("val/accuracy", "max")
    columns: Sequence[Column]         # the per-epoch table
    results: Sequence[Column]         # the results table
    trainers: dict[str, Any]          # the trainers whose state checkpoints hold ("" is the run's)
    steps: int                        # steps per epoch

    def prepare(self) -> None: ...
    def batches(self, epoch: int, skip: int) -> Iterable[Any]: ...
    def train_step(self, batch: Any, update: Callable[[Any, int], None]) -> StepResult: ...
    def train_metrics(self, totals: Totals) -> dict[str, float]: ...
    has_val: bool                     # whether there is a validation split
    def converged(self, metrics: Mapping[str, float]) -> bool: ...
    def evaluate(self, split: str = "val") -> dict[str, float]: ...
    def finish(self, metrics: dict[str, float]) -> dict[str, float]: ...
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]: ...
    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, Any]) -> None: ...


class Loop:
    """Runs ``task`` for ``trainer.epochs`` epochs with the pieces of ``setup``
    (``dlrun.runner.tasks.base.Setup``: config, report, checkpoints, the run it resumes, the
    callbacks). Validation (``val/...``) follows every ``trainer.val_every`` epochs, or every
    ``trainer.val_every_steps`` optimizer steps, and the run's last step; the test split
    (``test/...``) is evaluated once, on the selected model."""

    def __init__(self, setup: Any, task: Task):
        self.s, self.task = setup, task
        tcfg = setup.cfg.trainer
        self.epochs = run_epochs(tcfg)  # 1 with trainer.fast_dev_run (dlrun.runner.limits)
        self.max_steps = max_steps(tcfg)
        self.steps = 0  # training batches per epoch, once the task is prepared
        self.log_every = max(1, int(tcfg.get("log_every", 10)))
        self.val_every = int(tcfg.get("val_every", 1))
        self.val_every_steps = val_every_steps(tcfg, task.has_val)  # None: the epochs decide
        self.validated_at = -1  # the global step of the last validation
        self.guard = Guard(tcfg)
        self.accumulate = Accumulator(int(tcfg.get("accumulate_steps", 1)), self.guard)
        self.callbacks: list[Any] = list(getattr(setup, "callbacks", []))
        self.state = LoopState(setup.net, task.trainers, getattr(setup.report, "tracker", None),
                               setup.run_dir,  # a Reporter of a test may have no tracker
                               is_root=setup.world is None or setup.world.is_root)
        self.names: list[str] = []  # the task's extra per-step sums, in a fixed order
        self.train_time = 0.0
        if setup.checkpoints is not None:
            setup.checkpoints.trainers = task.trainers

    @property
    def learning_rate(self) -> float | None:
        trainer = next(iter(self.task.trainers.values()), None)
        return None if trainer is None else float(trainer.learning_rate)

    def _hook(self, name: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, name)(self.state, *args)

    # --- the run ---------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        """Trains; returns the final metrics (the task's ``finish`` has the last word)."""
        s, task = self.s, self.task
        for trainer in task.trainers.values():
            self._start_schedule(trainer.optimizer.lr_scheduler)
        task.prepare()
        self.steps = split_batches(task.steps, s.cfg.trainer)  # limit_train_batches, fast_dev_run
        first_epoch, skip, global_step, saved = self._resume_point()
        self.train_time = float(saved.get("train_time", 0.0))
        s.report.start(self.epochs, self.steps, task.columns)
        if self._stop_agreed():  # a signal during the setup: stop before the first step
            raise StopRequested(INTERRUPTS.requested or "a signal to another worker", global_step,
                                None)
        # every epoch done (a run stopped after its last checkpoint): the last one's metrics
        metrics: dict[str, float] = dict(saved.get("metrics", {})) if first_epoch > self.epochs else {}
        try:
            self._hook("on_fit_start")
            for epoch in range(first_epoch, self.epochs + 1):
                metrics, global_step = self._epoch(epoch, skip, global_step, saved)
                skip, saved = 0, {}
                if self.state.stop_reason:
                    s.report.note(self.state.stop_reason)
                    break
                self._checkpoint(epoch + 1, 0, global_step, {"metrics": _plain(metrics)})
            self._hook("on_fit_end")
        except BaseException as e:
            self._hook("on_exception", e)
            raise
        metrics.update({"steps": global_step, "train_time": self.train_time})
        return task.finish(self._selected(metrics))

    def _epoch(self, epoch: int, skip: int, global_step: int,
               saved: Mapping[str, Any]) -> tuple[dict[str, float], int]:
        """One epoch from batch ``skip`` on: training, validation when due, the report."""
        s, task, state = self.s, self.task, self.state
        start = time.perf_counter()
        state.epoch, state.metrics = epoch, {}
        self._hook("on_epoch_start")
        totals, global_step = self._train_epoch(epoch, skip, global_step, saved, start)
        # the epoch's metrics, after those of its validations every N steps
        metrics = state.metrics = {**state.metrics, **self._epoch_metrics(epoch, totals)}
        if task.converged(metrics):
            state.stop(f"converged at epoch {epoch}")
        last = epoch == self.epochs or state.stop_reason is not None
        due = not self.val_every_steps and self.val_every and epoch % self.val_every == 0
        if task.has_val and (due or last) and self.validated_at != global_step:
            self._validate(global_step)
        metrics["epoch_time"] = time.perf_counter() - start
        s.report.epoch_end(epoch, global_step, metrics)
        self._hook("on_epoch_end")
        return metrics, global_step

    def _validate(self, global_step: int) -> float:
        """A validation after ``global_step`` steps: its ``val/...`` metrics (logged at that
        step, added to the epoch's) and what decides on them: the callbacks and a
        metric-driven schedule. Returns the seconds it took (not training's)."""
        start = time.perf_counter()
        self._hook("on_validation_start")
        metrics = self.task.evaluate("val")
        self.state.metrics.update(metrics)
        self.s.report.validation(global_step, metrics)
        self._hook("on_validation_end")
        self._hook("on_validation_model_train")
        self._observe(self.state.metrics)
        self.validated_at = global_step
        return time.perf_counter() - start

    def _show_validation(self, global_step: int) -> None:
        """A line with the figures of a validation within an epoch (the epoch's row shows
        only its last): those of the task's columns, ``step 500: val ppl 182.31``."""
        shown = [f"{label} {fmt.format(self.state.metrics[key])}" for label, key, fmt
                 in self.task.columns if key.startswith("val/") and key in self.state.metrics]
        if shown:
            self.s.report.note(f"step {global_step}: " + ", ".join(shown))

    def _selected(self, metrics: dict[str, float]) -> dict[str, float]:
        """The final metrics: the selected model's validation figures, ``best/...``, and the
        test split's, evaluated once, on the model the callbacks left (the best epoch's
        parameters with ``trainer.restore_best``)."""
        best = next((c for c in self.callbacks if hasattr(c, "summary")), None)
        if best is not None:
            if best.restore_best and best.best_metrics:
                metrics.update(best.best_metrics)
            metrics.update(best.summary())
        metrics.update(self.task.evaluate("test"))
        return metrics

    def _train_epoch(self, epoch: int, skip: int, global_step: int, saved: Mapping[str, Any],
                     start: float) -> tuple[Totals, int]:
        """One epoch's steps from batch ``skip`` on, begun at ``start``: the job's totals (with
        the time they took) and the global step after them."""
        s, task = self.s, self.task
        s.report.epoch_start(epoch)
        totals = self._own_part(saved.get("totals"))
        pending: list[tuple[int, StepResult]] = []
        for step, batch in enumerate(islice(task.batches(epoch, skip), max(0, self.steps - skip)),
                                     start=skip + 1):
            self.guard.step = global_step + 1
            result = task.train_step(batch, self.accumulate.update)
            self.state.updated = self.accumulate.due(step, self.steps)
            global_step += result.updates
            self.state.step = global_step
            totals.samples += result.samples
            if not self.names and result.sums:
                self.names = sorted(result.sums)
            pending.append((global_step, result))
            self._hook("on_step_end")
            every = self.val_every_steps  # a multiple of it reached: validation
            if every and global_step // every > (global_step - result.updates) // every:
                start += self._validate(global_step)  # the epoch's training time goes without it
                if step < self.steps:  # within the epoch: its figures now, not only in its row
                    self._show_validation(global_step)
            # no checkpoint after a stop was asked: a resumed run would train past it
            due = (step < self.steps and self.state.updated and self._checkpoint_due(global_step)
                   and not self.state.stop_reason)
            fresh = None
            if step % self.log_every == 0 or step == self.steps or due:
                fresh = self._flush(pending, totals, epoch)
                pending = []
            s.report.step(epoch, step, result.samples * s.workers, fresh)
            if due:
                job = self._job_totals(totals)
                self._checkpoint(epoch, step, global_step, {
                    "totals": job.as_list(self.names), "names": self.names,
                    "train_time": self.train_time + time.perf_counter() - start})
            if self.max_steps is not None and global_step >= self.max_steps:
                self.state.stop(f"stopped after trainer.max_steps={self.max_steps} steps")
            if self.state.stop_reason:  # asked by a callback or a validation in the epoch
                break
        if pending:
            self._flush(pending, totals, epoch)
        totals = self._job_totals(totals)
        totals.elapsed = time.perf_counter() - start
        return totals, global_step

    def _flush(self, pending: Sequence[tuple[int, StepResult]], totals: Totals,
               epoch: int) -> float | None:
        """The pending steps' values brought to the host (one sync) and added to ``totals``;
        the newest step loss (per unit) of a finite step, reported to the tracker too."""
        losses = []
        for step, r in pending:
            values = {"loss": _host(r.loss), **{k: _host(v) for k, v in r.sums.items()}}
            if not self.guard.check(step, epoch, values, self.learning_rate):
                continue  # a step trainer.on_nan=skip skipped
            totals.loss += values["loss"]
            totals.count += r.count
            for k in r.sums:
                totals.sums[k] = totals.sums.get(k, 0.0) + values[k]
            losses.append((step, values["loss"] / max(r.count, 1)))
        self.s.report.train_losses(losses)
        return losses[-1][1] if losses else None

    def _epoch_metrics(self, epoch: int, totals: Totals) -> dict[str, float]:
        self.train_time += totals.elapsed
        metrics = {"epoch": epoch, "train/loss": totals.loss / max(totals.count, 1),
                   "train/samples_per_sec": totals.samples / max(totals.elapsed, 1e-9),
                   "epoch_time": totals.elapsed}
        if self.learning_rate is not None:
            metrics["learning_rate"] = self.learning_rate
        metrics.update(self.task.train_metrics(totals))
        return metrics

    # --- data-parallel totals ----------------------------------------------------------------
    def _job_totals(self, totals: Totals) -> Totals:
        return Totals.from_list(self.s.job_totals(*totals.as_list(self.names)), self.names)

    def _own_part(self, saved: Sequence[float] | None) -> Totals:
        """This worker's part of the job totals a checkpoint saved (all of them on rank 0)."""
        if saved is None:
            return Totals()
        return Totals.from_list(self.s.own_part(*saved), self.names)

    # --- schedules -------------------------------------------------------------------------
    def _start_schedule(self, schedule: Any) -> None:
        """Tell a schedule what it left open: the updates per epoch (EpochDecay) and in the
        whole run (PolyScheduler, CosineScheduler)."""
        steps = split_batches(self.task.steps, self.s.cfg.trainer)
        for attr, value in (("steps_per_epoch", steps), ("max_update", steps * self.epochs)):
            if getattr(schedule, attr, 0) is None:
                setattr(schedule, attr, value)

    def _observe(self, metrics: Mapping[str, float]) -> None:
        """Feed a validation to a metric-driven schedule (ReduceOnPlateau): the monitored
        metric (``trainer.monitor``, else the task's primary one)."""
        name = self.s.cfg.trainer.get("monitor") or self.task.primary[0]
        for trainer in self.task.trainers.values():
            schedule = trainer.optimizer.lr_scheduler
            if hasattr(schedule, "observe") and name in metrics:
                schedule.observe(float(metrics[name]))

    # --- checkpoints, resuming and stopping --------------------------------------------------
    def _resume_point(self) -> tuple[int, int, int, dict]:
        """(epoch, batches of it done, steps done, the loop's saved counters), with the
        checkpoint's parameters, optimizer, RNG and task states restored; (1, 0, 0, {}) for a
        fresh run (every worker then starts from rank 0's initial parameters)."""
        s, c = self.s, self.s.resume_from
        if c is None:
            for trainer in self.task.trainers.values():
                trainer.broadcast_params()
            return 1, 0, 0, {}
        if c.epoch > self.epochs:  # resume.check_epochs allowed it: only the end is left
            if "metrics" not in c.state.get("loop", {}):
                raise ResumeError(f"{c.source} holds no metrics of the run's last epoch; resume "
                                  "from an earlier checkpoint")
            s.report.note(f"all {plural(self.epochs, 'epoch')} were done when the run stopped; finishing "
                          f"it from {c.source}")
        s.checkpoints.restore(c)
        for trainer in self.task.trainers.values():
            trainer.broadcast_params()
        saved = dict(c.state.get("loop", {}))
        self.names = list(saved.get("names", []))
        self.guard.skipped = int(saved.get("nan_skips", 0))
        arrays = {k[len("task/"):]: v for k, v in c.arrays.items() if k.startswith("task/")}
        self.task.load_state(dict(c.state.get("task", {})), arrays)
        kept = c.state.get("callbacks", {})
        for cb in self.callbacks:
            if cb.name in kept:
                prefix = f"cb/{cb.name}/"
                cb.load_state(kept[cb.name], {k[len(prefix):]: v for k, v in c.arrays.items()
                                              if k.startswith(prefix)})
        return c.epoch, c.batch, c.step, saved

    def _stop_agreed(self) -> bool:
        """Whether a signal asked to stop, on any rank (all ranks stop at the same step)."""
        asked = INTERRUPTS.requested is not None
        return asked if self.s.world is None else self.s.world.any(asked)

    def _checkpoint_due(self, step: int) -> bool:
        checkpoints = self.s.checkpoints
        return self._stop_agreed() or (checkpoints is not None and checkpoints.due(step))

    def _checkpoint(self, epoch: int, batch: int, step: int, loop_state: dict | None) -> None:
        """Save the run at ``batch`` batches into ``epoch``; then stop, if a signal asked to."""
        stop = self._stop_agreed()
        checkpoints = self.s.checkpoints
        if checkpoints is not None:
            state = {"train_time": self.train_time, **(loop_state or {}),
                     "nan_skips": self.guard.skipped}
            task_state, task_arrays = self.task.state()
            kept, arrays = {}, {}
            for cb in self.callbacks:
                kept[cb.name], cb_arrays = cb.state()
                arrays.update({f"cb/{cb.name}/{k}": v for k, v in cb_arrays.items()})
            checkpoints.save(epoch, batch, step, {"loop": state, "task": task_state,
                                                  "callbacks": kept}, task_arrays, arrays)
        if stop:
            raise StopRequested(INTERRUPTS.requested or "a signal to another worker", step,
                                checkpoints.last if checkpoints is not None else None)


def _plain(metrics: Mapping[str, Any]) -> dict[str, int | float]:
    """Metrics as JSON numbers (a checkpoint's)."""
    return {k: v if isinstance(v, (int, float)) else float(v) for k, v in metrics.items()}


def _host(value: Any) -> float:
    """A device scalar (or a number) as a Python float."""
    return float(value.asscalar()) if hasattr(value, "asscalar") else float(value)
