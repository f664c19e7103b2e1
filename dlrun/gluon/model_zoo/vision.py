"""``gluon.model_zoo.vision``: ``get_model(name, classes=..., pretrained=...)`` and the model
classes and functions (:mod:`dlrun.models.zoo`); ``pretrained=True`` loads MXNet's model-zoo
``.params`` file from ``~/.mxnet/models`` (or ``root``), downloaded and SHA-1-checked when
missing."""
from ...models.zoo import *  # noqa: F403 - the zoo namespace is the point of this module
from ...models.zoo import __all__  # noqa: F401
