"""Optimizer base: learning rate, weight decay, gradient rescaling and clipping in one place."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..engine import NDArray
from ..engine.backend import device_scope
from .checks import check_range
from .schedules import LRScheduler

_REGISTRY: dict[str, type["Optimizer"]] = {}


def register(cls: type["Optimizer"]) -> type["Optimizer"]:
    """Make an optimizer creatable by its lower-case class name (``create('rmsprop')``)."""
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

    ``update`` prepares, in this order and for every rule alike:

    1. the gradient: ``g = rescale_grad * grad`` (the Trainer sets 1/batch_size), then
       clipped elementwise to [-clip_gradient, clip_gradient] when ``clip_gradient`` is set;
    2. weight decay: ``g += wd * w`` -- ``wd`` is the coefficient of w in the gradient, as
       MXNet and PyTorch define it, so plain SGD reads ``w <- w - lr * (g + wd * w)``. The
       seed's lambda (the penalty ``lambda * ||w||^2`` added to the loss) is ``wd = 2 *
       lambda``. Rules whose decay MXNet applies elsewhere (AdaGrad, AdaDelta, SGLD, Ftrl's
       closed form) set ``decay_in_grad = False`` and use ``wd`` in ``step``; rules that MXNet
       clips after adding the decay (Adam, Adamax, Nadam, RMSProp) set ``clip_after_decay``;
    3. the per-parameter rate and decay: ``lr * lr_mult``, ``wd * wd_mult`` (from the
       Parameter in ``param_dict``), and the learning rate from ``lr_scheduler`` if any.

    ``step(xp, w, g, state, lr, wd, t)`` then changes ``w`` in place; there ``wd`` is
    ``wd * wd_mult`` and ``t`` the parameter's update count (1 first).

    State: ``create_state`` returns None, an xp array, or a tuple of those (nested tuples
    allowed); the rules change the arrays in place. ``flatten_state``/``load_state`` turn
    any such state into a list of arrays plus a JSON-able layout and back, so that a
    Trainer can save it without pickle.
    """

    decay_in_grad = True
    clip_after_decay = False

    def __init__(self, learning_rate: float | None = None, wd: float = 0.0, rescale_grad: float = 1.0,
                 clip_gradient: float | None = None, lr_scheduler: LRScheduler | None = None,
                 lr: float | None = None, param_dict: dict | None = None):
        name = type(self).__name__
        rate = learning_rate if lr is None else lr
        if rate is None:  # as MXNet: the schedule's base rate, else 0.01 (a given rate replaces it)
            rate = lr_scheduler.base_lr if lr_scheduler is not None else 0.01
        self.lr = check_range(name, "learning_rate (lr)", rate, 0)
        self.wd = check_range(name, "wd", wd, 0)
        self.rescale_grad = check_range(name, "rescale_grad", rescale_grad, 0, low_open=True)
        self.clip_gradient = (None if clip_gradient is None else
                              check_range(name, "clip_gradient", clip_gradient, 0, low_open=True))
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is not None:
            lr_scheduler.base_lr = self.lr
        self.param_dict = param_dict or {}
        self.num_update = 0
        self._index_update_count: dict[int, int] = {}

    # ---- learning rate ----
    @property
    def learning_rate(self) -> float:
        """The current base learning rate (the schedule's value when there is one)."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        if self.lr_scheduler is not None:
            raise RuntimeError("this optimizer follows an LR schedule; change the schedule instead")
        self.lr = check_range(type(self).__name__, "learning_rate (lr)", lr, 0)

    def _count(self, index: int) -> int:
        n = self._index_update_count[index] = self._index_update_count.get(index, 0) + 1
        self.num_update = max(self.num_update, n)
        return n

    # ---- the update ----
    def create_state(self, index: int, weight: NDArray) -> Any:
        """Per-parameter state (momentum buffers...) for ``weight``."""
        return None

    def zeros(self, weight: NDArray, n: int = 1) -> Any:
        """``n`` zero arrays like ``weight`` (one array when n == 1, else a tuple)."""
        xp = weight.ctx.xp
        with device_scope(weight.ctx):
            out = tuple(xp.zeros_like(weight._data) for _ in range(n))
        return out[0] if n == 1 else out

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """Apply one step of the rule to ``weight`` in place."""
        t = self._count(index)
        param = self.param_dict.get(index)
        lr = self.learning_rate * (param.lr_mult if param is not None else 1.0)
        wd = self.wd * (param.wd_mult if param is not None else 1.0)
        xp = weight.ctx.xp
        w = weight._data
        with device_scope(weight.ctx):
            g = grad._data * self.rescale_grad
            if wd and self.decay_in_grad and self.clip_after_decay:
                g += wd * w
            if self.clip_gradient is not None:
                xp.clip(g, -self.clip_gradient, self.clip_gradient, out=g)
            if wd and self.decay_in_grad and not self.clip_after_decay:
                g += wd * w
            self.step(xp, w, g, state, lr, wd, t)

    def step(self, xp: Any, w: Any, g: Any, state: Any, lr: float, wd: float, t: int) -> None:
        raise NotImplementedError

    # ---- state as arrays + JSON ----
    @staticmethod
    def flatten_state(state: Any) -> tuple[Any, list]:
        """(layout, arrays): layout is None, "a" (one array) or a list of layouts (a tuple)."""
        if state is None:
            return None, []
        if isinstance(state, (tuple, list)):
            layouts, arrays = [], []
            for s in state:
                lay, arr = Optimizer.flatten_state(s)
                layouts.append(lay)
                arrays.extend(arr)
            return layouts, arrays
        return "a", [state]

    @staticmethod
    def load_state(state: Any, layout: Any, arrays: list, where: str = "state") -> None:
        """Copy ``arrays`` (host arrays, in ``flatten_state`` order) into ``state`` in place."""
        own_layout, own = Optimizer.flatten_state(state)
        if own_layout != layout or len(own) != len(arrays):
            raise ValueError(f"{where}: saved optimizer state has layout {layout}, this optimizer's "
                             f"is {own_layout}; was it saved with other optimizer settings?")
        for k, (dst, src) in enumerate(zip(own, arrays)):
            if tuple(dst.shape) != tuple(src.shape):
                raise ValueError(f"{where}.{k}: saved shape {tuple(src.shape)} != {tuple(dst.shape)}")
            if isinstance(dst, np.ndarray):
                dst[...] = src
            else:  # a device array: copy from the host
                dst.set(np.ascontiguousarray(src, dtype=dst.dtype))

    def scalar_state(self) -> dict:
        """The JSON-able scalars to save: update counts, learning rate and schedule state."""
        return {"optimizer": type(self).__name__, "lr": self.lr, "num_update": self.num_update,
                "index_update_count": {str(i): n for i, n in self._index_update_count.items()},
                "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict()}

    def check_scalar_state(self, state: dict) -> None:
        """Raise unless ``state`` (from ``scalar_state``) was saved by this kind of optimizer."""
        if state.get("optimizer") != type(self).__name__:
            raise ValueError(f"the saved optimizer state is {state.get('optimizer')}'s; cannot load it "
                             f"into {type(self).__name__}")

    def load_scalar_state(self, state: dict) -> None:
        self.check_scalar_state(state)
        self.lr = float(state["lr"])
        self.num_update = int(state["num_update"])
        self._index_update_count = {int(i): int(n) for i, n in state["index_update_count"].items()}
        if state["lr_scheduler"] is not None and self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, wd={self.wd})"

