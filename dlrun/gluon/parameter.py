"""``gluon.parameter``: Parameter, Constant and ParameterDict (:mod:`dlrun.nn.parameter`)."""
from ..nn.parameter import Constant, DeferredInitializationError, Parameter, ParameterDict

__all__ = ["Constant", "DeferredInitializationError", "Parameter", "ParameterDict"]
