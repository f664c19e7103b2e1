"""GAN training: the seed's loop, a discriminator step then a generator step per batch.

Per batch of real images x (rescaled from the dataset's standardisation to [-1, 1], the
range of the generator's tanh) and noise z ~ N(0, I):

1. discriminator step: fake = G(z), generated under ``autograd.pause`` (no graph back into
   G), and D minimises the seed's logistic loss
   ``mean log(1 + exp(-D(x))) + mean log(1 + exp(D(fake)))``; only D's trainer steps;
2. generator step: G minimises the non-saturating loss ``mean log(1 + exp(-D(G(z))))``
   (same z); only G's trainer steps.

Each network has its OWN optimizer and Trainer (``trainers["d"]``, ``trainers["g"]``, the
names the checkpoints keep them under), both built by ``setup.make_trainer`` from the run's
``optimizer`` and ``schedule`` groups, so both follow the configured rule and
hyperparameters while keeping separate state (moments, update counts); the runner builds no
trainer of its own (``own_trainers``). Both updates go through the loop's NaN/Inf guard. The
``loss`` group is unused: the GAN loss is the sigmoid binary cross-entropy on logits above.

Every epoch: ``train/loss`` (D's + G's), ``train/d_loss``, ``train/g_loss``,
``train/d_real`` (mean D(x) as a probability), ``train/d_fake`` (mean D(G(z)) in the
discriminator step); and, when the epoch is validated (every ``trainer.val_every`` epochs;
the last always), a grid of 64 samples from fixed noise, written to
``<run folder>/samples/epoch_NNN.png`` and logged to MLflow under ``samples/``; and a
sample-quality score from a digits classifier (the *scorer*) on 1000 samples from fixed
noise, mapped back to the dataset's standardisation: ``val/confidence`` (the mean
top-class probability), ``val/class_entropy`` (the entropy of the mean class distribution,
in nats; ln 10 = 2.303 when all ten digits are equally frequent) and the primary metric
``val/quality = confidence * class_entropy / ln(classes)`` (1 only for confidently
classified samples evenly spread over the classes; mode collapse makes it small however
confident the samples are). The selected generator is scored once more at the end on 1000
samples of other noise, from a stream seeded by the run's seed alone (``dlrun test RUN``
scores the same samples): ``test/confidence``, ``test/class_entropy``, ``test/quality``.

The scorer (the ``task`` group's settings): ``task.scorer=PATH`` loads a classifier's parameters -- the ``model.npz`` of a
classification run (e.g. ``dlrun +recipe=lenet_mnist``; the architecture is read from the
``config.yaml`` beside it) or any other ``.npz`` of the default LeNet (such as the
``scorer.npz`` a GAN run leaves). With ``task.scorer=null`` the task trains that LeNet
(``dlrun.models.lenet.LeNet`` with its defaults, Adam lr 1e-3, batch 64) on the same
dataset's train split for ``task.scorer_steps`` steps, reports its test accuracy as
``scorer/test_accuracy`` and saves it as ``<run folder>/scorer.npz``; it is also cached
as ``~/.cache/dlrun/scorers/lenet-<hash>.npz`` (a hash of the training images, the steps and
the seed), so later runs on the same data skip its training.

The PNG writer is ``dlrun.data.images``; the scorer is ``dlrun.runner.tasks.scorer``.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from dlrun.data import DataLoader
from dlrun.data.images import image_grid, write_png
from dlrun.engine import array, autograd, ops
from dlrun.loss import SigmoidBinaryCrossEntropyLoss

from ..console import plural
from ..loop import StepResult, Totals
from .base import Setup, TaskBase
from .scorer import (SCORE_BATCH, SCORE_SAMPLES, class_scores, load_scorer, scorer_accuracy,
                     scorer_cache, softmax_host, train_scorer)

GRID_SAMPLES = 64       # samples in the per-epoch PNG grid (8 x 8)
TEST_NOISE_STREAM = 1   # with the run's seed: the seed sequence of the test split's noise
Update = Callable[[Any, int], None]  # one update of a trainer for a batch of n (the loop's guard)


# --- the two steps ------------------------------------------------------------------------
def _labels(value: float, n: int, ctx: Any) -> Any:
    return array(np.full((n,), value, dtype=np.float32), ctx=ctx)


def _step(trainer: Any, n: int) -> None:
    trainer.step(n)


def discriminator_step(net: Any, real: Any, z: Any, trainer: Any, loss: Any,
                       update: Update = _step) -> tuple[Any, Any, Any]:
    """One update of D on ``real`` and G(z) (G not updated, no graph into G), by
    ``update(trainer, n)`` (the loop passes its NaN/Inf guard).

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
    update(trainer, n)
    return d_loss.sum(), ops.sigmoid(d_real).sum(), ops.sigmoid(d_fake).sum()


def generator_step(net: Any, z: Any, trainer: Any, loss: Any, update: Update = _step) -> Any:
    """One update of G by the non-saturating loss ``log(1 + exp(-D(G(z))))`` (D not updated),
    by ``update(trainer, n)``; returns its sum over the batch (a device scalar)."""
    n = z.shape[0]
    with autograd.record():
        d_fake = net.discriminate(net.generate(z))
        g_loss = loss(d_fake, _labels(1.0, n, z.ctx))
    g_loss.backward()
    update(trainer, n)
    return g_loss.sum()


# --- the task ---------------------------------------------------------------------------------
class GANTask(TaskBase):
    """Trains ``setup.net`` (a ``dlrun.models.gan.GAN``) on the images of ``setup.data.train``."""

    primary = ("val/quality", "max")
    own_trainers = True  # D's and G's, from setup.make_trainer
    columns = (("epoch", "epoch", "{}"), ("D loss", "train/d_loss", "{:.4f}"),
               ("G loss", "train/g_loss", "{:.4f}"), ("D(x)", "train/d_real", "{:.3f}"),
               ("D(G(z))", "train/d_fake", "{:.3f}"), ("confidence", "val/confidence", "{:.3f}"),
               ("entropy", "val/class_entropy", "{:.3f}"), ("quality", "val/quality", "{:.3f}"),
               ("samples/s", "train/samples_per_sec", "{:,.0f}"), ("time", "epoch_time", "{:.1f}s"))
    results = (("test sample quality", "test/quality", "{:.3f}"),
               ("test scorer confidence", "test/confidence", "{:.3f}"),
               ("test class entropy (nats)", "test/class_entropy", "{:.3f}"),
               ("val sample quality", "val/quality", "{:.3f}"),
               ("selected epoch", "best/epoch", "{}"),
               ("selected step", "best/step", "{}"),  # validations every N steps
               ("scorer test accuracy", "scorer/test_accuracy", "{:.2%}"),
               ("D loss (last epoch)", "train/d_loss", "{:.4f}"),
               ("G loss (last epoch)", "train/g_loss", "{:.4f}"),
               ("samples/s (last epoch)", "train/samples_per_sec", "{:,.0f}"),
               ("epochs", "epoch", "{}"), ("steps", "steps", "{}"))

    def __init__(self, setup: Setup):
        super().__init__(setup)
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
        self.scale = 2.0 / (self.high - self.low)
        self.shift = -1.0 - self.low * self.scale
        batch = setup.batch_size
        self.loader = DataLoader(data.train, batch, shuffle=True, seed=setup.seed, ctx=setup.ctx,
                                 drop_last=len(data.train) >= batch)  # no 1-example batch for BatchNorm
        self.steps = len(self.loader)
        self.loss = SigmoidBinaryCrossEntropyLoss()
        with autograd.pause():  # gives every deferred parameter its shape
            net.discriminate(net.generate(net.sample_noise(2, setup.ctx)))
        self.trainers = {"d": setup.make_trainer(net.discriminator.collect_params()),
                         "g": setup.make_trainer(net.generator.collect_params())}
        self.grid_noise = net.sample_noise(GRID_SAMPLES, setup.ctx)
        self.score_noise = net.sample_noise(SCORE_SAMPLES, setup.ctx)
        self.run_dir = setup.run_dir
        self.scorer_path = setup.task_cfg.get("scorer")  # None: the default LeNet
        self.scorer_steps = int(setup.task_cfg.get("scorer_steps", 500))
        if self.scorer_steps < 0:
            raise ValueError(f"task.scorer_steps must be >= 0, got {self.scorer_steps}")
        self.scorer: Any = None
        self.scorer_metrics: dict[str, float] = {}
        self.epoch = 0  # the epoch being trained (its evaluation names the sample grid)

    def describe(self) -> Sequence[tuple[str, str]]:
        s, net = self.setup, self.setup.net
        shape = "x".join(str(d) for d in net.image_shape)
        scorer = (f"parameters from {self.scorer_path}" if self.scorer_path else
                  f"LeNet trained here for {self.scorer_steps} steps on the train split")
        return [("data", f"{len(s.data.train):,} train images, {shape}, rescaled from "
                         f"[{self.low:.3f}, {self.high:.3f}] to [-1, 1]"),
                ("schedule", f"{plural(self.tcfg.epochs, 'epoch')} x {self.steps} steps, batch "
                             f"{s.batch_text()}; per step a D then a G update, each with "
                             f"its own {type(self.trainers['d'].optimizer).__name__}"),
                ("loss", "D: log(1+exp(-D(x))) + log(1+exp(D(G(z)))), G: log(1+exp(-D(G(z)))) "
                         "(not the loss group)"),
                ("scorer", scorer)]

    def prepare(self) -> None:
        """The scorer: loaded (``task.scorer``), or the default LeNet from the cache or
        trained here (its test accuracy joins the final metrics)."""
        s, steps = self.setup, self.scorer_steps
        if self.scorer_path:
            self.scorer = load_scorer(self.scorer_path, s.data, s.ctx)
            return
        start = time.perf_counter()
        cached = scorer_cache(s.data, steps, s.seed)
        if cached.is_file():
            self.scorer = load_scorer(cached, s.data, s.ctx)
            accuracy, how = scorer_accuracy(self.scorer, s.data, s.ctx), f"cached in {cached}"
        else:
            self.scorer, accuracy = train_scorer(s.data, s.ctx, steps, s.seed)
            how = f"trained in {time.perf_counter() - start:.1f} s"
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                self.scorer.save_parameters(str(cached))
                how += f", cached in {cached}"
            except OSError:  # no writable home: train again next time
                pass
        path = self.run_dir / "scorer.npz"
        self.scorer.save_parameters(str(path))
        s.report.artifact(path)
        s.report.note(f"scorer: LeNet, {steps} steps on the train split, test accuracy "
                      f"{accuracy:.2%} ({how})")
        self.scorer_metrics = {"scorer/test_accuracy": accuracy}

    # --- training ---------------------------------------------------------------------------
    def batches(self, epoch: int, skip: int) -> Iterable[Any]:
        self.epoch = epoch
        self.loader.epoch = epoch - 1  # this epoch's order (a resumed run starts mid-way)
        return self.loader.iterate(skip)

    def train_step(self, batch: Any, update: Update) -> StepResult:
        net, (x, _) = self.setup.net, batch
        n = x.shape[0]
        real = x * self.scale + self.shift
        z = net.sample_noise(n, self.setup.ctx)
        d_loss, d_real, d_fake = discriminator_step(net, real, z, self.trainers["d"], self.loss,
                                                    update)
        g_loss = generator_step(net, z, self.trainers["g"], self.loss, update)
        sums = {"d_loss": d_loss, "d_real": d_real, "d_fake": d_fake, "g_loss": g_loss}
        return StepResult(d_loss + g_loss, n, n, sums)

    def train_metrics(self, totals: Totals) -> dict[str, float]:
        return {f"train/{k}": v / max(totals.count, 1) for k, v in totals.sums.items()}

    # --- samples and their score ------------------------------------------------------------
    def to_data_space(self, images: Any) -> Any:
        """Generated images in [-1, 1] -> the dataset's standardised pixel values."""
        return (images + 1.0) * (0.5 * (self.high - self.low)) + self.low

    @property
    def has_val(self) -> bool:
        return True  # the samples of fixed noise

    def test_noise(self) -> Any:
        """The test split's noise: other than the fixed noise of ``val``, from a stream of its
        own seeded by the run's seed, so that ``dlrun test RUN`` scores the same samples."""
        rng = np.random.default_rng([self.setup.seed, TEST_NOISE_STREAM])
        z = rng.standard_normal(self.setup.net.noise_shape(SCORE_SAMPLES), dtype=np.float32)
        return array(z, ctx=self.setup.ctx)

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """The scorer's verdict on 1000 samples: of the fixed noise (``val``, with the
        epoch's sample grid, logged) or of noise drawn now (``test``)."""
        net = self.setup.net
        noise = self.score_noise if split == "val" else self.test_noise()
        with autograd.pause():  # predict mode: BatchNorm uses its running statistics
            probs = []
            for i in self.eval_batches(split, range(0, SCORE_SAMPLES, SCORE_BATCH)):
                fake = net.generate(noise[i:i + SCORE_BATCH])
                probs.append(softmax_host(self.scorer(self.to_data_space(fake)).asnumpy()))
            if split == "val":
                grid = image_grid(net.generate(self.grid_noise).asnumpy())
                path = write_png(self.run_dir / "samples" / f"epoch_{self.epoch:03d}.png", grid)
                self.setup.report.artifact(path, "samples")
        probs = np.concatenate(probs)
        confidence, entropy = class_scores(probs)
        return {f"{split}/confidence": confidence, f"{split}/class_entropy": entropy,
                f"{split}/quality": confidence * entropy / math.log(probs.shape[1])}

    def finish(self, metrics: dict[str, float]) -> dict[str, float]:
        return {**metrics, **self.scorer_metrics}


__all__ = ["GANTask", "discriminator_step", "generator_step"]
