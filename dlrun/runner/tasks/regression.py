"""Regression: minibatch SGD on a regression loss (L2 by default), selected by the validation
MSE and tested once.

The training is the classification task's (per-step losses, epochs, divergence checks);
what differs is the data check and the evaluation: ``val/mse`` (the primary metric,
minimised), ``val/loss`` (the configured loss) and, when the data knows its true
coefficients (``data.true_weight``, ``data.true_bias``) and the model exposes its own
(``net.coefficients()``), ``val/weight_error``: the largest absolute difference between the
learnt and the true weights and bias; the same as ``test/...`` at the end.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .classify import ClassifyTask


class RegressionTask(ClassifyTask):
    """Trains ``setup.net`` on ``setup.data.train`` (real-valued targets) and evaluates the
    mean squared error on ``setup.data.val`` (each validation) and ``setup.data.test``."""

    primary = ("val/mse", "min")
    columns = (("epoch", "epoch", "{}"), ("train loss", "train/loss", "{:.5f}"),
               ("val mse", "val/mse", "{:.5f}"), ("weight err", "val/weight_error", "{:.5f}"),
               ("samples/s", "train/samples_per_sec", "{:,.0f}"), ("time", "epoch_time", "{:.1f}s"))
    results = (("test mse", "test/mse", "{:.6f}"), ("val mse", "val/mse", "{:.6f}"),
               ("max |w - w*|", "test/weight_error", "{:.6f}"),
               ("train loss (last epoch)", "train/loss", "{:.6f}"), ("epochs", "epoch", "{}"),
               ("steps", "steps", "{}"))

    def check_outputs(self, out: Any) -> None:
        target = self.setup.data.train.label.shape[1:]
        outputs, wanted = int(np.prod(out.shape[1:])), int(np.prod(target))
        if outputs != wanted:
            raise ValueError(f"the model has {outputs} outputs but the dataset's targets have "
                             f"{wanted} values; set model.outputs={wanted}")

    def data_note(self) -> str:
        data = self.setup.data
        if getattr(data, "true_weight", None) is None:
            return " features"
        w = ", ".join(f"{v:g}" for v in np.asarray(data.true_weight).reshape(-1))
        b = ", ".join(f"{v:g}" for v in np.asarray(data.true_bias).reshape(-1))
        return f" features; true w = [{w}], b = [{b}]"

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Loss and mean squared error on ``split``; the weight error where known."""
        s = self.setup
        loss_sum, sq_sum, count, values = 0.0, 0.0, 0, 0
        for x, y in self.eval_batches(split, self.loaders[split]):
            out = s.net(x)
            loss_sum += float(s.loss(out, y).sum().asscalar())
            pred = out.asnumpy().astype(np.float64)
            diff = pred - y.asnumpy().astype(np.float64).reshape(pred.shape)
            sq_sum += float((diff * diff).sum())
            count += x.shape[0]
            values += diff.size
        metrics = {f"{split}/loss": loss_sum / max(count, 1), f"{split}/mse": sq_sum / max(values, 1)}
        error = weight_error(s.net, s.data)
        if error is not None:
            metrics[f"{split}/weight_error"] = error
        return metrics


def weight_error(net: object, data: object) -> float | None:
    """max |learnt - true| over the weights and the bias, or None when either side does not
    know its coefficients (or their shapes differ)."""
    true_w, true_b = getattr(data, "true_weight", None), getattr(data, "true_bias", None)
    coefficients = getattr(net, "coefficients", None)
    if true_w is None or coefficients is None:
        return None
    w, b = coefficients()
    true_w = np.asarray(true_w, dtype=np.float64)
    true_b = np.asarray(0.0 if true_b is None else true_b, dtype=np.float64)
    if w.size != true_w.size or b.size != true_b.size:
        return None
    return float(max(np.abs(w.reshape(-1) - true_w.reshape(-1)).max(),
                     np.abs(b.reshape(-1) - true_b.reshape(-1)).max()))
