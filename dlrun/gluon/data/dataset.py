"""``gluon.data.dataset`` (:mod:`dlrun.data.dataset`)."""
from ...data.dataset import ArrayDataset, Dataset, SimpleDataset

__all__ = ["ArrayDataset", "Dataset", "SimpleDataset"]
