"""Data-parallel training: the job's processes (MPI), gradient all-reduce (NCCL on GPU, MPI on
CPU), a Gluon-style ``KVStore`` facade, and relaunching ``dlrun`` under ``mpiexec``."""
from .reducer import GradientReducer
from .world import DistributedError, World, current, launched_by

__all__ = ["DistributedError", "GradientReducer", "World", "current", "launched_by"]
