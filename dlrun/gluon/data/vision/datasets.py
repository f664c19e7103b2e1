"""``gluon.data.vision.datasets`` (:mod:`dlrun.data.gluon_vision`)."""
from ....data.gluon_vision import CIFAR10, CIFAR100, MNIST, FashionMNIST, ImageFolderDataset

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "ImageFolderDataset"]
