"""``gluon.trainer``: the Trainer (:mod:`dlrun.optim`)."""
from ..optim import Trainer

__all__ = ["Trainer"]
