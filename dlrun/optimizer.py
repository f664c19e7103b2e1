"""``mx.optimizer``: the optimizers, ``create`` and ``register`` (:mod:`dlrun.optim`)."""
from .optim import (DCASGD, NAG, SGD, SGLD, AdaDelta, AdaGrad, Adam, Adamax, Ftrl, Nadam,
                    Optimizer, RMSProp, Signum, create, register)

__all__ = ["DCASGD", "NAG", "SGD", "SGLD", "AdaDelta", "AdaGrad", "Adam", "Adamax", "Ftrl",
           "Nadam", "Optimizer", "RMSProp", "Signum", "create", "register"]
