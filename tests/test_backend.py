"""The host memory pool the CPU backend sets up at import."""
import os
import platform
import subprocess
import sys

import pytest


def _pool_state(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("DLRUN_HOST_POOL", None)
    if env_value is not None:
        env["DLRUN_HOST_POOL"] = env_value
    code = "import dlrun.engine.backend as b; print(b.HOST_POOL)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the pool is glibc's malloc tuning")
def test_host_pool_is_on_by_default_and_can_be_turned_off():
    assert _pool_state(None) == "True"
    assert _pool_state("0") == "False"
