"""Losses (Gluon's): each returns one value per sample, averaged over the non-batch axes."""
from __future__ import annotations

from typing import Any

from .engine import NDArray, ops
from .nn.block import HybridBlock


def _apply_weighting(loss: NDArray, weight: float | None, sample_weight: NDArray | None) -> NDArray:
    if sample_weight is not None:
        loss = loss * sample_weight
    if weight is not None:
        loss = loss * weight
    return loss


def _batch_mean(loss: NDArray, batch_axis: int) -> NDArray:
    axes = tuple(a for a in range(loss.ndim) if a != batch_axis % loss.ndim)
    return ops.mean(loss, axis=axes) if axes else loss


class Loss(HybridBlock):
    """Base of losses: a global ``weight`` and the axis that indexes samples."""

    def __init__(self, weight: float | None = None, batch_axis: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self._weight = weight
        self._batch_axis = batch_axis

    def _finish(self, loss: NDArray, sample_weight: NDArray | None, weight: float | None = None) -> NDArray:
        return _batch_mean(_apply_weighting(loss, self._weight if weight is None else weight,
                                            sample_weight), self._batch_axis)


class SoftmaxCrossEntropyLoss(Loss):
    """-log softmax(pred)[label]; dense labels (``sparse_label=False``) are distributions."""

    def __init__(self, axis: int = -1, sparse_label: bool = True, from_logits: bool = False,
                 weight: float | None = None, batch_axis: int = 0, **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)
        self._axis, self._sparse_label, self._from_logits = axis, sparse_label, from_logits

    def forward(self, pred: NDArray, label: NDArray, sample_weight: NDArray | None = None) -> NDArray:
        logp = pred if self._from_logits else ops.log_softmax(pred, axis=self._axis)
        if self._sparse_label:
            loss = -ops.pick(logp, label, axis=self._axis, keepdims=True)
        else:
            loss = -ops.sum(logp * label, axis=self._axis, keepdims=True)
        return self._finish(loss, sample_weight)


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class L2Loss(Loss):
    """1/2 (pred - label)^2."""

    def forward(self, pred: NDArray, label: NDArray, sample_weight: NDArray | None = None) -> NDArray:
        diff = pred - label.reshape(pred.shape)
        weight = (1.0 if self._weight is None else self._weight) / 2
        return self._finish(diff * diff, sample_weight, weight)
