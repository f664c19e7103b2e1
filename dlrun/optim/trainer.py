"""Trainer: applies an optimizer to a set of parameters (Gluon's Trainer)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..nn.parameter import Parameter
from .optimizer import Optimizer, create


class Trainer:
    """``Trainer(params, 'sgd', {'learning_rate': 0.1})`` or ``Trainer(params, optimizer_object)``.

    ``step(batch_size)`` rescales gradients by 1/batch_size (losses are summed over the
    batch by backward) and updates every parameter whose grad_req is not 'null'.
    """

    def __init__(self, params: Mapping[str, Parameter] | Iterable[Parameter],
                 optimizer: str | Optimizer, optimizer_params: dict | None = None,
                 kvstore: Any = None):
        self._params = list(params.values() if isinstance(params, Mapping) else params)
        for p in self._params:
            if not isinstance(p, Parameter):
                raise TypeError(f"Trainer needs Parameters (net.collect_params()), got {type(p).__name__}")
        if isinstance(optimizer, Optimizer):
            if optimizer_params:
                raise ValueError("optimizer_params must be empty when optimizer is an Optimizer instance")
            self._optimizer = optimizer
        else:
            self._optimizer = create(optimizer, **(optimizer_params or {}))
        self._optimizer.param_dict = dict(enumerate(self._params))
        self._scale = self._optimizer.rescale_grad
        self._states: dict[int, Any] = {}

    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    @property
    def learning_rate(self) -> float:
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr: float) -> None:
        self._optimizer.set_learning_rate(lr)

    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """Reduce gradients (across workers, when distributed) and update the parameters."""
        self._optimizer.rescale_grad = self._scale / batch_size
        self.allreduce_grads()
        self.update(batch_size)

    def allreduce_grads(self) -> None:
        """Sum gradients across workers; a single process has nothing to reduce."""

    def update(self, batch_size: int | None = None) -> None:
        """Apply the optimizer to every trainable parameter."""
        if batch_size is not None:
            self._optimizer.rescale_grad = self._scale / batch_size
        for i, p in enumerate(self._params):
            if p.grad_req == "null":
                continue
            weight = p.data()
            if i not in self._states:
                self._states[i] = self._optimizer.create_state(i, weight)
            self._optimizer.update(i, weight, weight.grad, self._states[i])
