"""Tree sentiment: a Tree-LSTM classifying the nodes of parse trees (Tai et al. 2015).

The data is a ``dlrun.data.trees.TreeDataset`` (train/dev/test trees, vocabulary, classes,
optional word vectors); the model a ``dlrun.models.treelstm.TreeLSTM`` or any block called as
``net(batch)`` on a ``TreeBatch`` that returns logits of every node (``nodes="all"``, tree by
tree in post-order) or of the roots (``nodes="root"``), and has ``classify`` ("all"/"root").

Training, as Tai et al.: minibatches of ``trainer.batch_size`` trees; the cost of a tree is
the cross-entropy summed over its labelled nodes (label -1 is no target: neutral nodes of
binary SST, ListOps operators), and a step averages it over the trees of the minibatch.
Metrics: on dev after every epoch ``eval/root_accuracy`` (the primary metric: the sentence
label), ``eval/all_accuracy`` (every labelled node) and ``eval/loss`` (per labelled node);
``train/trees_per_sec``. At the end the parameters of the epoch with the best dev root
accuracy are restored (the paper's model selection) and evaluated on test:
``test/root_accuracy``, ``test/all_accuracy``, ``test/loss``, and ``best_epoch``.
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from dlrun.engine import array, autograd, ops

from .base import Setup

EVAL_BATCH_SIZE = 256  # evaluation keeps no graph: larger level-batched minibatches are cheaper


def targets(batch: Any, nodes: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(the rows of the logits of ``nodes`` ("all" or "root") that have a target, their labels):
    nodes labelled -1 carry none."""
    labels = batch.labels if nodes == "all" else batch.labels[batch.roots]
    keep = np.flatnonzero(labels >= 0)
    return keep, labels[keep]


class TreeSentimentTask:
    primary_metric = "eval/root_accuracy"
    columns = (("epoch", "epoch", "{}"), ("train loss", "train/loss", "{:.4f}"),
               ("dev loss", "eval/loss", "{:.4f}"), ("dev root", "eval/root_accuracy", "{:.2%}"),
               ("dev all", "eval/all_accuracy", "{:.2%}"), ("trees/s", "train/trees_per_sec", "{:,.1f}"),
               ("time", "epoch_time", "{:.1f}s"))
    results = (("test root accuracy", "test/root_accuracy", "{:.2%}"),
               ("test all-node accuracy", "test/all_accuracy", "{:.2%}"),
               ("dev root accuracy", "eval/root_accuracy", "{:.2%}"),
               ("best epoch (by dev root)", "best_epoch", "{}"),
               ("trees/s (last epoch)", "train/trees_per_sec", "{:,.1f}"), ("steps", "steps", "{}"))
    primary_mode = "max"

    def __init__(self, setup: Setup):
        from dlrun.models.treelstm import flatten_tree

        self.setup = setup
        self.tcfg = tcfg = setup.cfg.trainer
        data, net = setup.data, setup.net
        self.batch_size = int(tcfg.batch_size)
        self.eval_batch_size = int(tcfg.eval_batch_size or max(self.batch_size, EVAL_BATCH_SIZE))
        if not data.train:
            raise ValueError("the dataset has no training trees")
        self.dev = data.dev or data.test  # evaluation each epoch (the test split if no dev)
        # every tree's arrays once: batches are then assembled with NumPy only
        self.flats = {id(t): flatten_tree(t) for split in (data.train, self.dev, data.test)
                      for t in split}
        classes = getattr(net, "classes", None)
        if classes is not None and classes < data.num_classes:
            raise ValueError(f"the model has {classes} outputs but the dataset has "
                             f"{data.num_classes} classes; set model.classes={data.num_classes}")
        if hasattr(net, "check_children"):  # a binary cell on trees with wider nodes
            from dlrun.runner.build import ConfigError

            try:
                net.check_children(max(f.children.shape[1] for f in self.flats.values()))
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if getattr(data, "embeddings", None) is not None:
            net.load_embeddings(data.embeddings)
        self.steps = math.ceil(len(data.train) / self.batch_size)
        self.rng = np.random.default_rng(setup.seed)

    def describe(self) -> Sequence[tuple[str, str]]:
        d, net = self.setup.data, self.setup.net
        nodes = sum(len(f.words) for f in self.flats.values())
        trees = len(d.train) + len(self.dev) + len(d.test)
        vectors = "pre-trained word vectors" if getattr(d, "embeddings", None) is not None \
            else "random word vectors"
        mode = "level by level" if getattr(net, "batched", True) else "recursive, node by node"
        return [("data", f"{len(d.train):,} / {len(d.dev):,} / {len(d.test):,} trees "
                         f"(train/dev/test), {nodes / max(trees, 1):.1f} nodes per tree, "
                         f"vocabulary {len(d.vocab):,}, {d.num_classes} classes, {vectors}"),
                ("schedule", f"{self.tcfg.epochs} epochs x {self.steps} steps, batch "
                             f"{self.batch_size} trees, classify {getattr(net, 'classify', 'all')}"
                             f" nodes, {mode}")]

    def batch(self, trees: Sequence[Any]) -> Any:
        from dlrun.models.treelstm import TreeBatch

        return TreeBatch.of(trees, [self.flats[id(t)] for t in trees])

    def _loss(self, logits: Any, keep: np.ndarray, labels: np.ndarray) -> Any:
        """Cross-entropy of each labelled row of ``logits``."""
        ctx = self.setup.ctx
        return self.setup.loss(ops.take(logits, array(keep, ctx=ctx, dtype="int64")),
                               array(labels, ctx=ctx, dtype="int64"))

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        s, tcfg, data = self.setup, self.tcfg, self.setup.data
        epochs, log_every = int(tcfg.epochs), max(1, int(tcfg.log_every))
        nodes = getattr(s.net, "classify", "all")
        s.start_schedule(self.steps, epochs)
        first_epoch, skip, global_step, saved = s.resume_point(epochs)
        s.report.start(epochs, self.steps, self.columns)
        metrics: dict[str, float] = {}
        train_time = float(saved.get("train_time", 0.0))
        best, best_epoch = float(saved.get("best", -1.0)), int(saved.get("best_epoch", 0))
        best_eval = dict(saved.get("best_eval", {}))
        kept = {k[len("best/"):]: v for k, v in s.resumed_arrays().items() if k.startswith("best/")}
        best_params = kept or None
        if "order_rng" in saved:
            self.rng.bit_generator.state = saved["order_rng"]
        for epoch in range(first_epoch, epochs + 1):
            s.report.epoch_start(epoch)
            start = time.perf_counter()
            order_rng = self.rng.bit_generator.state  # the epoch's order is drawn from here
            order = self.rng.permutation(len(data.train))
            loss_sum, labelled = float(saved.get("loss_sum", 0.0)), int(saved.get("labelled", 0))
            trees, pending = int(saved.get("trees", 0)), []
            saved = {}

            def state(**extra: Any) -> dict[str, Any]:
                return {"train_time": train_time, "best": best, "best_epoch": best_epoch,
                        "best_eval": best_eval, **extra}

            def arrays() -> dict[str, np.ndarray]:
                return {f"best/{k}": v for k, v in (best_params or {}).items()}

            for step in range(skip + 1, self.steps + 1):
                chunk = [data.train[i] for i in order[(step - 1) * self.batch_size:
                                                        step * self.batch_size]]
                batch = self.batch(chunk)
                keep, labels = targets(batch, nodes)
                with autograd.record():
                    cost = self._loss(s.net(batch, nodes), keep, labels).sum()
                cost.backward()
                global_step += 1
                s.checked_step(len(chunk), global_step)  # the summed cost / trees in the batch
                trees += len(chunk)
                labelled += len(keep)
                pending.append((global_step, cost, len(keep)))
                fresh = None
                due = step < self.steps and s.checkpoint_due(global_step)
                if step % log_every == 0 or step == self.steps or due:
                    sizes = {g: n for g, _, n in pending}
                    values = [(g, v) for g, v in s.fetch_losses(pending, epoch) if math.isfinite(v)]
                    loss_sum += sum(v for _, v in values)
                    s.report.train_losses([(g, v / max(sizes[g], 1)) for g, v in values])
                    fresh = values[-1][1] / max(sizes[values[-1][0]], 1) if values else None
                    pending = []
                s.report.step(epoch, step, len(chunk), fresh)
                if due:
                    s.checkpoint(epoch, step, global_step, state(
                        loss_sum=loss_sum, labelled=labelled, trees=trees, order_rng=order_rng,
                        train_time=train_time + time.perf_counter() - start), arrays())
            skip = 0
            elapsed = time.perf_counter() - start
            train_time += elapsed
            metrics = {"epoch": epoch, "train/loss": loss_sum / max(labelled, 1),
                       "train/trees_per_sec": trees / max(elapsed, 1e-9),
                       "train/samples_per_sec": trees / max(elapsed, 1e-9),
                       "learning_rate": float(s.trainer.learning_rate)}
            if tcfg.eval_every_epoch or epoch == epochs:
                metrics.update(self.evaluate(self.dev, "eval"))
                s.observe(metrics, self.primary_metric)
                if metrics["eval/root_accuracy"] > best:
                    best, best_epoch = metrics["eval/root_accuracy"], epoch
                    best_eval = {k: v for k, v in metrics.items() if k.startswith("eval/")}
                    best_params = self._snapshot() if epoch < epochs else None
            metrics["epoch_time"] = time.perf_counter() - start
            s.report.epoch_end(epoch, global_step, metrics)
            s.checkpoint(epoch + 1, 0, global_step, state(order_rng=self.rng.bit_generator.state),
                         arrays())
        if best_params is not None:  # the best epoch by dev root accuracy was not the last
            self._restore(best_params)
        test = self.evaluate(data.test, "test")
        metrics.update(best_eval)  # the dev figures of the parameters kept
        metrics.update(test)
        metrics.update({"best_epoch": best_epoch or epochs, "steps": global_step,
                        "train_time": train_time})
        return metrics

    def _snapshot(self) -> dict[str, np.ndarray]:
        return {k: p.data().asnumpy().copy() for k, p in self.setup.net.collect_params().items()}

    def _restore(self, values: dict[str, np.ndarray]) -> None:
        for k, p in self.setup.net.collect_params().items():
            p.set_data(values[k])

    def evaluate(self, trees: Sequence[Any], prefix: str) -> dict[str, float]:
        """Root and all-node accuracy, and the loss per target of the trained nodes."""
        s = self.setup
        nodes = getattr(s.net, "classify", "all")
        root_ok = root_n = all_ok = all_n = 0
        loss_sum, loss_n = 0.0, 0
        for i in range(0, len(trees), self.eval_batch_size):
            batch = self.batch(trees[i:i + self.eval_batch_size])
            logits = s.net(batch, "all")
            keep, labels = targets(batch, "all")
            pred = logits.argmax(axis=1).asnumpy().astype(np.int64)
            all_ok += int((pred[keep] == labels).sum())
            all_n += len(keep)
            roots = batch.labels[batch.roots]
            root_ok += int((pred[batch.roots] == roots)[roots >= 0].sum())
            root_n += int((roots >= 0).sum())
            if nodes == "root":  # the loss of what the model is trained on
                keep = batch.roots[roots >= 0]
                labels = roots[roots >= 0]
            loss_sum += float(self._loss(logits, keep, labels).sum().asscalar())
            loss_n += len(keep)
        return {f"{prefix}/root_accuracy": root_ok / max(root_n, 1),
                f"{prefix}/all_accuracy": all_ok / max(all_n, 1),
                f"{prefix}/loss": loss_sum / max(loss_n, 1)}
