"""Language modelling with truncated backpropagation through time (Zaremba et al. 2014).

The token stream is laid out as ``batch_size`` parallel columns (``batchify``) and cut into
windows of ``trainer.bptt`` steps. The LSTM state carries from one window to the next but is
detached between them, so gradients flow within a window only. The cost of a window is the
cross-entropy summed over its steps and averaged over the batch, as in Zaremba et al., so
``trainer.clip_global_norm=5`` clips what the paper clips.
"""
from __future__ import annotations

import itertools
import math
import time
from typing import Iterator, Sequence

import numpy as np

from dlrun.engine import array, autograd

from .base import Setup, batch_text


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
    distributed = True  # data-parallel: each worker trains on its part of the batch's columns
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
        self.batch_size = setup.batch_size  # columns of the whole job; this worker has its part
        eval_batch = int(tcfg.eval_batch_size or tcfg.batch_size)
        data = setup.data
        self.train_ids = batchify(data.train, self.batch_size)
        rank, workers = setup.shard
        self.columns_of = np.array_split(np.arange(self.batch_size), workers)  # per worker
        self.train_ids = self.train_ids[:, self.columns_of[rank]]
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
                             f"batch {batch_text(self.setup)}")]

    def run(self) -> dict[str, float]:
        s, tcfg = self.setup, self.tcfg
        epochs, log_every = int(tcfg.epochs), max(1, int(tcfg.log_every))
        s.start_schedule(self.steps, epochs)
        first_epoch, skip, global_step, saved = s.resume_point(epochs)
        s.report.start(epochs, self.steps, self.columns)
        metrics: dict[str, float] = {}
        train_time = float(saved.get("train_time", 0.0))
        for epoch in range(first_epoch, epochs + 1):
            s.report.epoch_start(epoch)
            start = time.perf_counter()
            states = self._carried_states() if skip else None
            if states is None:
                states = s.net.begin_state(self.train_ids.shape[1], ctx=s.ctx)
            loss_sum, tokens = s.own_part(float(saved.get("loss_sum", 0.0)), int(saved.get("tokens", 0)))
            pending: list = []
            saved = {}
            batches = itertools.islice(windows(self.train_ids, self.bptt), skip, None)
            for step, (x, y) in enumerate(batches, start=skip + 1):
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
                due = step < self.steps and s.checkpoint_due(global_step)
                if step % log_every == 0 or step == self.steps or due:
                    sizes = {g: n for g, _, n in pending}
                    values = [(g, v) for g, v in s.fetch_losses(pending, epoch) if math.isfinite(v)]
                    loss_sum += sum(v for _, v in values)
                    s.report.train_losses([(g, v / sizes[g]) for g, v in values])
                    fresh = values[-1][1] / sizes[values[-1][0]] if values else None
                    pending = []
                s.report.step(epoch, step, y.size * s.workers, fresh)
                if due:
                    job_loss, job_tokens = s.job_totals(loss_sum, tokens)
                    s.checkpoint(epoch, step, global_step, {
                        "loss_sum": job_loss, "tokens": job_tokens,
                        "train_time": train_time + time.perf_counter() - start},
                        {f"state/{i}": s.gather(h.asnumpy(), axis=-2) for i, h in enumerate(states)})
            skip = 0
            elapsed = time.perf_counter() - start
            train_time += elapsed
            job_loss, job_tokens = s.job_totals(loss_sum, tokens)
            mean = job_loss / max(job_tokens, 1)
            metrics = {"epoch": epoch, "train/loss": mean, "train/perplexity": math.exp(min(mean, 50)),
                       "train/tokens_per_sec": job_tokens / max(elapsed, 1e-9),
                       "learning_rate": float(s.trainer.learning_rate)}
            if tcfg.eval_every_epoch or epoch == epochs:
                metrics.update(self.evaluate(self.valid_ids, "eval"))
                s.observe(metrics, self.primary_metric)
            metrics["epoch_time"] = time.perf_counter() - start
            s.report.epoch_end(epoch, global_step, metrics)
            s.checkpoint(epoch + 1, 0, global_step, {"train_time": train_time})
        metrics.update(self.evaluate(self.test_ids, "test"))
        metrics.update({"steps": global_step, "train_time": train_time})
        return metrics

    def _carried_states(self) -> list | None:
        """This worker's columns of the hidden state in the checkpoint being resumed (None
        when it holds another number of columns: a job resumed with other workers)."""
        s = self.setup
        carried = s.resumed_arrays()
        if not carried or carried["state/0"].shape[-2] != self.batch_size:
            return None
        cols = self.columns_of[s.shard[0]]
        return [array(np.take(carried[f"state/{i}"], cols, axis=-2), ctx=s.ctx)
                for i in range(len(carried))]

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
