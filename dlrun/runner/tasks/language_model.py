"""Language modelling with truncated backpropagation through time (Zaremba et al. 2014).

The token stream is laid out as ``batch_size`` parallel columns (``batchify``) and cut into
windows of ``trainer.bptt`` steps. The LSTM state carries from one window to the next but is
detached between them, so gradients flow within a window only. The cost of a window is the
cross-entropy summed over its steps and averaged over the batch, as in Zaremba et al., so
``trainer.clip_global_norm=5`` clips what the paper clips.
"""
from __future__ import annotations

import math
import time
from typing import Iterator, Sequence

import numpy as np

from dlrun.engine import array, autograd

from .base import Setup


def windows(ids: np.ndarray, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, next-token targets) windows of at most ``bptt`` steps over (steps, batch) ids."""
    for start in range(0, ids.shape[0] - 1, bptt):
        n = min(bptt, ids.shape[0] - 1 - start)
        yield ids[start:start + n], ids[start + 1:start + 1 + n]


class LanguageModelTask:
    """Trains ``setup.net`` (a model with ``begin_state`` and ``forward(tokens, states)``) on
    ``setup.data`` (a ``dlrun.data.text.TextCorpus``): perplexity on the validation split
    each epoch, and on the test split at the end."""

    primary_metric = "eval/perplexity"
    primary_mode = "min"
    columns = (("epoch", "epoch", "{}"), ("train ppl", "train/perplexity", "{:.2f}"),
               ("valid ppl", "eval/perplexity", "{:.2f}"), ("tokens/s", "train/tokens_per_sec", "{:,.0f}"),
               ("lr", "learning_rate", "{:.4g}"), ("time", "epoch_time", "{:.1f}s"))
    results = (("test perplexity", "test/perplexity", "{:.2f}"),
               ("valid perplexity", "eval/perplexity", "{:.2f}"),
               ("train perplexity (last epoch)", "train/perplexity", "{:.2f}"),
               ("tokens/s (last epoch)", "train/tokens_per_sec", "{:,.0f}"),
               ("epochs", "epoch", "{}"), ("steps", "steps", "{}"))

    def __init__(self, setup: Setup):
        from dlrun.data.text import batchify

        self.setup = setup
        self.tcfg = tcfg = setup.cfg.trainer
        self.bptt = int(tcfg.bptt)
        self.batch_size = int(tcfg.batch_size)
        eval_batch = int(tcfg.eval_batch_size or tcfg.batch_size)
        data = setup.data
        self.train_ids = batchify(data.train, self.batch_size)
        self.valid_ids = batchify(data.valid, eval_batch)
        self.test_ids = batchify(data.test, eval_batch)
        if self.train_ids.shape[0] < 2:
            raise ValueError(f"the training text has {len(data.train)} tokens, too few for "
                             f"batch_size {self.batch_size}; lower trainer.batch_size")
        self.steps = len(range(0, self.train_ids.shape[0] - 1, self.bptt))

    def describe(self) -> Sequence[tuple[str, str]]:
        d = self.setup.data
        return [("data", f"{len(d.train):,} / {len(d.valid):,} / {len(d.test):,} tokens "
                         f"(train/valid/test), vocabulary {len(d.vocab):,}"),
                ("schedule", f"{self.tcfg.epochs} epochs x {self.steps} windows of {self.bptt} steps, "
                             f"batch {self.batch_size}")]

    def run(self) -> dict[str, float]:
        s, tcfg = self.setup, self.tcfg
        epochs, log_every = int(tcfg.epochs), max(1, int(tcfg.log_every))
        s.start_schedule(self.steps, epochs)
        s.report.start(epochs, self.steps, self.columns)
        global_step, metrics, train_time = 0, {}, 0.0
        for epoch in range(1, epochs + 1):
            s.report.epoch_start(epoch)
            start = time.perf_counter()
            states = s.net.begin_state(self.batch_size, ctx=s.ctx)
            loss_sum, tokens, pending = 0.0, 0, []
            for step, (x, y) in enumerate(windows(self.train_ids, self.bptt), start=1):
                states = [h.detach() for h in states]  # truncate: no gradient into earlier windows
                with autograd.record():
                    logits, states = s.net(array(x, ctx=s.ctx), states)
                    token_losses = s.loss(logits.reshape(-1, logits.shape[-1]),
                                          array(y.reshape(-1), ctx=s.ctx))
                    cost = token_losses.sum()
                cost.backward()
                global_step += 1
                s.checked_step(x.shape[1], global_step)  # 1/batch: sum over steps, mean over batch
                tokens += y.size
                pending.append((global_step, cost, y.size))
                fresh = None
                if step % log_every == 0 or step == self.steps:
                    values = s.fetch_losses(pending, epoch)
                    loss_sum += sum(v for _, v in values)
                    s.report.train_losses([(g, v / n) for (g, v), (_, _, n) in zip(values, pending)])
                    fresh = values[-1][1] / pending[-1][2]
                    pending = []
                s.report.step(epoch, step, y.size, fresh)
            elapsed = time.perf_counter() - start
            train_time += elapsed
            mean = loss_sum / max(tokens, 1)
            metrics = {"epoch": epoch, "train/loss": mean, "train/perplexity": math.exp(min(mean, 50)),
                       "train/tokens_per_sec": tokens / max(elapsed, 1e-9),
                       "learning_rate": float(s.trainer.learning_rate)}
            if tcfg.eval_every_epoch or epoch == epochs:
                metrics.update(self.evaluate(self.valid_ids, "eval"))
                s.observe(metrics, self.primary_metric)
            metrics["epoch_time"] = time.perf_counter() - start
            s.report.epoch_end(epoch, global_step, metrics)
        metrics.update(self.evaluate(self.test_ids, "test"))
        metrics.update({"steps": global_step, "train_time": train_time})
        return metrics

    def evaluate(self, ids: np.ndarray, prefix: str) -> dict[str, float]:
        """Cross-entropy per token and perplexity over a whole split, state carried throughout."""
        s = self.setup
        states = s.net.begin_state(ids.shape[1], ctx=s.ctx)
        total, count = 0.0, 0
        for x, y in windows(ids, self.bptt):
            logits, states = s.net(array(x, ctx=s.ctx), states)
            total += float(s.loss(logits.reshape(-1, logits.shape[-1]),
                                  array(y.reshape(-1), ctx=s.ctx)).sum().asscalar())
            count += y.size
        mean = total / max(count, 1)
        return {f"{prefix}/loss": mean, f"{prefix}/perplexity": math.exp(min(mean, 50))}
