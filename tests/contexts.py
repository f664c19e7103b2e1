"""Device contexts the engine tests run on: the CPU always, gpu(0) where CuPy sees a GPU."""
import pytest

from dlrun.engine import cpu, gpu, num_gpus

HAS_GPU = num_gpus() > 0
GPU_SKIP_REASON = "no CUDA GPU visible to CuPy (install dlrun[gpu] on a GPU machine to run these)"

CONTEXTS = [
    pytest.param(cpu, id="cpu"),
    pytest.param(gpu, id="gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason=GPU_SKIP_REASON)]),
]
