"""``gluon.data.sampler`` (:mod:`dlrun.data.sampler`)."""
from ...data.sampler import (BatchSampler, FilterSampler, IntervalSampler, RandomSampler, Sampler,
                             SequentialSampler)

__all__ = ["BatchSampler", "FilterSampler", "IntervalSampler", "RandomSampler", "Sampler",
           "SequentialSampler"]
