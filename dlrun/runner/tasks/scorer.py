"""The GAN's sample scorer: a digits classifier whose verdict on generated images gives the
GAN task's ``val/confidence``, ``val/class_entropy`` and ``val/quality`` (``test/...`` at the end).

``load_scorer`` reads a classifier's parameters (the ``model.npz`` of a classification run,
its architecture from the ``config.yaml`` beside it, or any ``.npz`` of the default LeNet);
``train_scorer`` trains the default LeNet (``dlrun.models.lenet.LeNet``, Adam lr 1e-3,
batch 64) on a dataset's train split, leaving every random stream as it was;
``scorer_cache`` is where such a scorer is cached, keyed by a hash of the training data,
the steps and the seed. ``class_scores`` turns the scorer's class probabilities into
(mean confidence, entropy of the mean class distribution).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from dlrun.data import DataLoader
from dlrun.engine import array, autograd
from dlrun.loss import SoftmaxCrossEntropyLoss
from dlrun.models.lenet import LeNet
from dlrun.nn import init
from dlrun.optim import Adam, Trainer

from ..build import ConfigError, build, data_model_args
from ..checkpoint import rng_state, set_rng_state
from ..config import RUNNER_KEYS

SCORE_SAMPLES = 1000    # samples the scorer classifies each epoch
SCORE_BATCH = 250
SCORER_LR = 1e-3
SCORER_BATCH = 64
SCORER_CACHE = Path("~/.cache/dlrun/scorers")  # trained default scorers, by data hash


def class_scores(probs: np.ndarray) -> tuple[float, float]:
    """(mean top-class probability, entropy in nats of the mean class distribution)."""
    probs = np.asarray(probs, dtype=np.float64)
    marginal = probs.mean(axis=0)
    nz = marginal[marginal > 0]
    return float(probs.max(axis=1).mean()), float(-(nz * np.log(nz)).sum())


def softmax_host(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def default_scorer(classes: int) -> Any:
    return LeNet(classes=classes)


def load_scorer(path: str | Path, data: Any, ctx: Any) -> Any:
    """The classifier stored at ``path`` (a parameter file or a run folder holding model.npz):
    the architecture of the ``config.yaml`` beside a ``model.npz``, else the default LeNet."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "model.npz"
    if not path.is_file():
        raise ConfigError(f"model.scorer={str(path)!r}: no such parameter file; give the model.npz "
                          "of a classification run (e.g. dlrun +recipe=lenet_mnist), or "
                          "model.scorer=null to train a scorer in this run")
    config = path.with_name("config.yaml")
    if path.name == "model.npz" and config.is_file():
        node = OmegaConf.load(config).model
        for key in RUNNER_KEYS["model"]:  # model.hybridize: the runner's, not the class's
            node.pop(key, None)
        net = build(node, "model.scorer", **data_model_args(node, data))
    else:
        net = default_scorer(data.num_classes)
    net.initialize(init.Xavier(), ctx=ctx)
    net.load_parameters(str(path), ctx=ctx)
    return net


def scorer_cache(data: Any, steps: int, seed: int) -> Path:
    """Where the default scorer trained on ``data.train`` for ``steps`` steps is cached:
    ``~/.cache/dlrun/scorers/lenet-<hash>.npz``, the hash of the training images and labels,
    the steps and the seed. Never under the data root: that may be a shared data set."""
    digest = hashlib.sha256(f"lenet-default|{steps}|{seed}|{data.num_classes}|".encode())
    for a in (data.train.data, data.train.label):
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(memoryview(a).cast("B"))
    return SCORER_CACHE.expanduser() / f"lenet-{digest.hexdigest()[:20]}.npz"


def scorer_accuracy(net: Any, data: Any, ctx: Any) -> float:
    """Accuracy of the classifier ``net`` on ``data.test``."""
    correct = 0
    for x, y in DataLoader(data.test, 256, ctx=ctx):
        pred = net(x).argmax(axis=1).asnumpy().astype(np.int64)
        correct += int((pred == y.asnumpy().astype(np.int64)).sum())
    return correct / max(len(data.test), 1)


def train_scorer(data: Any, ctx: Any, steps: int, seed: int) -> tuple[Any, float]:
    """The default LeNet trained ``steps`` steps on ``data.train``; (net, test accuracy).

    Every random stream is left as it was, so a GAN run does not depend on whether the
    scorer was trained or came from the cache."""
    saved = rng_state()
    try:
        return _train_scorer(data, ctx, steps, seed)
    finally:
        set_rng_state(saved)


def _train_scorer(data: Any, ctx: Any, steps: int, seed: int) -> tuple[Any, float]:
    net = default_scorer(data.num_classes)
    net.initialize(init.Xavier(magnitude=2.24), ctx=ctx)
    loader = DataLoader(data.train, SCORER_BATCH, shuffle=True, seed=seed + 7919, ctx=ctx)
    trainer = Trainer(net.collect_params(), Adam(lr=SCORER_LR))
    ce = SoftmaxCrossEntropyLoss()
    done = 0
    with autograd.pause():
        net(array(np.zeros((1, *data.train.data.shape[1:]), np.float32), ctx=ctx))
    while done < steps:
        for x, y in loader:
            with autograd.record():
                loss = ce(net(x), y)
            loss.backward()
            trainer.step(x.shape[0])
            done += 1
            if done >= steps:
                break
    return net, scorer_accuracy(net, data, ctx)


__all__ = ["SCORE_BATCH", "SCORE_SAMPLES", "SCORER_BATCH", "SCORER_CACHE", "SCORER_LR",
           "class_scores", "default_scorer", "load_scorer", "scorer_accuracy", "scorer_cache",
           "softmax_host", "train_scorer"]
