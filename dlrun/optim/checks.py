"""Hyperparameter checks that name the offending argument."""
from __future__ import annotations

import math
import numbers
from typing import Any


def check_range(owner: str, name: str, value: Any, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = True) -> float:
    """``value`` as a float, or a ValueError naming ``owner``'s argument ``name`` and the range.

    The default interval is [low, high); ``low_open``/``high_open`` choose the bounds' kind.
    """
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    rule = f"in {lo}, {hi}" if low is not None and high is not None else (
        f"{'>' if low_open else '>='} {low:g}" if low is not None else f"{'<' if high_open else '<='} {high:g}")
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{owner}: {name} must be a number {rule}, got {value!r}")
    return float(value)
