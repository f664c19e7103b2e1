"""What a piece of dlrun code leaves to the cyclic garbage collector (reference cycles)."""
from __future__ import annotations

import gc
import types
from typing import Callable

import numpy as np


def cyclic_garbage(fn: Callable[[], object]) -> list[str]:
    """Run ``fn`` with the cyclic collector off and name the dlrun objects (arrays, dlrun
    classes' instances and functions) that only the collector would then free.

    Other libraries' garbage (say, a finalised SQLAlchemy registry of an earlier test) is
    not counted: it may come due at any moment.
    """
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        fn()
        gc.collect()
        return sorted(_name(o) for o in gc.garbage if _is_dlrun(o))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _is_dlrun(o: object) -> bool:
    if isinstance(o, np.ndarray):
        return True
    if isinstance(o, types.FunctionType):
        return (o.__module__ or "").startswith("dlrun")
    return type(o).__module__.startswith("dlrun")


def _name(o: object) -> str:
    return getattr(o, "__qualname__", None) or type(o).__qualname__
