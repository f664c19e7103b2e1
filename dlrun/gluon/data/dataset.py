"""``gluon.data.dataset`` (:mod:`dlrun.data.dataset`)."""
from ...data.dataset import ArrayDataset, Dataset, SimpleDataset
from ...data.recordio import RecordFileDataset

__all__ = ["ArrayDataset", "Dataset", "RecordFileDataset", "SimpleDataset"]
