"""Optimizer base: learning rate, weight decay, gradient rescaling and clipping in one place."""
from __future__ import annotations

from typing import Any

from ..engine import NDArray
from .schedules import LRScheduler

_REGISTRY: dict[str, type["Optimizer"]] = {}


def register(cls: type["Optimizer"]) -> type["Optimizer"]:
    """Make an optimizer creatable by its lower-case class name."""
    _REGISTRY[cls.__name__.lower()] = cls
    return cls


def create(name: str, **kwargs: Any) -> "Optimizer":
    """An optimizer by name ('sgd', 'adam', ...)."""
    try:
        cls = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(_REGISTRY)}") from None
    return cls(**kwargs)


class Optimizer:
    """An update rule. Subclasses define ``create_state`` and ``step`` on raw xp arrays.

    ``update`` prepares the gradient (rescale by ``rescale_grad``, clip to
    [-clip_gradient, clip_gradient]) and the per-parameter learning rate and weight decay
    (``lr_mult``, ``wd_mult``), then lets the subclass's rule change the weight in place.
    """

    def __init__(self, learning_rate: float = 0.01, wd: float = 0.0, rescale_grad: float = 1.0,
                 clip_gradient: float | None = None, lr_scheduler: LRScheduler | None = None,
                 lr: float | None = None, param_dict: dict | None = None):
        self.lr = float(learning_rate if lr is None else lr)
        if self.lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {self.lr}")
        if wd < 0:
            raise ValueError(f"weight decay wd must be >= 0, got {wd}")
        self.wd = float(wd)
        self.rescale_grad = rescale_grad
        self.clip_gradient = clip_gradient
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is not None:
            lr_scheduler.base_lr = self.lr
        self.param_dict = param_dict or {}
        self.num_update = 0
        self._index_update_count: dict[int, int] = {}

    @property
    def learning_rate(self) -> float:
        """The current base learning rate (the schedule's value when there is one)."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        if self.lr_scheduler is not None:
            raise RuntimeError("this optimizer follows an LR schedule; change the schedule instead")
        self.lr = float(lr)

    def _count(self, index: int) -> int:
        n = self._index_update_count[index] = self._index_update_count.get(index, 0) + 1
        self.num_update = max(self.num_update, n)
        return n

    def create_state(self, index: int, weight: NDArray) -> Any:
        """Per-parameter state (momentum buffers...) for ``weight``."""
        return None

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """Apply one step of the rule to ``weight`` in place."""
        t = self._count(index)
        param = self.param_dict.get(index)
        lr = self.learning_rate * (param.lr_mult if param is not None else 1.0)
        wd = self.wd * (param.wd_mult if param is not None else 1.0)
        xp = weight.ctx.xp
        g = grad._data * self.rescale_grad
        if self.clip_gradient is not None:
            g = xp.clip(g, -self.clip_gradient, self.clip_gradient)
        self.step(xp, weight._data, g, state, lr, wd, t)

    def step(self, xp: Any, w: Any, g: Any, state: Any, lr: float, wd: float, t: int) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, wd={self.wd})"


