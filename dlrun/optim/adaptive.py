"""Rules with per-coordinate step sizes: Adam, Adamax, Nadam, AdaGrad, RMSProp, AdaDelta, Ftrl.

Every rule receives ``g`` already rescaled, clipped and with the weight decay wd*w added
(as MXNet 1.x: Adam, Adamax, Nadam and RMSProp clip after adding it; AdaGrad, AdaDelta and
Ftrl apply the decay in their own step); ``t`` is the parameter's update count, 1 at the first update.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine import NDArray
from .optimizer import Optimizer, check_range, register


def _ema(avg: Any, x: Any, decay: float) -> None:
    """``avg <- decay*avg + (1 - decay)*x`` in place."""
    avg *= decay
    avg += (1 - decay) * x


class _Moments(Optimizer):
    """Base of Adam, Adamax and Nadam: beta1, beta2 and two moment buffers."""

    clip_after_decay = True

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        name = type(self).__name__
        self.beta1 = check_range(name, "beta1", beta1, 0, 1)
        self.beta2 = check_range(name, "beta2", beta2, 0, 1)

    def create_state(self, index: int, weight: NDArray) -> Any:
        return self.zeros(weight, 2)


@register
class Adam(_Moments):
    """Adam (Kingma & Ba 2015, Algorithm 1, with the bias corrections folded into the step
    size as in their section 2 and MXNet):
    ``m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    w <- w - lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v) + epsilon)``.
    """

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, beta1=beta1, beta2=beta2, **kwargs)
        self.epsilon = check_range(type(self).__name__, "epsilon", epsilon, 0, low_open=True)

    def step(self, xp, w, g, state, lr, wd, t):
        m, v = state
        _ema(m, g, self.beta1)
        _ema(v, g * g, self.beta2)
        lr_t = lr * math.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        w -= lr_t * m / (xp.sqrt(v) + self.epsilon)


@register
class Adamax(_Moments):
    """Adamax (Kingma & Ba 2015, Algorithm 2; MXNet's Adamax):
    ``m <- b1 m + (1-b1) g;  u <- max(b2 u, |g|);  w <- w - lr/(1-b1^t) * m/u``.
    No epsilon (nor has the paper's rule): a coordinate whose gradients were all zero has
    u = m = 0 and does not move.
    """

    def __init__(self, learning_rate: float = 0.002, beta1: float = 0.9, beta2: float = 0.999,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, beta1=beta1, beta2=beta2, **kwargs)

    def step(self, xp, w, g, state, lr, wd, t):
        m, u = state
        _ema(m, g, self.beta1)
        u *= self.beta2
        xp.maximum(u, xp.abs(g), out=u)
        w -= (lr / (1 - self.beta1 ** t)) * m / xp.where(u > 0, u, 1)


@register
class Nadam(Adam):
    """Nesterov-accelerated Adam (Dozat 2016, "Incorporating Nesterov momentum into Adam",
    Algorithm 2, with its momentum schedule; MXNet's Nadam):
    ``mu_t = b1 (1 - 0.5 * 0.96^(t*schedule_decay));  M_t = prod_{i<=t} mu_i;
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    m_bar = (1-mu_t) g/(1-M_t) + mu_{t+1} m/(1-M_t mu_{t+1});
    w <- w - lr * m_bar/(sqrt(v/(1-b2^t)) + epsilon)``.
    M_t is kept per parameter (MXNet shares one across parameters, which is a bug).
    """

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, schedule_decay: float = 0.004, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                         **kwargs)
        self.schedule_decay = check_range("Nadam", "schedule_decay", schedule_decay, 0)

    def create_state(self, index: int, weight: NDArray) -> Any:
        m, v = self.zeros(weight, 2)
        return m, v, np.ones((), np.float64)  # M_t, a host scalar

    def step(self, xp, w, g, state, lr, wd, t):
        m, v, m_schedule = state
        mu_t = self.beta1 * (1 - 0.5 * 0.96 ** (t * self.schedule_decay))
        mu_next = self.beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        m_schedule *= mu_t
        ms = float(m_schedule)
        _ema(m, g, self.beta1)
        _ema(v, g * g, self.beta2)
        m_bar = ((1 - mu_t) / (1 - ms)) * g
        m_bar += (mu_next / (1 - ms * mu_next)) * m
        w -= lr * m_bar / (xp.sqrt(v / (1 - self.beta2 ** t)) + self.epsilon)


@register
class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011, diagonal version; the seed's
    eta_ij = eta_0 / sqrt(K + sum_t g_ij^2) with K = eps; MXNet 1.x's AdaGrad):
    ``h <- h + g^2;  w <- w - lr * (g/sqrt(h + eps) + wd*w)`` (the decay outside the
    history, as MXNet's).
    """

    decay_in_grad = False

    def __init__(self, learning_rate: float | None = None, eps: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.eps = check_range("AdaGrad", "eps", eps, 0, low_open=True)

    def create_state(self, index: int, weight: NDArray) -> Any:
        return self.zeros(weight)

    def step(self, xp, w, g, state, lr, wd, t):
        state += g * g
        d = xp.sqrt(state + self.eps)  # one temporary, updated in place: the Tree-LSTM's
        xp.divide(g, d, out=d)         # dense word-vector gradient makes this the step's bulk
        if wd:
            d += wd * w
        d *= lr
        w -= d


@register
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012, lecture 6.5; MXNet 1.x's RMSProp):
    ``n <- g1 n + (1-g1) g^2;  w <- w - lr * g/sqrt(n + epsilon)``.
    ``centered=True`` (Graves 2013, "Generating sequences with RNNs", eq. 38-41):
    ``n <- g1 n + (1-g1) g^2;  gbar <- g1 gbar + (1-g1) g;
    d <- g2 d - lr * g/sqrt(n - gbar^2 + epsilon);  w <- w + d``.
    ``clip_weights``: afterwards clip w to [-clip_weights, clip_weights].
    """

    clip_after_decay = True

    def __init__(self, learning_rate: float = 0.001, gamma1: float = 0.9, gamma2: float = 0.9,
                 epsilon: float = 1e-8, centered: bool = False, clip_weights: float | None = None,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1 = check_range("RMSProp", "gamma1", gamma1, 0, 1)
        self.gamma2 = check_range("RMSProp", "gamma2", gamma2, 0, 1)
        self.epsilon = check_range("RMSProp", "epsilon", epsilon, 0, low_open=True)
        self.centered = bool(centered)
        self.clip_weights = (None if clip_weights is None else
                             check_range("RMSProp", "clip_weights", clip_weights, 0, low_open=True))

    def create_state(self, index: int, weight: NDArray) -> Any:
        return self.zeros(weight, 3) if self.centered else self.zeros(weight)

    def step(self, xp, w, g, state, lr, wd, t):
        if not self.centered:
            _ema(state, g * g, self.gamma1)
            w -= lr * g / xp.sqrt(state + self.epsilon)
        else:
            n, gbar, delta = state
            _ema(n, g * g, self.gamma1)
            _ema(gbar, g, self.gamma1)
            delta *= self.gamma2
            delta -= lr * g / xp.sqrt(n - gbar * gbar + self.epsilon)
            w += delta
        if self.clip_weights is not None:
            xp.clip(w, -self.clip_weights, self.clip_weights, out=w)


@register
class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012, Algorithm 1; MXNet's AdaDelta):
    ``E[g^2] <- rho E[g^2] + (1-rho) g^2;  dx = sqrt(E[dx^2] + epsilon)/sqrt(E[g^2] + epsilon) * g;
    E[dx^2] <- rho E[dx^2] + (1-rho) dx^2;  w <- w - lr*dx - wd*w``. The paper's rule is
    lr = 1 (the default; MXNet's has no lr); lr scales the step so that lr_mult and
    schedules act on it. The decay is MXNet's, outside the accumulators.
    """

    decay_in_grad = False

    def __init__(self, learning_rate: float = 1.0, rho: float = 0.9, epsilon: float = 1e-5,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_range("AdaDelta", "rho", rho, 0, 1)
        self.epsilon = check_range("AdaDelta", "epsilon", epsilon, 0, low_open=True)

    def create_state(self, index: int, weight: NDArray) -> Any:
        return self.zeros(weight, 2)

    def step(self, xp, w, g, state, lr, wd, t):
        acc_g, acc_dx = state
        _ema(acc_g, g * g, self.rho)
        dx = xp.sqrt(acc_dx + self.epsilon)
        dx /= xp.sqrt(acc_g + self.epsilon)
        dx *= g
        _ema(acc_dx, dx * dx, self.rho)
        w -= lr * dx + wd * w


@register
class Ftrl(Optimizer):
    """FTRL-Proximal (McMahan et al. 2013, "Ad click prediction", Algorithm 1; MXNet's Ftrl):
    ``sigma = (sqrt(n + g^2) - sqrt(n))/lr;  z <- z + g - sigma*w;  n <- n + g^2;
    w = -(z - sign(z)*lamda1) / ((beta + sqrt(n))/lr + lambda2)`` where |z| > lamda1, else 0.
    The L2 term is the paper's lambda2 (its penalty is lambda2/2 ||w||^2): lambda2 = wd, as
    in MXNet's ftrl_update; the weight decay is not added to g here.
    """

    decay_in_grad = False

    def __init__(self, learning_rate: float = 0.1, lamda1: float = 0.01, beta: float = 1.0,
                 **kwargs: Any):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lamda1 = check_range("Ftrl", "lamda1", lamda1, 0)
        self.beta = check_range("Ftrl", "beta", beta, 0)

    def create_state(self, index: int, weight: NDArray) -> Any:
        return self.zeros(weight, 2)

    def step(self, xp, w, g, state, lr, wd, t):
        if lr == 0:  # a frozen parameter (lr_mult 0): the closed form would divide by zero
            return
        z, n = state
        sqrt_n = xp.sqrt(n)
        n += g * g
        new_sqrt_n = xp.sqrt(n)
        z += g - (new_sqrt_n - sqrt_n) / lr * w
        new_sqrt_n += self.beta
        new_sqrt_n /= lr
        new_sqrt_n += wd
        if not (self.beta or wd):  # 0/0 where a coordinate never had a gradient: make it 0/tiny
            xp.maximum(new_sqrt_n, np.finfo(w.dtype).tiny, out=new_sqrt_n)
        w[...] = -xp.sign(z) * xp.maximum(xp.abs(z) - self.lamda1, 0) / new_sqrt_n
