"""``gluon.data.vision``: MNIST, FashionMNIST, CIFAR10, CIFAR100, ImageFolderDataset
(:mod:`dlrun.data.gluon_vision`) and ``transforms``."""
from . import datasets, transforms
from .datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST, ImageFolderDataset

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "ImageFolderDataset", "datasets",
           "transforms"]
