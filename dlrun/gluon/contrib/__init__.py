"""``gluon.contrib``: ``contrib.nn`` and ``contrib.data``."""
from . import data, nn

__all__ = ["data", "nn"]
