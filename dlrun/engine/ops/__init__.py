"""Every registered op, importable by name (``ops.tanh(x)``); see :mod:`..registry`."""
from .arith import (add, cast, copy, copy_to_context, divide, equal, greater, greater_equal,
                    lesser, lesser_equal, multiply, negative, not_equal, power, subtract)
from .conv import convolution, pooling
from .linalg import fully_connected, matmul
from .nn import dropout, log_softmax, pick, softmax
from .reduce import argmax, max, mean, min, norm, sum
from .shape import flatten, getitem, reshape, transpose
from .unary import abs, exp, log, relu, sigmoid, sqrt, square, tanh

__all__ = [
    "add", "cast", "copy", "copy_to_context", "divide", "equal", "greater", "greater_equal",
    "lesser", "lesser_equal", "multiply", "negative", "not_equal", "power", "subtract",
    "convolution", "pooling", "fully_connected", "matmul", "dropout", "log_softmax", "pick",
    "softmax", "argmax", "max", "mean", "min", "norm", "sum", "flatten", "getitem", "reshape",
    "transpose", "abs", "exp", "log", "relu", "sigmoid", "sqrt", "square", "tanh",
]
