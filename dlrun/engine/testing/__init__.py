"""An emulated CuPy for tests: ``gpu(0..N-1)`` without a GPU (``DLRUN_EMULATE_GPU=N``).

Never on for users: only the environment variable turns it on (``backend`` then installs this
module's ``cupy``, ``cupyx`` and ``cupy.cuda.nccl`` in ``sys.modules`` in place of CuPy). The
stand-in is strict where CuPy is: device arrays are their own type, carry their device id,
refuse implicit conversion to NumPy (``np.asarray(x)`` raises CuPy's ``TypeError``), refuse
arrays of another device (no peer access), and expose only the names and parameters of the
CuPy API snapshot ``tests/cupy_api.json`` (written by ``tools/cupy_api_snapshot.py``). Host
transfers and kernel launches are counted (:func:`counting`). NCCL runs on MPI.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterator

SNAPSHOT_ENV = "DLRUN_CUPY_API"
SNAPSHOT = Path(__file__).resolve().parents[3] / "tests" / "cupy_api.json"


@dataclasses.dataclass
class Counts:
    """What the emulated device did: host<->device transfers and kernel launches."""

    to_host: int = 0
    to_device: int = 0
    launches: int = 0

    def since(self, start: "Counts") -> "Counts":
        return Counts(*(a - b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(start))))


COUNTS = Counts()


@contextlib.contextmanager
def counting() -> Iterator[Counts]:
    """``with counting() as c: ...``: ``c`` holds the transfers and launches of the block."""
    start = dataclasses.replace(COUNTS)
    delta = Counts()
    try:
        yield delta
    finally:
        for field, value in dataclasses.asdict(COUNTS.since(start)).items():
            setattr(delta, field, value)


def load_snapshot(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The CuPy API snapshot (``DLRUN_CUPY_API`` or ``tests/cupy_api.json`` of the checkout)."""
    path = Path(path or os.environ.get(SNAPSHOT_ENV) or SNAPSHOT)
    if not path.is_file():
        raise FileNotFoundError(
            f"the CuPy API snapshot {path} is not there: the emulated GPU runs from a dlrun "
            f"checkout (tests/cupy_api.json), or set {SNAPSHOT_ENV} to the snapshot's path")
    return json.loads(path.read_text())


def install(devices: int) -> Any:
    """Put the emulated ``cupy`` (``devices`` GPUs) in ``sys.modules``; returns it."""
    from ._module import build
    return build(devices, load_snapshot())




def real_gpus() -> int:
    """The CUDA devices the real CuPy sees (0 without CuPy or a driver), not cached."""
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver, no device: all mean "no GPU"
        return 0


def emulate_unless_real(devices: int = 2) -> bool:
    """For test sessions: emulate ``devices`` GPUs (``DLRUN_EMULATE_GPU``) where there is no
    real one, unless the variable is set already (``DLRUN_EMULATE_GPU=0`` keeps the real
    device, or none). Subprocesses inherit the choice. Returns whether the emulation is on."""
    if "DLRUN_EMULATE_GPU" not in os.environ:
        os.environ["DLRUN_EMULATE_GPU"] = "0" if real_gpus() else str(devices)
    return os.environ["DLRUN_EMULATE_GPU"] not in ("", "0")


__all__ = ["COUNTS", "Counts", "counting", "emulate_unless_real", "install", "load_snapshot",
           "real_gpus"]
