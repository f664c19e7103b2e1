"""Optimizers (update rules), learning-rate schedules and the Trainer."""
from . import schedules
from .adaptive import AdaDelta, AdaGrad, Adam, Adamax, Ftrl, Nadam, RMSProp
from .optimizer import Optimizer, create, register
from .rules import DCASGD, NAG, SGD, SGLD, Signum
from .schedules import (Constant, CosineScheduler, EpochDecay, ExponentialScheduler, FactorScheduler,
                        InverseSqrtScheduler, LRScheduler, MultiFactorScheduler, PolyScheduler,
                        ReduceOnPlateau)
from .trainer import Trainer, clip_global_norm, global_norm

__all__ = ["schedules", "Optimizer", "create", "register", "Trainer", "clip_global_norm", "global_norm",
           "SGD", "NAG", "SGLD", "DCASGD", "Signum", "Adam", "Adamax", "Nadam", "AdaGrad", "RMSProp",
           "AdaDelta", "Ftrl", "LRScheduler", "Constant", "FactorScheduler", "MultiFactorScheduler",
           "PolyScheduler", "CosineScheduler", "InverseSqrtScheduler", "ExponentialScheduler",
           "EpochDecay", "ReduceOnPlateau"]
