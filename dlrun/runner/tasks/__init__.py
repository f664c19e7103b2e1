"""Tasks: the training loops. A task owns what differs between kinds of experiment (what a
batch is, what "evaluate" means, which metric counts); the runner only builds the pieces the
config names and hands them over.

A task is a class taking a :class:`Setup` (a :class:`TaskBase`): the one training loop
(``dlrun.runner.loop``) asks it for its batches, its training step, its evaluation and its
state, and it declares its primary metric with its direction.
"""
from __future__ import annotations

import importlib

from ..loop import DivergenceError
from .base import Setup, TaskBase

# task name (the config's `task` key) -> "module:Class"
TASKS = {
    "classify": "dlrun.runner.tasks.classify:ClassifyTask",
    "regression": "dlrun.runner.tasks.regression:RegressionTask",
    "perceptron": "dlrun.runner.tasks.perceptron:PerceptronTask",
    "language_model": "dlrun.runner.tasks.language_model:LanguageModelTask",
    "tree_sentiment": "dlrun.runner.tasks.tree_sentiment:TreeSentimentTask",
    "gan": "dlrun.runner.tasks.gan:GANTask",
}


class UnknownTaskError(ValueError):
    """The config names a task that does not exist."""


def get_task(name: str) -> type[TaskBase]:
    """The task class registered as ``name``."""
    if name not in TASKS:
        raise UnknownTaskError(
            f"unknown task {name!r}; available tasks: {', '.join(sorted(TASKS))}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["TASKS", "get_task", "Setup", "TaskBase", "DivergenceError", "UnknownTaskError"]
