"""``gluon.model_zoo``: the vision models (:mod:`dlrun.models.zoo`)."""
from . import vision

__all__ = ["vision"]
