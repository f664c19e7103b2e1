"""``gluon.model_zoo.vision``: ``get_model(name, classes=...)`` and the model functions
(:mod:`dlrun.models.zoo`); ``pretrained=True`` loads MXNet's model-zoo ``.params`` file
from ``~/.mxnet/models`` (or ``root``) when it is there."""
from ...models.zoo import *  # noqa: F403 - the zoo namespace is the point of this module
from ...models.zoo import __all__  # noqa: F401
