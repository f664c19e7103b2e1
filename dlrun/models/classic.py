"""The seed's classic models: the perceptron, linear, logistic and softmax regression, and
the FizzBuzz classifier. Each is a few lines over ``nn.Dense``.

    perceptron           f(x) = <w, x> + b, learnt by the mistake-driven rule (not SGD):
                         w = 0, b = 0; for each example, if y (<w, x> + b) <= 0:
                         w <- w + y x, b <- b + y
    linear regression    f(x) = <w, x> + b, loss 1/2 (y - f(x))^2, SGD
    logistic regression  f(x) = <w, x> + b (one logit), loss log(1 + exp(-y f(x)))
    softmax regression   f(x) = W x + b (one score per class), loss -log softmax(f(x))_y
    FizzBuzz             an MLP on the features (x % 3, x % 5, x % 15), 4 classes
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import nn


class LinearRegression(nn.HybridBlock):
    """``f(x) = W x + b`` with ``outputs`` rows (the input is flattened)."""

    def __init__(self, outputs: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.linear = nn.Dense(outputs)

    def forward(self, x: Any) -> Any:
        return self.linear(x)

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """The learnt ``(W, b)`` as host arrays of shapes (outputs, inputs) and (outputs,)."""
        return self.linear.weight.data().asnumpy(), self.linear.bias.data().asnumpy()


class LogisticRegression(nn.HybridBlock):
    """One logit ``f(x) = <w, x> + b``; train with ``loss=logistic`` (labels +-1) or
    ``loss=sigmoid_bce`` (labels 0/1). ``p(y = 1 | x) = sigmoid(f(x))``."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.linear = nn.Dense(1)

    forward = LinearRegression.forward
    coefficients = LinearRegression.coefficients


class SoftmaxRegression(nn.HybridBlock):
    """Multiclass logistic regression: ``Dense(classes)`` on the flattened input; train with
    ``loss=softmax_ce``."""

    def __init__(self, classes: int = 10, **kwargs: Any):
        super().__init__(**kwargs)
        self.output = nn.Dense(classes)

    def forward(self, x: Any) -> Any:
        return self.output(x)


def perceptron_epoch(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray,
                     order: Sequence[int] | None = None) -> tuple[np.ndarray, float, int, float]:
    """One pass of the perceptron rule over ``(x[i], y[i])`` (labels +-1) in ``order``.

    For each example: if ``y (<w, x> + b) <= 0`` (a mistake, including the undecided 0)
    then ``w <- w + y x`` and ``b <- b + y``; otherwise nothing happens. Returns the new
    ``(w, b)``, the number of mistakes and the summed perceptron loss ``max(0, -y f(x))``
    seen before each update.
    """
    w = np.array(w, dtype=np.float64).reshape(-1)
    b = float(b)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if not np.all(np.abs(y) == 1):
        raise ValueError("the perceptron needs labels -1 and +1 (the dataset gave "
                         f"{sorted(set(np.unique(y).tolist()))[:5]})")
    mistakes, loss = 0, 0.0
    for i in range(len(y)) if order is None else order:
        margin = y[i] * (x[i] @ w + b)
        if margin <= 0:
            w += y[i] * x[i]
            b += y[i]
            mistakes += 1
            loss -= margin
    return w, b, mistakes, loss


class Perceptron(nn.HybridBlock):
    """Rosenblatt's perceptron: the score ``f(x) = <w, x> + b``, class ``sign(f(x))``.

    ``w`` and ``b`` start at zero whatever the run's initializer, and are learnt by
    :meth:`fit_epoch` (the mistake-driven rule), which is why the model names its own task.
    """

    task = "perceptron"  # the loop it trains with (conf/model/perceptron.yaml picks it)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.linear = nn.Dense(1, weight_initializer="zeros", bias_initializer="zeros")

    def forward(self, x: Any) -> Any:
        return self.linear(x)

    def fit_epoch(self, x: np.ndarray, y: np.ndarray,
                  order: Sequence[int] | None = None) -> tuple[int, float]:
        """One pass of the rule over host arrays ``x`` (N x ...) and ``y`` (+-1), updating the
        parameters; returns (mistakes, summed perceptron loss)."""
        weight, bias = self.linear.weight, self.linear.bias
        features = int(np.prod(np.shape(x)[1:]))
        if weight.shape is not None and all(weight.shape):
            w, b = weight.data().asnumpy()[0], float(bias.data().asnumpy()[0])
        else:  # not used yet: the rule's start
            w, b = np.zeros(features), 0.0
        w, b, mistakes, loss = perceptron_epoch(w, b, x, y, order)
        weight.set_data(w.reshape(1, -1))
        bias.set_data(np.array([b]))
        return mistakes, loss


class FizzBuzz(nn.HybridBlock):
    """An MLP from the FizzBuzz features (x % 3, x % 5, x % 15) to the 4 classes
    (number, fizz, buzz, fizzbuzz)."""

    def __init__(self, hidden: Sequence[int] = (64,), activation: str = "relu",
                 classes: int = 4, **kwargs: Any):
        super().__init__(**kwargs)
        self.features = nn.HybridSequential()
        for units in hidden:
            self.features.add(nn.Dense(units, activation=activation))
        self.output = nn.Dense(classes)

    def forward(self, x: Any) -> Any:
        return self.output(self.features(x))
