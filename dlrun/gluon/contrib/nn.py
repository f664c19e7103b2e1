"""``gluon.contrib.nn``: Concurrent, HybridConcurrent, Identity and SyncBatchNorm."""
from ...nn import Concurrent, HybridConcurrent, Identity, SyncBatchNorm

__all__ = ["Concurrent", "HybridConcurrent", "Identity", "SyncBatchNorm"]
