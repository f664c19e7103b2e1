"""Classification: minibatch training with a per-step loss, validation every epoch and the
test split once, at the end."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from dlrun.data import DataLoader
from dlrun.engine import array, autograd

from ..console import plural
from ..loop import StepResult
from .base import Setup, TaskBase


class ClassifyTask(TaskBase):
    """Trains ``setup.net`` on ``setup.data.train``, validates on ``setup.data.val`` and
    tests on ``setup.data.test``.

    ``setup.data`` is a ``dlrun.data.vision.Splits`` (``train``/``val``/``test``
    ArrayDatasets, ``num_classes``, ``input_shape``). The metrics: ``train/loss`` (per step,
    and the mean over each epoch), ``val/loss`` and ``val/accuracy`` (each validation),
    ``test/loss`` and ``test/accuracy`` (once, on the selected model).
    """

    primary = ("val/accuracy", "max")
    distributed = True  # data-parallel: each worker trains on its part of every batch

    def __init__(self, setup: Setup):
        super().__init__(setup)
        self.train_loader = DataLoader(setup.data.train, setup.batch_size, shuffle=True,
                                       seed=setup.seed, ctx=setup.ctx, shard=setup.shard,
                                       transform=getattr(setup.data, "augment", None))
        self.loaders = {split: DataLoader(getattr(setup.data, split), setup.eval_batch_size,
                                          shuffle=False, ctx=setup.ctx)
                        for split in ("val", "test") if getattr(setup.data, split, None) is not None}
        self.steps = len(self.train_loader)
        self.check_outputs(self.shape_model())

    def shape_model(self) -> Any:
        """One forward pass on a blank example gives every deferred parameter its shape; its
        output, for the check of the model's outputs against the data."""
        blank = np.zeros((1, *self.setup.data.input_shape), dtype=np.float32)
        return self.setup.net(array(blank, ctx=self.setup.ctx))

    def check_outputs(self, out: Any) -> None:
        classes = out.shape[-1]
        if classes < self.setup.data.num_classes:
            raise ValueError(
                f"the model has {classes} outputs but the dataset has "
                f"{self.setup.data.num_classes} classes; set model.classes={self.setup.data.num_classes}")

    def describe(self) -> Sequence[tuple[str, str]]:
        data = self.setup.data
        shape = "x".join(str(d) for d in data.input_shape)
        val = 0 if data.val is None else len(data.val)
        return [("data", f"{len(data.train):,} / {val:,} / {len(data.test):,} examples "
                         f"(train/val/test), {shape}{self.data_note()}"),
                ("schedule", f"{plural(self.tcfg.epochs, 'epoch')} x {self.steps} steps, "
                             f"batch {self.setup.batch_text()}")]

    def data_note(self) -> str:
        return f", {self.setup.data.num_classes} classes"

    def batches(self, epoch: int, skip: int) -> Iterable[Any]:
        self.train_loader.epoch = epoch - 1  # the order and augmentation of this epoch
        return self.train_loader.iterate(skip)

    def train_step(self, batch: Any, update: Callable[[Any, int], None]) -> StepResult:
        s = self.setup
        x, y = batch
        with autograd.record():
            loss = s.loss(s.net(x), y)
        loss.backward()
        n = x.shape[0]
        update(s.trainer, n)
        return StepResult(loss.sum(), n, n)

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Loss and accuracy of the model on ``split`` (no graph is recorded)."""
        s = self.setup
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in self.eval_batches(split, self.loaders[split]):
            out = s.net(x)
            loss_sum += float(s.loss(out, y).sum().asscalar())
            pred = out.argmax(axis=1).asnumpy().astype(np.int64)
            correct += int((pred == y.asnumpy().astype(np.int64)).sum())
            count += x.shape[0]
        return {f"{split}/loss": loss_sum / max(count, 1), f"{split}/accuracy": correct / max(count, 1)}
