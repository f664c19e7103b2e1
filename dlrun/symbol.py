"""The op namespace a 1.x ``hybrid_forward(self, F, x)`` receives while it is being traced.

It holds the same ops as ``dlrun.nd``; only its name differs, so that ``F.__name__`` tells a
traced call (``dlrun.symbol``) from an imperative one (``dlrun.nd``), as in MXNet.
"""
from .nd import *  # noqa: F403 - the op namespace is the point of this module
from .nd import __all__  # noqa: F401
