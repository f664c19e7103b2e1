"""The SGD family: SGD (momentum, Nesterov), NAG, SGLD, DCASGD, Signum.

Every rule receives ``g`` already rescaled, clipped and with the weight decay wd*w added
(see ``Optimizer``); ``lr`` is the parameter's learning rate for this step.
"""
from __future__ import annotations

import math
from typing import Any

from ..engine import NDArray
from ..engine.backend import device_scope, generator
from .optimizer import Optimizer, check_range, register


class _Momentum(Optimizer):
    """Base of the rules with one optional momentum buffer (None when momentum == 0)."""

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.0, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = check_range(type(self).__name__, "momentum", momentum, 0, 1)

    def create_state(self, index: int, weight: NDArray) -> Any:
        return self.zeros(weight) if self.momentum else None


@register
class SGD(_Momentum):
    """Stochastic gradient descent, optionally with momentum.

    Plain (the seed's slide): ``w <- w - lr*g``, i.e. ``(1 - lr*wd) w - lr*clip(g)``.
    Heavy-ball momentum (Polyak 1964; the seed's "SGD with momentum and clipping", MXNet's
    sgd_mom_update): ``v <- momentum*v - lr*g;  w <- w + v``.
    ``nesterov=True``: Nesterov's accelerated gradient in the form of Sutskever et al.
    (2013, eq. 3-4) rewritten for the look-ahead weights (Bengio et al. 2013, eq. 7; MXNet's
    NAG): ``v <- momentum*v - lr*g;  w <- w + momentum*v - lr*g``.
    """

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.nesterov = bool(nesterov)

    def step(self, xp, w, g, state, lr, wd, t):
        g *= lr
        if state is None:
            w -= g
            return
        state *= self.momentum
        state -= g
        if self.nesterov:
            w += self.momentum * state - g
        else:
            w += state


@register
class NAG(SGD):
    """Nesterov accelerated gradient, as MXNet's nag_mom_update computes it in place:
    ``v' = momentum*v;  w_new = w + momentum*v' - (1 + momentum)*lr*(g + wd*w);
    v = v' - lr*(g + wd*w_new)`` -- ``SGD(nesterov=True)`` but for the decay in the momentum,
    which MXNet takes from the weight it has just overwritten. Momentum 0 (MXNet's default)
    is plain SGD.
    """

    decay_in_grad = False

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.0, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=True, **kwargs)

    def step(self, xp, w, g, state, lr, wd, t):
        if state is None:
            w -= lr * (g + wd * w)
            return
        state *= self.momentum
        w += self.momentum * state - (1 + self.momentum) * lr * (g + wd * w)
        state -= lr * (g + wd * w)


@register
class SGLD(Optimizer):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011, eq. 4; MXNet's SGLD).

    ``w <- w - lr/2 * g + N(0, lr)``: half a gradient step (g the gradient of the loss, i.e.
    of minus the log posterior) plus Gaussian noise of variance lr, drawn from the engine's
    seeded generator of the weight's context, so runs are reproducible.
    """

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        self._generator = generator(weight.ctx)
        super().update(index, weight, grad, state)

    def step(self, xp, w, g, state, lr, wd, t):
        noise = self._generator.standard_normal(size=w.shape, dtype=w.dtype)
        noise *= math.sqrt(lr)
        g *= lr / 2
        w -= g - noise


@register
class DCASGD(_Momentum):
    """Delay-compensated asynchronous SGD (Zheng et al. 2017, ICML, eq. 10 with the diagonal
    approximation lamda*g*g of the Hessian; MXNet's DCASGD).

    ``v <- momentum*v - lr*(g + lamda*g*g*(w - w_prev));  w_prev <- w;  w <- w + v``
    (with momentum 0, v is just the step). ``w_prev`` starts as the initial weight.
    """

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.0, lamda: float = 0.04,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.lamda = check_range("DCASGD", "lamda", lamda, 0)

    def create_state(self, index: int, weight: NDArray) -> Any:
        with device_scope(weight.ctx):
            return super().create_state(index, weight), weight._data.copy()

    def step(self, xp, w, g, state, lr, wd, t):
        mom, previous = state
        d = g * g
        d *= w - previous
        d *= self.lamda
        d += g
        d *= lr
        previous[...] = w
        if mom is None:
            w -= d
        else:
            mom *= self.momentum
            mom -= d
            w += mom


@register
class Signum(_Momentum):
    """signSGD and Signum (Bernstein et al. 2018, ICML, Algorithms 1 and 3; MXNet's Signum).

    ``m <- momentum*m - (1 - momentum)*(g + wd*w);  w <- (1 - lr*wd_lh) w + lr*sign(m)``;
    with momentum 0 (signSGD, MXNet's signsgd_update): ``w <- (1 - lr*wd) w - lr*sign(g)``.
    ``wd_lh`` is MXNet's decoupled weight decay (Loshchilov & Hutter).
    """

    decay_in_grad = False

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9, wd_lh: float = 0.0,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.wd_lh = check_range("Signum", "wd_lh", wd_lh, 0)

    def step(self, xp, w, g, state, lr, wd, t):
        if state is None:
            w *= 1 - lr * wd
            w -= lr * xp.sign(g)
            return
        if self.wd_lh:
            w *= 1 - lr * self.wd_lh
        state *= self.momentum
        state -= (1 - self.momentum) * (g + wd * w)
        w += lr * xp.sign(state)
