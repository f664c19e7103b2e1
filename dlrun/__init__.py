"""dlrun: a deep-learning experiment runner on its own Gluon-style engine.

``import dlrun as mx`` gives the names MXNet Gluon code uses (``mx.cpu()``, ``mx.nd`` and
``mx.ndarray``, ``mx.sym``, ``mx.autograd``, ``mx.gluon``, ``mx.init`` and ``mx.initializer``,
``mx.random``, ``mx.context``, ``mx.optimizer``, ``mx.lr_scheduler``, ``mx.metric``, ``mx.io``,
``mx.test_utils``, ``mx.kv``).
"""
from . import (context, gluon, initializer, io, lr_scheduler, metric, nd, ndarray, optimizer,
               symbol, test_utils)
from . import symbol as sym
from .parallel import kvstore as kv
from .engine import Context, autograd, cpu, current_context, gpu, num_gpus
from .ndarray import random  # mx.random: seed and MXNet's samplers
from .nn import init

__version__ = "0.1.0"

__all__ = ["context", "gluon", "initializer", "io", "lr_scheduler", "metric", "nd", "ndarray",
           "optimizer", "symbol", "sym", "test_utils", "kv", "Context", "autograd", "cpu", "current_context", "gpu", "num_gpus",
           "random", "init", "__version__"]
