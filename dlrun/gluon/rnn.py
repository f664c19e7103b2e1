"""``gluon.rnn``: recurrent cells and layers (:mod:`dlrun.nn.rnn`)."""
from ..nn.rnn import *  # noqa: F403 - the layer namespace is the point of this module
from ..nn.rnn import __all__  # noqa: F401
