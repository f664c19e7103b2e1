"""``gluon.contrib``: ``contrib.nn``."""
from . import nn

__all__ = ["nn"]
