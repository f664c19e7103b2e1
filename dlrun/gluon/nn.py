"""``gluon.nn``: blocks, containers and layers (:mod:`dlrun.nn`)."""
from ..nn import *  # noqa: F403 - the layer namespace is the point of this module
from ..nn import __all__  # noqa: F401
