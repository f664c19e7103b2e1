"""``gluon.data.vision.transforms`` (:mod:`dlrun.data.item_transforms`)."""
from ....data.item_transforms import *  # noqa: F403 - the transform namespace is the point
from ....data.item_transforms import __all__  # noqa: F401
