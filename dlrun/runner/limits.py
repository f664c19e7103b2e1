"""Quick dry runs, as Lightning's Trainer has them: ``trainer.max_steps`` (stop after N
optimizer steps), ``trainer.limit_train_batches`` / ``limit_val_batches`` /
``limit_test_batches`` (a count, or a fraction of a split's batches) and
``trainer.fast_dev_run=true`` (one epoch of one training batch, then the whole ending on one
batch of validation and of test: checkpoint, export, MLflow), so that a large config is
checked in seconds; and when validation comes: every ``trainer.val_every`` epochs, or every
``trainer.val_every_steps`` optimizer steps (Lightning's ``val_check_interval``). The loop
(``dlrun.runner.loop``) and the tasks ask these functions.
"""
from __future__ import annotations

from typing import Any

from .build import ConfigError


def run_epochs(tcfg: Any) -> int:
    """The epochs the run trains: ``trainer.epochs``, one with ``fast_dev_run``."""
    return 1 if tcfg.get("fast_dev_run") else int(tcfg.epochs)


def split_batches(total: int, tcfg: Any, split: str = "train") -> int:
    """The batches of ``split`` (train: per epoch; val: per validation; test) that a run
    goes through, of ``total``: all, ``limit_<split>_batches`` of them (a count >= 1, or a
    fraction below 1, at least one batch), one with ``fast_dev_run``."""
    limit = 1 if tcfg.get("fast_dev_run") else tcfg.get(f"limit_{split}_batches")
    if limit is None:
        return total
    count = int(limit) if limit >= 1 else max(1, int(total * float(limit)))
    return min(total, count)


def max_steps(tcfg: Any) -> int | None:
    """The optimizer steps after which the run stops (null: the epochs decide)."""
    steps = tcfg.get("max_steps")
    return None if steps is None else int(steps)


def val_every_steps(tcfg: Any, has_val: bool) -> int | None:
    """``trainer.val_every_steps``: the optimizer steps between validations (null: validation
    follows the epochs, ``trainer.val_every``), refused without a validation split (a value
    below 1, or one beside a ``trainer.val_every`` other than 1, which it replaces, are
    refused with the config: ``dlrun.runner.ranges``)."""
    steps = tcfg.get("val_every_steps")
    if steps is None:
        return None
    if not has_val:
        raise ConfigError(f"trainer.val_every_steps={steps}, but the dataset has no validation "
                          "split (dataset.val_fraction=0?); give it one or set "
                          "trainer.val_every_steps=null")
    return int(steps)
