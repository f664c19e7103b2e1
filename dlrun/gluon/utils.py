"""MXNet Gluon's ``gluon.utils``: splitting a batch over devices and gradient-norm clipping."""
from .optim import clip_global_norm
from .parallel.split import split_and_load, split_data

__all__ = ["clip_global_norm", "split_and_load", "split_data"]
