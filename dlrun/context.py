"""``mx.context``: device contexts (:mod:`dlrun.engine.backend`)."""
from .engine.backend import Context, cpu, current_context, gpu, num_gpus

__all__ = ["Context", "cpu", "current_context", "gpu", "num_gpus"]
