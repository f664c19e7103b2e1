"""dlrun's tensor/autograd engine: NDArray on a device context, autograd, the op registry."""
from . import autograd, ops, random
from .backend import Context, ContextError, cpu, current_context, gpu, num_gpus
from .ndarray import NDArray, arange, array, full, ones, ones_like, waitall, zeros, zeros_like
from .registry import OPS, register

__all__ = [
    "autograd", "ops", "random", "Context", "ContextError", "cpu", "current_context", "gpu",
    "num_gpus", "NDArray", "arange", "array", "full", "ones", "ones_like", "waitall", "zeros",
    "zeros_like", "OPS", "register",
]
