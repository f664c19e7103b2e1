"""Losses (Gluon's): each returns one value per sample, averaged over the non-batch axes.

Every loss is a few lines over registered ops (``dlrun.engine.ops``), so autograd gets its
gradient from the ops' vector-Jacobian products.  Each takes Gluon's ``weight`` (a global
scale), ``batch_axis`` (the axis that indexes samples) and, when called, an optional
``sample_weight`` that broadcasts against the elementwise loss (e.g. shape ``(N, 1)``).

Losses over logits are written so that they neither overflow nor lose the answer for
large ``|pred|`` (softplus ``softrelu`` and ``log_softmax`` instead of ``log(sigmoid)`` or
``log(sum(exp))``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .engine import NDArray, array, ops
from .nn.block import HybridBlock

__all__ = ["Loss", "L2Loss", "L1Loss", "HuberLoss", "LogisticLoss", "SigmoidBinaryCrossEntropyLoss",
           "SigmoidBCELoss", "SoftmaxCrossEntropyLoss", "SoftmaxCELoss", "HingeLoss",
           "SquaredHingeLoss", "PerceptronLoss", "KLDivLoss"]


def _as_array(x: Any, like: NDArray) -> NDArray:
    """``x`` as an NDArray on ``like``'s context (labels may come as lists or NumPy arrays)."""
    return x if isinstance(x, NDArray) else array(x, ctx=like.ctx)


def _cast_like(x: NDArray, like: NDArray) -> NDArray:
    """``x`` in ``like``'s floating dtype, so that integer labels do not promote the loss."""
    return x if x.dtype == like.dtype else ops.cast(x, dtype=like.dtype)


def _reshape_like(label: Any, pred: NDArray, loss: str) -> NDArray:
    """Gluon's ``_reshape_like``: the label, of the same size as ``pred``, in pred's shape."""
    label = _as_array(label, pred)
    if label.size != pred.size:
        raise ValueError(f"{loss}: label of shape {label.shape} does not match pred of shape "
                         f"{pred.shape}; the label needs pred's shape (or the same number of "
                         f"elements, e.g. ({pred.shape[0] if pred.ndim else 1},) for pred "
                         f"(N, 1))")
    if label.shape != pred.shape:
        label = label.reshape(pred.shape)
    return _cast_like(label, pred)


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` without enlarging it."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _apply_weighting(loss: NDArray, weight: float | None, sample_weight: Any,
                     name: str = "loss") -> NDArray:
    if sample_weight is not None:
        sample_weight = _as_array(sample_weight, loss)
        if not _broadcasts_to(sample_weight.shape, loss.shape):
            raise ValueError(f"{name}: sample_weight of shape {sample_weight.shape} does not "
                             f"broadcast to the elementwise loss of shape {loss.shape}; give it "
                             f"that shape or one with 1 on the axes to share, e.g. "
                             f"{tuple(n if i == 0 else 1 for i, n in enumerate(loss.shape))}")
        loss = loss * _cast_like(sample_weight, loss)
    if weight is not None:
        loss = loss * weight
    return loss


def _batch_reduce(loss: NDArray, batch_axis: int, name: str = "loss", reduce: Any = ops.mean) -> NDArray:
    """The mean (or ``reduce``) over every axis except ``batch_axis``: one value per sample."""
    if loss.ndim == 0:
        raise ValueError(f"{name}: pred must have a batch axis, got a scalar")
    if not -loss.ndim <= batch_axis < loss.ndim:
        raise ValueError(f"{name}: batch_axis={batch_axis} is out of range for a loss of shape "
                         f"{loss.shape}")
    axes = tuple(a for a in range(loss.ndim) if a != batch_axis % loss.ndim)
    return reduce(loss, axis=axes) if axes else loss


class Loss(HybridBlock):
    """Base of losses: a global ``weight`` and the axis that indexes samples."""

    def __init__(self, weight: float | None = None, batch_axis: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self._weight = weight
        self._batch_axis = batch_axis

    _reduce = staticmethod(ops.mean)  # over the non-batch axes; KLDivLoss sums, as MXNet's

    def _finish(self, loss: NDArray, sample_weight: Any, weight: float | None = None) -> NDArray:
        """Apply ``sample_weight`` and ``weight`` (``self._weight`` unless given), then reduce
        (average) over the non-batch axes."""
        name = type(self).__name__
        return _batch_reduce(_apply_weighting(loss, self._weight if weight is None else weight,
                                              sample_weight, name), self._batch_axis, name,
                             self._reduce)

    def _label(self, label: Any, pred: NDArray) -> NDArray:
        return _reshape_like(label, pred, type(self).__name__)

    _repr_keys: tuple = ("_weight", "_batch_axis")

    def _extra_repr(self) -> str:
        return ", ".join(f"{k[1:]}={getattr(self, k)!r}" for k in self._repr_keys)


class L2Loss(Loss):
    """``1/2 (pred - label)^2`` (least mean squares)."""

    def __init__(self, weight: float | None = 1.0, batch_axis: int = 0, **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        diff = pred - self._label(label, pred)
        weight = (1.0 if self._weight is None else self._weight) / 2
        return self._finish(ops.square(diff), sample_weight, weight)


class L1Loss(Loss):
    """``|pred - label|``."""

    def __init__(self, weight: float | None = None, batch_axis: int = 0, **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        return self._finish(ops.abs(pred - self._label(label, pred)), sample_weight)


class HuberLoss(Loss):
    """Huber's robust loss: ``(y - f)^2 / (2 rho)`` where ``|y - f| < rho``, else
    ``|y - f| - rho / 2`` (quadratic near the label, linear beyond ``rho``)."""

    _repr_keys = ("_rho", "_weight", "_batch_axis")

    def __init__(self, rho: float = 1.0, weight: float | None = None, batch_axis: int = 0,
                 **kwargs: Any):
        if not rho > 0:
            raise ValueError(f"HuberLoss needs rho > 0, got rho={rho}")
        super().__init__(weight, batch_axis, **kwargs)
        self._rho = float(rho)

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        diff = pred - self._label(label, pred)
        dist = ops.abs(diff)
        loss = ops.where(ops.lesser(dist, self._rho), ops.square(diff) / (2 * self._rho),
                         dist - self._rho / 2)
        return self._finish(loss, sample_weight)


_LABEL_FORMATS = ("signed", "binary")


class LogisticLoss(Loss):
    """``log(1 + exp(-y f))`` for labels ``y`` in {-1, 1} (``label_format='signed'``) or, with
    ``label_format='binary'``, labels in {0, 1} (read as ``y = 2 label - 1``).

    Computed as ``softrelu(f) - f t`` with ``t = (y + 1) / 2`` in {0, 1}, which neither
    overflows nor underflows for any ``f``.
    """

    _repr_keys = ("_label_format", "_weight", "_batch_axis")

    def __init__(self, weight: float | None = None, batch_axis: int = 0,
                 label_format: str = "signed", **kwargs: Any):
        if label_format not in _LABEL_FORMATS:
            raise ValueError(f"LogisticLoss: label_format must be one of {list(_LABEL_FORMATS)}, "
                             f"got {label_format!r}")
        super().__init__(weight, batch_axis, **kwargs)
        self._label_format = label_format

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        target = self._label(label, pred)
        if self._label_format == "signed":
            target = (target + 1.0) / 2.0  # {-1, 1} -> {0, 1}
        loss = ops.softrelu(pred) - pred * target
        return self._finish(loss, sample_weight)


class SigmoidBinaryCrossEntropyLoss(Loss):
    """``-(y log p + (1 - y) log(1 - p))`` with ``p = sigmoid(pred)`` and labels in [0, 1].

    With ``from_sigmoid=False`` (pred are logits) it is computed as ``softrelu(pred) - pred y``,
    stable for any logit; with ``from_sigmoid=True`` pred are probabilities and, as in Gluon,
    ``1e-12`` guards the logarithms.  ``pos_weight`` (at call time) scales the positive term.
    """

    _repr_keys = ("_from_sigmoid", "_weight", "_batch_axis")

    def __init__(self, from_sigmoid: bool = False, weight: float | None = None, batch_axis: int = 0,
                 **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_sigmoid = from_sigmoid

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None,
                pos_weight: Any = None) -> NDArray:
        label = self._label(label, pred)
        if not self._from_sigmoid:
            if pos_weight is None:
                # -y log s(f) - (1-y) log(1-s(f)) = y softrelu(-f) + (1-y) softrelu(f)
                #                                 = softrelu(f) - f y
                loss = ops.softrelu(pred) - pred * label
            else:
                # pw y softrelu(-f) + (1-y) softrelu(f) = f (1-y) + (1 + (pw-1) y) softrelu(-f)
                pw = pos_weight if isinstance(pos_weight, (int, float)) else \
                    _cast_like(_as_array(pos_weight, pred), pred)
                loss = pred * (1.0 - label) + (1.0 + (pw - 1.0) * label) * ops.softrelu(-pred)
        else:
            eps = 1e-12
            positive = ops.log(pred + eps) * label
            if pos_weight is not None:
                positive = positive * pos_weight
            loss = -(positive + ops.log(1.0 - pred + eps) * (1.0 - label))
        return self._finish(loss, sample_weight)


SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss


class SoftmaxCrossEntropyLoss(Loss):
    """``-log softmax(pred)[label]`` along ``axis``.

    ``sparse_label=True``: labels are class indices, of pred's shape without ``axis`` (or with
    1 there).  ``sparse_label=False``: labels are distributions of pred's shape and the loss is
    ``-sum(label * log softmax(pred))``.  ``from_logits=True``: pred already holds
    log-probabilities.
    """

    _repr_keys = ("_axis", "_sparse_label", "_from_logits", "_weight", "_batch_axis")

    def __init__(self, axis: int = -1, sparse_label: bool = True, from_logits: bool = False,
                 weight: float | None = None, batch_axis: int = 0, **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)
        self._axis, self._sparse_label, self._from_logits = axis, sparse_label, from_logits

    def _sparse(self, label: Any, pred: NDArray) -> NDArray:
        label = _as_array(label, pred)
        axis = self._axis % pred.ndim
        without = pred.shape[:axis] + pred.shape[axis + 1:]
        kept = pred.shape[:axis] + (1,) + pred.shape[axis + 1:]
        if label.shape == kept and kept != without:
            label = label.reshape(without)
        elif label.shape != without:
            raise ValueError(f"SoftmaxCrossEntropyLoss: sparse label of shape {label.shape} does "
                             f"not match pred of shape {pred.shape}; class indices need shape "
                             f"{without} (pred's shape without axis {self._axis}), or pass "
                             f"sparse_label=False for distributions of pred's shape")
        return label

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        if not -pred.ndim <= self._axis < pred.ndim:
            raise ValueError(f"SoftmaxCrossEntropyLoss: axis={self._axis} is out of range for "
                             f"pred of shape {pred.shape}")
        if self._sparse_label and not self._from_logits:
            return self._finish(ops.softmax_cross_entropy(pred, self._sparse(label, pred), axis=self._axis),
                                sample_weight)
        logp = pred if self._from_logits else ops.log_softmax(pred, axis=self._axis)
        if self._sparse_label:
            loss = -ops.pick(logp, self._sparse(label, pred), axis=self._axis, keepdims=True)
        else:
            loss = -ops.sum(logp * self._label(label, pred), axis=self._axis, keepdims=True)
        return self._finish(loss, sample_weight)


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class HingeLoss(Loss):
    """``max(0, margin - y f)`` for labels ``y`` in {-1, 1}."""

    _repr_keys = ("_margin", "_weight", "_batch_axis")

    def __init__(self, margin: float = 1.0, weight: float | None = None, batch_axis: int = 0,
                 **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = float(margin)

    def _hinge(self, pred: NDArray, label: Any) -> NDArray:
        return ops.relu(self._margin - pred * self._label(label, pred))

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        return self._finish(self._hinge(pred, label), sample_weight)


class SquaredHingeLoss(HingeLoss):
    """``max(0, margin - y f)^2`` for labels ``y`` in {-1, 1}."""

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        return self._finish(ops.square(self._hinge(pred, label)), sample_weight)


class PerceptronLoss(HingeLoss):
    """The perceptron loss ``max(0, -y f)`` for labels ``y`` in {-1, 1}: zero on every
    correctly classified point (a hinge with margin 0)."""

    _repr_keys = ("_weight", "_batch_axis")

    def __init__(self, weight: float | None = None, batch_axis: int = 0, **kwargs: Any):
        super().__init__(0.0, weight, batch_axis, **kwargs)


class KLDivLoss(Loss):
    """Kullback-Leibler divergence ``label * (log label - pred)``, summed over the non-batch
    axes as MXNet 1.9's (its documentation says averaged; its code sums): one KL divergence
    per sample.

    ``from_logits=True``: pred holds log-probabilities (e.g. a ``log_softmax`` output);
    ``from_logits=False``: pred are unnormalised scores and ``log_softmax`` along ``axis`` is
    applied first.  ``label`` is a distribution (pred's shape, or one that broadcasts to it);
    entries where ``label == 0`` contribute exactly 0.
    """

    _repr_keys = ("_from_logits", "_axis", "_weight", "_batch_axis")

    def __init__(self, from_logits: bool = True, axis: int = -1, weight: float | None = None,
                 batch_axis: int = 0, **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits, self._axis = from_logits, axis

    _reduce = staticmethod(ops.sum)

    def forward(self, pred: NDArray, label: Any, sample_weight: Any = None) -> NDArray:
        label = _as_array(label, pred)
        if not _broadcasts_to(label.shape, pred.shape):
            raise ValueError(f"KLDivLoss: label of shape {label.shape} does not match pred of "
                             f"shape {pred.shape}; the label distribution needs pred's shape")
        label = _cast_like(label, pred)
        if not self._from_logits:
            pred = ops.log_softmax(pred, axis=self._axis)
        # 0 log 0 = 0: take the log of 1 where the label is 0 (no -inf, no NaN gradient)
        positive = ops.greater(label, 0.0)
        log_label = ops.log(ops.where(positive, label, 1.0))
        return self._finish(label * (log_label - pred), sample_weight)
