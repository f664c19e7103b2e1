"""MXNet's ``nd`` namespace over dlrun's engine: creation functions, every op, random."""
from .engine import (NDArray, arange, array, full, ones, ones_like, random, waitall, zeros,
                     zeros_like)
from .engine.ops import *  # noqa: F403 - the op namespace is the point of this module
from .engine.ops import __all__ as _ops_all

__all__ = ["NDArray", "arange", "array", "full", "ones", "ones_like", "random", "waitall",
           "zeros", "zeros_like", *_ops_all]
