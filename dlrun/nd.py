"""``mx.nd``: the same namespace as :mod:`dlrun.ndarray` (MXNet's ``nd`` is ``ndarray``)."""
from .ndarray import *  # noqa: F403 - the op namespace is the point of this module
from .ndarray import __all__, linalg, random  # noqa: F401
