"""Checks of a data-parallel job before MPI starts it: what one process can see from the config
(a task that trains in one process only, a resume with another number of workers, a batch the
workers cannot share) ends in one line, not once per rank between ``MPI_Abort`` lines; what
would only train badly (more workers than cores, a batch larger than the training set) is a
warning.
"""
from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Mapping

from omegaconf import DictConfig

from .build import ConfigError, target_of
from .console import warning
from .distributed import per_worker_batch, resume_with_workers


def check_distributed_task(task_class: Any, name: str, workers: int) -> None:
    """A task that trains in one process only refuses ``workers`` > 1."""
    if workers > 1 and not getattr(task_class, "distributed", False):
        raise ConfigError(f"the {name} task trains in one process only; drop distributed.workers "
                          "(data-parallel: classification, language models)")


def check_job(cfg: DictConfig, choices: Mapping[str, str], resume_from: Any) -> None:
    """What the job about to start with ``distributed.workers`` ranks would fail on in every
    rank (ConfigError, DistributedError), and what it would do badly (a warning)."""
    workers = int(cfg.distributed.workers)
    task_class = target_of(cfg.task, "task")
    check_distributed_task(task_class, choices.get("task", task_class.__name__), workers)
    job = SimpleNamespace(size=workers)
    if resume_from is not None:
        resume_with_workers(resume_from, job, cfg)
    per_worker_batch(cfg, job)
    cores = os.cpu_count() or 1
    kind = getattr(cfg.device.type, "value", cfg.device.type)
    if kind == "cpu" and not cfg.distributed.hosts and not cfg.distributed.hostfile \
            and workers > cores:
        warning(f"distributed.workers={workers} on a machine of {cores} CPU cores: the workers "
                f"share them and train slower than {cores} would; use distributed.workers={cores}")


def warn_large_batch(batch: int, data: Any) -> None:
    """A warning when one step's batch (all workers together) is larger than the training set."""
    train = getattr(data, "train", None)
    size = len(train) if hasattr(train, "__len__") else None
    if size is not None and batch > size:
        warning(f"the batch of a step ({batch} examples, all workers together) is larger than "
                f"the training set ({size}): every step sees all of it; lower trainer.batch_size")
