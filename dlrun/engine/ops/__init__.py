"""Every registered op, importable by name (``ops.tanh(x)``); see :mod:`..registry`.

Each module lists its ops in ``__all__``; this package gathers them.
"""
from . import arith, conv, elementwise, linalg, nn, recurrent, reduce, shape, unary
from .arith import *  # noqa: F403
from .conv import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .linalg import *  # noqa: F403
from .nn import *  # noqa: F403
from .recurrent import *  # noqa: F403
from .reduce import *  # noqa: F403
from .shape import *  # noqa: F403
from .unary import *  # noqa: F403

__all__ = [name for module in (arith, conv, elementwise, linalg, nn, recurrent, reduce, shape, unary) for name in module.__all__]
