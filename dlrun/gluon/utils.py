"""``gluon.utils``: splitting a batch over devices, gradient-norm clipping and checked
downloads (:mod:`dlrun.parallel.split`, :mod:`dlrun.optim`, :mod:`dlrun.data.download`)."""
from ..data.download import check_sha1, download, sha1_hash
from ..optim import clip_global_norm
from ..parallel.split import split_and_load, split_data

__all__ = ["check_sha1", "clip_global_norm", "download", "sha1_hash", "split_and_load", "split_data"]
