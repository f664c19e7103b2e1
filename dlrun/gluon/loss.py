"""``gluon.loss``: the losses (:mod:`dlrun.loss`)."""
from ..loss import *  # noqa: F403 - the loss namespace is the point of this module
from ..loss import __all__  # noqa: F401
