"""Quick dry runs, as Lightning's Trainer has them: ``trainer.max_steps`` (stop after N
optimizer steps), ``trainer.limit_train_batches`` (a count, or a fraction of an epoch's
batches) and ``trainer.fast_dev_run=true`` (one epoch of one training batch, then the whole
ending: validation, test, checkpoint, export, MLflow), so that a large config is checked in
seconds. The loop (``dlrun.runner.loop``) asks these functions.
"""
from __future__ import annotations

from typing import Any


def run_epochs(tcfg: Any) -> int:
    """The epochs the run trains: ``trainer.epochs``, one with ``fast_dev_run``."""
    return 1 if tcfg.get("fast_dev_run") else int(tcfg.epochs)


def train_batches(steps: int, tcfg: Any) -> int:
    """The training batches of an epoch of ``steps``: all, ``limit_train_batches`` of them (a
    count >= 1, or a fraction below 1, at least one batch), one with ``fast_dev_run``."""
    limit = 1 if tcfg.get("fast_dev_run") else tcfg.get("limit_train_batches")
    if limit is None:
        return steps
    count = int(limit) if limit >= 1 else max(1, int(steps * float(limit)))
    return min(steps, count)


def max_steps(tcfg: Any) -> int | None:
    """The optimizer steps after which the run stops (null: the epochs decide)."""
    steps = tcfg.get("max_steps")
    return None if steps is None else int(steps)
