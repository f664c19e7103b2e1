"""Binary classification with labels -1/+1 by a linear score ``f(x)``, class ``sign(f(x))``.

A model with its own learning rule (``net.fit_epoch``: the perceptron) learns by that rule,
one pass over the shuffled training set per epoch, and no optimizer is used: the seed's
algorithm, repeated "until all classified correctly" (the run stops after the first epoch
without a mistake, or after ``trainer.epochs``). Any other one-output model (logistic
regression) is trained by minibatch SGD on the configured loss (``loss=logistic`` for labels
+-1, ``loss=sigmoid_bce`` with the labels mapped to 0/1, ``loss=hinge``, ``loss=perceptron``).

Metrics per epoch: ``train/mistakes`` (examples misclassified when visited, before their
update), ``train/loss`` (the mean loss of the pass: the perceptron loss ``max(0, -y f(x))``
for the rule), ``train/accuracy`` and ``eval/accuracy`` (after the pass; the primary
metric) and ``eval/loss`` (the same loss on the test split). An example counts as correct when ``y f(x) > 0``, as in the rule.
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from dlrun.data import DataLoader
from dlrun.engine import array, autograd

from .base import DivergenceError, Setup


class PerceptronTask:
    primary_metric = "eval/accuracy"
    primary_mode = "max"
    columns = (("epoch", "epoch", "{}"), ("mistakes", "train/mistakes", "{:.0f}"),
               ("train acc", "train/accuracy", "{:.2%}"), ("test acc", "eval/accuracy", "{:.2%}"),
               ("time", "epoch_time", "{:.1f}s"))
    results = (("test accuracy", "eval/accuracy", "{:.2%}"), ("mistakes (last pass)", "train/mistakes", "{:.0f}"),
               ("train accuracy", "train/accuracy", "{:.2%}"), ("epochs", "epoch", "{}"))

    def __init__(self, setup: Setup):
        self.setup = setup
        self.tcfg = setup.cfg.trainer
        data, net = setup.data, setup.net
        for name, split in (("train", data.train), ("test", data.test)):
            labels = np.unique(np.asarray(split.label))
            if not set(labels.tolist()) <= {-1.0, 1.0}:
                raise ValueError(f"the {name} labels must be -1 and +1 for this task, got "
                                 f"{labels[:5].tolist()}; pick a binary dataset "
                                 f"(dataset=separable)")
        blank = np.zeros((1, *data.train.data.shape[1:]), dtype=np.float32)
        out = net(array(blank, ctx=setup.ctx))  # gives deferred parameters their shapes
        if int(np.prod(out.shape[1:])) != 1:
            raise ValueError(f"this task needs a model with one output (a score), but "
                             f"{type(net).__name__} gives {int(np.prod(out.shape[1:]))}; use "
                             f"model=perceptron or model=logistic_regression")
        self.rule = callable(getattr(net, "fit_epoch", None))
        self.test_loader = DataLoader(data.test, 256, shuffle=False, ctx=setup.ctx)
        self.train_eval_loader = DataLoader(data.train, 256, shuffle=False, ctx=setup.ctx)
        if not self.rule:
            from dlrun.loss import LogisticLoss, SigmoidBinaryCrossEntropyLoss, SoftmaxCrossEntropyLoss

            if isinstance(setup.loss, SoftmaxCrossEntropyLoss):
                raise ValueError("softmax cross-entropy needs one output per class; for one "
                                 "logit and labels +-1 use loss=logistic (or sigmoid_bce, hinge)")
            # losses over 0/1 labels get (y + 1) / 2
            self.binary_labels = isinstance(setup.loss, SigmoidBinaryCrossEntropyLoss) or (
                isinstance(setup.loss, LogisticLoss)
                and getattr(setup.loss, "_label_format", "signed") == "binary")
            self.train_loader = DataLoader(data.train, int(self.tcfg.batch_size), shuffle=True,
                                           seed=setup.seed, ctx=setup.ctx)

    def describe(self) -> Sequence[tuple[str, str]]:
        data = self.setup.data
        shape = "x".join(str(d) for d in data.train.data.shape[1:])
        rows = [("data", f"{len(data.train):,} train / {len(data.test):,} test examples, "
                         f"{shape} features, labels -1/+1")]
        if self.rule:
            rows.append(("schedule", f"the perceptron rule (no optimizer): up to "
                                     f"{self.tcfg.epochs} passes, until one without a mistake"))
        else:
            rows.append(("schedule", f"{self.tcfg.epochs} epochs x {len(self.train_loader)} "
                                     f"steps, batch {self.tcfg.batch_size}"))
        return rows

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        s, tcfg = self.setup, self.tcfg
        epochs = int(tcfg.epochs)
        steps = 1 if self.rule else len(self.train_loader)
        if not self.rule:
            s.start_schedule(steps, epochs)
        first_epoch, _, global_step, saved = s.resume_point(epochs)  # checkpoints at pass ends only
        s.report.start(epochs, steps, self.columns)
        x_train = np.asarray(s.data.train.data)
        y_train = np.asarray(s.data.train.label)
        metrics, train_time = {}, float(saved.get("train_time", 0.0))
        for epoch in range(first_epoch, epochs + 1):
            s.report.epoch_start(epoch)
            start = time.perf_counter()
            if self.rule:
                order = np.random.default_rng(s.seed + epoch).permutation(len(y_train))
                mistakes, loss_sum = s.net.fit_epoch(x_train, y_train, order)
                global_step += len(y_train)  # the rule looks at one example per step
                mean_loss = loss_sum / max(len(y_train), 1)
                s.report.train_losses([(global_step, mean_loss)])
                s.report.step(epoch, 1, len(y_train), mean_loss)
            else:
                mistakes, mean_loss, global_step = self._sgd_epoch(epoch, global_step)
            elapsed = time.perf_counter() - start
            train_time += elapsed
            metrics = {"epoch": epoch, "train/loss": mean_loss, "train/mistakes": mistakes,
                       "train/samples_per_sec": len(y_train) / max(elapsed, 1e-9),
                       "epoch_time": elapsed}
            if not self.rule:
                metrics["learning_rate"] = float(s.trainer.learning_rate)
            train_acc, _ = self._accuracy(self.train_eval_loader)
            metrics["train/accuracy"] = train_acc
            separated = self.rule and mistakes == 0
            if tcfg.eval_every_epoch or epoch == epochs or separated:
                acc, loss = self._accuracy(self.test_loader)
                metrics.update({"eval/accuracy": acc, "eval/loss": loss})
                s.observe(metrics, self.primary_metric)
            metrics["epoch_time"] = time.perf_counter() - start
            s.report.epoch_end(epoch, global_step, metrics)
            if separated:  # "until all classified correctly"
                break
            s.checkpoint(epoch + 1, 0, global_step, {"train_time": train_time})
        metrics.update({"steps": global_step, "train_time": train_time})
        return metrics

    def _sgd_epoch(self, epoch: int, global_step: int) -> tuple[int, float, int]:
        s = self.setup
        mistakes, loss_sum, samples = 0, 0.0, 0
        self.train_loader.epoch = epoch - 1  # this epoch's order, also in a resumed run
        for step, (x, y) in enumerate(self.train_loader, start=1):
            target = (y + 1.0) / 2.0 if self.binary_labels else y
            with autograd.record():
                out = s.net(x)
                loss = s.loss(out, target)
            loss.backward()
            n = x.shape[0]
            global_step += 1
            s.checked_step(n, global_step)
            value = float(loss.mean().asscalar())
            if not math.isfinite(value):
                raise DivergenceError(
                    f"the training loss became {value} at step {global_step} (epoch {epoch}); "
                    f"lower the learning rate (optimizer.lr, now {s.trainer.learning_rate:g})")
            score = out.asnumpy().reshape(-1)
            mistakes += int((y.asnumpy().reshape(-1) * score <= 0).sum())
            loss_sum += value * n
            samples += n
            s.report.train_losses([(global_step, value)])
            s.report.step(epoch, step, n, value)
        return mistakes, loss_sum / max(samples, 1), global_step

    def _accuracy(self, loader: DataLoader) -> tuple[float, float]:
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
