"""Contributed extensions, as MXNet's ``mxnet.contrib``: ``amp`` (automatic mixed precision)."""
from . import amp

__all__ = ["amp"]
