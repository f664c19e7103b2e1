"""Optimizers (update rules), learning-rate schedules and the Trainer."""
from . import schedules
from .optimizer import Optimizer, create, register
from .rules import SGD, Adam
from .trainer import Trainer

__all__ = ["schedules", "Optimizer", "create", "register", "SGD", "Adam", "Trainer"]
