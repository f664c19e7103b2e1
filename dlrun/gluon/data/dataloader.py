"""``gluon.data.dataloader`` (:mod:`dlrun.data.batchloader`)."""
from ...data.batchloader import DataLoader, default_batchify_fn

__all__ = ["DataLoader", "default_batchify_fn"]
