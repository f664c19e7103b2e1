"""``mx.lr_scheduler``: the learning-rate schedules (:mod:`dlrun.optim.schedules`)."""
from .optim.schedules import (CosineScheduler, FactorScheduler, LRScheduler, MultiFactorScheduler,
                              PolyScheduler)

__all__ = ["CosineScheduler", "FactorScheduler", "LRScheduler", "MultiFactorScheduler",
           "PolyScheduler"]
