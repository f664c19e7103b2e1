"""Binary classification with labels -1/+1 by a linear score ``f(x)``, class ``sign(f(x))``.

A model with its own learning rule (``net.fit_epoch``: the perceptron) learns by that rule,
one pass over the shuffled training set per epoch (one loop step that counts as one update
per example), and no optimizer is used: the seed's algorithm, repeated "until all classified
correctly" (the run stops after the first epoch without a mistake, or after
``trainer.epochs``). Any other one-output model (logistic regression) is trained by
minibatch SGD on the configured loss (``loss=logistic`` for labels +-1, ``loss=sigmoid_bce``
with the labels mapped to 0/1, ``loss=hinge``, ``loss=perceptron``).

Metrics per epoch: ``train/mistakes`` (examples misclassified when visited, before their
update), ``train/loss`` (the mean loss of the pass: the perceptron loss ``max(0, -y f(x))``
for the rule), ``train/accuracy`` and ``val/accuracy`` (after the pass; the primary
metric) and ``val/loss`` (the same loss on the validation split); ``test/accuracy`` and
``test/loss`` once, at the end. An example counts as correct when ``y f(x) > 0``, as in the rule.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from dlrun.data import DataLoader
from dlrun.engine import array, autograd
from dlrun.loss import LogisticLoss, SigmoidBinaryCrossEntropyLoss, SoftmaxCrossEntropyLoss

from ..console import plural
from ..loop import StepResult, Totals
from .base import Setup, TaskBase


class PerceptronTask(TaskBase):
    primary = ("val/accuracy", "max")
    columns = (("epoch", "epoch", "{}"), ("mistakes", "train/mistakes", "{:.0f}"),
               ("train acc", "train/accuracy", "{:.2%}"), ("val acc", "val/accuracy", "{:.2%}"),
               ("time", "epoch_time", "{:.1f}s"))
    results = (("test accuracy", "test/accuracy", "{:.2%}"), ("val accuracy", "val/accuracy", "{:.2%}"), ("mistakes (last pass)", "train/mistakes", "{:.0f}"),
               ("train accuracy", "train/accuracy", "{:.2%}"), ("epochs", "epoch", "{}"))

    def __init__(self, setup: Setup):
        super().__init__(setup)
        data, net = setup.data, setup.net
        splits = {"train": data.train, "val": getattr(data, "val", None), "test": data.test}
        for name, split in splits.items():
            if split is None:
                continue
            labels = np.unique(np.asarray(split.label))
            if not set(labels.tolist()) <= {-1.0, 1.0}:
                raise ValueError(f"the {name} labels must be -1 and +1 for this task, got "
                                 f"{labels[:5].tolist()}; pick a binary dataset "
                                 f"(dataset=separable)")
        blank = np.zeros((1, *data.train.data.shape[1:]), dtype=np.float32)
        outputs = int(np.prod(net(array(blank, ctx=setup.ctx)).shape[1:]))  # shapes the parameters
        if outputs != 1:
            raise ValueError(f"this task needs a model with one output (a score), but "
                             f"{type(net).__name__} gives {outputs}; use "
                             f"model=perceptron or model=logistic_regression")
        self.rule = callable(getattr(net, "fit_epoch", None))
        batch = setup.eval_batch_size
        self.loaders = {name: DataLoader(split, batch, shuffle=False, ctx=setup.ctx)
                        for name, split in splits.items() if split is not None}
        if self.rule:
            self.trainers, self.steps = {}, 1  # the rule has no optimizer
            return
        if isinstance(setup.loss, SoftmaxCrossEntropyLoss):
            raise ValueError("softmax cross-entropy needs one output per class; for one "
                             "logit and labels +-1 use loss=logistic (or sigmoid_bce, hinge)")
        # losses over 0/1 labels get (y + 1) / 2
        self.binary_labels = isinstance(setup.loss, SigmoidBinaryCrossEntropyLoss) or (
            isinstance(setup.loss, LogisticLoss)
            and getattr(setup.loss, "_label_format", "signed") == "binary")
        self.train_loader = DataLoader(data.train, setup.batch_size, shuffle=True,
                                       seed=setup.seed, ctx=setup.ctx)
        self.steps = len(self.train_loader)

    def describe(self) -> Sequence[tuple[str, str]]:
        data = self.setup.data
        shape = "x".join(str(d) for d in data.train.data.shape[1:])
        val = 0 if getattr(data, "val", None) is None else len(data.val)
        rows = [("data", f"{len(data.train):,} / {val:,} / {len(data.test):,} examples "
                         f"(train/val/test), {shape} features, labels -1/+1")]
        if self.rule:
            rows.append(("schedule", f"the perceptron rule (no optimizer): up to "
                                     f"{self.tcfg.epochs} passes, until one without a mistake"))
        else:
            rows.append(("schedule", f"{plural(self.tcfg.epochs, 'epoch')} x {self.steps} steps, "
                                     f"batch {self.setup.batch_text()}"))
        return rows

    def batches(self, epoch: int, skip: int) -> Iterable[Any]:
        if self.rule:  # one pass of the rule, in this epoch's order
            rng = np.random.default_rng(self.setup.seed + epoch)
            return [rng.permutation(len(self.setup.data.train))]
        self.train_loader.epoch = epoch - 1  # this epoch's order, also in a resumed run
        return self.train_loader.iterate(skip)

    def train_step(self, batch: Any, update: Callable[[Any, int], None]) -> StepResult:
        s = self.setup
        if self.rule:  # batch: the order of the pass; the rule looks at one example per step
            y = np.asarray(s.data.train.label)
            mistakes, loss_sum = s.net.fit_epoch(np.asarray(s.data.train.data), y, batch)
            return StepResult(loss_sum, len(y), len(y), {"mistakes": mistakes}, updates=len(y))
        x, y = batch
        with autograd.record():
            out = s.net(x)
            loss = s.loss(out, (y + 1.0) / 2.0 if self.binary_labels else y)
        loss.backward()
        n = x.shape[0]
        update(s.trainer, n)
        mistakes = (y.reshape(-1) * out.reshape(-1) <= 0).sum()
        return StepResult(loss.sum(), n, n, {"mistakes": mistakes})

    def train_metrics(self, totals: Totals) -> dict[str, float]:
        return {"train/mistakes": round(totals.sums.get("mistakes", 0.0)),  # a count
                "train/accuracy": self._accuracy(self.loaders["train"])[0]}

    def converged(self, metrics: Mapping[str, float]) -> bool:
        return self.rule and metrics["train/mistakes"] == 0  # "until all classified correctly"

    def evaluate(self, split: str = "val") -> dict[str, float]:
        accuracy, loss = self._accuracy(self.eval_batches(split, self.loaders[split]))
        return {f"{split}/accuracy": accuracy, f"{split}/loss": loss}

    def _accuracy(self, loader: Iterable[Any]) -> tuple[float, float]:
        """(accuracy of sign(f(x)), mean loss) on a split: the perceptron loss
        max(0, -y f(x)) for the rule, the configured loss otherwise."""
        s = self.setup
        correct, loss_sum, count = 0, 0.0, 0
        for x, y in loader:
            out = s.net(x)
            margin = y.asnumpy().reshape(-1) * out.asnumpy().reshape(-1)
            correct += int((margin > 0).sum())
            if self.rule:
                loss_sum += float(np.maximum(0.0, -margin).sum())
            else:
                target = (y + 1.0) / 2.0 if self.binary_labels else y
                loss_sum += float(s.loss(out, target).sum().asscalar())
            count += len(margin)
        return correct / max(count, 1), loss_sum / max(count, 1)
