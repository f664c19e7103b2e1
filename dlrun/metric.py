"""``mx.metric``: MXNet 1.x's evaluation metrics, with its update rules and values.

Each metric takes lists of label and prediction NDArrays (or one of each) in ``update``;
``get()`` gives ``(name, value)`` (lists of them for a composite). As in MXNet 1.x, MAE,
MSE, RMSE and macro F1 average per-``update`` values, while Accuracy, TopKAccuracy,
CrossEntropy, NegativeLogLikelihood, Perplexity and Loss average over examples.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

_REGISTRY: dict[str, type["EvalMetric"]] = {}


def register(cls: type["EvalMetric"], *aliases: str) -> type["EvalMetric"]:
    """Make ``cls`` creatable by its lower-case name (and ``aliases``) in :func:`create`."""
    for name in (cls.__name__.lower(), *aliases):
        _REGISTRY[name] = cls
    return cls


def _host(x: Any) -> np.ndarray:
    return x.asnumpy() if hasattr(x, "asnumpy") else np.asarray(x)


def check_label_shapes(labels: Any, preds: Any, wrap: bool = False, shape: bool = False) -> tuple:
    """``labels`` and ``preds`` as lists (with ``wrap``), after checking that their counts
    (or, with ``shape``, their shapes) agree."""
    a, b = (labels.shape, preds.shape) if shape else (len(labels), len(preds))
    if a != b:
        raise ValueError(f"Shape of labels {a} does not match shape of predictions {b}")
    if wrap:
        labels = [labels] if hasattr(labels, "asnumpy") else labels
        preds = [preds] if hasattr(preds, "asnumpy") else preds
    return labels, preds


class EvalMetric:
    """Base of the metrics: ``sum_metric / num_inst`` since the last ``reset``, and the
    same over the whole run since construction (``get_global``)."""

    def __init__(self, name: str, output_names: list | None = None,
                 label_names: list | None = None, **kwargs: Any):
        self.name = str(name)
        self.output_names, self.label_names = output_names, label_names
        self._kwargs = kwargs
        self.reset()

    def __str__(self) -> str:
        return f"EvalMetric: {dict(self.get_name_value())}"

    def update(self, labels: Any, preds: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define update(labels, preds)")

    def update_dict(self, label: dict, pred: dict) -> None:
        """Update from name -> array mappings (``output_names``/``label_names`` pick them)."""
        preds = [pred[n] for n in self.output_names] if self.output_names else list(pred.values())
        labels = [label[n] for n in self.label_names] if self.label_names else list(label.values())
        self.update(labels, preds)

    def _add(self, value: float, count: float) -> None:
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count

    def reset(self) -> None:
        self.num_inst, self.sum_metric = 0, 0.0
        self.global_num_inst, self.global_sum_metric = 0, 0.0

    def reset_local(self) -> None:
        self.num_inst, self.sum_metric = 0, 0.0

    def _value(self, total: float, count: float) -> float:
        return float("nan") if count == 0 else float(total / count)

    def get(self) -> tuple:
        return self.name, self._value(self.sum_metric, self.num_inst)

    def get_global(self) -> tuple:
        return self.name, self._value(self.global_sum_metric, self.global_num_inst)

    def get_name_value(self) -> list[tuple]:
        name, value = self.get()
        return list(zip(name if isinstance(name, list) else [name],
                        value if isinstance(value, list) else [value]))

    def get_global_name_value(self) -> list[tuple]:
        name, value = self.get_global()
        return list(zip(name if isinstance(name, list) else [name],
                        value if isinstance(value, list) else [value]))

    def get_config(self) -> dict:
        return dict(self._kwargs, metric=type(self).__name__, name=self.name,
                    output_names=self.output_names, label_names=self.label_names)


class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; ``get()`` gives ([names], [values])."""

    def __init__(self, metrics: list | None = None, name: str = "composite", **kwargs: Any):
        self.metrics = [create(m) for m in (metrics or [])]
        super().__init__(name, **kwargs)

    def add(self, metric: Any) -> None:
        self.metrics.append(create(metric))

    def get_metric(self, index: int) -> EvalMetric:
        return self.metrics[index]

    def update(self, labels: Any, preds: Any) -> None:
        for m in self.metrics:
            m.update(labels, preds)

    def reset(self) -> None:
        for m in getattr(self, "metrics", []):
            m.reset()

    def reset_local(self) -> None:
        for m in self.metrics:
            m.reset_local()

    def _gather(self, pairs: list[tuple]) -> tuple[list, list]:
        names, values = [], []
        for name, value in pairs:
            names += name if isinstance(name, list) else [name]
            values += value if isinstance(value, list) else [value]
        return names, values

    def get(self) -> tuple:
        return self._gather([m.get() for m in self.metrics])

    def get_global(self) -> tuple:
        return self._gather([m.get_global() for m in self.metrics])


class Accuracy(EvalMetric):
    """The fraction of examples whose predicted class (argmax over ``axis`` when the
    prediction has more dimensions than the label) is the label."""

    def __init__(self, axis: int = 1, name: str = "accuracy", **kwargs: Any):
        super().__init__(name, axis=axis, **kwargs)
        self.axis = axis

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label), _host(pred)
            if pred.shape != label.shape:
                pred = pred.argmax(axis=self.axis)
            pred, label = pred.astype("int32").ravel(), label.astype("int32").ravel()
            check_label_shapes(label, pred)
            self._add(int((pred == label).sum()), len(pred))


class TopKAccuracy(EvalMetric):
    """The fraction of examples whose label is among the ``top_k`` highest predictions."""

    def __init__(self, top_k: int = 1, name: str = "top_k_accuracy", **kwargs: Any):
        if top_k <= 1:
            raise ValueError(f"TopKAccuracy needs top_k > 1 (use Accuracy for 1), got {top_k}")
        super().__init__(f"{name}_{top_k}", top_k=top_k, **kwargs)
        self.top_k = top_k

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label).astype("int32").ravel(), _host(pred).astype("float32")
            order = np.argpartition(pred, -self.top_k)  # MXNet's choice among ties too
            if pred.ndim == 1:
                hits = int((order == label).sum())
            else:
                k = min(pred.shape[1], self.top_k)
                hits = int(sum((order[:, pred.shape[1] - 1 - j] == label).sum() for j in range(k)))
            self._add(hits, pred.shape[0])


class _Binary(EvalMetric):
    """F1 and MCC: counts of a binary classifier's outcomes, per update ('macro') or over
    all updates ('micro')."""

    def __init__(self, name: str, average: str = "macro", **kwargs: Any):
        if average not in ("macro", "micro"):
            raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        super().__init__(name, **kwargs)

    def reset(self) -> None:
        super().reset()
        self._counts = np.zeros(4)  # tp, fp, fn, tn since the last score
        self._global = np.zeros(4)

    def reset_local(self) -> None:
        super().reset_local()
        self._counts = np.zeros(4)

    def score(self, counts: np.ndarray) -> float:
        raise NotImplementedError

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label).astype("int32"), _host(pred)
            check_label_shapes(label, pred)
            if len(np.unique(label)) > 2:
                raise ValueError(f"{type(self).__name__} supports binary classification only")
            p, t = pred.argmax(axis=1) == 1, label == 1
            counts = np.array([(p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()])
            self._counts += counts
            self._global += counts
        if self.average == "macro":  # as MXNet's: both counts restart after each update
            self._add(self.score(self._counts), 1)
            self._counts, self._global = np.zeros(4), np.zeros(4)
        else:
            self.sum_metric = self.score(self._counts) * self._counts.sum()
            self.num_inst = self._counts.sum()
            self.global_sum_metric = self.score(self._global) * self._global.sum()
            self.global_num_inst = self._global.sum()


class F1(_Binary):
    """The F1 score of a binary classifier (class 1 positive)."""

    def __init__(self, name: str = "f1", average: str = "macro", **kwargs: Any):
        super().__init__(name, average, **kwargs)

    def score(self, counts: np.ndarray) -> float:
        tp, fp, fn, _ = counts
        precision = tp / (tp + fp) if tp + fp > 0 else 0.0
        recall = tp / (tp + fn) if tp + fn > 0 else 0.0
        return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


class MCC(_Binary):
    """Matthews' correlation coefficient of a binary classifier."""

    def __init__(self, name: str = "mcc", average: str = "macro", **kwargs: Any):
        super().__init__(name, average, **kwargs)

    def score(self, counts: np.ndarray) -> float:
        tp, fp, fn, tn = (float(c) for c in counts)
        if not counts.sum():
            return 0.0
        denom = math.prod(t for t in (tp + fp, tp + fn, tn + fp, tn + fn) if t != 0)
        return (tp * tn - fp * fn) / math.sqrt(denom)


class _Regression(EvalMetric):
    """MAE, MSE, RMSE: one value per update (labels and predictions as columns), averaged."""

    def error(self, diff: np.ndarray) -> float:
        raise NotImplementedError

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label), _host(pred)
            label = label.reshape(label.shape[0], 1) if label.ndim == 1 else label
            pred = pred.reshape(pred.shape[0], 1) if pred.ndim == 1 else pred
            self._add(self.error(label - pred), 1)


class MAE(_Regression):
    """Mean absolute error."""

    def __init__(self, name: str = "mae", **kwargs: Any):
        super().__init__(name, **kwargs)

    def error(self, diff: np.ndarray) -> float:
        return float(np.abs(diff).mean())


class MSE(_Regression):
    """Mean squared error."""

    def __init__(self, name: str = "mse", **kwargs: Any):
        super().__init__(name, **kwargs)

    def error(self, diff: np.ndarray) -> float:
        return float((diff ** 2).mean())


class RMSE(_Regression):
    """Root mean squared error (of each update, then averaged)."""

    def __init__(self, name: str = "rmse", **kwargs: Any):
        super().__init__(name, **kwargs)

    def error(self, diff: np.ndarray) -> float:
        return float(np.sqrt((diff ** 2).mean()))


class CrossEntropy(EvalMetric):
    """Mean of -log p[label] over the examples (``eps`` added inside the log)."""

    def __init__(self, eps: float = 1e-12, name: str = "cross-entropy", **kwargs: Any):
        super().__init__(name, eps=eps, **kwargs)
        self.eps = eps

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label).ravel(), _host(pred)
            prob = pred[np.arange(label.shape[0]), np.int64(label)]
            self._add(float((-np.log(prob + self.eps)).sum()), label.shape[0])


class NegativeLogLikelihood(CrossEntropy):
    """CrossEntropy under MXNet's other name."""

    def __init__(self, eps: float = 1e-12, name: str = "nll-loss", **kwargs: Any):
        super().__init__(eps, name, **kwargs)


class Perplexity(EvalMetric):
    """exp of the mean of -log p[label] (labels equal to ``ignore_label`` left out)."""

    def __init__(self, ignore_label: int | None, axis: int = -1, name: str = "perplexity",
                 **kwargs: Any):
        super().__init__(name, ignore_label=ignore_label, **kwargs)
        self.ignore_label, self.axis = ignore_label, axis

    def update(self, labels: Any, preds: Any) -> None:
        loss, num = 0.0, 0
        for label, pred in zip(*check_label_shapes(labels, preds, True)):
            label, pred = _host(label).reshape(-1).astype("int64"), _host(pred)
            picked = np.take_along_axis(np.moveaxis(pred, self.axis, -1).reshape(-1, pred.shape[self.axis]),
                                        label[:, None], axis=-1)[:, 0]
            if self.ignore_label is not None:
                ignore = label == self.ignore_label
                num -= int(ignore.sum())
                picked = np.where(ignore, 1.0, picked)
            loss -= float(np.log(np.maximum(1e-10, picked)).sum())
            num += picked.size
        self._add(loss, num)

    def _value(self, total: float, count: float) -> float:
        return float("nan") if count == 0 else math.exp(total / count)


class Loss(EvalMetric):
    """The mean of the values of the predictions (losses) given to ``update``."""

    def __init__(self, name: str = "loss", **kwargs: Any):
        super().__init__(name, **kwargs)

    def update(self, _: Any, preds: Any) -> None:
        for pred in [preds] if hasattr(preds, "asnumpy") else preds:
            values = _host(pred)
            self._add(float(values.sum()), values.size)


class PearsonCorrelation(EvalMetric):
    """Pearson's correlation of labels and predictions, per update, averaged."""

    def __init__(self, name: str = "pearsonr", **kwargs: Any):
        super().__init__(name, **kwargs)

    def update(self, labels: Any, preds: Any) -> None:
        for label, pred in zip(*check_label_shapes(labels, preds, True)):
            self._add(float(np.corrcoef(_host(pred).ravel(), _host(label).ravel())[0, 1]), 1)


class CustomMetric(EvalMetric):
    """A metric from ``feval(label, pred)`` on NumPy arrays, returning a value or a
    ``(sum, count)`` pair."""

    def __init__(self, feval: Callable, name: str | None = None, allow_extra_outputs: bool = False,
                 **kwargs: Any):
        if name is None:
            name = feval.__name__
            name = f"custom({name})" if "<" in name else name
        super().__init__(name, **kwargs)
        self._feval, self._allow_extra_outputs = feval, allow_extra_outputs

    def update(self, labels: Any, preds: Any) -> None:
        labels = [labels] if hasattr(labels, "asnumpy") else labels
        preds = [preds] if hasattr(preds, "asnumpy") else preds
        if not self._allow_extra_outputs:
            check_label_shapes(labels, preds)
        for label, pred in zip(labels, preds):
            result = self._feval(_host(label), _host(pred))
            self._add(*(result if isinstance(result, tuple) else (result, 1)))


def np_metric(numpy_feval: Callable, name: str | None = None, allow_extra_outputs: bool = False) -> CustomMetric:
    """A CustomMetric from a function of NumPy label and prediction arrays (MXNet's ``np``)."""
    return CustomMetric(numpy_feval, name, allow_extra_outputs)


for _cls, _aliases in [(Accuracy, ("acc",)), (TopKAccuracy, ("top_k_accuracy", "top_k_acc")),
                       (F1, ()), (MCC, ()), (MAE, ()), (MSE, ()), (RMSE, ()),
                       (CrossEntropy, ("ce", "cross-entropy")),
                       (NegativeLogLikelihood, ("nll_loss", "nll-loss")), (Perplexity, ()),
                       (Loss, ()), (PearsonCorrelation, ("pearsonr",)),
                       (CompositeEvalMetric, ("composite",))]:
    register(_cls, *_aliases)


def create(metric: Any, *args: Any, **kwargs: Any) -> EvalMetric:
    """A metric from a name ('acc', 'ce', 'f1', 'mae', 'mse', 'rmse', 'top_k_accuracy',
    'perplexity', 'loss', ...), a metric, a function ``feval(label, pred)``, or a list of
    those (a CompositeEvalMetric)."""
    if isinstance(metric, EvalMetric):
        return metric
    if callable(metric):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        return CompositeEvalMetric([create(m, *args, **kwargs) for m in metric])
    try:
        cls = _REGISTRY[str(metric).lower()]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(_REGISTRY)}, or pass "
                         "a function feval(label, pred)") from None
    return cls(*args, **kwargs)


__all__ = ["EvalMetric", "CompositeEvalMetric", "Accuracy", "TopKAccuracy", "F1", "MCC", "MAE",
           "MSE", "RMSE", "CrossEntropy", "NegativeLogLikelihood", "Perplexity", "Loss",
           "PearsonCorrelation", "CustomMetric", "np_metric", "create", "register",
           "check_label_shapes"]
