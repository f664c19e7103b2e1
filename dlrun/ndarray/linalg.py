"""``nd.linalg``: the matrix products of MXNet's ``linalg`` namespace."""
from .legacy import linalg_gemm as gemm
from .legacy import linalg_gemm2 as gemm2

__all__ = ["gemm", "gemm2"]
