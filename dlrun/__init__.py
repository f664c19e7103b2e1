"""dlrun: a deep-learning experiment runner on its own Gluon-style engine.

``import dlrun as mx`` gives the names MXNet Gluon code uses (``mx.cpu()``, ``mx.nd``,
``mx.autograd``, ``mx.gluon``, ``mx.init``, ``mx.optimizer``, ``mx.kv``).
"""
from . import gluon, nd
from . import optim as optimizer
from .parallel import kvstore as kv
from .engine import Context, autograd, cpu, current_context, gpu, num_gpus, random
from .nn import init

__version__ = "0.1.0"

__all__ = ["gluon", "nd", "kv", "optimizer", "Context", "autograd", "cpu", "current_context", "gpu",
           "num_gpus", "random", "init", "__version__"]
