"""``gluon.data.vision``: MNIST, FashionMNIST, CIFAR10 (:mod:`dlrun.data.gluon_vision`) and
``transforms``."""
from ....data.gluon_vision import CIFAR10, MNIST, FashionMNIST
from . import transforms

__all__ = ["CIFAR10", "MNIST", "FashionMNIST", "transforms"]
