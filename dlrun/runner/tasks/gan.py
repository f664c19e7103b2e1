"""GAN training: the seed's loop, a discriminator step then a generator step per batch.

Per batch of real images x (rescaled from the dataset's standardisation to [-1, 1], the
range of the generator's tanh) and noise z ~ N(0, I):

1. discriminator step: fake = G(z), generated under ``autograd.pause`` (no graph back into
   G), and D minimises the seed's logistic loss
   ``mean log(1 + exp(-D(x))) + mean log(1 + exp(D(fake)))``; only D's trainer steps;
2. generator step: G minimises the non-saturating loss ``mean log(1 + exp(-D(G(z))))``
   (same z); only G's trainer steps.

Each network has its OWN optimizer and Trainer: the task builds two optimizers (and two
schedules) from the run's ``optimizer`` and ``schedule`` config nodes with the runner's own
``build``, so both follow the configured rule and hyperparameters while keeping separate
state (moments, update counts). The runner's single trainer over all parameters is unused.
The ``loss`` group is unused too: the GAN loss is the sigmoid binary cross-entropy on
logits above.

Every epoch: ``train/d_loss``, ``train/g_loss``, ``train/d_real`` (mean D(x) as a
probability), ``train/d_fake`` (mean D(G(z)) in the discriminator step); a grid of 64
samples from fixed noise, written to ``<run folder>/samples/epoch_NNN.png`` and logged to
MLflow under ``samples/``; and a sample-quality score from a digits classifier (the
*scorer*) on 1000 samples from fixed noise, mapped back to the dataset's standardisation:
``eval/confidence`` (the mean top-class probability), ``eval/class_entropy`` (the entropy
of the mean class distribution, in nats; ln 10 = 2.303 when all ten digits are equally
frequent) and the primary metric ``eval/quality = confidence * class_entropy / ln(classes)``
(1 only for confidently classified samples evenly spread over the classes; mode collapse
makes it small however confident the samples are).

The scorer: ``model.scorer=PATH`` loads a classifier's parameters -- the ``model.npz`` of a
classification run (e.g. ``dlrun +recipe=lenet_mnist``; the architecture is read from the
``config.yaml`` beside it) or any other ``.npz`` of the default LeNet (such as the
``scorer.npz`` a GAN run leaves). With ``model.scorer=null`` the task trains that LeNet
(``dlrun.models.lenet.LeNet`` with its defaults, Adam lr 1e-3, batch 64) on the same
dataset's train split for ``model.scorer_steps`` steps, reports its test accuracy as
``eval/scorer_accuracy`` and saves it as ``<run folder>/scorer.npz``; it is also cached
as ``~/.cache/dlrun/scorers/lenet-<hash>.npz`` (a hash of the training images, the steps and
the seed), so later runs on the same data skip its training.

The hooks this task uses on the runner's reporter beyond the Reporter protocol,
``artifact(path, artifact_path)`` (the PNGs, scorer.npz) and ``note(text)`` (the scorer's
line), are optional (skipped when absent).

The PNG writer is ``dlrun.data.images``; the scorer is ``dlrun.runner.tasks.scorer``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dlrun.data import DataLoader
from dlrun.data.images import image_grid, write_png
from dlrun.engine import array, autograd, ops
from dlrun.loss import SigmoidBinaryCrossEntropyLoss

from ..loop import DivergenceError
from .base import Setup
from .scorer import (SCORE_BATCH, SCORE_SAMPLES, class_scores, load_scorer, scorer_accuracy,
                     scorer_cache, softmax_host, train_scorer)

GRID_SAMPLES = 64       # samples in the per-epoch PNG grid (8 x 8)


# --- the two steps ------------------------------------------------------------------------
def _labels(value: float, n: int, ctx: Any) -> Any:
    return array(np.full((n,), value, dtype=np.float32), ctx=ctx)


def discriminator_step(net: Any, real: Any, z: Any, trainer: Any, loss: Any) -> tuple[Any, Any, Any]:
    """One update of D on ``real`` and G(z) (G not updated, no graph into G).

    Returns device scalars: the summed loss ``sum log(1+exp(-D(x))) + log(1+exp(D(G(z))))``
    (per example), and the summed probabilities D(x) and D(G(z)).
    """
    n = real.shape[0]
    with autograd.pause(train_mode=True):  # batch statistics, as in the generator step
        fake = net.generate(z)
    with autograd.record():
        d_real = net.discriminate(real)
        d_fake = net.discriminate(fake)
        d_loss = loss(d_real, _labels(1.0, n, real.ctx)) + loss(d_fake, _labels(0.0, z.shape[0], real.ctx))
    d_loss.backward()
    trainer.step(n)
    return d_loss.sum(), ops.sigmoid(d_real).sum(), ops.sigmoid(d_fake).sum()


def generator_step(net: Any, z: Any, trainer: Any, loss: Any) -> Any:
    """One update of G by the non-saturating loss ``log(1 + exp(-D(G(z))))`` (D not updated);
    returns its sum over the batch (a device scalar)."""
    n = z.shape[0]
    with autograd.record():
        d_fake = net.discriminate(net.generate(z))
        g_loss = loss(d_fake, _labels(1.0, n, z.ctx))
    g_loss.backward()
    trainer.step(n)
    return g_loss.sum()


# --- the task ---------------------------------------------------------------------------------
class GANTask:
    """Trains ``setup.net`` (a ``dlrun.models.gan.GAN``) on the images of ``setup.data.train``."""

    primary_metric = "eval/quality"
    columns = (("epoch", "epoch", "{}"), ("D loss", "train/d_loss", "{:.4f}"),
               ("G loss", "train/g_loss", "{:.4f}"), ("D(x)", "train/d_real", "{:.3f}"),
               ("D(G(z))", "train/d_fake", "{:.3f}"), ("confidence", "eval/confidence", "{:.3f}"),
               ("entropy", "eval/class_entropy", "{:.3f}"), ("quality", "eval/quality", "{:.3f}"),
               ("samples/s", "train/samples_per_sec", "{:,.0f}"), ("time", "epoch_time", "{:.1f}s"))
    results = (("sample quality", "eval/quality", "{:.3f}"),
               ("scorer confidence", "eval/confidence", "{:.3f}"),
               ("class entropy (nats)", "eval/class_entropy", "{:.3f}"),
               ("scorer test accuracy", "eval/scorer_accuracy", "{:.2%}"),
               ("D loss (last epoch)", "train/d_loss", "{:.4f}"),
               ("G loss (last epoch)", "train/g_loss", "{:.4f}"),
               ("samples/s (last epoch)", "train/samples_per_sec", "{:,.0f}"),
               ("epochs", "epoch", "{}"), ("steps", "steps", "{}"))

    def __init__(self, setup: Setup):
        self.setup = setup
        self.tcfg = setup.cfg.trainer
        net, data = setup.net, setup.data
        for method in ("generate", "discriminate", "sample_noise"):
            if not callable(getattr(net, method, None)):
                raise ValueError(f"task=gan needs a GAN model (model=gan_mlp or model=dcgan); "
                                 f"{type(net).__name__} has no {method}()")
        images = data.train.data
        if tuple(images.shape[1:]) != tuple(net.image_shape):
            raise ValueError(f"the dataset's images are {list(images.shape[1:])} but the GAN makes "
                             f"{list(net.image_shape)}; set model.image_shape={list(images.shape[1:])}")
        # real images: the dataset's standardisation undone, then [min, max] -> [-1, 1]
        self.low, self.high = float(images.min()), float(images.max())
        if not self.high > self.low:
            raise ValueError("the training images are all equal; nothing to learn")
        batch = int(self.tcfg.batch_size)
        self.loader = DataLoader(data.train, batch, shuffle=True, seed=setup.seed, ctx=setup.ctx,
                                 drop_last=len(data.train) >= batch)  # no 1-example batch for BatchNorm
        self.loss = SigmoidBinaryCrossEntropyLoss()
        with autograd.pause():  # gives every deferred parameter its shape
            net.discriminate(net.generate(net.sample_noise(2, setup.ctx)))
        self.d_trainer, self.d_schedule = self._trainer(net.discriminator)
        self.g_trainer, self.g_schedule = self._trainer(net.generator)
        setup.use_trainers(d=self.d_trainer, g=self.g_trainer)
        self.grid_noise = net.sample_noise(GRID_SAMPLES, setup.ctx)
        self.score_noise = net.sample_noise(SCORE_SAMPLES, setup.ctx)
        self.run_dir = _run_dir()
        self.scorer = None

    def _trainer(self, block: Any) -> tuple[Any, Any]:
        """A Trainer over ``block``'s parameters with a fresh optimizer (and schedule) built
        from the run's optimizer and schedule config."""
        from dlrun.optim import Trainer
        from dlrun.runner.build import build

        cfg = self.setup.cfg
        schedule = build(cfg.schedule, "schedule")
        optimizer = build(cfg.optimizer, "optimizer", lr_scheduler=schedule, wd=float(self.tcfg.wd))
        return Trainer(block.collect_params(), optimizer,
                       clip_global_norm=self.tcfg.clip_global_norm), schedule

    def describe(self) -> Sequence[tuple[str, str]]:
        s, net = self.setup, self.setup.net
        shape = "x".join(str(d) for d in net.image_shape)
        scorer = (f"parameters from {net.scorer}" if net.scorer else
                  f"LeNet trained here for {net.scorer_steps} steps on the train split")
        return [("data", f"{len(s.data.train):,} train images, {shape}, rescaled from "
                         f"[{self.low:.3f}, {self.high:.3f}] to [-1, 1]"),
                ("schedule", f"{self.tcfg.epochs} epochs x {len(self.loader)} steps, batch "
                             f"{self.tcfg.batch_size}; per step a D then a G update, each with "
                             f"its own {type(self.d_trainer.optimizer).__name__}"),
                ("loss", "D: log(1+exp(-D(x))) + log(1+exp(D(G(z)))), G: log(1+exp(-D(G(z)))) "
                         "(not the loss group)"),
                ("scorer", scorer)]

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        s, tcfg, net = self.setup, self.tcfg, self.setup.net
        epochs, log_every = int(tcfg.epochs), max(1, int(tcfg.log_every))
        steps = len(self.loader)
        for schedule in (self.d_schedule, self.g_schedule):
            dataclasses.replace(s, schedule=schedule).start_schedule(steps, epochs)
        metrics: dict[str, float] = self._prepare_scorer()
        scorer_metrics = dict(metrics)
        scale = 2.0 / (self.high - self.low)
        shift = -1.0 - self.low * scale
        first_epoch, skip, global_step, saved = s.resume_point(epochs)
        s.report.start(epochs, steps, self.columns)
        train_time = float(saved.get("train_time", 0.0))
        for epoch in range(first_epoch, epochs + 1):
            s.report.epoch_start(epoch)
            start = time.perf_counter()
            # d_loss, d_real, d_fake, g_loss (sums over examples)
            sums = np.array(saved.get("sums", [0.0] * 4), dtype=np.float64)
            pending: list[tuple[int, list[Any]]] = []
            samples = int(saved.get("samples", 0))
            saved = {}
            self.loader.epoch = epoch - 1  # this epoch's order (a resumed run starts mid-way)
            for step, (x, _) in enumerate(self.loader.iterate(skip), start=skip + 1):
                n = x.shape[0]
                real = x * scale + shift
                z = net.sample_noise(n, s.ctx)
                d_loss, d_real, d_fake = discriminator_step(net, real, z, self.d_trainer, self.loss)
                g_loss = generator_step(net, z, self.g_trainer, self.loss)
                global_step += 1
                samples += n
                pending.append((global_step, [d_loss, d_real, d_fake, g_loss], n))
                fresh = None
                due = step < steps and s.checkpoint_due(global_step)
                if step % log_every == 0 or step == steps or due:
                    values = self._fetch(pending, epoch)
                    sums += sum(v for _, v, _ in values)
                    # the per-step loss of the progress line and train/step_loss: D's + G's
                    s.report.train_losses([(gs, (v[0] + v[3]) / size) for gs, v, size in values])
                    last = values[-1]
                    fresh = float((last[1][0] + last[1][3]) / last[2])
                    pending = []
                s.report.step(epoch, step, n, fresh)
                if due:
                    s.checkpoint(epoch, step, global_step, {
                        "sums": sums.tolist(), "samples": samples,
                        "train_time": train_time + time.perf_counter() - start})
            skip = 0
            elapsed = time.perf_counter() - start
            train_time += elapsed
            metrics = {"epoch": epoch, "train/d_loss": sums[0] / max(samples, 1),
                       "train/g_loss": sums[3] / max(samples, 1),
                       "train/d_real": sums[1] / max(samples, 1),
                       "train/d_fake": sums[2] / max(samples, 1),
                       "train/samples_per_sec": samples / max(elapsed, 1e-9),
                       "learning_rate": float(self.d_trainer.learning_rate)}
            metrics.update(self.evaluate(epoch))
            metrics["epoch_time"] = time.perf_counter() - start
            s.report.epoch_end(epoch, global_step, metrics)
            s.checkpoint(epoch + 1, 0, global_step, {"train_time": train_time})
        metrics.update(scorer_metrics)
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics.update({"epoch": int(metrics["epoch"]), "steps": global_step, "train_time": train_time})
        return metrics

    def _fetch(self, pending: list, epoch: int) -> list[tuple[int, np.ndarray, int]]:
        """The pending per-step sums brought to the host (one sync), checked for divergence."""
        values = [(gs, np.array([float(a.asscalar()) for a in arrays]), n) for gs, arrays, n in pending]
        for gs, v, _ in values:
            if not np.all(np.isfinite(v)):
                raise DivergenceError(
                    f"the GAN losses became D {v[0]}, G {v[3]} at step {gs} (epoch {epoch}); the "
                    f"run diverged. Lower the learning rate (optimizer.lr, now "
                    f"{self.d_trainer.learning_rate:g}) or set trainer.clip_global_norm")
        return values

    # --- samples and their score ------------------------------------------------------------
    def _prepare_scorer(self) -> dict[str, float]:
        s, net = self.setup, self.setup.net
        if net.scorer:
            self.scorer = load_scorer(net.scorer, s.data, s.ctx)
            return {}
        start = time.perf_counter()
        cached = scorer_cache(s.data, net.scorer_steps, s.seed)
        if cached.is_file():
            self.scorer = load_scorer(cached, s.data, s.ctx)
            accuracy, how = scorer_accuracy(self.scorer, s.data, s.ctx), f"cached in {cached}"
        else:
            self.scorer, accuracy = train_scorer(s.data, s.ctx, net.scorer_steps, s.seed)
            how = f"trained in {time.perf_counter() - start:.1f} s"
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                self.scorer.save_parameters(str(cached))
                how += f", cached in {cached}"
            except OSError:  # no writable home: train again next time
                pass
        path = self.run_dir / "scorer.npz"
        self.scorer.save_parameters(str(path))
        _artifact(s.report, path)
        _note(s.report, f"scorer: LeNet, {net.scorer_steps} steps on the train split, test accuracy "
                        f"{accuracy:.2%} ({how})")
        return {"eval/scorer_accuracy": accuracy}

    def to_data_space(self, images: Any) -> Any:
        """Generated images in [-1, 1] -> the dataset's standardised pixel values."""
        return (images + 1.0) * (0.5 * (self.high - self.low)) + self.low

    def evaluate(self, epoch: int) -> dict[str, float]:
        """The epoch's sample grid (PNG, logged) and the scorer's verdict on 1000 samples."""
        s, net = self.setup, self.setup.net
        with autograd.pause():  # predict mode: BatchNorm uses its running statistics
            grid = net.generate(self.grid_noise).asnumpy()
            probs = []
            for i in range(0, SCORE_SAMPLES, SCORE_BATCH):
                fake = net.generate(self.score_noise[i:i + SCORE_BATCH])
                probs.append(softmax_host(self.scorer(self.to_data_space(fake)).asnumpy()))
        path = write_png(self.run_dir / "samples" / f"epoch_{epoch:03d}.png", image_grid(grid))
        _artifact(s.report, path, "samples")
        probs = np.concatenate(probs)
        confidence, entropy = class_scores(probs)
        classes = probs.shape[1]
        return {"eval/confidence": confidence, "eval/class_entropy": entropy,
                "eval/quality": confidence * entropy / math.log(classes)}


def _run_dir() -> Path:
    """The Hydra run folder (the working directory outside a Hydra run)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ImportError, ValueError):
        return Path.cwd()


def _artifact(report: Any, path: Path, artifact_path: str | None = None) -> None:
    log = getattr(report, "artifact", None)
    if log is not None:
        log(path, artifact_path)


def _note(report: Any, text: str) -> None:
    note = getattr(report, "note", None)
    if note is not None:
        note(text)


__all__ = ["GANTask", "discriminator_step", "generator_step"]
