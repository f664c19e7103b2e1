"""Language modelling with truncated backpropagation through time (Zaremba et al. 2014).

The token stream is laid out as ``batch_size`` parallel columns (``batchify``) and cut into
windows of ``task.bptt`` steps. The LSTM state carries from one window to the next but is
detached between them, so gradients flow within a window only. The cost of a window is the
cross-entropy summed over its steps and averaged over the batch, as in Zaremba et al., so
``trainer.clip_global_norm=5`` clips what the paper clips.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from dlrun.data.text import batchify
from dlrun.engine import array, autograd

from ..console import plural
from ..loop import StepResult, Totals
from .base import Setup, TaskBase


def windows(ids: np.ndarray, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, next-token targets) windows of at most ``bptt`` steps over (steps, batch) ids."""
    for start in range(0, ids.shape[0] - 1, bptt):
        n = min(bptt, ids.shape[0] - 1 - start)
        yield ids[start:start + n], ids[start + 1:start + 1 + n]


def perplexity(mean_loss: float) -> float:
    return math.exp(min(mean_loss, 50))


class LanguageModelTask(TaskBase):
    """Trains ``setup.net`` (a model with ``begin_state`` and ``forward(tokens, states)``) on
    ``setup.data`` (a ``dlrun.data.text.TextCorpus``): perplexity on the validation split
    (its ``valid`` text) each epoch, ``val/perplexity``, and on the test split once, at the
    end, ``test/perplexity``."""

    primary = ("val/perplexity", "min")
    distributed = True  # data-parallel: each worker trains on its part of the batch's columns
    columns = (("epoch", "epoch", "{}"), ("train ppl", "train/perplexity", "{:.2f}"),
               ("val ppl", "val/perplexity", "{:.2f}"), ("tokens/s", "train/tokens_per_sec", "{:,.0f}"),
               ("lr", "learning_rate", "{:.4g}"), ("time", "epoch_time", "{:.1f}s"))
    results = (("test perplexity", "test/perplexity", "{:.2f}"),
               ("val perplexity", "val/perplexity", "{:.2f}"),
               ("selected epoch", "best/epoch", "{}"),
               ("selected step", "best/step", "{}"),  # validations every N steps
               ("train perplexity (last epoch)", "train/perplexity", "{:.2f}"),
               ("tokens/s (last epoch)", "train/tokens_per_sec", "{:,.0f}"),
               ("epochs", "epoch", "{}"), ("steps", "steps", "{}"))

    def __init__(self, setup: Setup):
        super().__init__(setup)
        tcfg = self.tcfg
        self.bptt = int(setup.task_cfg.bptt)
        self.batch_size = setup.batch_size  # columns of the whole job; this worker has its part
        # evaluation lays the text out in columns too: its batch is the training batch unless set
        eval_batch = int(tcfg.get("eval_batch_size") or tcfg.batch_size)
        data = setup.data
        rank, workers = setup.shard
        self.columns_of = np.array_split(np.arange(self.batch_size), workers)  # per worker
        self.train_ids = batchify(data.train, self.batch_size)[:, self.columns_of[rank]]
        self.ids = {"val": batchify(data.valid, eval_batch), "test": batchify(data.test, eval_batch)}
        if self.train_ids.shape[0] < 2:
            raise ValueError(f"the training text has {len(data.train)} tokens, too few for "
                             f"batch_size {self.batch_size}; lower trainer.batch_size")
        self.steps = len(range(0, self.train_ids.shape[0] - 1, self.bptt))
        self.states: list[Any] = []
        self.carried: Mapping[str, np.ndarray] = {}  # the hidden state of the checkpoint resumed

    def describe(self) -> Sequence[tuple[str, str]]:
        d = self.setup.data
        return [("data", f"{len(d.train):,} / {len(d.valid):,} / {len(d.test):,} tokens "
                         f"(train/valid/test), vocabulary {len(d.vocab):,}"),
                ("schedule", f"{plural(self.tcfg.epochs, 'epoch')} x {self.steps} windows of {self.bptt} steps, "
                             f"batch {self.setup.batch_text()}")]

    def batches(self, epoch: int, skip: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        s = self.setup
        states = self._carried_states() if skip else None
        self.states = states or s.net.begin_state(self.train_ids.shape[1], ctx=s.ctx)
        return itertools.islice(windows(self.train_ids, self.bptt), skip, None)

    def train_step(self, batch: Any, update: Callable[[Any, int], None]) -> StepResult:
        s = self.setup
        x, y = batch
        states = [h.detach() for h in self.states]  # truncate: no gradient into earlier windows
        with autograd.record():
            logits, self.states = s.net(array(x, ctx=s.ctx), states)
            token_losses = s.loss(logits.reshape(-1, logits.shape[-1]), array(y.reshape(-1), ctx=s.ctx))
            cost = token_losses.sum()
        cost.backward()
        update(s.trainer, x.shape[1])  # 1/batch: the cost is summed over steps, averaged over the batch
        return StepResult(cost, y.size, y.size)

    def train_metrics(self, totals: Totals) -> dict[str, float]:
        return {"train/perplexity": perplexity(totals.loss / max(totals.count, 1)),
                "train/tokens_per_sec": totals.count / max(totals.elapsed, 1e-9)}

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The hidden state carried into the next window (every worker's columns)."""
        return {}, {f"state/{i}": self.setup.gather(h.asnumpy(), axis=-2)
                    for i, h in enumerate(self.states)}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        self.carried = arrays

    def _carried_states(self) -> list | None:
        """This worker's columns of the hidden state in the checkpoint being resumed (None
        when it holds another number of columns: a job resumed with other workers)."""
        s, carried = self.setup, self.carried
        self.carried = {}
        if not carried or carried["state/0"].shape[-2] != self.batch_size:
            return None
        cols = self.columns_of[s.shard[0]]
        return [array(np.take(carried[f"state/{i}"], cols, axis=-2), ctx=s.ctx)
                for i in range(len(carried))]

    @property
    def has_val(self) -> bool:
        return self.ids["val"].shape[0] > 1

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Cross-entropy per token and perplexity over a whole split (``val``: the corpus'
        valid text, or ``test``), state carried throughout."""
        s, ids = self.setup, self.ids[split]
        states = s.net.begin_state(ids.shape[1], ctx=s.ctx)
        total, count = 0.0, 0
        for x, y in self.eval_batches(split, list(windows(ids, self.bptt))):  # views of ids
            logits, states = s.net(array(x, ctx=s.ctx), states)
            total += float(s.loss(logits.reshape(-1, logits.shape[-1]),
                                  array(y.reshape(-1), ctx=s.ctx)).sum().asscalar())
            count += y.size
        mean = total / max(count, 1)
        return {f"{split}/loss": mean, f"{split}/perplexity": perplexity(mean)}
