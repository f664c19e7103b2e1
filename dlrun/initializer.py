"""``mx.initializer`` (= ``mx.init``): the parameter initializers (:mod:`dlrun.nn.init`)."""
from .nn.init import (LSTMBias, Constant, Initializer, Mixed, MSRAPrelu, Normal, One, Orthogonal,
                      Uniform, Xavier, Zero, create)

__all__ = ["Constant", "Initializer", "LSTMBias", "MSRAPrelu", "Mixed", "Normal", "One",
           "Orthogonal", "Uniform", "Xavier", "Zero", "create"]
