"""``gluon.data.vision``: MNIST, FashionMNIST, CIFAR10, CIFAR100 (:mod:`dlrun.data.gluon_vision`) and
``transforms``."""
from . import datasets, transforms
from .datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "datasets", "transforms"]
