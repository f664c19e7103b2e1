"""Learning-rate schedules: callables from the update count to a learning rate."""
from __future__ import annotations


class LRScheduler:
    """Base class; ``base_lr`` is set from the optimizer's learning rate."""

    def __init__(self, base_lr: float = 0.01):
        self.base_lr = base_lr

    def __call__(self, num_update: int) -> float:
        raise NotImplementedError


class Constant(LRScheduler):
    """The base learning rate at every step."""

    def __call__(self, num_update: int) -> float:
        return self.base_lr
