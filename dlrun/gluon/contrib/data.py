"""``gluon.contrib.data``: the IntervalSampler (:mod:`dlrun.data.sampler`)."""
from ...data.sampler import IntervalSampler

__all__ = ["IntervalSampler"]
