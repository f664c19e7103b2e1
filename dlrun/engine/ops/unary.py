"""Elementwise unary functions and activations."""
from __future__ import annotations

from ..registry import register
from ._util import blend, stable_sigmoid


__all__ = ["exp", "log", "sqrt", "square", "abs", "sign", "log1p", "expm1", "tanh", "sigmoid",
           "relu", "leaky_relu", "elu", "softrelu", "softsign", "clip"]


@register("exp")
def exp(xp, x):
    y = xp.exp(x)
    return y, lambda g: (g * y,)


@register("log")
def log(xp, x):
    return xp.log(x), lambda g: (g / x,)


@register("sqrt")
def sqrt(xp, x):
    y = xp.sqrt(x)
    return y, lambda g: (g / (2 * y),)


@register("square")
def square(xp, x):
    return x * x, lambda g: (2 * g * x,)


@register("abs")
def abs(xp, x):
    return xp.abs(x), lambda g: (g * xp.sign(x),)


@register("sign")
def sign(xp, x):
    """-1, 0 or 1 by the sign of ``x``; its gradient is zero everywhere."""
    return xp.sign(x), lambda g: (xp.zeros_like(g),)


@register("log1p")
def log1p(xp, x):
    """``log(1 + x)``, accurate for small ``x``."""
    return xp.log1p(x), lambda g: (g / (1 + x),)


@register("expm1")
def expm1(xp, x):
    """``exp(x) - 1``, accurate for small ``x``."""
    y = xp.expm1(x)
    return y, lambda g: (g * (y + 1),)


@register("tanh")
def tanh(xp, x):
    y = xp.tanh(x)
    return y, lambda g: (g * (1 - y * y),)


@register("sigmoid")
def sigmoid(xp, x):
    y = stable_sigmoid(xp, x)
    return y, lambda g: (g * y * (1 - y),)


@register("relu")
def relu(xp, x):
    return xp.maximum(x, 0), lambda g: (g * (x > 0),)


@register("leaky_relu")
def leaky_relu(xp, x, slope=0.25):
    """``x`` where positive, ``slope * x`` elsewhere."""
    factor = blend(xp, x > 0, slope, x.dtype)
    return x * factor, lambda g: (g * factor,)


@register("elu")
def elu(xp, x, alpha=1.0):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    neg = alpha * xp.expm1(xp.minimum(x, 0))  # 0 where x > 0, and no overflow there
    slope = blend(xp, x > 0, neg + alpha, x.dtype)
    return xp.maximum(x, 0) + neg, lambda g: (g * slope,)


@register("softrelu")
def softrelu(xp, x):
    """Softplus ``log(1 + exp(x))``, computed without overflow for any ``x``."""
    y = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
    return y, lambda g: (g * stable_sigmoid(xp, x),)


@register("softsign")
def softsign(xp, x):
    """``x / (1 + |x|)``."""
    d = 1 + xp.abs(x)
    return x / d, lambda g: (g / (d * d),)


@register("clip")
def clip(xp, x, a_min, a_max):
    """``x`` limited to ``[a_min, a_max]``; the gradient passes only inside the interval."""
    if a_min > a_max:
        raise ValueError(f"clip needs a_min <= a_max, got a_min={a_min} and a_max={a_max}")
    inside = (x >= a_min) & (x <= a_max)
    return xp.clip(x, a_min, a_max), lambda g: (g * inside,)
