"""The processes of a data-parallel job and their collectives (MPI on the host, NCCL on GPUs).

A job is one process per worker, started by an MPI launcher (``mpiexec``, SLURM's ``srun``).
``current()`` is this process's view: its rank, the world size, its rank among the processes
of its machine. Outside a launcher it is a world of one, and nothing here imports mpi4py or
CuPy. Collectives work in place on NumPy arrays through MPI and on CuPy arrays through NCCL
(``cupy.cuda.nccl``, its unique id sent from rank 0 over MPI).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..engine.backend import is_device_array

# launcher -> (rank, size, local rank) environment variables, in the order they are tried
_LAUNCHERS = (
    ("mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("open-mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("pmix", "PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


class DistributedError(RuntimeError):
    """A data-parallel job cannot start or cannot go on (the message says why and what to do)."""


def launched_by() -> tuple[str, int, int, int] | None:
    """(launcher, rank, size, local rank) when this process was started by an MPI launcher or
    ``srun`` as one of several; None for a plain process."""
    for name, rank, size, local in _LAUNCHERS:
        if rank in os.environ and size in os.environ:
            n = int(os.environ[size])
            if name == "slurm" and "SLURM_STEP_ID" not in os.environ:
                continue  # inside an allocation (sbatch) but not a task of srun
            return name, int(os.environ[rank]), n, int(os.environ.get(local, os.environ[rank]))
    return None


@dataclass
class World:
    """This process's place in the job; a world of one has collectives that do nothing."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launcher: str | None = None
    comm: Any = None                      # mpi4py's COMM_WORLD when size > 1
    _nccl: dict = field(default_factory=dict, repr=False)  # device id -> NcclComm (or None)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_(self, buf: Any) -> Any:
        """Sum ``buf`` (a NumPy or CuPy array) over all ranks, in place; returns it."""
        if self.size == 1:
            return buf
        nccl = self._nccl_comm(buf.device.id) if is_device_array(buf) else None
        if nccl is not None:
            nccl.allreduce_(buf)
        elif is_device_array(buf):  # ranks share this GPU: through the host
            buf.set(self.allreduce_(buf.get()))
        else:
            from mpi4py import MPI
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf

    def broadcast_(self, buf: Any, root: int = 0) -> Any:
        """Overwrite ``buf`` on every rank with rank ``root``'s values, in place; returns it."""
        if self.size == 1:
            return buf
        nccl = self._nccl_comm(buf.device.id) if is_device_array(buf) else None
        if nccl is not None:
            nccl.broadcast_(buf, root)
        elif is_device_array(buf):  # ranks share this GPU: through the host
            buf.set(self.broadcast_(buf.get(), root))
        else:
            self.comm.Bcast(buf, root=root)
        return buf

    def allgather(self, value: Any) -> list:
        """Every rank's ``value`` (a small host object, e.g. a NumPy array), in rank order."""
        return [value] if self.size == 1 else self.comm.allgather(value)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on at least one rank (every rank gets the same answer)."""
        if self.size == 1:
            return bool(flag)
        from mpi4py import MPI
        return bool(self.comm.allreduce(int(bool(flag)), op=MPI.MAX))

    def barrier(self) -> None:
        if self.size > 1:
            self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every process of the job (a rank that fails must not leave the others waiting)."""
        if self.size > 1:
            self.comm.Abort(code)

    def _nccl_comm(self, device_id: int) -> "NcclComm | None":
        """NCCL over the ranks' GPUs; None where two ranks share a GPU, which NCCL refuses
        (several processes on one GPU then reduce through host copies and MPI)."""
        if device_id not in self._nccl:
            import socket

            placements = self.comm.allgather((socket.gethostname(), device_id))
            shared = len(set(placements)) < len(placements)
            self._nccl[device_id] = None if shared else NcclComm(self, device_id)
        return self._nccl[device_id]


class NcclComm:
    """An NCCL communicator over all ranks (one GPU each), set up through MPI."""

    def __init__(self, world: World, device_id: int):
        try:
            from cupy.cuda import nccl
        except ImportError as e:  # pragma: no cover - CuPy without NCCL
            raise DistributedError(
                "GPU gradients are reduced with NCCL, which this CuPy lacks: pip install "
                "'dlrun[gpu]' (cupy-cuda12x brings NCCL), or train with device=cpu") from e
        import cupy

        self._nccl = nccl
        uid = nccl.get_unique_id() if world.rank == 0 else None
        uid = world.comm.bcast(uid, root=0)
        with cupy.cuda.Device(device_id):
            self.comm = nccl.NcclCommunicator(world.size, uid, world.rank)

    def _dtype(self, buf: Any) -> int:
        n = self._nccl
        kinds = {"float32": n.NCCL_FLOAT32, "float64": n.NCCL_FLOAT64, "float16": n.NCCL_FLOAT16,
                 "int32": n.NCCL_INT32, "int64": n.NCCL_INT64}
        if str(buf.dtype) not in kinds:
            raise DistributedError(f"NCCL cannot reduce arrays of dtype {buf.dtype}")
        return kinds[str(buf.dtype)]

    def allreduce_(self, buf: Any) -> None:
        import cupy
        stream = cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._dtype(buf),
                            self._nccl.NCCL_SUM, stream)

    def broadcast_(self, buf: Any, root: int) -> None:
        import cupy
        stream = cupy.cuda.get_current_stream().ptr
        self.comm.bcast(buf.data.ptr, buf.size, self._dtype(buf), root, stream)


_WORLD: World | None = None


def current() -> World:
    """This process's world: from the MPI launcher that started it, else a world of one."""
    global _WORLD
    if _WORLD is None:
        found = launched_by()
        if found is None or found[2] == 1:
            _WORLD = World()
        else:
            name, rank, size, local = found
            comm = _mpi_world(name)
            if comm.Get_size() != size:
                raise DistributedError(
                    f"{name} started {size} processes but MPI sees {comm.Get_size()}: mpi4py is "
                    "built against another MPI than the launcher's; launch with the mpiexec of "
                    "the environment dlrun is installed in")
            _WORLD = World(rank=comm.Get_rank(), size=size, local_rank=local, launcher=name, comm=comm)
            from ..engine.ops.nn import set_worker_sum
            set_worker_sum(_WORLD.allreduce_)  # synchronised BatchNorm sums over this job
    return _WORLD


def _mpi_world(launcher: str) -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            f"this process was started by {launcher} as one of several, but mpi4py is not "
            "installed: pip install 'dlrun[dist]' (mpi4py and MPICH)") from e
    return MPI.COMM_WORLD
