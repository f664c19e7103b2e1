"""A run's pieces built from its config: the trainers, the model, the task class, and a
finished run's task rebuilt around its saved weights.

A training run (:mod:`.experiment`) builds its model and task here, and ``dlrun test``
(:mod:`.predict`) rebuilds a finished run's the same way from its run folder (its config
and ``model.npz``), so that the test split is evaluated by the code the training used: a
hybridized or an imperative model, of every task.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from dlrun.contrib.amp import enable as enable_amp
from dlrun.optim import Trainer
from dlrun.parallel import World

from .build import ConfigError, build, data_model_args, make_context, seed_everything, target_of
from .distributed import scale_learning_rate
from .export import WEIGHTS
from .tasks import Setup, TaskBase


def describe_model(net: Any, model_cfg: Any) -> str:
    """``431,080 parameters, hybridized``: the size of ``net`` (or that its parameters wait
    for the first batch) and how it runs, for a run's header."""
    params = list(net.collect_params().values())
    if any(p.shape is None or 0 in p.shape for p in params):  # deferred until the first batch
        size = "parameters shaped by the first batch"           # (a task that shapes no model)
    else:
        size = f"{sum(int(np.prod(p.shape)) for p in params):,} parameters"
    return f"{size}, {'hybridized' if model_cfg.get('hybridize') else 'imperative'}"


class TrainerFactory:
    """Trainers over given parameters, each with a fresh optimizer and schedule from the
    optimizer and schedule groups (the learning rate scaled for the job's workers). The first
    optimizer is built at once, so that a bad value fails before any data is read."""

    def __init__(self, cfg: DictConfig, world: World, ctx: Any):
        self.cfg, self.world, self.ctx = cfg, world, ctx
        self.kvstore = None if world.size == 1 else "nccl" if ctx.device_type == "gpu" else "dist_sync"
        self._next = self._optimizer()

    def _optimizer(self) -> Any:
        cfg = self.cfg
        schedule = build(cfg.schedule, "schedule")
        optimizer = build(cfg.optimizer, "optimizer", lr_scheduler=schedule, wd=float(cfg.trainer.wd))
        scale_learning_rate(optimizer, schedule, cfg, self.world)
        return optimizer

    def __call__(self, params: Any) -> Trainer:
        optimizer, self._next = self._next or self._optimizer(), None
        trainer = Trainer(params, optimizer, kvstore=self.kvstore,
                          clip_global_norm=self.cfg.trainer.clip_global_norm,
                          bucket_bytes=int(float(self.cfg.distributed.bucket_mb) * 2**20))
        mode = getattr(self.cfg.trainer.amp, "value", self.cfg.trainer.amp)
        if mode != "none":
            enable_amp(trainer, mode, self.ctx)
        return trainer


def build_model(cfg: DictConfig, data: Any, ctx: Any, loss: Any) -> Any:
    """The model ``cfg.model`` names (what the data decides of it from ``data``), initialized
    by ``cfg.init`` on ``ctx``; with ``model.hybridize`` compiled, and so is the loss (a
    HybridBlock too, as Gluon code does). A graph is traced at the model's first call."""
    net = build(cfg.model, "model", **data_model_args(cfg.model, data))
    net.initialize(build(cfg.init, "init"), ctx=ctx)
    if cfg.model.get("hybridize"):
        net.hybridize()
        getattr(loss, "hybridize", lambda: None)()
    return net


def task_class_of(cfg: DictConfig) -> type[TaskBase]:
    """The class ``task._target_`` names (the dataset's or the model's own choice); a
    ConfigError unless it is a task."""
    found = target_of(cfg.task, "task")
    if not (isinstance(found, type) and issubclass(found, TaskBase)):
        raise ConfigError(f"task._target_={cfg.task._target_!r} is not a task class; name a "
                          "subclass of dlrun.runner.tasks.TaskBase")
    return found


def rebuild_task(cfg: DictConfig, run_dir: Path, report: Any, scratch: Path) -> TaskBase:
    """The task of the finished run in ``run_dir`` as ``cfg`` (its config) describes it, built
    as the run built it (same seed, same data splits) and prepared, with the run's weights
    (``model.npz``: the selected model) loaded into its model. The task's own files (a GAN's
    sample grids and scorer) go to ``scratch``, not into the run folder."""
    weights = run_dir / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{run_dir} holds no {WEIGHTS}: only a run that finished writes "
                                f"it; give a finished run's folder")
    seed_everything(int(cfg.seed))
    ctx = make_context(cfg.device)
    loss = build(cfg.loss, "loss")
    data = build(cfg.dataset, "dataset")
    net = build_model(cfg, data, ctx, loss)
    found = task_class_of(cfg)
    setup = Setup(cfg=cfg, ctx=ctx, data=data, net=net, loss=loss, trainer=None,
                  seed=int(cfg.seed), report=report, run_dir=scratch,
                  make_trainer=TrainerFactory(cfg, World(), ctx) if found.own_trainers else None)
    task = found(setup)  # shapes the model's deferred parameters, as in training
    task.prepare()
    net.load_parameters(str(weights), ctx=ctx)
    return task
