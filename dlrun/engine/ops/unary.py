"""Elementwise unary functions and activations."""
from __future__ import annotations

from ..registry import register


__all__ = ["exp", "log", "sqrt", "square", "abs", "tanh", "sigmoid", "relu"]


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


@register("tanh")
def tanh(xp, x):
    y = xp.tanh(x)
    return y, lambda g: (g * (1 - y * y),)


@register("sigmoid")
def sigmoid(xp, x):
    e = xp.exp(-xp.abs(x))  # never overflows
    y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return y, lambda g: (g * y * (1 - y),)


@register("relu")
def relu(xp, x):
    return xp.maximum(x, 0), lambda g: (g * (x > 0),)
