"""Classification: minibatch training with a per-step loss and test-split evaluation per epoch."""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from dlrun.data import DataLoader
from dlrun.engine import array, autograd

from ..console import EPOCH_COLUMNS, RESULT_ROWS
from .base import Setup, batch_text

EVAL_BATCH_SIZE = 256  # evaluation keeps no graph, so larger batches are cheap and faster


class ClassifyTask:
    """Trains ``setup.net`` on ``setup.data.train`` and evaluates on ``setup.data.test``.

    ``setup.data`` is a ``dlrun.data.vision.Splits`` (``train``/``test`` ArrayDatasets,
    ``num_classes``, ``input_shape``). The metrics: ``train/loss`` (per step, and the mean
    over each epoch), ``eval/loss`` and ``eval/accuracy`` on the test split.
    """

    primary_metric = "eval/accuracy"
    columns = EPOCH_COLUMNS
    results = RESULT_ROWS
    distributed = True  # data-parallel: each worker trains on its part of every batch

    def __init__(self, setup: Setup):
        self._make_loaders(setup)
        data = setup.data
        # one forward pass on a blank example gives every deferred parameter its shape
        blank = np.zeros((1, *data.input_shape), dtype=np.float32)
        out = setup.net(array(blank, ctx=setup.ctx))
        classes = out.shape[-1]
        if classes < data.num_classes:
            raise ValueError(
                f"the model has {classes} outputs but the dataset has {data.num_classes} classes; "
                f"set model.classes={data.num_classes}")

    def _make_loaders(self, setup: Setup) -> None:
        """Shuffled training batches and larger, ordered evaluation batches."""
        self.setup = setup
        self.tcfg = setup.cfg.trainer
        self.train_loader = DataLoader(setup.data.train, setup.batch_size, shuffle=True,
                                       seed=setup.seed, ctx=setup.ctx, shard=setup.shard,
                                       transform=getattr(setup.data, "augment", None))
        self.test_loader = DataLoader(setup.data.test, max(int(self.tcfg.batch_size), EVAL_BATCH_SIZE),
                                      shuffle=False, ctx=setup.ctx)

    def describe(self) -> Sequence[tuple[str, str]]:
        data = self.setup.data
        shape = "x".join(str(d) for d in data.input_shape)
        return [("data", f"{len(data.train):,} train / {len(data.test):,} test examples, "
                         f"{shape}, {data.num_classes} classes"),
                ("schedule", f"{self.tcfg.epochs} epochs x {len(self.train_loader)} steps, "
                             f"batch {batch_text(self.setup)}")]

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        s, tcfg = self.setup, self.tcfg
        epochs, log_every = int(tcfg.epochs), max(1, int(tcfg.log_every))
        steps = len(self.train_loader)
        s.start_schedule(steps, epochs)
        first_epoch, skip, global_step, saved = s.resume_point(epochs)
        s.report.start(epochs, steps, self.columns)
        metrics: dict[str, float] = {}
        train_time = float(saved.get("train_time", 0.0))
        for epoch in range(first_epoch, epochs + 1):
            s.report.epoch_start(epoch)
            start = time.perf_counter()
            pending: list[tuple[int, Any, int]] = []  # (global step, mean loss on the device, batch size)
            loss_sum, samples = s.own_part(float(saved.get("loss_sum", 0.0)), int(saved.get("samples", 0)))
            saved = {}

            def flush(epoch: int = epoch) -> float | None:
                """Bring the pending losses to the host; the newest finite one (a non-finite
                loss is that of a step trainer.on_nan=skip skipped)."""
                nonlocal loss_sum, pending
                sizes = {g: size for g, _, size in pending}
                values = [(g, v) for g, v in s.fetch_losses(pending, epoch) if math.isfinite(v)]
                loss_sum += sum(v * sizes[g] for g, v in values)
                s.report.train_losses(values)
                pending = []
                return values[-1][1] if values else None

            self.train_loader.epoch = epoch - 1  # the order and augmentation of this epoch
            for step, (x, y) in enumerate(self.train_loader.iterate(skip), start=skip + 1):
                with autograd.record():
                    loss = s.loss(s.net(x), y)
                loss.backward()
                n = x.shape[0]
                global_step += 1
                s.checked_step(n, global_step)
                samples += n
                pending.append((global_step, loss.mean(), n))
                fresh = flush() if step % log_every == 0 or step == steps else None
                s.report.step(epoch, step, n * s.workers, fresh)
                if step < steps and s.checkpoint_due(global_step):
                    if pending:
                        flush()  # a diverged loss stops the run before it is saved
                    job_loss, job_samples = s.job_totals(loss_sum, samples)
                    s.checkpoint(epoch, step, global_step, {
                        "loss_sum": job_loss, "samples": job_samples,
                        "train_time": train_time + time.perf_counter() - start})
            skip = 0
            elapsed = time.perf_counter() - start
            train_time += elapsed
            job_loss, job_samples = s.job_totals(loss_sum, samples)
            metrics = {"epoch": epoch, "train/loss": job_loss / max(job_samples, 1),
                       "train/samples_per_sec": job_samples / max(elapsed, 1e-9),
                       "epoch_time": elapsed, "learning_rate": float(s.trainer.learning_rate)}
            if tcfg.eval_every_epoch or epoch == epochs:
                metrics.update(self.evaluate())
                s.observe(metrics, self.primary_metric)
            metrics["epoch_time"] = time.perf_counter() - start
            s.report.epoch_end(epoch, global_step, metrics)
            s.checkpoint(epoch + 1, 0, global_step, {"train_time": train_time})
        metrics.update({"steps": global_step, "train_time": train_time})
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Loss and accuracy of the model on the test split (no graph is recorded)."""
        s = self.setup
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in self.test_loader:
            out = s.net(x)
            loss_sum += float(s.loss(out, y).sum().asscalar())
            pred = out.argmax(axis=1).asnumpy().astype(np.int64)
            correct += int((pred == y.asnumpy().astype(np.int64)).sum())
            count += x.shape[0]
        return {"eval/loss": loss_sum / max(count, 1), "eval/accuracy": correct / max(count, 1)}
