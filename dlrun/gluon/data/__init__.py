"""``gluon.data``: datasets, samplers and the DataLoader (:mod:`dlrun.data`), and ``vision``."""
from ...data.batchloader import DataLoader, default_batchify_fn
from ...data.dataset import ArrayDataset, Dataset, SimpleDataset
from ...data.recordio import RecordFileDataset
from ...data.sampler import (BatchSampler, FilterSampler, RandomSampler, Sampler,
                             SequentialSampler)
from . import dataloader, dataset, sampler, vision

__all__ = ["RecordFileDataset", "dataloader", "dataset", "sampler", "ArrayDataset", "BatchSampler", "DataLoader", "Dataset", "FilterSampler",
           "RandomSampler", "Sampler", "SequentialSampler", "SimpleDataset",
           "default_batchify_fn", "vision"]
