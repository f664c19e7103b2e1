"""Tree sentiment: a Tree-LSTM classifying the nodes of parse trees (Tai et al. 2015).

The data is a ``dlrun.data.trees.TreeDataset`` (train/dev/test trees, vocabulary, classes,
optional word vectors); the model a ``dlrun.models.treelstm.TreeLSTM`` or any block called as
``net(batch)`` on a ``TreeBatch`` that returns logits of every node (``nodes="all"``, tree by
tree in post-order) or of the roots (``nodes="root"``), and has ``classify`` ("all"/"root").

Training, as Tai et al.: minibatches of ``trainer.batch_size`` trees; the cost of a tree is
the cross-entropy summed over its labelled nodes (label -1 is no target: neutral nodes of
binary SST, ListOps operators), and a step averages it over the trees of the minibatch.
Metrics: on the validation split (the dev trees) after every epoch ``val/root_accuracy``
(the primary metric: the sentence label), ``val/all_accuracy`` (every labelled node) and
``val/loss`` (per labelled node); ``train/trees_per_sec``. At the end the parameters of the
epoch with the best validation root accuracy are restored (the paper's model selection, the
loop's ``trainer.restore_best``) and evaluated on test once: ``test/root_accuracy``,
``test/all_accuracy``, ``test/loss``, with ``best/epoch``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from dlrun.engine import array, autograd, ops
from dlrun.models.treelstm import TreeBatch, flatten_tree

from ..build import ConfigError
from ..console import plural
from ..loop import StepResult, Totals
from .base import Setup, TaskBase


def targets(batch: Any, nodes: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(the rows of the logits of ``nodes`` ("all" or "root") that have a target, their labels):
    nodes labelled -1 carry none."""
    labels = batch.labels if nodes == "all" else batch.labels[batch.roots]
    keep = np.flatnonzero(labels >= 0)
    return keep, labels[keep]


class TreeSentimentTask(TaskBase):
    primary = ("val/root_accuracy", "max")
    columns = (("epoch", "epoch", "{}"), ("train loss", "train/loss", "{:.4f}"),
               ("val loss", "val/loss", "{:.4f}"), ("val root", "val/root_accuracy", "{:.2%}"),
               ("val all", "val/all_accuracy", "{:.2%}"), ("trees/s", "train/trees_per_sec", "{:,.1f}"),
               ("time", "epoch_time", "{:.1f}s"))
    results = (("test root accuracy", "test/root_accuracy", "{:.2%}"),
               ("test all-node accuracy", "test/all_accuracy", "{:.2%}"),
               ("val root accuracy", "val/root_accuracy", "{:.2%}"),
               ("selected epoch (by val root)", "best/epoch", "{}"),
               ("selected step", "best/step", "{}"),  # validations every N steps
               ("trees/s (last epoch)", "train/trees_per_sec", "{:,.1f}"), ("steps", "steps", "{}"))

    def __init__(self, setup: Setup):
        super().__init__(setup)
        data, net = setup.data, setup.net
        self.batch_size = int(self.tcfg.batch_size)
        self.eval_batch_size = setup.eval_batch_size
        if not data.train:
            raise ValueError("the dataset has no training trees")
        self.splits = {"val": data.dev, "test": data.test}  # validation: the dev trees
        # every tree's arrays once: batches are then assembled with NumPy only
        self.flats = {id(t): flatten_tree(t) for split in (data.train, data.dev, data.test)
                      for t in split}
        classes = getattr(net, "classes", None)
        if classes is not None and classes < data.num_classes:
            raise ValueError(f"the model has {classes} outputs but the dataset has "
                             f"{data.num_classes} classes; set model.classes={data.num_classes}")
        if hasattr(net, "check_children"):  # a binary cell on trees with wider nodes
            try:
                net.check_children(max(f.children.shape[1] for f in self.flats.values()))
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if getattr(data, "embeddings", None) is not None:
            net.load_embeddings(data.embeddings)
        self.steps = math.ceil(len(data.train) / self.batch_size)
        self.nodes = getattr(net, "classify", "all")
        self.rng = np.random.default_rng(setup.seed)
        self.order_rng = self.rng.bit_generator.state  # the state the running epoch's order came from

    def describe(self) -> Sequence[tuple[str, str]]:
        d, net = self.setup.data, self.setup.net
        nodes = sum(len(f.words) for f in self.flats.values())
        trees = len(d.train) + len(d.dev) + len(d.test)
        vectors = "pre-trained word vectors" if getattr(d, "embeddings", None) is not None \
            else "random word vectors"
        mode = "level by level" if getattr(net, "batched", True) else "recursive, node by node"
        return [("data", f"{len(d.train):,} / {len(d.dev):,} / {len(d.test):,} trees "
                         f"(train/val/test), {nodes / max(trees, 1):.1f} nodes per tree, "
                         f"vocabulary {len(d.vocab):,}, {d.num_classes} classes, {vectors}"),
                ("schedule", f"{plural(self.tcfg.epochs, 'epoch')} x {self.steps} steps, batch "
                             f"{self.batch_size} trees, classify {self.nodes}"
                             f" nodes, {mode}")]

    def batch(self, trees: Sequence[Any]) -> Any:
        return TreeBatch.of(trees, [self.flats[id(t)] for t in trees])

    def _loss(self, logits: Any, keep: np.ndarray, labels: np.ndarray) -> Any:
        """Cross-entropy of each labelled row of ``logits``."""
        ctx = self.setup.ctx
        return self.setup.loss(ops.take(logits, array(keep, ctx=ctx, dtype="int64")),
                               array(labels, ctx=ctx, dtype="int64"))

    # --- training ---------------------------------------------------------------------------
    def batches(self, epoch: int, skip: int) -> Iterator[list[Any]]:
        """The epoch's minibatches of trees from ``skip`` on; the order is drawn from the
        task's generator (its state at the epoch's start goes into mid-epoch checkpoints)."""
        train = self.setup.data.train
        self.order_rng = self.rng.bit_generator.state
        order = self.rng.permutation(len(train))
        for step in range(skip, self.steps):
            yield [train[i] for i in order[step * self.batch_size:(step + 1) * self.batch_size]]
        self.order_rng = self.rng.bit_generator.state  # the next epoch's

    def train_step(self, batch: Any, update: Callable[[Any, int], None]) -> StepResult:
        s = self.setup
        trees = self.batch(batch)
        keep, labels = targets(trees, self.nodes)
        with autograd.record():
            cost = self._loss(s.net(trees, self.nodes), keep, labels).sum()
        cost.backward()
        update(s.trainer, len(batch))  # the summed cost / trees in the batch
        return StepResult(cost, len(keep), len(batch))

    def train_metrics(self, totals: Totals) -> dict[str, float]:
        return {"train/trees_per_sec": totals.samples / max(totals.elapsed, 1e-9)}

    @property
    def has_val(self) -> bool:
        return bool(self.setup.data.dev)

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"order_rng": self.order_rng}, {}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["order_rng"]

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Root and all-node accuracy, and the loss per target of the trained nodes, on
        ``split`` (``val``: the dev trees, or ``test``)."""
        s, nodes, trees = self.setup, self.nodes, self.splits[split]
        root_ok = root_n = all_ok = all_n = 0
        loss_sum, loss_n = 0.0, 0
        for i in self.eval_batches(split, range(0, len(trees), self.eval_batch_size)):
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
        return {f"{split}/root_accuracy": root_ok / max(root_n, 1),
                f"{split}/all_accuracy": all_ok / max(all_n, 1),
                f"{split}/loss": loss_sum / max(loss_n, 1)}
