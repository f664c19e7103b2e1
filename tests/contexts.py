"""Device contexts the engine tests run on: the CPU always, and gpu(0): the real GPU where
CuPy sees one, else the emulated GPU (``dlrun.engine.testing``, chosen in tests/conftest.py)."""
import pytest

from dlrun.engine import cpu, gpu, num_gpus
from dlrun.engine.backend import emulated_gpus

HAS_GPU = num_gpus() > 0
EMULATED = emulated_gpus() > 0
GPU_SKIP_REASON = ("no CUDA GPU visible to CuPy and DLRUN_EMULATE_GPU=0 (unset it to run these "
                   "on the emulated GPU, or install dlrun[gpu] on a GPU machine)")

CONTEXTS = [
    pytest.param(cpu, id="cpu"),
    pytest.param(gpu, id="gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason=GPU_SKIP_REASON)]),
]
