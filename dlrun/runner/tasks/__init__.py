"""Tasks: what differs between kinds of training. A task owns what a batch is, what a step
and "evaluate" mean and which metric counts; the runner builds the pieces the config names,
and the one training loop (``dlrun.runner.loop``) runs the task.

A task is a :class:`TaskBase` taking a :class:`Setup`; the ``task`` config group names its
class (``_target_``) and holds its settings (``setup.task_cfg``).
"""
from __future__ import annotations

from ..loop import DivergenceError
from .base import Setup, TaskBase

__all__ = ["Setup", "TaskBase", "DivergenceError"]
