"""MXNet 1.x's ``ndarray`` namespace (``mx.nd``) over dlrun's engine.

Every registered op (``dlrun.engine.ops``), the creation functions, the 1.x names of
:mod:`.legacy` (``broadcast_*``, ``random_normal``, ``FullyConnected``...), ``random``
with MXNet's signatures, ``linalg``, and ``save``/``load`` of MXNet's binary format.
"""
from ..engine import NDArray, arange, array, full, ones, ones_like, waitall, zeros, zeros_like
from ..engine.ops import *  # noqa: F403 - the op namespace is the point of this module
from ..engine.ops import __all__ as _ops_all
from . import linalg, random
from .legacy import *  # noqa: F403
from .legacy import __all__ as _legacy_all
from .utils import load, save

__all__ = ["NDArray", "arange", "array", "full", "ones", "ones_like", "waitall", "zeros",
           "zeros_like", "random", "linalg", "load", "save", *_ops_all, *_legacy_all]
