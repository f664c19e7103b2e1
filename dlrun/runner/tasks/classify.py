"""Classification: minibatch training with a per-step loss and test-split evaluation per epoch."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from dlrun.data import DataLoader
from dlrun.engine import array, autograd

from ..console import EPOCH_COLUMNS, RESULT_ROWS
from .base import Setup

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
        self.train_loader = DataLoader(setup.data.train, int(self.tcfg.batch_size), shuffle=True,
                                       seed=setup.seed, ctx=setup.ctx,
                                       transform=getattr(setup.data, "augment", None))
        self.test_loader = DataLoader(setup.data.test, max(int(self.tcfg.batch_size), EVAL_BATCH_SIZE),
                                      shuffle=False, ctx=setup.ctx)

    def describe(self) -> Sequence[tuple[str, str]]:
        data = self.setup.data
        shape = "x".join(str(d) for d in data.input_shape)
        return [("data", f"{len(data.train):,} train / {len(data.test):,} test examples, "
                         f"{shape}, {data.num_classes} classes"),
                ("schedule", f"{self.tcfg.epochs} epochs x {len(self.train_loader)} steps, "
                             f"batch {self.tcfg.batch_size}")]

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        s, tcfg = self.setup, self.tcfg
        epochs, log_every = int(tcfg.epochs), max(1, int(tcfg.log_every))
        steps = len(self.train_loader)
        s.start_schedule(steps, epochs)
        s.report.start(epochs, steps, self.columns)
        global_step, metrics = 0, {}
        train_time = 0.0
        for epoch in range(1, epochs + 1):
            s.report.epoch_start(epoch)
            start = time.perf_counter()
            pending: list[tuple[int, Any, int]] = []  # (global step, mean loss on the device, batch size)
            loss_sum, samples = 0.0, 0
            for step, (x, y) in enumerate(self.train_loader, start=1):
                with autograd.record():
                    loss = s.loss(s.net(x), y)
                loss.backward()
                n = x.shape[0]
                global_step += 1
                s.checked_step(n, global_step)
                samples += n
                pending.append((global_step, loss.mean(), n))
                fresh = None
                if step % log_every == 0 or step == steps:
                    values = s.fetch_losses(pending, epoch)
                    loss_sum += sum(v * size for (_, v), (_, _, size) in zip(values, pending))
                    s.report.train_losses(values)
                    fresh = values[-1][1]
                    pending = []
                s.report.step(epoch, step, n, fresh)
            elapsed = time.perf_counter() - start
            train_time += elapsed
            metrics = {"epoch": epoch, "train/loss": loss_sum / max(samples, 1),
                       "train/samples_per_sec": samples / max(elapsed, 1e-9),
                       "epoch_time": elapsed, "learning_rate": float(s.trainer.learning_rate)}
            if tcfg.eval_every_epoch or epoch == epochs:
                metrics.update(self.evaluate())
                s.observe(metrics, self.primary_metric)
            metrics["epoch_time"] = time.perf_counter() - start
            s.report.epoch_end(epoch, global_step, metrics)
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
