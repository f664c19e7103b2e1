"""More elementwise functions (trigonometric, hyperbolic, rounding, reciprocal roots, logs in
other bases) and the scans and sorts along one axis that MXNet 1.x code calls.

Each elementwise op is one line of the table below: its forward and its derivative as a
function of the input ``x`` and the output ``y``. Rounding ops have a zero gradient, as in
MXNet.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ..registry import register
from ._util import normalize_axes
from .unary import elu

def _erf(xp: Any, x: Any) -> Any:
    """The error function to float32 precision (Abramowitz & Stegun 7.1.26, error < 1.5e-7,
    evaluated in float64): neither NumPy nor CuPy's core has one."""
    t = 1.0 / (1.0 + 0.3275911 * xp.abs(x.astype("float64")))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return xp.sign(x) * (1.0 - poly * xp.exp(-(x.astype("float64") ** 2)))


# name: (forward(xp, x), derivative(xp, x, y)); derivative None: a zero gradient
_TABLE: dict[str, tuple[Callable, Callable | None]] = {
    "sin": (lambda xp, x: xp.sin(x), lambda xp, x, y: xp.cos(x)),
    "cos": (lambda xp, x: xp.cos(x), lambda xp, x, y: -xp.sin(x)),
    "tan": (lambda xp, x: xp.tan(x), lambda xp, x, y: 1 + y * y),
    "arcsin": (lambda xp, x: xp.arcsin(x), lambda xp, x, y: 1 / xp.sqrt(1 - x * x)),
    "arccos": (lambda xp, x: xp.arccos(x), lambda xp, x, y: -1 / xp.sqrt(1 - x * x)),
    "arctan": (lambda xp, x: xp.arctan(x), lambda xp, x, y: 1 / (1 + x * x)),
    "sinh": (lambda xp, x: xp.sinh(x), lambda xp, x, y: xp.cosh(x)),
    "cosh": (lambda xp, x: xp.cosh(x), lambda xp, x, y: xp.sinh(x)),
    "arcsinh": (lambda xp, x: xp.arcsinh(x), lambda xp, x, y: 1 / xp.sqrt(x * x + 1)),
    "arccosh": (lambda xp, x: xp.arccosh(x), lambda xp, x, y: 1 / xp.sqrt(x * x - 1)),
    "arctanh": (lambda xp, x: xp.arctanh(x), lambda xp, x, y: 1 / (1 - x * x)),
    "degrees": (lambda xp, x: xp.degrees(x), lambda xp, x, y: 180 / math.pi + 0 * x),
    "radians": (lambda xp, x: xp.radians(x), lambda xp, x, y: math.pi / 180 + 0 * x),
    "reciprocal": (lambda xp, x: 1 / x, lambda xp, x, y: -y * y),
    "rsqrt": (lambda xp, x: 1 / xp.sqrt(x), lambda xp, x, y: -0.5 * y * y * y),
    "cbrt": (lambda xp, x: xp.cbrt(x), lambda xp, x, y: 1 / (3 * y * y)),
    "rcbrt": (lambda xp, x: 1 / xp.cbrt(x), lambda xp, x, y: -y / (3 * x)),
    "log2": (lambda xp, x: xp.log2(x), lambda xp, x, y: 1 / (x * math.log(2))),
    "log10": (lambda xp, x: xp.log10(x), lambda xp, x, y: 1 / (x * math.log(10))),
    "erf": (lambda xp, x: _erf(xp, x), lambda xp, x, y: 2 / math.sqrt(math.pi) * xp.exp(-x * x)),
    "floor": (lambda xp, x: xp.floor(x), None),
    "ceil": (lambda xp, x: xp.ceil(x), None),
    "round": (lambda xp, x: xp.where(x >= 0, xp.floor(x + 0.5), xp.ceil(x - 0.5)), None),
    # MXNet's rint: ties go down (2.5 -> 2, -2.5 -> -3), unlike NumPy's ties to even
    "rint": (lambda xp, x: xp.where(x - xp.floor(x) <= 0.5, xp.floor(x), xp.ceil(x)), None),
    "fix": (lambda xp, x: xp.trunc(x), None),
    "trunc": (lambda xp, x: xp.trunc(x), None),
}


def _elementwise(name: str, forward: Callable, derivative: Callable | None) -> Any:
    @register(name)
    def op(xp, x):
        y = forward(xp, x).astype(x.dtype, copy=False)
        if derivative is None:
            return y, lambda g: (xp.zeros_like(g),)
        return y, lambda g: ((g * derivative(xp, x, y)).astype(g.dtype, copy=False),)
    op.__doc__ = f"Elementwise ``{name}`` (MXNet's ``nd.{name}``)."
    return op


for _name, (_fwd, _der) in _TABLE.items():
    globals()[_name] = _elementwise(_name, _fwd, _der)


SELU_LAMBDA, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def selu(x: Any) -> Any:
    """Scaled ELU (Klambauer et al. 2017): lambda * (x if x > 0 else alpha * (exp(x) - 1))."""
    return SELU_LAMBDA * elu(x, alpha=SELU_ALPHA)


def gelu(x: Any) -> Any:
    """x * Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016), with the exact erf."""
    return 0.5 * x * (1 + erf(x * 0.7071067811865476))  # noqa: F821 - made from _TABLE above


@register("cumsum")
def cumsum(xp, x, axis=None, dtype=None):
    """Running sums along ``axis`` (of the flattened array when axis is None)."""
    flat = axis is None
    src = x.reshape(-1) if flat else x
    ax = 0 if flat else normalize_axes(axis, x.ndim)[0]
    y = xp.cumsum(src, axis=ax, dtype=dtype)

    def vjp(g):
        gx = xp.flip(xp.cumsum(xp.flip(g, axis=ax), axis=ax), axis=ax)
        return (gx.reshape(x.shape).astype(x.dtype, copy=False),)
    return y, vjp


@register("argsort", differentiable=False)
def argsort(xp, x, axis=-1, is_ascend=True, dtype="float32"):
    """Positions that sort ``x`` along ``axis`` (flattened when None), as MXNet's (float32
    by default)."""
    src = x.reshape(-1) if axis is None else x
    ax = -1 if axis is None else axis
    order = xp.argsort(src if is_ascend else -src, axis=ax, kind="stable")
    return order.astype(dtype)


@register("sort")
def sort(xp, x, axis=-1, is_ascend=True):
    """``x`` sorted along ``axis`` (flattened when None); gradients go back to where each
    value came from."""
    src = x.reshape(-1) if axis is None else x
    ax = src.ndim - 1 if axis is None else normalize_axes(axis, src.ndim)[0]
    order = xp.argsort(src if is_ascend else -src, axis=ax, kind="stable")
    y = xp.take_along_axis(src, order, axis=ax)

    def vjp(g):
        gx = xp.zeros(src.shape, dtype=g.dtype)
        xp.put_along_axis(gx, order, g, axis=ax)
        return (gx.reshape(x.shape),)
    return y, vjp


__all__ = [*_TABLE, "selu", "gelu", "cumsum", "argsort", "sort"]
