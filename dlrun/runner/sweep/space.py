"""The search space of an Optuna sweep, from Hydra's override syntax (``hydra.sweeper.params``
and sweep overrides on the command line); each key becomes an Optuna distribution:

    interval(a, b)              float in [a, b]           tag(log, interval(a, b))  on a log scale
    tag(int, interval(a, b))    integer in [a, b]         tag(log, int, interval(a, b))
    range(a, b[, step])         integers a, a+step, ... < b (floats: those values)
    a,b,c / choice(a, b, c)     one of the values         glob(...)  config group options
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, List, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from .trial import SweepError

_TAGS = {"log", "int"}


@dataclass
class Param:
    """One dimension of the search space: its key, how it was written, its distribution."""

    key: str
    spec: str
    dist: BaseDistribution
    to_text: Callable[[Any], str]      # an Optuna value -> the override's value
    corners: List[Any]                 # values that composing the config checks up front

    def override(self, value: Any) -> str:
        return f"{self.key}={self.to_text(value)}"


def parse_search_space(lines: Sequence[str], config_loader: Any = None
                       ) -> tuple[list[Param], list[str]]:
    """(the search space, the fixed overrides) of ``key=value`` lines; the last line of a key wins."""
    parser = OverridesParser.create(config_loader=config_loader)
    by_key: dict[str, Override] = {}
    for line in lines:
        try:
            (o,) = parser.parse_overrides([line])
        except Exception as e:  # noqa: BLE001 - Hydra's parse errors say where
            raise SweepError(f"the search space entry {line!r} does not parse: "
                             f"{first_line(e)}") from None
        key = o.get_key_element()
        by_key.pop(key, None)
        by_key[key] = o
    params, fixed = [], []
    for key, o in by_key.items():
        if not o.is_sweep_override():
            fixed.append(o.input_line)
        elif o.is_hydra_override():
            raise SweepError(f"{o.input_line}: Hydra's own settings cannot be searched")
        else:
            params.append(make_param(o))
    if not params:
        raise SweepError("the Optuna sweep has no search space: declare it in "
                         "hydra.sweeper.params (see conf/hparams_search/lenet_optuna.yaml) "
                         "or give a range on the command line, e.g. "
                         "'optimizer.lr=tag(log, interval(0.001, 0.1))'")
    return params, fixed


def make_param(o: Override) -> Param:
    key = o.get_key_element()
    spec = o.input_line.partition("=")[2]
    value = o.value()
    where = f"{key}={spec}"
    tags = set(getattr(value, "tags", set()) or set())
    if tags - _TAGS:
        raise SweepError(f"{where}: unknown tag {sorted(tags - _TAGS)[0]!r}; the Optuna "
                         "sweeper knows tag(log, ...) and tag(int, ...)")
    if isinstance(value, IntervalSweep):
        low, high, log = float(value.start), float(value.end), "log" in tags
        if not low < high:
            raise SweepError(f"{where}: the interval's start must be below its end")
        if log and low <= 0:
            raise SweepError(f"{where}: a log scale needs a positive start")
        if "int" in tags:
            if not (low.is_integer() and high.is_integer()):
                raise SweepError(f"{where}: tag(int, ...) needs whole-number bounds")
            return Param(key, spec, IntDistribution(int(low), int(high), log=log),
                         lambda v: str(int(v)), [int(low), int(high)])
        return Param(key, spec, FloatDistribution(low, high, log=log),
                     functools.partial(_format_float, low=low, high=high, log=log), [low, high])
    if "log" in tags or "int" in tags:
        raise SweepError(f"{where}: tag(log/int, ...) applies to interval(...) only")
    if isinstance(value, RangeSweep) and not value.shuffle:
        values = list(o.sweep_iterator())
        if not values:
            raise SweepError(f"{where}: the range is empty")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            step = int(value.step)
            low, high = min(values), max(values)
            return Param(key, spec, IntDistribution(low, high, step=abs(step)),
                         lambda v: str(int(v)), [low, high])
    # choices: a,b,c / choice(...) / glob(...) / a range of floats or a shuffled one
    texts = list(o.sweep_string_iterator())
    try:
        values = list(o.sweep_iterator())
    except Exception:  # noqa: BLE001 - glob(...) and the like: their texts are their values
        values = texts
    scalar = all(v is None or isinstance(v, (bool, int, float, str)) for v in values)
    choices = values if scalar and len(set(map(repr, values))) == len(values) else texts
    if len(set(map(repr, choices))) != len(choices):
        raise SweepError(f"{where}: the choices repeat a value")
    index = {repr(c): i for i, c in enumerate(choices)}
    return Param(key, spec, CategoricalDistribution(choices),
                 lambda v: texts[index[repr(v)]], list(choices))


def _format_float(value: float, low: float, high: float, log: bool) -> str:
    """Enough significant digits for the interval (4, more for a narrow one), as a float."""
    digits = 4
    if not log:
        digits += max(0, math.ceil(math.log10(max(abs(low), abs(high), 1e-300) / (high - low))))
    text = f"{float(value):.{digits}g}"
    return text + ".0" if re.fullmatch(r"-?\d+", text) else text


def first_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
